"""The fast decode path: grouped attention computes the same function as transformers' SDPA, and prefix
reuse leaves tokens and logits unchanged (full and sliding-window attention)."""

import torch
from tiny_models import tiny_gqa_model
from transformers import AutoConfig, AutoModelForCausalLM

from judgerl.judges.decode import GQA_ATTENTION, generate_ids, round_up, use_grouped_attention


def test_grouped_sdpa_matches_sdpa_with_padding_mask():
    for seed in (0, 1):
        model = tiny_gqa_model(seed)
        ids = torch.randint(0, 101, (3, 9))
        mask = torch.ones_like(ids)
        mask[0, :4] = 0  # left padding on one row
        with torch.no_grad():
            ref = model(input_ids=ids, attention_mask=mask).logits
            assert use_grouped_attention(model)
            assert model.config._attn_implementation == GQA_ATTENTION
            got = model(input_ids=ids, attention_mask=mask).logits
        rows = mask.bool()
        err = (got[rows] - ref[rows]).norm() / ref[rows].norm()
        assert err < 1e-5, err


def test_generate_ids_same_tokens_with_grouped_attention():
    model = tiny_gqa_model(2)
    ids = torch.randint(0, 101, (2, 6))
    mask = torch.ones_like(ids)
    plain = generate_ids(model, ids, mask, max_new_tokens=5, pad_token_id=0, fast=False)
    use_grouped_attention(model)
    grouped = generate_ids(model, ids, mask, max_new_tokens=5, pad_token_id=0, fast=False)
    assert plain.shape == (2, 5)
    assert torch.equal(plain, grouped)


def test_round_up():
    assert round_up(1, 256) == 256 and round_up(256, 256) == 256 and round_up(257, 256) == 512


def test_shared_prefix_skips_left_padding_and_leaves_a_suffix():
    from judgerl.judges.decode import _prefix_layout, shared_prefix

    ids = torch.tensor([[0, 0, 5, 6, 7, 8], [5, 6, 7, 9, 9, 9], [0, 5, 6, 7, 8, 1]])
    mask = (ids != 0).long()
    assert shared_prefix(ids, mask) == 3
    lay, m = _prefix_layout(ids, mask, 3, 0)
    assert lay.tolist() == [[5, 6, 7, 0, 0, 8], [5, 6, 7, 9, 9, 9], [5, 6, 7, 0, 8, 1]]
    assert m.tolist() == [[1, 1, 1, 0, 0, 1], [1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 1, 1]]
    same = torch.tensor([[4, 4, 4], [4, 4, 4]])
    assert shared_prefix(same, torch.ones_like(same)) == 2  # one token is left to prefill per row


def judge_batch(tok):
    from judgerl.judges import JudgeRequest, JudgeSpec
    from judgerl.judges.hf import chat_text
    from judgerl.judges.prompts import render

    spec = JudgeSpec(mode="reasoning")
    answers = ["Paris.", "The capital of France is Paris, a city on the Seine.", "Lyon, I think.",
               "France's capital city is Paris; it has been since the 10th century."]
    texts = [chat_text(tok, render(spec, JudgeRequest(prompt="What is the capital of France?", responses=[a])))
             for a in answers]
    return tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)


def test_prefix_reuse_gives_the_same_tokens_and_logits_on_smollm2(smollm2):
    from judgerl.judges.decode import PREFIX_MIN, last_token_logits, shared_prefix

    model, tok = smollm2
    enc = judge_batch(tok)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert shared_prefix(ids, mask) >= PREFIX_MIN  # the judge template and the question are shared
    kw = dict(max_new_tokens=12, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    plain = generate_ids(model, ids, mask, fast=False, **kw)
    reused = generate_ids(model, ids, mask, fast=False, reuse_prefix=True, **kw)
    static = generate_ids(model, ids, mask, fast="compile", reuse_prefix=True, **kw)  # StaticCache filled with the prefix
    engine = generate_ids(model, ids, mask, fast=True, reuse_prefix=True, **kw)  # static_decode (eager on CPU)
    assert plain.shape == reused.shape == static.shape == engine.shape == (4, 12)
    assert torch.equal(plain, reused) and torch.equal(plain, static) and torch.equal(plain, engine)
    again = generate_ids(model, ids[:3], mask[:3], fast="compile", reuse_prefix=True, **kw)  # new shape: cache replaced
    assert torch.equal(again, plain[:3]) and len(model._judgerl_prefix_caches) == 1
    ref = last_token_logits(model, ids, mask)
    got = last_token_logits(model, ids, mask, reuse_prefix=True)
    assert (got - ref).abs().max() < 1e-3 * ref.abs().max()


def tiny_sliding_window_model(window: int):
    """Gemma 3 layout (sliding and full layers), random weights: sliding attention counts cache slots."""
    torch.manual_seed(0)
    cfg = AutoConfig.for_model("gemma3_text", vocab_size=300, hidden_size=64, intermediate_size=128,
                               num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                               sliding_window=window, max_position_embeddings=512,
                               layer_types=["sliding_attention", "sliding_attention", "full_attention",
                                            "sliding_attention"])
    cfg._attn_implementation = "sdpa"
    return AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()


def shared_head_batch(head_len: int = 90, tails=(5, 9, 3, 12)):
    """Left-padded rows = one shared head + tails of different lengths (so the middle padding differs)."""
    torch.manual_seed(1)
    head = torch.randint(3, 300, (head_len,))
    rows = [torch.cat([head, torch.randint(3, 300, (n,))]) for n in tails]
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, width - len(r):], mask[i, width - len(r):] = r, 1
    return ids, mask


def test_local_attention_window_reads_the_config():
    from judgerl.judges.decode import local_attention_window

    assert local_attention_window(tiny_gqa_model(0)) is None
    assert local_attention_window(tiny_sliding_window_model(16)) == 16
    qwen3 = AutoConfig.for_model("qwen3", sliding_window=4096, use_sliding_window=False)  # set but off
    assert local_attention_window(type("M", (), {"config": qwen3})()) is None
    mistral = AutoConfig.for_model("mistral", sliding_window=4096)  # no layer_types: every layer slides
    assert local_attention_window(type("M", (), {"config": mistral})()) == 4096


def test_prefix_reuse_keeps_sliding_window_models_exact():
    """A window shorter than the sequence would see the middle padding: reuse is turned off there, and
    stays on (with equal outputs) where the whole sequence fits in the window."""
    from judgerl.judges.decode import last_token_logits, split_shared_prefix

    ids, mask = shared_head_batch()
    kw = dict(max_new_tokens=10, pad_token_id=0, eos_token_id=None)
    for window, used in ((16, 0), (256, 90)):
        model = tiny_sliding_window_model(window)
        assert split_shared_prefix(ids, mask, True, 0, model, ids.shape[1] + 10)[2] == used
        plain = generate_ids(model, ids, mask, fast=False, **kw)
        assert torch.equal(generate_ids(model, ids, mask, fast=False, reuse_prefix=True, **kw), plain)
        assert torch.equal(generate_ids(model, ids, mask, fast=True, reuse_prefix=True, **kw), plain)
        ref = last_token_logits(model, ids, mask)
        assert torch.allclose(last_token_logits(model, ids, mask, reuse_prefix=True), ref, atol=1e-5)
