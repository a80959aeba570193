"""Batched generation for judge workloads: plain `generate`, or the fast path on GPU.

Plain HF `generate` with a dynamic KV cache is launch-bound on a GPU (one Python-driven forward per
token, hundreds of small kernels each). The fast path (`fast=True`, default on CUDA) is
`static_decode.StaticDecoder`: a static cache and one captured CUDA graph per batch shape, no
compilation, sampling with a private generator. Models it does not support (local attention) and
`fast="compile"` take transformers' own compiled path:
a **static KV cache** (`cache_implementation="static"`), which makes the decode step shape-stable
so transformers auto-compiles it with `torch.compile(mode="reduce-overhead")`, i.e. **CUDA graphs**
(one graph replay per token), and defers the stop check so there is no host sync per token.
To avoid recompiling, batches are padded to a fixed row count and the cache length is rounded up
to a multiple of `CACHE_BUCKET`. Callers sort requests by length (batching by length), so padding
inside a batch stays small. On CPU the plain path is used (compilation does not pay off there).

Prefix reuse: judge prompts in one batch share a long head (the judge template and, in GRPO, the
question shared by a group). `generate_ids(reuse_prefix=True)` finds the longest common token prefix
of the batch, runs it once at batch 1, copies its KV into every row's cache and prefills only the
suffixes. Rows are laid out [prefix][padding][suffix]; position ids come from the attention mask,
so every token keeps the position it has without reuse and the outputs are unchanged. Sliding-window
(and chunked) attention counts its window in cache slots, so the padding between prefix and suffix would
shift it: for such models reuse is on only while the whole sequence fits in the window.

Grouped-query attention: transformers' SDPA path materialises `repeat_kv` (K and V copied n_rep
times) whenever a mask is present, which with a static cache means every decode step re-writes the
whole cache n_rep times. `grouped_sdpa` instead folds the n_rep query heads of each KV head into
the query-length axis, so SDPA reads each KV head once (registered as attention "sdpa_gqa").
"""

from __future__ import annotations

# the attention helpers live in attention.py (static_decode needs them too); re-exported for callers
from judgerl.judges.attention import (GQA_ATTENTION, grouped_sdpa, local_attention_window,  # noqa: F401
                                      use_grouped_attention)

CACHE_BUCKET = 256
PREFIX_MIN = 64  # shortest shared prefix (tokens) worth a separate prefill


def round_up(n: int, k: int) -> int:
    return ((n + k - 1) // k) * k


def shared_prefix(input_ids, attention_mask) -> int:
    """Length of the longest token prefix shared by every row's content (left padding skipped); at
    least one token of each row is left out of it."""
    rows = [[t for t, m in zip(ids, mask) if m] for ids, mask in zip(input_ids.tolist(), attention_mask.tolist())]
    n = max(min(len(r) for r in rows) - 1, 0)
    first = rows[0]
    for k in range(n):
        t = first[k]
        if any(r[k] != t for r in rows):
            return k
    return n


def _prefix_layout(input_ids, attention_mask, p: int, pad_token_id: int):
    """[prefix][left-padded suffix] rows and mask for a shared prefix of p tokens."""
    import torch

    b, width = input_ids.shape
    lens = attention_mask.sum(1).tolist()
    s = max(lens) - p
    ids = torch.full((b, p + s), pad_token_id, dtype=input_ids.dtype, device=input_ids.device)
    mask = torch.zeros((b, p + s), dtype=attention_mask.dtype, device=attention_mask.device)
    for i, n_row in enumerate(lens):
        n = n_row - p  # this row's suffix length; content is right-aligned in the input
        ids[i, :p] = input_ids[i, width - n_row:width - n_row + p]
        ids[i, p + s - n:] = input_ids[i, width - n:]
        mask[i, :p] = 1
        mask[i, p + s - n:] = 1
    return ids, mask


def split_shared_prefix(input_ids, attention_mask, reuse: bool, pad_token_id: int | None, model=None,
                        total_len: int | None = None):
    """(input_ids, attention_mask, p): the batch re-laid out around a shared prefix of p >= PREFIX_MIN
    tokens, or unchanged with p = 0 (reuse off, one row, no prefix worth it, or a `model` with local
    attention whose window is shorter than `total_len`, the padded sequence plus new tokens)."""
    window = local_attention_window(model) if reuse and model is not None else None
    if window is not None and (total_len or input_ids.shape[1]) > window:
        reuse = False
    p = shared_prefix(input_ids, attention_mask) if reuse and input_ids.shape[0] > 1 else 0
    if p < PREFIX_MIN:
        return input_ids, attention_mask, 0
    ids, mask = _prefix_layout(input_ids, attention_mask, p, pad_token_id if pad_token_id is not None else 0)
    return ids, mask, p


def _prefix_cache(model, prefix_ids, rows: int, fast: bool, max_cache_len: int):
    """KV cache holding the prefix for every row: computed once at batch 1, then copied."""
    import torch
    from transformers import DynamicCache, StaticCache

    with torch.inference_mode():
        one = model(input_ids=prefix_ids[None], use_cache=True, past_key_values=DynamicCache(config=model.config))
    kv = one.past_key_values
    if not fast:
        kv.batch_repeat_interleave(rows)
        return kv
    # the model keeps its last StaticCache and reuses it while the shape holds, so that CUDA graphs see the
    # same addresses (as transformers does for its own static cache); a new shape replaces it
    pool = model.__dict__.setdefault("_judgerl_prefix_caches", {})
    cache = pool.get((rows, max_cache_len))
    with torch.inference_mode():
        if cache is None:
            pool.clear()
            cache = pool[(rows, max_cache_len)] = StaticCache(config=model.config, max_cache_len=max_cache_len)
        else:
            cache.reset()
        for i, layer in enumerate(kv.layers):
            cache.update(layer.keys.expand(rows, -1, -1, -1).contiguous(),
                         layer.values.expand(rows, -1, -1, -1).contiguous(), i)
    return cache


def last_token_logits(model, input_ids, attention_mask, reuse_prefix: bool = False):
    """Logits at the last position of each left-padded row [batch, vocab] (one forward pass)."""
    import torch

    ids, mask, p = split_shared_prefix(input_ids, attention_mask, reuse_prefix, 0, model)
    with torch.inference_mode():
        if not p:
            return model(input_ids=ids, attention_mask=mask, logits_to_keep=1).logits[:, -1, :]
        cache = _prefix_cache(model, ids[0, :p], ids.shape[0], False, 0)
        pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=ids[:, p:], attention_mask=mask, position_ids=pos[:, p:], past_key_values=cache,
                    logits_to_keep=1)
        return out.logits[:, -1, :]


