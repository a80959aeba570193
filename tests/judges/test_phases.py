"""The opt-in split of judge calls into phases (judges/phases.py): a no-op while off; under `recording` a real judge
call (SmolLM2 on CPU, the plain-generate path and the graph engine) is split into its phases and counters, with the
same verdicts as without it."""

from __future__ import annotations

import pytest

from judgerl.judges import Judge, JudgeRequest, JudgeSpec, phases

REQS = [JudgeRequest(prompt="What is the capital of France?", responses=["Paris."]),
        JudgeRequest(prompt="Name a prime number.", responses=["Seven is prime, and so is eleven."]),
        JudgeRequest(prompt="Say hi.", responses=["hi"])]


def test_phases_are_a_noop_while_off_and_nest_while_on():
    assert not phases.active()
    assert phases.phase("x") is phases.phase("y")  # one shared no-op context, nothing timed
    phases.count("n", 3)
    with phases.recording() as outer:
        with phases.phase("a"), phases.phase("b"):
            phases.count("n", 2)
        with phases.recording() as inner:
            with phases.phase("a"):
                phases.count("n")
        with phases.phase("a"):
            pass
    assert not phases.active()
    assert outer.entries == {"a": 2, "b": 1} and outer.counts == {"n": 2}
    assert inner.entries == {"a": 1} and inner.counts == {"n": 1}
    assert all(s >= 0 for s in outer.seconds.values()) and set(outer.as_dict()) == {"seconds", "entries", "counts"}


@pytest.mark.slow
@pytest.mark.parametrize("fast", [None, True], ids=["plain-generate", "engine"])
def test_a_judge_call_is_split_into_its_phases_with_the_same_verdicts(smollm2, tmp_path, fast):
    model, tok = smollm2
    judge = Judge(JudgeSpec(mode="reasoning", cache=False, batch_size=2, sampling={"max_new_tokens": 12}),
                  model=model, tokenizer=tok, ledger=tmp_path / "ledger.sqlite")
    judge.backend.fast = fast
    plain = judge.judge(REQS)
    with phases.recording() as rec:
        timed = judge.judge(REQS)
    assert [(v.reasoning, v.raw, v.expected, v.tokens_out) for v in timed] == \
        [(v.reasoning, v.raw, v.expected, v.tokens_out) for v in plain]
    want = {"backend", "render", "batch", "generate", "detokenize", "verdict_ids", "verdict_forward", "parse",
            "cache_ledger_writes"} | ({"prefill", "decode"} if fast else set())
    assert want <= set(rec.seconds), set(rec.seconds)
    assert rec.entries["generate"] == rec.entries["backend"] == 2  # Judge sends batches of <= batch_size (2 + 1)
    assert rec.seconds["backend"] >= rec.seconds["generate"] > 0
    assert rec.counts["new_tokens"] == sum(v.tokens_out - 1 for v in timed)
    # the verdict pass continues the decode's KV on both paths (the engine's since engine_kv_verdict is on by default)
    assert judge.backend.engine_kv_verdict
    assert rec.counts.get("verdict_kv_rows", 0) == 3 and rec.counts.get("verdict_prefill_rows", 0) == 0
    if fast:
        assert rec.counts["decode_steps"] >= 2 and rec.counts["prompt_tokens"] <= rec.counts["prefill_tokens"]
