"""Static-cache decoding with CUDA graphs: policy rollouts and judge reasoning.

transformers' own fast path (decode.py, `fast="compile"`) compiles the decode step with
`torch.compile(mode="reduce-overhead")`: 30-40 s per new shape, and a recompile for every new
(batch, cache length) pair, up to dynamo's recompile limit, after which it silently runs eager.
This engine captures an eager one-token step once per (rows, cache length) with `torch.cuda.CUDAGraph`
(well under a second) and replays it; nothing is compiled.

One step = one graph replay for the whole batch: write the mask column of the new slot, forward one token for
every row, then in the same graph scale the logits by the temperature, keep the top-k / top-p set exactly as
transformers' warpers do, pick a token and its log-probability, store both, and advance positions and EOS flags.
The forward is `fused_step.FusedStep` for Llama-family models (fused q/k/v and gate/up GEMMs, residual adds
fused into the projections, one-kernel RMSNorm, rotary from a table: ~15 kernels a layer instead of ~43), else
transformers' own forward through a `StaticCache` with a 4-D boolean mask. The fused step is the default on the CPU;
on CUDA too since its GPU guards passed on an H100 (fused_step.ON_BY_DEFAULT; `JUDGERL_FUSED_STEP=0` turns it off).
On CUDA the fused step runs through torch.compile (compiled_step.py: one decoder layer compiled, reused by all; on by
default on CUDA, off on the CPU; `JUDGERL_COMPILED_STEP=1` / `=0`): compiled in the warm-up before a capture, then
captured and replayed like the eager one.
Randomness comes from Exponential(1) noise that the host writes into a static buffer before each
replay with the caller's own `torch.Generator` (argmax p_i / E_i is an exact draw from p), so the
global RNG is never touched. The host syncs once every `CHECK_EVERY` steps: to stop when every row ended and,
with the fused step, to drop finished rows: the unfinished ones move to the front of the buffers and decoding
continues with the graph of the smallest row bucket (powers of two) that holds them. Every bucket's graph is
captured on the leading rows of the same buffers, so this needs no re-capture and no second cache.

Prefill runs eagerly, at most once per distinct row: `rows` maps output rows to input rows (the G
rollouts of a prompt share one prefill) and `prefix_len` shares a leading span of every row
(judge template: computed once at batch 1). Its KV is copied into the static cache (prefill.py: in one forward
padded to the longest prompt, or with `prefill_buckets` in a few length buckets, each padded to its own longest).

Weights are read in place: optimizer steps update parameters without moving them, so the next replay
sees them (the fused step's concatenated copies are refreshed at every call). The graphs are re-captured if any
parameter or buffer moved (`.to()`, reload).
Returned log-probabilities are log softmax(logits / T) of the sampled token, before top-k / top-p:
the quantity TRL's GRPO loss computes. On CPU the same step runs eagerly (no graph).
Only models whose layers all attend fully are supported (`supported`); others use decode.py.
The per-shape cache, buffers and graphs are `decode_buffers.Entry`; the token draw is `token_sampling.pick_tokens`.
"""

from __future__ import annotations

from judgerl.judges import phases
from judgerl.judges.decode_buffers import Entry, row_buckets
from judgerl.judges.token_sampling import Generated, pick_tokens, trim_after_eos

CHECK_EVERY = 8       # decode steps between host checks for "all rows ended"
LEN_BUCKET = 256      # cache lengths are rounded up to this (fewer shapes, fewer captures)
MAX_ENTRIES = 3       # (rows, cache length) shapes kept with their cache and graphs per model
LEN_CHUNK = 128       # the fused step's attention reads the cache up to the next multiple of this past the slot
WARM = 2              # eager warm-up steps before a capture (their writes are undone)
# Tokens of headroom a new (rows, length) entry gets past the call that creates it, so that a later call a little
# longer (a judge batch whose longest prompt grew) reuses its cache and graphs instead of a new entry whose graphs are
# all captured again. On since bench 3 on an H100 (2026-12-07, section 3e of bench/RESULTS.md) ran with it; it costs only
# cache memory (0: an entry fits its first call).
ENTRY_HEADROOM = 256


