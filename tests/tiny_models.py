"""Tiny randomly initialised models shared by tests in several folders (tests/ is on sys.path through conftest.py)."""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def tiny_gqa_model(seed: int):
    """A 2-layer Llama with grouped-query attention (8 query heads, 2 KV heads), SDPA attention, fp32, eval mode."""
    torch.manual_seed(seed)
    cfg = AutoConfig.for_model("llama", hidden_size=64, num_hidden_layers=2, num_attention_heads=8,
                               num_key_value_heads=2, intermediate_size=128, vocab_size=101)
    cfg._attn_implementation = "sdpa"
    return AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()
