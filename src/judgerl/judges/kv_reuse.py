"""A reasoning judge's verdict read from its decode's KV cache, instead of prefilling prompt + thinking again.

A reasoning verdict is the next-token distribution after `prompt + thinking + "\\nScore: "` (hf.py). The thinking
was just decoded, so the decode's KV cache already holds the prompt and the thinking tokens; only the few tokens
that follow them (the newline and the verdict prefix) are new. The forced sequence is re-tokenised from text
(the thinking with any verdict line the model wrote stripped), so it may part from the decoded tokens anywhere:
each row keeps the cache slots of its longest common token prefix with prompt + decoded tokens, the other slots
are masked out, and the rest of the forced sequence is fed at the positions it would have without reuse
(position ids count the kept slots). On SmolLM2 on CPU this replaces a prefill of ~250 tokens a row by ~4 tokens.
The distribution is the re-prefill's up to float rounding (tests/judges/test_kv_reuse.py: within 1e-4).
"""

from __future__ import annotations


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def content_slots(layout_mask: list[int], fed: int) -> list[int]:
    """Cache slots of a row's content in order: its prompt slots (mask 1 in the layout), then the decoded ones."""
    width = len(layout_mask)
    return [j for j, m in enumerate(layout_mask) if m] + list(range(width, width + fed))


def verdict_logits(model, cache, layout_mask, prompts: list[list[int]], decoded: list[list[int]],
                   forced: list[list[int]], pad_token_id: int = 0):
    """Logits [batch, vocab] at the end of each row's `forced` ids, continuing `cache` (generate_ids(keep_cache=
    True): prompt layout `layout_mask` [batch, width], then the decoded tokens). `decoded` are each row's new
    token ids as returned (pad after EOS); only the ones already fed to the cache are reused. Returns None when a
    row would keep no slot (nothing to attend to but itself: the caller re-prefills)."""
    import torch

    rows, width = layout_mask.shape
    fed = cache.get_seq_length() - width
    lmask = layout_mask.tolist()
    keep_mask = torch.zeros((rows, width + fed), dtype=layout_mask.dtype, device=layout_mask.device)
    kept, tails = [], []
    for i in range(rows):
        k = common_prefix(forced[i], prompts[i] + decoded[i][:fed])
        k = min(k, len(forced[i]) - 1)  # the last forced token always runs: its logits are the verdict
        if k < 1:
            return None
        keep_mask[i, content_slots(lmask[i], fed)[:k]] = 1
        kept.append(k)
        tails.append(forced[i][k:])
    n = max(len(t) for t in tails)
    ids = torch.full((rows, n), pad_token_id, dtype=torch.long, device=layout_mask.device)
    new_mask = torch.zeros((rows, n), dtype=layout_mask.dtype, device=layout_mask.device)
    pos = torch.zeros((rows, n), dtype=torch.long, device=layout_mask.device)
    for i, (k, t) in enumerate(zip(kept, tails)):
        ids[i, n - len(t):] = torch.tensor(t, dtype=torch.long)
        new_mask[i, n - len(t):] = 1
        pos[i, n - len(t):] = torch.arange(k, k + len(t))
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=torch.cat([keep_mask, new_mask], 1), position_ids=pos,
                    past_key_values=cache, use_cache=True, logits_to_keep=1)
    return out.logits[:, -1, :]
