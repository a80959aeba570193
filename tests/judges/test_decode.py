"""The fast decode path's grouped attention computes the same function as transformers' SDPA."""

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from judgerl.judges.decode import GQA_ATTENTION, generate_ids, round_up, use_grouped_attention


def tiny_gqa_model(seed: int):
    torch.manual_seed(seed)
    cfg = AutoConfig.for_model("llama", hidden_size=64, num_hidden_layers=2, num_attention_heads=8,
                               num_key_value_heads=2, intermediate_size=128, vocab_size=101)
    cfg._attn_implementation = "sdpa"
    return AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()


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
    static = generate_ids(model, ids, mask, fast=True, reuse_prefix=True, **kw)  # StaticCache filled with the prefix
    assert plain.shape == reused.shape == static.shape == (4, 12)
    assert torch.equal(plain, reused) and torch.equal(plain, static)
    again = generate_ids(model, ids[:3], mask[:3], fast=True, reuse_prefix=True, **kw)  # new shape: cache replaced
    assert torch.equal(again, plain[:3]) and len(model._judgerl_prefix_caches) == 1
    ref = last_token_logits(model, ids, mask)
    got = last_token_logits(model, ids, mask, reuse_prefix=True)
    assert (got - ref).abs().max() < 1e-3 * ref.abs().max()
