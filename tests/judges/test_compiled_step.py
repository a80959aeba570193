"""The fused decode step through torch.compile (judges/compiled_step.py), opt-in with JUDGERL_COMPILED_STEP=1.

CPU (inductor's C++ backend; skipped without gcc / g++): on the real SmolLM2, greedy decoding through the compiled
step equals the eager fused step token for token, its logits agree with the eager step's on the same state, one
compiled graph serves other row counts, cache entries and attended lengths (no recompile), and an in-place weight
change is read by the compiled step. Without compiling: the switch (off by default, the env flag, an engine
following a flipped flag) and the fallback to the eager step with one warning when compiling fails.
GPU (skipped on CPU): greedy rollouts through captured graphs of the compiled step equal plain `generate`.
"""

from __future__ import annotations

import shutil
import time

import pytest
import torch

from test_static_decode import PROMPTS, _smollm2_cuda, batch, greedy_engine_and_generate, tiny

from judgerl.judges.compiled_step import CompiledStep
from judgerl.judges.fused_step import FusedStep
from judgerl.judges.static_decode import LEN_CHUNK, StaticDecoder, row_buckets

CUDA = torch.cuda.is_available()
COMPILER = shutil.which("gcc") and shutil.which("g++")
cpp = pytest.mark.skipif(not COMPILER, reason="inductor's CPU backend needs gcc / g++")


def tiny_llama():
    return tiny("llama", vocab=40)


def engine(model, compiled: bool, monkeypatch) -> StaticDecoder:
    monkeypatch.setenv("JUDGERL_FUSED_STEP", "1")
    monkeypatch.setenv("JUDGERL_COMPILED_STEP", "1" if compiled else "0")
    dec = StaticDecoder(model)
    assert isinstance(dec.fused, CompiledStep) == compiled and isinstance(dec.fused, FusedStep)
    return dec


def test_off_by_default_on_with_the_flag_and_the_engine_follows_a_flip(monkeypatch):
    from judgerl.judges import compiled_step
    from judgerl.judges.fused_step import fused_step_for

    model = tiny_llama()
    monkeypatch.setenv("JUDGERL_FUSED_STEP", "1")
    monkeypatch.delenv("JUDGERL_COMPILED_STEP", raising=False)
    assert compiled_step.ON_BY_DEFAULT == {"cpu": False, "cuda": True}  # CUDA: its GPU guards passed (3i)
    assert type(fused_step_for(model)) is FusedStep
    monkeypatch.setenv("JUDGERL_COMPILED_STEP", "1")
    dec = StaticDecoder(model)
    assert isinstance(dec.fused, CompiledStep)
    monkeypatch.setenv("JUDGERL_COMPILED_STEP", "0")  # a bench arm turns it off again: the next generate is eager
    dec._check_weights()
    assert type(dec.fused) is FusedStep
    assert type(compiled_step.decode_step_for(model)) is FusedStep
    monkeypatch.setenv("JUDGERL_COMPILED_STEP", "1")
    assert type(compiled_step.decode_step_for(model)) is CompiledStep
    monkeypatch.setenv("JUDGERL_FUSED_STEP", "0")
    assert compiled_step.decode_step_for(model) is None  # the compiled step is a form of the fused step, never without it


def test_a_failed_compile_falls_back_to_the_eager_step_with_one_warning(monkeypatch):
    """torch.compile failing at the first call (no compiler, no triton): one RuntimeWarning, then the eager fused
    step, with the same tokens as an engine that never tried."""
    model = tiny_llama()
    ids, mask = batch(5, 9, 40, seed=1)
    want = engine(model, False, monkeypatch).generate(ids, mask, max_new_tokens=12).tokens

    def broken(fn, **kw):
        def call(*a, **k):
            raise RuntimeError("InductorError: no working C++ compiler found\n(long traceback)")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    dec = engine(model, True, monkeypatch)
    with pytest.warns(RuntimeWarning, match="compiled decode step unavailable") as rec:
        got = dec.generate(ids, mask, max_new_tokens=12).tokens
    assert len([w for w in rec if "compiled decode step" in str(w.message)]) == 1
    assert "\n" not in str(rec[0].message) and not dec.fused.compiled
    assert torch.equal(got, want)


