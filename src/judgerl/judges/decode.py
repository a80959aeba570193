"""Batched generation for judge workloads: plain `generate`, or the fast path on GPU.

Plain HF `generate` with a dynamic KV cache is launch-bound on a GPU (one Python-driven forward per
token, hundreds of small kernels each). The fast path uses what transformers supports natively:
a **static KV cache** (`cache_implementation="static"`), which makes the decode step shape-stable
so transformers auto-compiles it with `torch.compile(mode="reduce-overhead")`, i.e. **CUDA graphs**
(one graph replay per token), and defers the stop check so there is no host sync per token.
To avoid recompiling, batches are padded to a fixed row count and the cache length is rounded up
to a multiple of `CACHE_BUCKET`. Callers sort requests by length (batching by length), so padding
inside a batch stays small. On CPU the plain path is used (compilation does not pay off there).
"""

from __future__ import annotations

CACHE_BUCKET = 256


def round_up(n: int, k: int) -> int:
    return ((n + k - 1) // k) * k


def generate_ids(model, input_ids, attention_mask, *, max_new_tokens: int, temperature: float = 0.0,
                 top_p: float = 1.0, top_k: int = 0, seed: int = 0, pad_token_id: int | None = None,
                 eos_token_id=None, fast: bool | None = None, pad_rows_to: int | None = None,
                 min_new_tokens: int | None = None):
    """Generate continuations; returns the new token ids [batch, <=max_new_tokens] (prompt stripped)."""
    import torch

    if fast is None:
        fast = input_ids.device.type == "cuda"
    rows = input_ids.shape[0]
    if fast and pad_rows_to and rows < pad_rows_to:  # a fixed batch shape avoids a recompile
        extra = pad_rows_to - rows
        input_ids = torch.cat([input_ids, input_ids[-1:].expand(extra, -1)], 0)
        attention_mask = torch.cat([attention_mask, attention_mask[-1:].expand(extra, -1)], 0)
    kw = dict(max_new_tokens=max_new_tokens, pad_token_id=pad_token_id, eos_token_id=eos_token_id)
    if min_new_tokens:
        kw["min_new_tokens"] = min_new_tokens
    if temperature > 0:
        torch.manual_seed(seed)
        kw.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=top_k or None)
    else:
        kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if fast:
        kw.update(cache_implementation="static",
                  max_cache_len=round_up(input_ids.shape[1] + max_new_tokens, CACHE_BUCKET))
    else:
        kw.update(disable_compile=True)
    with torch.inference_mode():
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, **kw)
    return out[:rows, input_ids.shape[1]:]
