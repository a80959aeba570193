"""rm backend: a scalar reward head (num_labels=1) on the real SmolLM2 weights as a pointwise judge."""

from __future__ import annotations

import asyncio

import pytest

from judgerl.judges import Judge, JudgeRequest, JudgeSpec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reward_model(smollm2_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)  # the score head is freshly initialised
    model = AutoModelForSequenceClassification.from_pretrained(str(smollm2_path), num_labels=1, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(smollm2_path))
    model.config.pad_token_id = tok.pad_token_id
    model.eval()
    return model, tok


REQS = [JudgeRequest(prompt="What is the capital of France?", responses=["Paris."]),
        JudgeRequest(prompt=[{"role": "user", "content": "Write a haiku about rain."}],
                     responses=["Rain taps the window, soft drums in the quiet night, the garden drinks deep."])]


def test_rewards_are_scalar_verdicts_and_padding_safe(reward_model, tmp_path):
    model, tok = reward_model
    spec = JudgeSpec(backend="rm", model="unused-when-model-given", batch_size=4)
    j = Judge(spec, model=model, tokenizer=tok, cache=tmp_path / "c.sqlite", ledger=tmp_path / "l.sqlite")
    both = j.judge(REQS)
    for v in both:
        assert v.valid and v.error is None and v.label is None and v.probs is None
        assert isinstance(v.expected, float) and v.tokens_in > 10
    assert both[0].expected != both[1].expected
    # the shorter conversation gets right padding in the batch: its reward must equal the unpadded one
    alone = Judge(spec, model=model, tokenizer=tok).judge(REQS[:1])[0]
    assert alone.expected == pytest.approx(both[0].expected, abs=1e-4)
    # cached like every judge
    again = j.judge(REQS)
    assert all(v.cached for v in again) and j.ledger.summary()["backend_calls"] == 2


def test_generate_is_an_invalid_verdict_not_a_crash(reward_model):
    model, tok = reward_model
    j = Judge(JudgeSpec(backend="rm"), model=model, tokenizer=tok)
    g = asyncio.run(j.agenerate([[{"role": "user", "content": "hi"}]]))[0]
    assert not g.valid and "cannot generate" in g.error


def test_loads_by_name(smollm2_path):
    """Without model=, the backend loads the checkpoint through judgerl.models.resolve."""
    v = Judge(JudgeSpec(backend="rm", model=str(smollm2_path), device="cpu", dtype="float32")).judge(REQS[:1])[0]
    assert v.valid and isinstance(v.expected, float)


def test_rm_rejects_pairwise():
    with pytest.raises(ValueError, match="pointwise"):
        JudgeSpec(backend="rm", format="pairwise")