def supported(model) -> bool:
    """Full-attention decoder with SDPA attention (a boolean mask): every layer reads the whole static cache."""
    from judgerl.judges.attention import GQA_ATTENTION, local_attention_window

    impl = getattr(model.config, "_attn_implementation", None)
    return local_attention_window(model) is None and impl in ("sdpa", GQA_ATTENTION)


class StaticDecoder:
    """Per-model decoding engine; get it with `decoder_for(model)`."""

    def __init__(self, model):
        from judgerl.judges.compiled_step import decode_step_for

        self.model = model
        self.entries: dict[tuple[int, int], Entry] = {}
        self.captures = 0  # graphs captured so far (tests and benches read it)
        self.compactions = 0  # times finished rows were dropped (early exit)
        self.fused = decode_step_for(model, _free_bytes(model))
        self.last_steps = 0  # decode steps of the last generate call (benches read it)

    # ---- helpers ----------------------------------------------------------------------------
    def _ptrs(self) -> tuple:
        m = self.model
        return tuple(t.data_ptr() for t in (*m.parameters(), *m.buffers()))

    def _entry(self, rows: int, need: int, noise_width: int) -> Entry:
        for (r, length), e in self.entries.items():  # reuse a cache that is long enough and not much longer
            if r == rows and need <= length <= 2 * need + LEN_BUCKET + ENTRY_HEADROOM and e.noise.shape[1] == noise_width:
                return e
        length = -(-(need + ENTRY_HEADROOM) // LEN_BUCKET) * LEN_BUCKET
        phases.count("new_entries")
        while len(self.entries) >= MAX_ENTRIES:
            self.entries.pop(next(iter(self.entries)))
        e = self.entries[(rows, length)] = Entry(self.model, rows, length, noise_width, self.fused)
        return e

    def _step(self, e: Entry, r: int, lc: int, sampling: tuple, eos, pad_token_id: int):
        """One token for the first r rows of the entry, attending to the first lc cache columns (fused step; the
        slot written must lie below lc); all of it captured into one graph on CUDA."""
        import torch

        temperature, top_k, top_p = sampling
        if self.fused is not None:
            e.fmask.index_fill_(1, e.slot, 0.0)
            logits = self.fused.forward(e.tok_in[:r, 0], e.pos[:r, 0], *e.rope, e.fmask[:r, :lc],
                                        [k[:r] for k in e.keys], [v[:r] for v in e.values], e.slot, lc)
            e.slot.add_(1)
        else:  # transformers' own forward through the StaticCache (whole entry only)
            e.mask.index_fill_(3, e.cache.layers[0].cumulative_length.view(1), True)
            out = self.model(input_ids=e.tok_in, attention_mask=e.mask, position_ids=e.pos, past_key_values=e.cache,
                             use_cache=True, logits_to_keep=1)
            logits = out.logits[:, -1].float()
        tok, lp = pick_tokens(logits, temperature, top_k, top_p, e.noise[:r])
        fin = e.finished[:r]
        tok = torch.where(fin, torch.full_like(tok, pad_token_id), tok)
        lp = lp.masked_fill(fin, 0.0)
        e.tokens[:r].index_copy_(1, e.t, tok[:, None])
        e.logprobs[:r].index_copy_(1, e.t, lp[:, None])
        if eos is not None:
            fin |= torch.isin(tok, eos)
        e.tok_in[:r].copy_(tok[:, None])
        e.pos[:r].add_(1)
        e.t.add_(1)

    def _capture(self, e: Entry, r: int, lc: int, sampling: tuple, eos, pad_token_id: int):
        """Capture the step for (r rows, lc columns). It may happen mid-decode: the warm-up steps run at slot 0 and
        everything they write (positions, flags, mask, the first cache / output columns) is restored after."""
        with phases.phase("capture"):
            return self._capture_now(e, r, lc, sampling, eos, pad_token_id)

    def _capture_now(self, e: Entry, r: int, lc: int, sampling: tuple, eos, pad_token_id: int):
        import torch

        # Each graph gets its own memory pool: a shared pool outlived its last graph when entries were evicted or
        # re-captured, and torch 2.11 then failed the next capture into it (an allocator INTERNAL ASSERT, seen on
        # the H200). capture_begin/end by hand: the `torch.cuda.graph` context empties the allocator's cache on entry,
        # which made the training step after every capture re-allocate its memory (seconds, measured in bench 3).
        cum = [layer.cumulative_length for layer in e.cache.layers]
        saved = [(b, b.clone()) for b in (e.tok_in, e.pos, e.slot, e.t, e.finished, e.fmask, e.mask, *cum,
                                          e.tokens[:, :WARM], e.logprobs[:, :WARM],
                                          *(c[:, :, :WARM] for c in (*e.keys, *e.values)))]
        for buf in (e.t, e.slot, e.pos, *cum):
            buf.zero_()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        g = torch.cuda.CUDAGraph()
        with torch.cuda.stream(s):
            for _ in range(WARM):  # warm-up (library handles, autotuning) outside the capture
                self._step(e, r, lc, sampling, eos, pad_token_id)
            s.synchronize()
            g.capture_begin(capture_error_mode="thread_local")
            try:
                self._step(e, r, lc, sampling, eos, pad_token_id)
            finally:
                g.capture_end()
        torch.cuda.current_stream().wait_stream(s)
        for buf, copy in saved:
            buf.copy_(copy)
        e.graphs[(r, lc)] = g
        self.captures += 1
        return g

    def _graph(self, e: Entry, r: int, lc: int, sampling: tuple, eos, pad_token_id: int):
        return e.graphs.get((r, lc)) or self._capture(e, r, lc, sampling, eos, pad_token_id)

    def _ensure_graphs(self, e: Entry, sampling: tuple, eos, pad_token_id: int):
        """Drop the entry's graphs unless they were captured for these sampling settings and these parameter
        addresses. The fused step's graphs are captured as decoding first needs them (`_graph`); transformers'
        forward has one graph per entry, captured here, before the prefill (as the issue-14 engine did)."""
        key = (sampling, None if eos is None else tuple(eos.tolist()), pad_token_id)
        if e.key == key and e.ptrs == self._ptrs():
            return
        e.graphs.clear()
        e.key, e.ptrs = key, self._ptrs()
        if self.fused is None:
            self._capture(e, e.rows, e.length, sampling, eos, pad_token_id)

    # ---- prefill ----------------------------------------------------------------------------
    def _prefill(self, e: Entry, input_ids, attention_mask, rows, prefix_len: int, buckets: int = 1):
        """Eager prefill of the distinct input rows into the cache rows (prefill.py: one forward, or length buckets);
        masks, positions and the slot set for the decode; returns last logits."""
        import torch

        from judgerl.judges.prefill import prefill

        last = prefill(self.model, e.cache, input_ids, attention_mask, rows, prefix_len, buckets)
        width = input_ids.shape[1]
        for layer in e.cache.layers:
            layer.cumulative_length.fill_(width)
        real = attention_mask.bool().index_select(0, rows)
        e.mask.zero_()
        e.mask[:, 0, 0, :width] = real
        e.fmask.fill_(torch.finfo(e.fmask.dtype).min)
        e.fmask[:, :width].masked_fill_(real, 0.0)
        e.slot.fill_(width)
        e.pos.copy_(attention_mask.long().sum(-1, keepdim=True).index_select(0, rows))
        e.orig.copy_(torch.arange(e.rows, device=e.orig.device))
        return last

    # ---- early exit of finished rows ----------------------------------------------------------
    def _compact(self, e: Entry, r: int, n_real: int, res: tuple, keep: bool = False) -> tuple[int, int]:
        """Move the unfinished rows of the first n_real to the front and continue with the smallest row bucket
        that holds them; finished rows' outputs go to `res` first. Returns (bucket, rows that are real).
        keep: permute every row instead of overwriting the finished ones, so that each row's KV stays in the
        buffers (generate(keep_cache=True)); the finished rows then serve as the bucket's padding rows."""
        import torch

        fin = e.finished[:n_real]
        alive, done = (~fin).nonzero()[:, 0], fin.nonzero()[:, 0]
        na = alive.numel()
        nb = next(b for b in row_buckets(e.rows) if b >= na)
        if na == 0 or nb >= r:
            return r, n_real
        for dst, src in zip(res, (e.tokens, e.logprobs)):
            dst.index_copy_(0, e.orig.index_select(0, done), src.index_select(0, done))
        if keep:
            idx = torch.cat([alive, done, torch.arange(n_real, e.rows, device=alive.device)])
            for buf in e.per_row():
                buf.copy_(buf.index_select(0, idx))
        else:
            idx = torch.cat([alive, alive[:1].expand(nb - na)])  # bucket padding: copies of one row, marked finished
            for buf in e.per_row():
                buf[:nb] = buf.index_select(0, idx)
        e.finished[na:nb] = True
        self.compactions += 1
        return nb, na

    def _decode(self, e: Entry, b: int, width: int, max_new_tokens: int, sampling: tuple, eos, pad_token_id: int,
                generator, use_graph: bool, res: tuple, keep: bool = False) -> int:
        """Decode steps 2..max_new_tokens; finished rows leave at each check (fused step). Returns the steps."""
        n, r, n_real = 1, b, b
        shrink = self.fused is not None
        while n < max_new_tokens:
            # this step writes cache column width + n - 1; the fused step reads up to the next LEN_CHUNK past it
            lc = min(e.length, -(-(width + n) // LEN_CHUNK) * LEN_CHUNK) if shrink else e.length
            if n % CHECK_EVERY == 0:
                left = int((~e.finished[:n_real]).sum())  # the one host sync every CHECK_EVERY steps
                if left == 0:
                    break
                if shrink and next(x for x in row_buckets(e.rows) if x >= left) < r:
                    r, n_real = self._compact(e, r, n_real, res, keep)
            if sampling[0] > 0:
                e.noise[:r].exponential_(generator=generator)
            if use_graph:
                self._graph(e, r, lc, sampling, eos, pad_token_id).replay()
            else:
                self._step(e, r, lc, sampling, eos, pad_token_id)
            n += 1
        for dst, src in zip(res, (e.tokens, e.logprobs)):  # the rows still in the buffers
            dst.index_copy_(0, e.orig[:n_real], src[:n_real])
        return n

    # ---- public -----------------------------------------------------------------------------
    def generate(self, input_ids, attention_mask, *, max_new_tokens: int, temperature: float = 0.0,
                 top_p: float = 1.0, top_k: int = 0, eos_token_ids=(), pad_token_id: int = 0, generator=None,
                 rows=None, prefix_len: int = 0, pad_rows_to: int | None = None,
                 keep_cache: bool = False, prefill_buckets: int = 1) -> Generated:
        """Decode up to `max_new_tokens` for each output row. Inputs are left padded (or laid out
        [prefix][pad][suffix] with `prefix_len` > 0); `rows` (LongTensor) maps each output row to an input
        row (default: one each); `pad_rows_to` pads the batch with copies of the last row (fixed shapes).
        keep_cache: also return each output row's KV (`Generated.cache`, a DynamicCache of the input layout's
        columns then the tokens fed back, in output-row order) for a verdict pass that continues it (kv_reuse.py).
        prefill_buckets > 1: prefill ragged prompts in up to that many length buckets (prefill.py; same outputs up to
        float rounding)."""
        import torch

        from judgerl.judges.attention import use_grouped_attention

        m, dev = self.model, input_ids.device
        n_out = input_ids.shape[0] if rows is None else len(rows)
        rows = torch.arange(n_out, device=dev) if rows is None else torch.as_tensor(rows, device=dev)
        if pad_rows_to and n_out < pad_rows_to:
            rows = torch.cat([rows, rows[-1:].expand(pad_rows_to - n_out)])
        b = rows.shape[0]
        vocab = m.config.get_text_config().vocab_size if hasattr(m.config, "get_text_config") else m.config.vocab_size
        sampling = (float(temperature), int(top_k or 0), float(top_p))
        noise_width = (top_k if top_k and top_k < vocab else vocab) if temperature > 0 else 1
        eos = torch.tensor(sorted(set(eos_token_ids or ())), dtype=torch.long, device=dev) if eos_token_ids else None
        use_graph = dev.type == "cuda"
        was_training, impl = m.training, m.config._attn_implementation
        m.eval()
        use_grouped_attention(m)  # K/V read once per KV head, not repeated over the whole cache
        try:
            with torch.inference_mode():
                self._check_weights()
                e = self._entry(b, input_ids.shape[1] + max_new_tokens, noise_width)
                if use_graph:
                    self._ensure_graphs(e, sampling, eos, pad_token_id)
                with phases.phase("prefill"):
                    last = self._prefill(e, input_ids, attention_mask, rows, prefix_len, prefill_buckets)
                if phases.active():  # tokens prefilled (prefill.py) vs one forward's vs real ones (a host sync)
                    phases.count("prefill_tokens_one_forward", input_ids.numel())
                    phases.count("prompt_tokens", int(attention_mask.sum()))
                if temperature > 0:
                    e.noise.exponential_(generator=generator)
                tok, lp = pick_tokens(last, *sampling, e.noise)
                e.tokens.fill_(pad_token_id)  # columns a row never reaches (it ended, or left the buffers) stay pad
                e.logprobs.zero_()
                e.tokens[:, 0] = tok
                e.logprobs[:, 0] = lp
                e.finished.copy_(torch.isin(tok, eos) if eos is not None else torch.zeros_like(e.finished))
                e.finished[n_out:] = True  # padding rows: their outputs are never returned
                e.tok_in.copy_(tok[:, None])
                e.t.fill_(1)
                res = (torch.empty_like(e.tokens), torch.empty_like(e.logprobs))  # every returned row is written
                captures, compactions = self.captures, self.compactions
                with phases.phase("decode"):
                    n = self._decode(e, b, input_ids.shape[1], max_new_tokens, sampling, eos, pad_token_id, generator,
                                     use_graph, res, keep_cache)
                phases.count("decode_steps", n)
                phases.count("captures", self.captures - captures)
                phases.count("compactions", self.compactions - compactions)
                self.last_steps = n
                tokens, logprobs = res[0][:n_out, :n].clone(), res[1][:n_out, :n].clone()
                cache = self._kept_cache(e, n_out, input_ids.shape[1] + n - 1) if keep_cache else None
        finally:
            m.train(was_training)
            if m.config._attn_implementation != impl:
                m.set_attn_implementation(impl)
        out = trim_after_eos(tokens, logprobs, n, eos, pad_token_id)
        out.cache = cache
        return out

    def _kept_cache(self, e: Entry, n_out: int, columns: int):
        """The first `columns` cache columns of each output row (prompt layout, then the tokens fed back), in
        output-row order, as a DynamicCache (a copy: the entry's buffers serve the next call)."""
        import torch
        from transformers import DynamicCache

        where = torch.empty_like(e.orig)
        where[e.orig] = torch.arange(e.rows, device=e.orig.device)  # buffer row of each output row
        sel = where[:n_out]
        kv = DynamicCache(config=self.model.config)
        for i, (k, v) in enumerate(zip(e.keys, e.values)):
            kv.update(k[:, :, :columns].index_select(0, sel), v[:, :, :columns].index_select(0, sel), i)
        return kv

    def _check_weights(self):
        """Fused weight copies follow the live parameters; a moved parameter (reload, `.to()`) rebuilds them, and so
        does a flipped `JUDGERL_COMPILED_STEP` (compiled_step.py; a bench arm turns it on for a shared model)."""
        from judgerl.judges.compiled_step import decode_step_for, kind_changed

        if self.fused is None:
            return
        ptrs = self._ptrs()
        if getattr(self, "_fused_ptrs", None) not in (None, ptrs) or kind_changed(self.fused, self.model):
            self.fused = decode_step_for(self.model, _free_bytes(self.model))
            self.entries.clear()
        self._fused_ptrs = ptrs
        if self.fused is not None:
            self.fused.refresh()


def _free_bytes(model) -> int | None:
    import torch

    dev = next(model.parameters()).device
    return torch.cuda.mem_get_info(dev)[0] if dev.type == "cuda" else None


def decoder_for(model) -> StaticDecoder:
    """The model's engine (kept on the model, so graphs and caches live as long as it does)."""
    eng = model.__dict__.get("_judgerl_static_decoder")
    if eng is None:
        eng = model.__dict__["_judgerl_static_decoder"] = StaticDecoder(model)
    return eng
