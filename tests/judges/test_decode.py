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
