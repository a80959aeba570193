"""The graph engine's fused step and early exit (judges/static_decode.py, judges/fused_step.py).

CPU: tiny random Llama / Qwen2 (q/k/v bias) / Qwen3 (q/k norm) models, eager steps: greedy tokens equal
transformers' `generate` with EOS and with rows leaving the batch, log-probabilities equal a full forward, the
fused and unfused engines agree, sampling is reproducible and leaves the global RNG alone.
GPU (skipped on CPU): the same guards on the real SmolLM2 through captured graphs: greedy rollouts equal plain
`generate` token for token (fp32), sampled tokens follow the model's top-k / top-p distribution (chi-square),
and a reasoning judge's scores on the engine equal the plain-generate judge's within 1e-3.
"""

from __future__ import annotations

import pytest
import torch

from judgerl.judges.fused_step import fusable
from judgerl.judges.static_decode import StaticDecoder, row_buckets

CUDA = torch.cuda.is_available()
# chi-square critical values at p = 0.001 (df 1..30); a correct sampler fails one such test in 1,000
CHI2_999 = [10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88, 29.59, 31.26, 32.91, 34.53, 36.12,
            37.70, 39.25, 40.79, 42.31, 43.82, 45.31, 46.80, 48.27, 49.73, 51.18, 52.62, 54.05, 55.48, 56.89,
            58.30, 59.70]


def tiny(model_type: str, vocab: int = 300, **kw):
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
               intermediate_size=96, vocab_size=vocab, max_position_embeddings=512)
    cfg.update(kw)
    config = AutoConfig.for_model(model_type, **cfg)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()


def engine(model, fused: bool, monkeypatch) -> StaticDecoder:
    monkeypatch.setenv("JUDGERL_FUSED_STEP", "1" if fused else "0")
    dec = StaticDecoder(model)
    assert (dec.fused is not None) == fused
    return dec


def batch(rows: int, width: int, vocab: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (rows, width), generator=g)
    mask = torch.ones_like(ids)
    mask[::3, : width // 2] = 0  # left padding on every third row
    return ids, mask


def full_forward_logprobs(model, ids, mask, new, temperature: float = 1.0):
    """log softmax(logits / T) of each new token under one forward pass over prompt + new tokens."""
    full = torch.cat([ids, new], 1)
    fm = torch.cat([mask, torch.ones_like(new)], 1)
    pos = (fm.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        lg = model(input_ids=full, attention_mask=fm, position_ids=pos).logits[:, ids.shape[1] - 1:-1].float()
    return (lg / temperature).log_softmax(-1).gather(2, new[..., None])[..., 0]


@pytest.mark.parametrize("model_type,kw", [("llama", {}), ("qwen2", {}), ("qwen3", {"head_dim": 32})])
def test_fused_greedy_equals_generate_and_logprobs_equal_forward(model_type, kw, monkeypatch):
    model = tiny(model_type, **kw)
    assert fusable(model) is None
    ids, mask = batch(5, 11, 300)
    out = engine(model, True, monkeypatch).generate(ids, mask, max_new_tokens=20)
    ref = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=20, do_sample=False, pad_token_id=0,
                         eos_token_id=None)[:, 11:]
    assert torch.equal(out.tokens, ref)
    assert (full_forward_logprobs(model, ids, mask, out.tokens) - out.logprobs).abs().max() < 1e-5


def test_finished_rows_leave_the_batch_and_outputs_stay_exact(monkeypatch):
    """37 rows on a 40-token vocabulary with EOS ids that end rows early: the engine compacts to smaller row
    buckets several times (twice in a row on the same buffers) and every row still equals `generate`."""
    model = tiny("llama", vocab=40)
    ids, mask = batch(37, 9, 40, seed=1)
    dec = engine(model, True, monkeypatch)
    for eos in ([7], [7, 11, 13]):
        before = dec.compactions
        out = dec.generate(ids, mask, max_new_tokens=40, eos_token_ids=eos, pad_token_id=0)
        ref = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=40, do_sample=False, pad_token_id=0,
                             eos_token_id=eos)[:, 9:]
        assert dec.compactions > before
        assert torch.equal(out.tokens, ref)
        hit = torch.isin(ref, torch.tensor(eos))
        assert out.lengths == [int(h.int().argmax()) + 1 if h.any() else ref.shape[1] for h in hit]
        assert min(out.lengths) < 10 and max(out.lengths) == 40
    assert row_buckets(37) == [8, 16, 32, 37]


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
def test_kept_cache_holds_every_rows_kv_though_rows_left_the_batch(fused, monkeypatch):
    """keep_cache (the verdict pass of a reasoning judge continues it): the engine returns each output row's KV
    (prompt layout, then the tokens fed back) in output-row order, though finished rows were compacted away
    mid-decode (with keep_cache they are permuted, not overwritten); the tokens, greedy and sampled, are those of a
    call without it; every column up to each row's EOS equals the KV of a full forward."""
    from transformers import DynamicCache

    model = tiny("llama", vocab=40)
    ids, mask = batch(37, 9, 40, seed=1)
    dec = engine(model, fused, monkeypatch)
    for kw in (dict(), dict(temperature=0.9, top_k=12)):
        kw.update(max_new_tokens=40, eos_token_ids=[7], pad_token_id=0)
        plain = dec.generate(ids, mask, generator=torch.Generator().manual_seed(3), **kw)
        before = dec.compactions
        out = dec.generate(ids, mask, keep_cache=True, generator=torch.Generator().manual_seed(3), **kw)
        assert plain.cache is None and (dec.compactions > before) == fused
        assert torch.equal(out.tokens, plain.tokens) and out.lengths == plain.lengths
    fed = out.cache.get_seq_length() - ids.shape[1]
    assert fed == dec.last_steps - 1 and min(out.lengths) < 10 and max(out.lengths) == 40
    new = out.tokens[:, :fed]
    full_mask = torch.cat([mask, torch.ones_like(new)], 1)
    ref = DynamicCache(config=model.config)
    with torch.no_grad():
        model(input_ids=torch.cat([ids, new], 1), attention_mask=full_mask, past_key_values=ref, use_cache=True,
              position_ids=(full_mask.cumsum(-1) - 1).clamp(min=0))
    for i, n in enumerate(out.lengths):
        cols = [j for j in range(ids.shape[1]) if mask[i, j]] + [ids.shape[1] + t for t in range(min(n - 1, fed))]
        for got, want in zip(out.cache.layers, ref.layers):
            assert (got.keys[i, :, cols] - want.keys[i, :, cols]).abs().max() < 1e-5
            assert (got.values[i, :, cols] - want.values[i, :, cols]).abs().max() < 1e-5