@pytest.mark.parametrize("attn", ["math", "flex"])
def test_attention_kinds_equal_sdpa_and_follow_their_flag(monkeypatch, attn):
    """The attention as plain matmuls (fused_step.math_attention) or through flex attention with the mask as a
    score_mod (fused_step.flex_decode_attention) decodes the same tokens as SDPA with log-probs within 1e-5 (eager,
    ragged left-padded rows); the compiled step takes its kind (and compile mode) from the flags and an engine
    rebuilds its step when a flag changes; an unknown kind is a one-line error."""
    from judgerl.judges.compiled_step import kind_changed

    model = tiny_llama()
    ids, mask = batch(5, 9, 40, seed=2)
    want = engine(model, False, monkeypatch).generate(ids, mask, max_new_tokens=12)
    dec = engine(model, False, monkeypatch)
    dec.fused.attention = attn
    got = dec.generate(ids, mask, max_new_tokens=12)
    assert torch.equal(got.tokens, want.tokens)
    assert (got.logprobs - want.logprobs).abs().max() < 1e-5
    monkeypatch.setenv("JUDGERL_COMPILED_ATTN", attn)
    step = engine(model, True, monkeypatch).fused
    assert step.attention == attn and not kind_changed(step, model)
    monkeypatch.setenv("JUDGERL_COMPILED_MODE", "max-autotune-no-cudagraphs")
    assert kind_changed(step, model)
    monkeypatch.setenv("JUDGERL_COMPILED_MODE", "reduce-overhead")  # inductor's own CUDA graphs: refused
    with pytest.raises(ValueError, match="JUDGERL_COMPILED_MODE='reduce-overhead'"):
        kind_changed(step, model)
    monkeypatch.delenv("JUDGERL_COMPILED_MODE")
    monkeypatch.setenv("JUDGERL_COMPILED_ATTN", "sdpa")
    assert kind_changed(step, model)
    monkeypatch.setenv("JUDGERL_COMPILED_ATTN", "flash")
    with pytest.raises(ValueError, match="JUDGERL_COMPILED_ATTN='flash'"):
        kind_changed(step, model)


def _eager(step, *args):
    """The step's eager forward (every layer uncompiled) on the same state."""
    step.compiled = False
    try:
        return FusedStep.forward(step, *args)
    finally:
        step.compiled = True


def _state(e, r: int, lc: int):
    """The inputs one decode step of the entry's first r rows reads (as static_decode._step passes them)."""
    return (e.tok_in[:r, 0], e.pos[:r, 0], *e.rope, e.fmask[:r, :lc], [k[:r] for k in e.keys],
            [v[:r] for v in e.values], e.slot, lc)


@cpp
def test_compiled_flex_attention_equals_the_eager_step(monkeypatch):
    """The compiled step with flex attention (inductor lowers flex_attention with the mask as a score_mod) decodes the
    same tokens as the eager fused step (SDPA) on ragged left-padded rows, log-probs within 1e-5, without falling
    back to the eager step (tiny model: a compile of seconds; the default attention is checked on SmolLM2 below)."""
    model = tiny_llama()
    ids, mask = batch(5, 9, 40, seed=3)
    want = engine(model, False, monkeypatch).generate(ids, mask, max_new_tokens=12)
    monkeypatch.setenv("JUDGERL_COMPILED_ATTN", "flex")
    dec = engine(model, True, monkeypatch)
    got = dec.generate(ids, mask, max_new_tokens=12)
    assert dec.fused.compiled and dec.fused.attention == "flex" and dec.fused.calls > 0
    assert torch.equal(got.tokens, want.tokens)
    assert (got.logprobs - want.logprobs).abs().max() < 1e-5


@cpp
def test_compiled_deferred_residual_equals_the_eager_step(monkeypatch):
    """JUDGERL_COMPILED_RESIDUAL=deferred (each layer returns (x, mlp out); the adds move into the next RMSNorm): the
    compiled step decodes the same tokens as the eager fused step (addmm residuals), log-probs within 1e-5, logits of
    one more step within 1e-5, compiled (no fallback) as one graph for every layer; the flag rebuilds the step and an
    unknown form is a one-line error."""
    from torch._dynamo.utils import counters

    from judgerl.judges.compiled_step import kind_changed

    model = tiny_llama()
    ids, mask = batch(5, 9, 40, seed=4)
    want = engine(model, False, monkeypatch).generate(ids, mask, max_new_tokens=12)
    monkeypatch.setenv("JUDGERL_COMPILED_RESIDUAL", "deferred")
    dec = engine(model, True, monkeypatch)
    graphs = counters["stats"]["unique_graphs"]
    got = dec.generate(ids, mask, max_new_tokens=12)
    assert dec.fused.compiled and dec.fused.residual == "deferred" and dec.fused.calls > 0
    assert counters["stats"]["unique_graphs"] == graphs + 1
    assert torch.equal(got.tokens, want.tokens)
    assert (got.logprobs - want.logprobs).abs().max() < 1e-5
    (e,) = dec.entries.values()
    args = _state(e, 5, LEN_CHUNK)
    with torch.inference_mode():
        assert (_eager(dec.fused, *args) - dec.fused.forward(*args)).abs().max() < 1e-5
    assert not kind_changed(dec.fused, model)
    monkeypatch.setenv("JUDGERL_COMPILED_RESIDUAL", "addmm")
    assert kind_changed(dec.fused, model)
    monkeypatch.setenv("JUDGERL_COMPILED_RESIDUAL", "fused")
    with pytest.raises(ValueError, match="JUDGERL_COMPILED_RESIDUAL='fused'"):
        kind_changed(dec.fused, model)


