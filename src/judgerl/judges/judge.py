"""The Judge: spec -> template -> backend -> parser, with the SQLite cache and the ledger around it.

Every stage calls judges through this class, so caching and accounting are identical everywhere:

    judge = Judge(spec, cache="runs/x/cache.sqlite", ledger="runs/x/ledger.sqlite", stage="annotate")
    verdicts = judge.judge([JudgeRequest(prompt="...", responses=["..."])])

`ajudge` is the async form (TRL runs async reward functions concurrently). A backend failure never
raises out of here: it comes back as an invalid Verdict with `error` set, and is counted. Items over the
spec's caps or with invalid text fail alone, unsent (judges/limits.py); a backend exception is narrowed to
the item that raised; after OUTAGE_CHUNKS batches in a row with every call failed, the rest is skipped.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
from pathlib import Path

from tqdm.auto import tqdm

import judgerl.judges.phases as phases
from judgerl.judges.cache import Ledger, VerdictCache
from judgerl.judges.limits import RAISED, SKIPPED, is_terminal, refused, request_problem
from judgerl.judges.redact import redact
from judgerl.judges.spec import JudgeRequest, JudgeSpec, Verdict

# name -> "module:Class"; imported lazily so the openai backend does not pull in torch.
BACKENDS = {
    "hf": "judgerl.judges.hf:HFBackend",
    "openai": "judgerl.judges.openai_backend:OpenAIBackend",
    "rm": "judgerl.judges.rm:RewardModelBackend",
}
OUTAGE_CHUNKS = 2  # after this many batches in a row with every call failed, the rest of a call is skipped


def make_backend(spec: JudgeSpec, model=None, tokenizer=None):
    module, cls = BACKENDS[spec.backend].split(":")
    backend_cls = getattr(importlib.import_module(module), cls)
    return backend_cls(spec, model=model, tokenizer=tokenizer) if (model is not None) else backend_cls(spec)


def same_prompt_key(request: JudgeRequest) -> str:
    """Requests with the same instruction (and rubric) sort together; the callers' order is kept among them."""
    return json.dumps([request.prompt, request.rubric], sort_keys=True)