def test_entry_headroom_lets_a_longer_call_reuse_the_entry(monkeypatch):
    """ENTRY_HEADROOM (on by default): a call whose prompt is a little longer reuses the first call's cache (and, on
    CUDA, its graphs) instead of a new entry; the tokens are those without headroom."""
    from judgerl.judges import static_decode

    assert static_decode.ENTRY_HEADROOM == 256
    model = tiny("llama", vocab=40, max_position_embeddings=1024)
    short, long_ = batch(6, 100, 40, seed=4), batch(6, 120, 40, seed=5)
    kw = dict(max_new_tokens=150, eos_token_ids=[7], pad_token_id=0)
    monkeypatch.setattr(static_decode, "ENTRY_HEADROOM", 0)
    plain = engine(model, True, monkeypatch)
    want = [plain.generate(*b, **kw).tokens for b in (short, long_)]
    assert list(plain.entries) == [(6, 256), (6, 512)]  # 250 then 270 columns: a second entry
    monkeypatch.setattr(static_decode, "ENTRY_HEADROOM", 256)
    roomy = engine(model, True, monkeypatch)
    got = [roomy.generate(*b, **kw).tokens for b in (short, long_)]
    assert list(roomy.entries) == [(6, 512)] and all(torch.equal(a, b) for a, b in zip(got, want))


def test_fused_and_unfused_engines_agree_when_sampling(monkeypatch):
    model = tiny("qwen2", vocab=60)
    ids, mask = batch(6, 10, 60, seed=2)
    kw = dict(max_new_tokens=24, temperature=0.9, top_k=12, top_p=0.9, eos_token_ids=[3], pad_token_id=0,
              pad_rows_to=16)
    state = torch.random.get_rng_state()
    a = engine(model, True, monkeypatch).generate(ids, mask, generator=torch.Generator().manual_seed(5), **kw)
    a2 = engine(model, True, monkeypatch).generate(ids, mask, generator=torch.Generator().manual_seed(5), **kw)
    assert torch.equal(state, torch.random.get_rng_state())  # a private generator: the global RNG is untouched
    assert torch.equal(a.tokens, a2.tokens) and a.tokens.shape[0] == 6
    # the unfused engine never compacts, so its noise rows line up with the fused one's only until the first
    # compaction: compare the first CHECK_EVERY tokens, and the log-probabilities of all tokens via a forward
    b = engine(model, False, monkeypatch).generate(ids, mask, generator=torch.Generator().manual_seed(5), **kw)
    assert torch.equal(a.tokens[:, :8], b.tokens[:, :8])
    live = torch.zeros_like(a.logprobs, dtype=torch.bool)  # tokens up to each row's EOS; after it log-prob 0
    for i, n in enumerate(a.lengths):
        live[i, :n] = True
    lp = full_forward_logprobs(model, ids, mask, a.tokens, temperature=0.9)
    assert (lp - a.logprobs)[live].abs().max() < 1e-5 and (a.logprobs[~live] == 0).all()