ROW_BUCKET = 16  # the graph engine pads a batch's rows to a multiple of this (fewer shapes to capture)


def generate_ids(model, input_ids, attention_mask, *, max_new_tokens: int, temperature: float = 0.0,
                 top_p: float = 1.0, top_k: int = 0, seed: int = 0, pad_token_id: int | None = None,
                 eos_token_id=None, fast: bool | str | None = None, pad_rows_to: int | None = None,
                 min_new_tokens: int | None = None, reuse_prefix: bool = False, keep_cache: bool = False,
                 engine_cache: bool = False, prefill_buckets: int = 1):
    """Generate continuations; returns the new token ids [batch, <=max_new_tokens] (prompt stripped,
    pad after EOS). fast: False = plain `generate`; True = the graph engine where the model supports
    it (else the compiled path); "compile" = transformers' compiled static-cache path; None = True on
    CUDA. Sampling is seeded with `seed` without touching the global RNG.
    keep_cache: return (tokens, kept) where kept = (the decode's KV cache, the attention mask of the prompt
    layout it holds) on the plain path (kv_reuse.py continues it), None on the fast paths; with engine_cache also on
    the graph engine (a copy of its rows' KV: static_decode.generate(keep_cache=True)). prefill_buckets: the graph
    engine prefills ragged prompts in up to this many length buckets (prefill.py); the other paths ignore it."""
    import torch

    from judgerl.judges.static_decode import decoder_for, supported

    if fast is None:
        fast = input_ids.device.type == "cuda"
    rows = input_ids.shape[0]
    input_ids, attention_mask, p = split_shared_prefix(input_ids, attention_mask, reuse_prefix, pad_token_id, model,
                                                       input_ids.shape[1] + max_new_tokens)
    if fast is True and not min_new_tokens and supported(model):
        eos = [] if eos_token_id is None else ([eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id))
        gen = torch.Generator(device=input_ids.device).manual_seed(seed)
        target = min(pad_rows_to or rows, round_up(rows, ROW_BUCKET)) if input_ids.device.type == "cuda" else rows
        out = decoder_for(model).generate(input_ids, attention_mask, max_new_tokens=max_new_tokens,
                                          temperature=temperature, top_p=top_p, top_k=top_k, eos_token_ids=eos,
                                          pad_token_id=pad_token_id if pad_token_id is not None else 0, generator=gen,
                                          prefix_len=p, pad_rows_to=max(target, rows),
                                          keep_cache=keep_cache and engine_cache, prefill_buckets=prefill_buckets)
        if not keep_cache:
            return out.tokens
        return out.tokens, (None if out.cache is None else (out.cache, attention_mask))
    if fast and pad_rows_to and rows < pad_rows_to:  # a fixed batch shape avoids a recompile
        extra = pad_rows_to - rows
        input_ids = torch.cat([input_ids, input_ids[-1:].expand(extra, -1)], 0)
        attention_mask = torch.cat([attention_mask, attention_mask[-1:].expand(extra, -1)], 0)
    kw = dict(max_new_tokens=max_new_tokens, pad_token_id=pad_token_id, eos_token_id=eos_token_id)
    if min_new_tokens:
        kw["min_new_tokens"] = min_new_tokens
    if temperature > 0:
        kw.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=top_k or None)
    else:
        kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    cache_len = round_up(input_ids.shape[1] + max_new_tokens, CACHE_BUCKET)
    if fast:
        use_grouped_attention(model)
        if not p:
            kw.update(cache_implementation="static", max_cache_len=cache_len)
    else:
        kw.update(disable_compile=True)
    if p:
        kw["past_key_values"] = _prefix_cache(model, input_ids[0, :p], input_ids.shape[0], fast, cache_len)
    # generate() samples from the global RNG: seed a forked copy, so the caller's RNG stream is left as it was
    with torch.random.fork_rng(devices=[input_ids.device] if input_ids.device.type == "cuda" else []), \
            torch.inference_mode():
        torch.manual_seed(seed)
        if keep_cache and not fast:
            kw["return_dict_in_generate"] = True
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, **kw)
    if keep_cache:
        kept = (out.past_key_values, attention_mask) if not fast else None
        return (out.sequences if not fast else out)[:rows, input_ids.shape[1]:], kept
    return out[:rows, input_ids.shape[1]:]
