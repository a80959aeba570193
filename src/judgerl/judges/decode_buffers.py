"""The graph engine's per-shape state (static_decode.py): for one (rows, cache length), the static KV cache, the step's
input / output buffers and the CUDA graphs captured on them, one per row bucket (`row_buckets`) so that finished rows
leave the batch without a re-capture."""

from __future__ import annotations

MIN_BUCKET = 8        # smallest row bucket finished rows are compacted down to


def row_buckets(rows: int) -> list[int]:
    """Row counts a decode may shrink to (early exit of finished rows): powers of two from MIN_BUCKET, and rows."""
    sizes, k = [rows], MIN_BUCKET
    while k < rows:
        sizes.append(k)
        k *= 2
    return sorted(set(sizes))


class Entry:
    """Static cache, step buffers and (on CUDA) the captured graphs for one (rows, cache length): one graph per
    row bucket, each on the leading rows of the same buffers, so finished rows leave without a re-capture."""

    def __init__(self, model, rows: int, length: int, noise_width: int, fused):
        import torch
        from transformers import StaticCache

        dev = model.device
        self.rows, self.length = rows, length
        self.cache = StaticCache(config=model.config, max_cache_len=length)
        p = next(model.parameters())
        cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        kvh = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        dummy = torch.zeros(rows, kvh, 1, hd, dtype=p.dtype, device=dev)
        for layer in self.cache.layers:
            layer.lazy_initialization(dummy, dummy)
        self.keys = [layer.keys for layer in self.cache.layers]
        self.values = [layer.values for layer in self.cache.layers]
        self.tok_in = torch.zeros(rows, 1, dtype=torch.long, device=dev)
        self.pos = torch.zeros(rows, 1, dtype=torch.long, device=dev)
        self.mask = torch.zeros(rows, 1, 1, length, dtype=torch.bool, device=dev)  # transformers' forward (unfused)
        self.fmask = torch.zeros(rows, length, dtype=p.dtype, device=dev)  # additive mask (fused step)
        self.slot = torch.zeros(1, dtype=torch.long, device=dev)  # cache column the next token is written to
        self.finished = torch.zeros(rows, dtype=torch.bool, device=dev)
        self.orig = torch.arange(rows, device=dev)  # output row of each buffer row (rows move when compacted)
        self.t = torch.zeros(1, dtype=torch.long, device=dev)
        self.noise = torch.ones(rows, noise_width, dtype=torch.float32, device=dev)
        self.tokens = torch.zeros(rows, length, dtype=torch.long, device=dev)
        self.logprobs = torch.zeros(rows, length, dtype=torch.float32, device=dev)
        self.rope = fused.rope_tables(length, dummy) if fused is not None else None
        self.graphs: dict = {}  # (rows bucket, attended length) -> CUDAGraph
        self.key = None  # sampling settings the graphs were captured with
        self.ptrs = None

    def per_row(self) -> list:
        """Every buffer indexed by row (what compaction moves)."""
        return [self.tok_in, self.pos, self.mask, self.fmask, self.finished, self.orig, self.noise, self.tokens,
                self.logprobs, *self.keys, *self.values]
