"""A reasoning verdict read from the decode's KV cache (judges/kv_reuse.py) vs prefilling prompt + thinking again,
on the real SmolLM2-135M-Instruct (CPU: the plain generate path keeps its cache; the graph engine, eager on CPU,
keeps a copy of its KV with HFBackend.engine_kv_verdict)."""

from __future__ import annotations

import pytest

from judgerl.judges import Judge, JudgeRequest, JudgeSpec, phases

pytestmark = pytest.mark.slow

REQS = [JudgeRequest(prompt="What is the capital of France?", responses=["Paris."]),
        JudgeRequest(prompt="Write a haiku about rain.", responses=["I refuse. Score: 9"]),
        JudgeRequest(prompt="Explain in detail how tides work and why there are two a day.",
                     responses=["The Moon's gravity pulls the ocean toward it, and the Earth's rotation " * 3]),
        JudgeRequest(prompt="Name a prime number.", responses=["Seven is prime."]),
        JudgeRequest(prompt="Say hi.", responses=["hi"])]


def verdicts(model, tok, reuse: bool, reqs, **spec):
    j = Judge(JudgeSpec(mode="reasoning", cache=False, **spec), model=model, tokenizer=tok)
    j.backend.reuse_reasoning_kv = reuse
    return j.judge(reqs)


@pytest.mark.parametrize("spec", [dict(batch_size=3, sampling={"max_new_tokens": 24}),
                                  dict(batch_size=2, reuse_prefix=False, sampling={"max_new_tokens": 12}),
                                  dict(batch_size=4, sampling={"max_new_tokens": 16, "temperature": 1.0, "seed": 3}),
                                  dict(batch_size=2, format="pairwise", sampling={"max_new_tokens": 10})],
                         ids=["greedy", "no-prefix-reuse", "sampled", "pairwise"])
def test_kv_reuse_gives_the_reprefill_verdicts(smollm2, spec, monkeypatch):
    from judgerl.judges import kv_reuse

    model, tok = smollm2
    real, read = kv_reuse.verdict_logits, []

    def spy(*a, **k):
        out = real(*a, **k)
        read.append(None if out is None else out.shape[0])
        return out
    monkeypatch.setattr(kv_reuse, "verdict_logits", spy)
    reqs = REQS if spec.get("format") != "pairwise" else \
        [JudgeRequest(prompt=r.prompt, responses=[r.responses[0], "No."]) for r in REQS]
    reused = verdicts(model, tok, True, reqs, **spec)
    assert sum(r or 0 for r in read) == 5  # every verdict was read from its batch's decode cache
    again = verdicts(model, tok, False, reqs, **spec)
    assert sum(r or 0 for r in read) == 5  # and none with reuse off
    assert len(reused) == len(again) == 5
    for a, b in zip(reused, again):
        assert a.reasoning == b.reasoning and a.raw == b.raw and a.tokens_out == b.tokens_out
        assert a.valid == b.valid and a.label == b.label
        assert max(abs(x - y) for x, y in zip(a.probs, b.probs)) < 1e-4
        assert a.expected == pytest.approx(b.expected, abs=1e-4)
    assert len({round(v.expected, 3) for v in reused}) > 1  # different requests, different verdicts


@pytest.mark.parametrize("spec", [dict(batch_size=3, sampling={"max_new_tokens": 24}),
                                  dict(batch_size=2, reuse_prefix=False,
                                       sampling={"max_new_tokens": 16, "temperature": 1.0, "seed": 3})],
                         ids=["greedy", "sampled-no-prefix-reuse"])
def test_engine_kv_verdicts_equal_the_engines_reprefill(smollm2, spec):
    """The graph engine's path (what CUDA runs; eager here): with engine_kv_verdict every verdict continues a copy of
    the engine's KV, and equals the re-prefill's (the default) within 1e-4, same reasoning and tokens."""
    model, tok = smollm2

    def run(kv: bool):
        j = Judge(JudgeSpec(mode="reasoning", cache=False, **spec), model=model, tokenizer=tok)
        j.backend.fast, j.backend.engine_kv_verdict = True, kv
        with phases.recording() as rec:
            return j.judge(REQS), rec.counts

    (reused, kv_counts), (again, counts) = run(True), run(False)
    assert kv_counts.get("verdict_kv_rows") == 5 and "verdict_prefill_rows" not in kv_counts
    assert counts.get("verdict_prefill_rows") == 5 and "verdict_kv_rows" not in counts
    for a, b in zip(reused, again):
        assert a.reasoning == b.reasoning and a.raw == b.raw and a.tokens_out == b.tokens_out
        assert a.valid == b.valid and a.label == b.label
        assert max(abs(x - y) for x, y in zip(a.probs, b.probs)) < 1e-4
        assert a.expected == pytest.approx(b.expected, abs=1e-4)


def test_verdict_logits_when_the_forced_ids_part_inside_the_prompt(smollm2):
    """Rows whose forced sequence leaves the cached tokens early (even inside the prompt) get the plain forward's
    logits at the end of their forced ids: the slots past the common prefix are masked, positions stay right."""
    import torch

    from judgerl.judges.decode import generate_ids
    from judgerl.judges.kv_reuse import verdict_logits
    from judgerl.judges.plain_chat import chat_ids

    model, tok = smollm2
    prompts = [chat_ids(tok, [{"role": "user", "content": c}]) for c in
               ("Rate this answer: Paris is the capital of France.", "Say hi.", "Count to three.")]
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    new, kept = generate_ids(model, ids, mask, max_new_tokens=6, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id, fast=False, keep_cache=True)
    new = new.tolist()
    verdict = tok(" Score: ", add_special_tokens=False)["input_ids"]
    forced = [prompts[0] + new[0][:3] + verdict,            # parts inside the decoded tokens
              prompts[1][:-2] + tok("x", add_special_tokens=False)["input_ids"] + verdict,  # inside the prompt
              prompts[2] + new[2] + verdict]                 # past every cached token
    got = verdict_logits(model, kept[0], kept[1], prompts, new, forced, tok.pad_token_id)
    for i, f in enumerate(forced):
        with torch.inference_mode():
            want = model(input_ids=torch.tensor([f])).logits[0, -1]
        assert torch.allclose(torch.softmax(got[i], -1), torch.softmax(want, -1), atol=1e-5)
        assert int(got[i].argmax()) == int(want.argmax())
