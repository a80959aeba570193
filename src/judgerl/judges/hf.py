"""In-process transformers backend: batched (left padding), greedy or sampled, reasoning then verdict.

Verdict reading: after the (optional) reasoning, the verdict prefix (`Score:` / `Preferred:`) is
appended and the next-token distribution over the score tokens gives the expected score Σ x·p(x),
renormalised over valid scores. With `force_verdict` (default) the label is the most likely score
token and the verdict is valid only if that token is the overall most likely next token; without
it, the label comes from the strict parser on the free-form output.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from judgerl import model_loader
from judgerl.judges import phases
from judgerl.judges.decode import generate_ids, last_token_logits
from judgerl.judges.limits import TOO_LONG, refused
from judgerl.judges.plain_chat import chat_ids, chat_ids_many, chat_text  # noqa: F401 - chat_text re-exported
from judgerl.judges.parse import expected_value, parse_verdict, strip_verdict_lines, verdict_values
from judgerl.judges.prompts import render, verdict_prefix
from judgerl.judges.spec import JudgeRequest, JudgeSpec, Verdict
from judgerl.model_loader import local_cuda_index, shared_model


# All in-process model work runs on one long-lived thread: CUDA-graph trees (the fast decode path) keep
# per-thread state, so graphs recorded on this thread are replayed here, whichever event loop calls.
_MODEL_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judgerl-model")
# A caller that runs judges beside another workload in the same process (the quickstart's second lane) sets its own
# one-thread executor here, so that its judge calls do not queue behind the other workload's on _MODEL_THREAD.
MODEL_EXECUTOR: contextvars.ContextVar[ThreadPoolExecutor | None] = contextvars.ContextVar("judgerl_model_executor",
                                                                                            default=None)


def init_cudagraph_tls() -> None:
    """Set up this thread's CUDA-graph-tree state (torch <= 2.11 asserts instead of initialising it in a
    thread other than the one that first compiled); a no-op without CUDA or when already there."""
    import torch

    if torch.cuda.is_available() and not torch._C._is_key_in_tls("tree_manager_containers"):
        from collections import defaultdict

        from torch._inductor import cudagraph_trees as ct

        ct.local.tree_manager_containers = {}
        ct.local.tree_manager_locks = defaultdict(threading.Lock)
        torch._C._stash_obj_in_tls("tree_manager_containers", ct.local.tree_manager_containers)
        torch._C._stash_obj_in_tls("tree_manager_locks", ct.local.tree_manager_locks)


def _on_model_thread(fn):
    def work():
        import torch

        init_cudagraph_tls()
        if torch.cuda.is_available():
            torch.cuda.set_device(local_cuda_index())  # the current device is per thread
        return fn()
    return asyncio.get_running_loop().run_in_executor(MODEL_EXECUTOR.get() or _MODEL_THREAD, work)


def forced_prefix(tok, key: str, probe: int) -> str:
    """The verdict prefix as the tokenizer would split it before a value: 'Score: ' when the space is
    its own token (SmolLM2), 'Score:' when the value token carries the space (' 7')."""
    ids = tok.encode(f"{key} {probe}", add_special_tokens=False)
    if tok.decode(ids[-1:]) == str(probe):
        return tok.decode(ids[:-1])
    return key


def value_token_ids(tok, values: list[int]) -> dict[int, list[int]]:
    """Token ids that spell each value right after the prefix ('7' and ' 7')."""
    out: dict[int, list[int]] = {}
    for v in values:
        ids = set()
        for s in (str(v), f" {v}"):
            enc = tok.encode(s, add_special_tokens=False)
            if len(enc) == 1:
                ids.add(enc[0])
        out[v] = sorted(ids)
    return out


def check_prefill_buckets(buckets: int, device: str, allow_cuda: bool = False) -> None:
    """Refuse spec.prefill_buckets > 1 on a CUDA model: on an H100 (2026-12-07) one of six verdicts of the real
    SmolLM2 took other thinking tokens than the one-forward prefill's in fp32 (a row read another prompt's text), and
    it was not faster (bench/RESULTS.md 3g). The CPU engine passes the same checks (tests/judges/test_prefill.py)."""
    if buckets > 1 and device.startswith("cuda") and not allow_cuda:
        from judgerl import JudgerlError

        raise JudgerlError(f"prefill_buckets {buckets} is refused on CUDA: its GPU guard gave other verdicts than the "
                           "one-forward prefill (bench/RESULTS.md 3g); use prefill_buckets: 1")


class HFBackend:
    # decode path (decode.generate_ids): None = the graph engine on CUDA, plain generate() on CPU; False = plain;
    # "compile" = transformers' compiled static-cache path. Set per instance, or on the class (benches).
    fast: bool | str | None = None
    # a judgerl.judges.prefix_memo.PrefixMemo: the prompt head's KV kept across batches (direct mode); opt-in,
    # for a judge whose weights do not change under it (the reward server sets it)
    prefix_memo = None
    # a reasoning verdict read from the decode's KV cache (kv_reuse.py) where the decode path keeps one (plain
    # generate: CPU); False: prefill prompt + thinking again for it
    reuse_reasoning_kv: bool = True
    # the same on the graph engine (CUDA): the verdict continues a copy of the engine's KV (its finished rows are
    # permuted, not overwritten) instead of a prefill of prompt + thinking. On since its GPU guard
    # (tests/judges/test_static_decode.py, both verdict paths within 1e-3 of plain generate) and bench 3 ran on an H100
    # (2026-12-07: the long shape's verdict pass 0.32 -> 0.14 s a call); False: the re-prefill.
    engine_kv_verdict: bool = True
    # threads that tokenise a call's prompts and verdict texts (plain_chat.encode_many); 0: one batched call on the
    # model thread. Same ids either way. 4 where the host has >= 8 cores (a GPU host: render + verdict ids 0.27 ->
    # 0.13 s a long-shape call on the H100's 16), none on a small CPU machine (no gain on 2 cores).
    tokenize_threads: int = 4 if (os.cpu_count() or 1) >= 8 else 0
    # bucketed prefill on CUDA failed its GPU guard (bench/RESULTS.md 3g): refused there unless a test opts in
    allow_cuda_buckets: bool = False

    def __init__(self, spec: JudgeSpec, model=None, tokenizer=None):
        self.spec = spec
        if model is None:
            model, tokenizer = shared_model(spec.model, "causal", spec.device, spec.dtype)
        self.model, self.tok = model, tokenizer
        check_prefill_buckets(spec.prefill_buckets, str(getattr(model, "device", "cpu")), self.allow_cuda_buckets)
        self.values = verdict_values(spec.format, spec.score_min, spec.score_max)
        self.value_ids = value_token_ids(self.tok, self.values)
        self.prefix = forced_prefix(self.tok, verdict_prefix(spec.format).strip(), self.values[-1])
        self._lock = threading.Lock()
        if model_loader.memo_judge_heads and self.prefix_memo is None:
            from judgerl.judges.prefix_memo import PrefixMemo

            self.prefix_memo = PrefixMemo()

    # ---- low level -------------------------------------------------------------------------
    def _batch(self, ids: list[list[int]]) -> dict:
        """Left-padded input_ids / attention_mask of token-id lists, on the model's device."""
        import numpy as np
        import torch

        width = max(len(x) for x in ids)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        input_ids = np.full((len(ids), width), pad, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for i, x in enumerate(ids):  # a row at a time through numpy: ~10x faster than nested lists into torch
            input_ids[i, width - len(x):] = x
            mask[i, width - len(x):] = 1
        return {"input_ids": torch.from_numpy(input_ids).to(self.model.device),
                "attention_mask": torch.from_numpy(mask).to(self.model.device)}

    def _generate(self, texts: list[list[int]], max_new_tokens: int, temperature: float, top_p: float = 1.0,
                  top_k: int = 0, seed: int = 0, then=None) -> list[tuple[str, int, int]]:
        """Continuations of prompts given as token ids (chat_ids: contents are plain text). `then(idx, gens,
        new_ids, kept)` is called after each batch with its decode's KV cache (generate_ids(keep_cache=True))."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        res: list[tuple[str, int, int]] = [("", 0, 0)] * len(texts)
        bs, pad = self.spec.batch_size, self.tok.pad_token_id
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            with phases.phase("batch"):
                enc = self._batch([texts[i] for i in idx])
            with phases.phase("generate"):
                out = generate_ids(self.model, enc["input_ids"], enc["attention_mask"], max_new_tokens=max_new_tokens,
                                   temperature=temperature, top_p=top_p, top_k=top_k, seed=seed, pad_token_id=pad,
                                   eos_token_id=self.tok.eos_token_id, fast=self.fast, pad_rows_to=bs,
                                   reuse_prefix=self.spec.reuse_prefix, keep_cache=then is not None,
                                   engine_cache=self.engine_kv_verdict, prefill_buckets=self.spec.prefill_buckets)
            out, kept = out if then is not None else (out, None)
            with phases.phase("detokenize"):
                new_ids = out.tolist()  # one copy to the host, not one sync per row
                decoded = self.tok.batch_decode(new_ids, skip_special_tokens=True)
                for row, i in enumerate(idx):
                    res[i] = (decoded[row], len(texts[i]), sum(t != pad for t in new_ids[row]))
            phases.count("new_tokens", sum(res[i][2] for i in idx))
            if then is not None:
                then(idx, [res[i] for i in idx], new_ids, kept)
        return res

    def _reason(self, convs: list[list[dict]], prompts: list[list[int]], key: str):
        """Reasoning mode: (generations, reasonings, verdict stats), each verdict read from its batch's decode cache
        (kv_reuse.py) where there is one, else from a prefill of prompt + thinking + prefix."""
        from judgerl.judges.kv_reuse import verdict_logits

        s = self.spec.sampling
        stats: list = [None] * len(prompts)

        def forced_ids(rows: list[int], texts: list[str]) -> list[list[int]]:
            with phases.phase("verdict_ids"):
                rs = [strip_verdict_lines(t, key) for t in texts]
                return chat_ids_many(self.tok, [convs[i] for i in rows], [(r + "\n" if r else "") + self.prefix
                                                                           for r in rs], self.tokenize_threads)

        def read(idx, gens, new_ids, kept):
            if kept is None:
                return
            forced = forced_ids(idx, [g[0] for g in gens])
            with phases.phase("verdict_forward"):
                logits = verdict_logits(self.model, kept[0], kept[1], [prompts[i] for i in idx], new_ids, forced,
                                        self.tok.pad_token_id or 0)
                if logits is not None:
                    for i, st in zip(idx, self._value_stats(logits)):
                        stats[i] = st
                    phases.count("verdict_kv_rows", len(idx))

        gens = self._generate(prompts, s.max_new_tokens, s.temperature, s.top_p, s.top_k, s.seed,
                              then=read if self.reuse_reasoning_kv else None)
        rest = [i for i, d in enumerate(stats) if d is None]
        if rest:
            forced = forced_ids(rest, [gens[i][0] for i in rest])
            with phases.phase("verdict_forward"):
                for i, st in zip(rest, self._next_token_stats(forced)):
                    stats[i] = st
            phases.count("verdict_prefill_rows", len(rest))
        return gens, [strip_verdict_lines(g[0], key) for g in gens], stats

    def _value_stats(self, logits) -> list[tuple[list[float], int]]:
        """Per row of next-token logits [rows, vocab]: the probability of each verdict value (the sum over the tokens
        that spell it, in float32 as summed token by token) and the most likely token id. The softmax stays on the
        device; only these numbers come back."""
        import torch

        p = torch.softmax(logits.float(), dim=-1)
        cols = []
        for v in self.values:
            ids = self.value_ids[v]
            m = p[:, ids[0]] if ids else torch.zeros_like(p[:, 0])
            for t in ids[1:]:
                m = m + p[:, t]
            cols.append(m)
        return list(zip(torch.stack(cols, 1).cpu().tolist(), p.argmax(-1).cpu().tolist()))

    def _next_token_stats(self, texts: list[list[int]]) -> list[tuple[list[float], int]]:
        """`_value_stats` of the position after each token-id prompt (batched, left padded). Batches are cut from
        the prompts sorted by length, so that little of a batch is padding (on a CPU the padded positions cost as
        much as real ones); the result is in the callers' order."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list = [None] * len(texts)
        bs = self.spec.batch_size
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            enc = self._batch([texts[i] for i in idx])
            if self.prefix_memo is not None and self.spec.reuse_prefix:
                logits = self.prefix_memo.logits(self.model, enc["input_ids"], enc["attention_mask"])
            else:
                logits = last_token_logits(self.model, enc["input_ids"], enc["attention_mask"], self.spec.reuse_prefix)
            for i, st in zip(idx, self._value_stats(logits)):
                out[i] = st
        return out

    def _verdicts(self, requests: list[JudgeRequest]) -> list[Verdict]:
        """Verdicts of rendered prompts within max_input_tokens; longer ones get a too_long verdict each."""
        with phases.phase("render"):
            convs = [render(self.spec, r) for r in requests]
            prompts = chat_ids_many(self.tok, convs, threads=self.tokenize_threads)  # contents stay text
        cap = self.spec.max_input_tokens
        keep = [i for i, p in enumerate(prompts) if len(p) <= cap]
        out = [refused(f"{TOO_LONG}: the judge prompt has {len(p):,} tokens; the limit is {cap:,} (max_input_tokens)")
               for p in prompts]
        if keep:
            for i, v in zip(keep, self._judge_ids([convs[i] for i in keep], [prompts[i] for i in keep])):
                out[i] = v
        return out

    def _judge_ids(self, convs: list[list[dict]], prompts: list[list[int]]) -> list[Verdict]:
        spec = self.spec
        t0 = time.perf_counter()
        key = verdict_prefix(spec.format).strip()
        if spec.mode == "reasoning":
            gens, reasonings, stats = self._reason(convs, prompts, key)
        else:
            gens, reasonings = [("", len(p), 0) for p in prompts], [""] * len(prompts)
            with phases.phase("verdict_ids"):
                forced = chat_ids_many(self.tok, convs, [self.prefix] * len(convs), self.tokenize_threads)
            with phases.phase("verdict_forward"):
                stats = self._next_token_stats(forced)
        elapsed = (time.perf_counter() - t0) / max(1, len(prompts))
        with phases.phase("parse"):
            return [self._verdict(g, reasoning, mass, top_id, elapsed)
                    for g, reasoning, (mass, top_id) in zip(gens, reasonings, stats)]

    def _verdict(self, gen: tuple[str, int, int], reasoning: str, mass: list[float], top_id: int,
                 elapsed: float) -> Verdict:
        spec, (text, n_in, n_out) = self.spec, gen
        total = sum(mass)
        probs = [m / total for m in mass] if total > 0 else None
        best = max(range(len(self.values)), key=lambda j: mass[j])
        if spec.force_verdict:
            valid = any(top_id in self.value_ids[v] for v in self.values)
            label = self.values[best] if valid else None
            raw = (text.rstrip() + "\n" if spec.mode == "reasoning" else "") + f"{self.prefix}{self.tok.decode([top_id]).strip()}"
        else:
            parsed = parse_verdict(text, spec.format, spec.score_min, spec.score_max)
            valid, label, raw = parsed.valid, parsed.label, text
        expected = None
        if probs is not None:
            expected = expected_value(probs, self.values) if spec.format == "pointwise" else probs[0]
        return Verdict(label=label, expected=expected, probs=probs, reasoning=reasoning, raw=raw, valid=valid,
                       tokens_in=n_in, tokens_out=n_out + 1, seconds=elapsed)

    # ---- backend interface -----------------------------------------------------------------
    async def run(self, requests: list[JudgeRequest]) -> list[Verdict]:
        def work():
            with self._lock:
                try:
                    return self._verdicts(requests)
                finally:
                    model_loader.trim_after_judge_call(self.model)
        return await _on_model_thread(work)

    async def generate(self, messages: list[list[dict]], max_new_tokens: int | None = None,
                       temperature: float | None = None) -> list[Verdict]:
        s = self.spec.sampling
        temp = s.temperature if temperature is None else temperature
        texts = [chat_ids(self.tok, m) for m in messages]

        def work():
            with self._lock:
                t0 = time.perf_counter()
                gens = self._generate(texts, max_new_tokens or s.max_new_tokens, temp, s.top_p, s.top_k, s.seed)
                dt = (time.perf_counter() - t0) / max(1, len(texts))
                return [Verdict(raw=g[0], valid=bool(g[0].strip()), tokens_in=g[1], tokens_out=g[2], seconds=dt)
                        for g in gens]
        return await _on_model_thread(work)
