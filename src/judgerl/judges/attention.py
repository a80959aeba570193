"""Attention facts both decode paths need: grouped-query SDPA without K/V repetition, and whether a model
attends fully (no sliding or chunked window). Imported by decode.py and static_decode.py alike."""

from __future__ import annotations

GQA_ATTENTION = "sdpa_gqa"


def grouped_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                 is_causal=None, **kwargs):
    """SDPA for grouped-query attention without repeating K/V: query [B, H, q, D] is viewed as
    [B, KVH, rep*q, D] (heads are KV-major) and the mask is repeated along the query axis."""
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    b, h, q, d = query.shape
    kvh = key.shape[1]
    rep = h // kvh
    if rep == 1 or attention_mask is None or attention_mask.dim() != 4:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    mb, _, mq, ml = attention_mask.shape
    mask = attention_mask[:, :, None].expand(mb, 1, rep, mq, ml).reshape(mb, 1, rep * mq, ml)
    out = F.scaled_dot_product_attention(query.reshape(b, kvh, rep * q, d), key, value, attn_mask=mask,
                                         dropout_p=dropout if module.training else 0.0, scale=scaling)
    return out.reshape(b, h, q, d).transpose(1, 2).contiguous(), None


def use_grouped_attention(model) -> bool:
    """Switch a model that uses plain SDPA to `grouped_sdpa` (same numbers, no K/V repetition)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return getattr(model.config, "_attn_implementation", None) == GQA_ATTENTION
    AttentionInterface.register(GQA_ATTENTION, grouped_sdpa)
    AttentionMaskInterface.register(GQA_ATTENTION, sdpa_mask)
    model.set_attn_implementation(GQA_ATTENTION)
    return True


def local_attention_window(model) -> int | None:
    """The model's sliding/chunked attention window in tokens, or None when every layer attends fully."""
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    window = getattr(cfg, "sliding_window", None) or getattr(cfg, "attention_chunk_size", None)
    types = getattr(cfg, "layer_types", None)
    if window is None or getattr(cfg, "use_sliding_window", None) is False:
        return None
    if types and all(t == "full_attention" for t in types):
        return None
    return int(window)