def test_unsupported_layouts_are_named():
    model = tiny("gemma", head_dim=16)
    assert fusable(model) is not None


# ---- GPU guards on the real SmolLM2 (captured graphs) -------------------------------------------------------
gpu = pytest.mark.skipif(not CUDA, reason="CUDA graphs need a GPU")


def _smollm2_cuda(path, dtype="float32"):
    from judgerl.model_loader import load_model

    return load_model(str(path), "causal", device="cuda", dtype=dtype)


def _chat_batch(tok, prompts):
    # the chat text, then the tokenizer: apply_chat_template(tokenize=True) returns a list, a BatchEncoding or (on
    # the device image's transformers, 2026-12-06) a tokenizers.Encoding, depending on the version
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
             for p in prompts]
    enc = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(map(len, enc))
    ids = torch.full((len(enc), width), tok.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, e in enumerate(enc):
        ids[i, width - len(e):], mask[i, width - len(e):] = torch.tensor(e), 1
    return ids.cuda(), mask.cuda()


PROMPTS = ["Name three colours of the rainbow.", "Write one sentence about the sea.", "What is the capital of Italy?",
           "Give me a short poem about autumn.", "Explain photosynthesis in one line.", "List two prime numbers.",
           "Say hello in French.", "What is 12 times 12?", "Describe a cat.", "Who wrote Hamlet?"]


def greedy_engine_and_generate(dec, model, tok, prompts: list[str], new: int):
    """The engine's greedy tokens and plain `generate`'s for the same chat prompts (EOS: the model's and <|im_end|>)."""
    ids, mask = _chat_batch(tok, prompts)
    eos = [tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")]
    out = dec.generate(ids, mask, max_new_tokens=new, eos_token_ids=eos, pad_token_id=tok.pad_token_id)
    ref = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, do_sample=False,
                         pad_token_id=tok.pad_token_id, eos_token_id=eos)[:, ids.shape[1]:]
    return out, ref


@pytest.mark.slow
@gpu
def test_gpu_greedy_rollouts_equal_plain_generate(smollm2_path, monkeypatch):
    """20 rows (bucket 20, then 16 or 8 as rows end) through captured graphs vs plain generate, fp32."""
    model, tok = _smollm2_cuda(smollm2_path)
    dec = engine(model, True, monkeypatch)
    out, ref = greedy_engine_and_generate(dec, model, tok, PROMPTS * 2, 64)
    assert dec.compactions >= 1  # short answers end early: the batch shrank to a smaller row bucket
    assert 2 <= dec.captures <= 2 * len(row_buckets(20))  # graphs per (row bucket, attended length) actually used
    assert out.tokens.shape == ref.shape and torch.equal(out.tokens, ref)


@pytest.mark.slow
@gpu
def test_gpu_sampled_tokens_follow_the_model_distribution(smollm2_path, monkeypatch):
    """One prompt repeated over 1,536 rows (fp32 cache ~18 GB); token 2 (the first decode-graph step) is drawn
    from the model's temperature / top-k / top-p distribution given token 1: chi-square against transformers'
    own warpers, on the rows whose first token was the most frequent one."""
    from transformers.generation.logits_process import (LogitsProcessorList, TemperatureLogitsWarper,
                                                        TopKLogitsWarper, TopPLogitsWarper)

    model, tok = _smollm2_cuda(smollm2_path)
    ids, mask = _chat_batch(tok, [PROMPTS[3]])
    n = 1536
    gen = torch.Generator(device="cuda").manual_seed(0)
    out = engine(model, True, monkeypatch).generate(ids, mask, max_new_tokens=2, temperature=0.7, top_k=20,
                                                    top_p=0.95, generator=gen, rows=torch.zeros(n, dtype=torch.long))
    first = out.tokens[:, 0]
    t1 = int(first.mode().values)  # the most frequent first token; its rows' second tokens are tested
    sel = out.tokens[first == t1, 1]
    warp = LogitsProcessorList([TemperatureLogitsWarper(0.7), TopKLogitsWarper(20), TopPLogitsWarper(0.95)])
    with torch.no_grad():
        ctx = torch.cat([ids, torch.tensor([[t1]], device="cuda")], 1)
        logits = model(input_ids=ctx).logits[:, -1].float()
    p = warp(ctx, logits).softmax(-1)[0]
    support = (p > 0).nonzero()[:, 0]
    assert set(sel.unique().tolist()) <= set(support.tolist())  # nothing outside the top-k / top-p set
    expected = p[support] * sel.numel()
    observed = torch.stack([(sel == s).sum() for s in support]).float()
    keep = expected >= 5  # pool the rare tokens into one cell (chi-square needs expected counts >= 5)
    obs = torch.cat([observed[keep], observed[~keep].sum()[None]]) if (~keep).any() else observed[keep]
    exp = torch.cat([expected[keep], expected[~keep].sum()[None]]) if (~keep).any() else expected[keep]
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    df = obs.numel() - 1
    assert 1 <= df <= len(CHI2_999) and sel.numel() > 200
    assert chi2 < CHI2_999[df - 1], (chi2, df)


@pytest.mark.slow
@gpu
@pytest.mark.parametrize("engine_kv", [False, True], ids=["reprefill", "engine-kv"])
def test_gpu_judge_scores_equal_the_plain_generate_judge(smollm2_path, monkeypatch, engine_kv):
    """A reasoning judge (greedy reasoning, fp32) scores the same requests on the engine and on plain generate:
    expected scores within 1e-3, with the verdict from a re-prefill (default) or from the engine's KV."""
    from judgerl.judges import JudgeRequest, JudgeSpec
    from judgerl.judges.hf import HFBackend

    monkeypatch.setenv("JUDGERL_FUSED_STEP", "1")
    model, tok = _smollm2_cuda(smollm2_path)
    spec = JudgeSpec(mode="reasoning", batch_size=16, cache=False, sampling={"max_new_tokens": 48, "temperature": 0.0})
    reqs = [JudgeRequest(prompt=p, responses=[r]) for p, r in zip(PROMPTS, ["Red, green, blue.", "The sea is calm.",
            "Rome.", "Leaves fall.", "Plants use light.", "2 and 3.", "Bonjour.", "144.", "A small pet.", "Dickens."])]
    engine_judge = HFBackend(spec, model=model, tokenizer=tok)
    engine_judge.engine_kv_verdict = engine_kv
    plain_judge = HFBackend(spec, model=model, tokenizer=tok)
    plain_judge.fast = False
    a, b = engine_judge._verdicts(reqs), plain_judge._verdicts(reqs)
    assert [v.reasoning for v in a] == [v.reasoning for v in b]
    assert max(abs(x.expected - y.expected) for x, y in zip(a, b)) < 1e-3


def test_fused_step_default_is_on_for_cpu_and_cuda_and_the_flag_turns_it_off(monkeypatch):
    from judgerl.judges import fused_step

    model = tiny("llama")
    monkeypatch.delenv("JUDGERL_FUSED_STEP", raising=False)
    assert fused_step.ON_BY_DEFAULT == {"cpu": True, "cuda": True}  # CUDA since its GPU guards passed (H100)
    assert fused_step.fused_step_for(model) is not None
    monkeypatch.setattr(fused_step, "ON_BY_DEFAULT", {"cpu": False})  # a device where it is not the default
    assert fused_step.fused_step_for(model) is None
    monkeypatch.setenv("JUDGERL_FUSED_STEP", "1")
    assert fused_step.fused_step_for(model) is not None
    monkeypatch.setenv("JUDGERL_FUSED_STEP", "0")
    monkeypatch.setattr(fused_step, "ON_BY_DEFAULT", {"cpu": True})
    assert fused_step.fused_step_for(model) is None


def test_attended_length_grows_in_chunks_past_long_prompts(monkeypatch):
    """120-token prompts and 150 new tokens: the attention reads 128, then 256, then 384 columns of a 512-column
    cache (LEN_CHUNK steps) while rows end and leave; every row still equals `generate`."""
    from judgerl.judges import static_decode

    monkeypatch.setattr(static_decode, "ENTRY_HEADROOM", 0)  # the cache exactly 512 columns
    model = tiny("qwen3", vocab=40, head_dim=32, max_position_embeddings=1024)
    ids, mask = batch(19, 120, 40, seed=1)
    dec = engine(model, True, monkeypatch)
    out = dec.generate(ids, mask, max_new_tokens=150, eos_token_ids=[7], pad_token_id=0)
    ref = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=150, do_sample=False, pad_token_id=0,
                         eos_token_id=[7])[:, 120:]
    assert list(dec.entries) == [(19, 512)] and torch.equal(out.tokens, ref)
    assert min(out.lengths) < 120 < max(out.lengths)  # some rows ended inside the first chunk, some ran past it
