"""One rule (issue 13 item 1): an invalid verdict is never a number: not as a reward, in the gold
monitor, in judge evaluation, in probes or in the arena; checked on real invalid verdicts of every
backend (hf, openai on a real llama.cpp server, rm with a fault-injected NaN head)."""

from __future__ import annotations

import asyncio

import pytest

from judgerl.judges.judge import Judge
from judgerl.judges.spec import JudgeRequest, JudgeSpec, Verdict
from judgerl.judges.values import first_wins, point_value

POINT = JudgeRequest(prompt="What is the capital of France?", responses=["Paris."])
PAIR = JudgeRequest(prompt="What is the capital of France?", responses=["Paris.", "Lyon."])


def numbers_from_every_consumer(judge, fmt: str) -> dict:
    """What rewards, the monitor, eval-judge and probes make of this judge's verdict on one item."""
    from judgerl.evaluation import eval_judge, monitor, probes
    from judgerl.training.rewards import JudgeRewardConfig, make_reward

    cfg = JudgeRewardConfig(on_failure="drop")
    if fmt == "pointwise":
        v = judge.judge([POINT])[0]
        reward = asyncio.run(make_reward(judge, cfg, 1)([POINT.prompt], [POINT.responses[0]]))
        mon = monitor.score(judge, [POINT.prompt], [POINT.responses[0]], None, False)[0]["value"]
        return {"verdict": v, "value": point_value(v), "reward": reward[0], "monitor": mon,
                "eval": eval_judge.score_of(v), "probe": probes._value(v)}
    v = judge.judge([PAIR])[0]
    reward = asyncio.run(make_reward(judge, cfg, 2)([PAIR.prompt] * 2, PAIR.responses))
    mon = monitor.score(judge, [PAIR.prompt], [PAIR.responses[0]], [PAIR.responses[1]], False)[0]["value"]
    return {"verdict": v, "value": first_wins(v, "prob"), "vote": first_wins(v, "vote"), "reward": reward[0],
            "monitor": mon, "probe": probes._p_first(v)}


def assert_no_number(got: dict) -> None:
    v = got.pop("verdict")
    assert not v.valid, "the setup must produce an invalid verdict"
    assert v.expected is None and v.label is None
    assert got == {k: None for k in got}


def test_the_rule_on_hand_made_verdicts():
    bad = Verdict(valid=False, expected=6.3, label=6)
    assert bad.expected is None and bad.label is None  # an invalid verdict carries no number at all
    assert point_value(bad) is None
    late = Verdict(label=6, expected=6.3, valid=True).model_copy(update={"valid": False})  # bypasses validation
    assert point_value(late) is None and first_wins(late, "prob") is None and first_wins(late, "vote") is None
    assert point_value(Verdict(label=6, expected=6.3, valid=True)) == 6.3
    assert first_wins(Verdict(label=1, expected=0.8, valid=True), "vote") == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pointwise", "pairwise"])
def test_hf_invalid_verdict_is_never_a_number(smollm2, fmt):
    """Free-form parsing (force_verdict off) with 3 new tokens: the output cannot end on a verdict line,
    yet the backend used to fill `expected` from the forced distribution."""
    model, tok = smollm2
    spec = JudgeSpec(name="hf", format=fmt, mode="reasoning", force_verdict=False, device="cpu", dtype="float32",
                     sampling={"max_new_tokens": 3})
    assert_no_number(numbers_from_every_consumer(Judge(spec, model=model, tokenizer=tok), fmt))


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.parametrize("fmt", ["pointwise", "pairwise"])
def test_openai_invalid_verdict_is_never_a_number(llama_server, fmt):
    spec = JudgeSpec(name="llama", backend="openai", base_urls=[llama_server], model="smollm2-135m-instruct",
                     format=fmt, mode="reasoning", sampling={"max_new_tokens": 2}, concurrency=2)
    assert_no_number(numbers_from_every_consumer(Judge(spec), fmt))


@pytest.mark.slow
def test_rm_invalid_verdict_is_never_a_number(smollm2_path):
    """Fault injection on the real weights: a NaN reward head gives non-finite rewards."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(smollm2_path), num_labels=1, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(smollm2_path))
    model.config.pad_token_id = tok.pad_token_id
    with torch.no_grad():
        model.score.weight.fill_(float("nan"))
    judge = Judge(JudgeSpec(name="rm", backend="rm"), model=model, tokenizer=tok)
    got = numbers_from_every_consumer(judge, "pointwise")
    assert got["verdict"].error and "non-finite" in got["verdict"].error
    assert_no_number(got)