class Judge:
    """A judge ready to be called. `model`/`tokenizer` let the hf/rm backends reuse loaded weights."""

    def __init__(self, spec: JudgeSpec, cache: str | Path | VerdictCache | None = None,
                 ledger: str | Path | Ledger | None = None, stage: str = "judge", model=None, tokenizer=None,
                 backend=None):
        self.spec = spec
        self.stage = stage
        self.fingerprint = spec.fingerprint()
        self.cache = VerdictCache(cache) if isinstance(cache, (str, Path)) else cache
        self.ledger = Ledger(ledger) if isinstance(ledger, (str, Path)) else ledger
        self._backend = backend
        self._model, self._tokenizer = model, tokenizer
        self._lock = threading.Lock()
        self.backend_calls = 0

    @property
    def backend(self):
        with self._lock:
            if self._backend is None:
                self._backend = make_backend(self.spec, self._model, self._tokenizer)
        return self._backend

    async def ajudge(self, requests: list[JudgeRequest], progress: bool = False,
                     desc: str | None = None) -> list[Verdict]:
        keys = [r.key(self.fingerprint) for r in requests]
        hits = self.cache.get_many(keys) if (self.cache is not None and self.spec.cache) else {}
        out: list[Verdict | None] = [None] * len(requests)
        todo: list[int] = []
        for i, k in enumerate(keys):
            if k in hits:
                out[i] = hits[k].model_copy(update={"cached": True, "seconds": 0.0, "retries": 0})
            else:
                todo.append(i)
        for i in list(todo):
            problem = request_problem(requests[i], self.spec)
            if problem:  # never sent; not a backend call, not cached, not in the ledger
                out[i] = refused(problem)
                todo.remove(i)
        chunk = max(1, self.spec.batch_size if self.spec.backend != "openai" else self.spec.concurrency * 4)
        if chunk == 1 and self.spec.backend == "hf":  # one request a call: an hf judge's prefix memo then serves the
            todo.sort(key=lambda i: same_prompt_key(requests[i]))  # question too when its requests follow each other
        bar = tqdm(total=len(todo), desc=desc or f"judging ({self.spec.name})", disable=not progress or not todo,
                   unit="req", dynamic_ncols=True)
        dead, last_error = 0, None  # chunks in a row whose every call failed (an outage)
        for s in range(0, len(todo), chunk):
            idx = todo[s:s + chunk]
            if dead >= OUTAGE_CHUNKS:
                for i in idx:
                    out[i] = refused(f"{SKIPPED}: the judge failed every call of {dead} batches in a row "
                                     f"(last error: {redact(last_error)})")
                bar.update(len(idx))
                continue
            with phases.phase("backend"):  # the backend's call, its thread hop included
                verdicts = await self._isolated([requests[i] for i in idx])
            self.backend_calls += len(idx)
            for i, v in zip(idx, verdicts):
                out[i] = v
            failed = [v for v in verdicts if v.failed and not is_terminal(v)]
            dead, last_error = (dead + 1, failed[-1].error) if len(failed) == len(verdicts) else (0, last_error)
            with phases.phase("cache_ledger_writes"):
                if self.cache is not None and self.spec.cache:
                    self.cache.put_many([(keys[i], self.spec.name, out[i]) for i in idx])
                if self.ledger is not None:
                    self.ledger.record(self.spec.name, self.stage, [(keys[i], out[i]) for i in idx])
            bar.update(len(idx))
        bar.close()
        if self.ledger is not None:
            hit_rows = [(keys[i], out[i]) for i in range(len(requests)) if out[i] is not None and out[i].cached]
            if hit_rows:
                self.ledger.record(self.spec.name, self.stage, hit_rows)
        return out  # type: ignore[return-value]

    async def _isolated(self, requests: list[JudgeRequest], top: bool = True) -> list[Verdict]:
        """The backend's verdicts; when it raises, the batch is split until the item that raises fails alone
        (so one bad item never costs its batch-mates their verdicts). When every item raises, the exception
        is re-raised, so callers that retry a failed judge (the reward callables) still can."""
        try:
            verdicts = list(await self.backend.run(requests))
        except Exception as e:  # noqa: BLE001 - becomes that item's verdict, never the batch's exception
            if len(requests) == 1:
                if top:
                    raise
                return [refused(redact(f"{RAISED}: {type(e).__name__}: {e}"[:500]))]
            half = len(requests) // 2
            out = await self._isolated(requests[:half], False) + await self._isolated(requests[half:], False)
            if top and all((v.error or "").startswith(RAISED) for v in out):
                raise
            return out
        if len(verdicts) != len(requests):  # a backend bug must not silently drop requests
            verdicts = [Verdict(valid=False, error=f"backend returned {len(verdicts)} verdicts for "
                                f"{len(requests)} requests")] * len(requests)
        return verdicts

    def judge(self, requests: list[JudgeRequest], progress: bool = False, desc: str | None = None) -> list[Verdict]:
        """Synchronous form of `ajudge`; safe to call from inside a running event loop (runs in a thread)."""
        return run_sync(self.ajudge(requests, progress=progress, desc=desc))

    async def agenerate(self, messages: list[list[dict]], max_new_tokens: int | None = None,
                        temperature: float | None = None) -> list[Verdict]:
        """Free-form generation with the judge's model (rubrics, answers). Not cached; counted in the ledger."""
        res = await self.backend.generate(messages, max_new_tokens=max_new_tokens, temperature=temperature)
        if self.ledger is not None:
            self.ledger.record(self.spec.name, self.stage + ":generate", [("generate", v) for v in res])
        return res


def run_sync(coro):
    """Run a coroutine to completion from sync code, even when an event loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict = {}

    def target():
        try:
            box["v"] = asyncio.run(coro)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["e"] = e

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]
    return box["v"]