@pytest.mark.slow
@cpp
def test_compiled_step_equals_the_eager_step_on_smollm2(smollm2, monkeypatch):
    """Greedy decode of chat prompts through the compiled step (attention as matmuls) == the eager fused step (SDPA),
    token for token, with EOS;
    the logits of one more step from the same state agree within 1e-4 (fp32); a second call with other rows, prompt
    length and cache entry compiles nothing new; an in-place weight update (+ refresh) is read by the compiled step."""
    from torch._dynamo.utils import counters

    model, tok = smollm2
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
             for p in PROMPTS[:3]]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    eos = [tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")]
    kw = dict(max_new_tokens=10, eos_token_ids=eos, pad_token_id=tok.pad_token_id)
    want = engine(model, False, monkeypatch).generate(enc.input_ids, enc.attention_mask, **kw)
    dec = engine(model, True, monkeypatch)
    graphs = counters["stats"]["unique_graphs"]
    t0 = time.perf_counter()
    got = dec.generate(enc.input_ids, enc.attention_mask, **kw)
    print(f"compiled generate, first call {time.perf_counter() - t0:.1f} s (first step {dec.fused.first_call_s:.1f} s)")
    assert dec.fused.compiled and dec.fused.attention == "math"
    assert counters["stats"]["unique_graphs"] == graphs + 1  # one layer graph for all 30
    assert torch.equal(got.tokens, want.tokens) and got.lengths == want.lengths
    print(f"log-probs max |eager - compiled| = {(got.logprobs - want.logprobs).abs().max():.2e}")
    assert (got.logprobs - want.logprobs).abs().max() < 1e-4

    (e,) = dec.entries.values()
    args = _state(e, 3, LEN_CHUNK)  # the attended length of these steps (short prompts, 10 tokens)
    with torch.inference_mode():
        eager, compiled = _eager(dec.fused, *args), dec.fused.forward(*args)
        diff = float((eager - compiled).abs().max())
        print(f"logits max |eager - compiled| = {diff:.2e}")
        assert diff < 1e-4 and torch.equal(eager.argmax(-1), compiled.argmax(-1))
        w = model.model.layers[0].self_attn.q_proj.weight
        saved = w.clone()
        try:  # an optimizer-like in-place update: the compiled step reads the live (refreshed) weights
            w.mul_(1.5)
            dec.fused.refresh()
            moved_e, moved_c = _eager(dec.fused, *args), dec.fused.forward(*args)
            assert (moved_e - eager).abs().max() > 1e-3 and (moved_e - moved_c).abs().max() < 1e-4
        finally:
            w.copy_(saved)
            dec.fused.refresh()

    assert counters["stats"]["unique_graphs"] == graphs + 1
    ids2 = torch.cat([enc.input_ids, enc.input_ids[:, :5]], 1)[[0, 1, 2, 0, 1]]
    mask2 = torch.cat([enc.attention_mask, torch.ones_like(enc.attention_mask[:, :5])], 1)[[0, 1, 2, 0, 1]]
    more = dec.generate(ids2, mask2, max_new_tokens=6, eos_token_ids=eos, pad_token_id=tok.pad_token_id)
    assert more.tokens.shape[0] == 5 and len(dec.entries) == 2
    assert counters["stats"]["unique_graphs"] == graphs + 1  # other rows / lengths / entry: no recompile


# ---- GPU guard on the real SmolLM2 (captured graphs of the compiled step) ----------------------------------------
gpu = pytest.mark.skipif(not CUDA, reason="CUDA graphs need a GPU")


@pytest.mark.slow
@gpu
@pytest.mark.parametrize("attn", ["sdpa", "math", "flex", "math+deferred"])
def test_gpu_compiled_greedy_rollouts_equal_plain_generate(smollm2_path, monkeypatch, attn):
    """As test_static_decode.test_gpu_greedy_rollouts_equal_plain_generate, through the compiled step (its attention
    SDPA, plain matmuls or flex attention; +deferred: the residual adds in the next RMSNorm): 20 rows (bucket 20, then 16 or 8 as rows end) replayed from captured graphs vs plain
    generate, fp32; then a second call at 12 rows (another entry) compiles nothing new."""
    from torch._dynamo.utils import counters

    attn, _, residual = attn.partition("+")
    monkeypatch.setenv("JUDGERL_COMPILED_ATTN", attn)
    monkeypatch.setenv("JUDGERL_COMPILED_RESIDUAL", residual or "addmm")
    model, tok = _smollm2_cuda(smollm2_path)
    dec = engine(model, True, monkeypatch)
    out, ref = greedy_engine_and_generate(dec, model, tok, PROMPTS * 2, 64)
    print(f"compiled step: first call {dec.fused.first_call_s:.1f} s, {dec.captures} graphs captured")
    assert dec.fused.compiled and dec.fused.attention == attn  # compiled (no eager fallback)
    assert dec.compactions >= 1
    assert 2 <= dec.captures <= 2 * len(row_buckets(20))
    assert out.tokens.shape == ref.shape and torch.equal(out.tokens, ref)
    graphs = counters["stats"]["unique_graphs"]
    out2, ref2 = greedy_engine_and_generate(dec, model, tok, PROMPTS[:6] * 2, 32)
    assert torch.equal(out2.tokens, ref2) and counters["stats"]["unique_graphs"] == graphs
