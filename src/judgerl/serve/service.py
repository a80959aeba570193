"""RewardService: one judge (with the run's cache and ledger), its reward callables, the batcher, metrics.

Shared by the HTTP server and by the in-process verl reward function, so both batch the same way.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from pathlib import Path

from judgerl import JudgerlError
from judgerl.judges.spec import JudgeSpec, Verdict
from judgerl.serve.batcher import MicroBatcher
from judgerl.serve.config import ServeConfig
from judgerl.serve.metrics import Metrics
from judgerl.serve.protocol import RequestError
from judgerl.serve.scoring import Group, Scorer, verdict_summary

STAGE = "serve"  # the ledger's stage for every verdict the server asks for


def load_spec(value: JudgeSpec | str, fetch: bool = True) -> JudgeSpec:
    """A JudgeSpec from an inline spec, a judge YAML or a model name; unknown embedded models fail here
    (`fetch=False`: an embedded model that is not fetched yet fails too, as `validate` wants)."""
    from judgerl.config import load_judge_spec

    spec = value if isinstance(value, JudgeSpec) else load_judge_spec(value)
    if spec.in_process:
        from judgerl.models import resolve

        resolve(spec.model, fetch_missing=fetch)
    return spec


class RewardService:
    """Rewards whole groups through the micro-batcher; refuses groups that are split or malformed."""

    def __init__(self, cfg: ServeConfig, judge=None, model=None, tokenizer=None):
        from judgerl.rundir import RunDir

        self.cfg = cfg
        if judge is None:
            spec = load_spec(cfg.judge)
            judge = RunDir(cfg.run_dir).judge(spec, STAGE, model=model, tokenizer=tokenizer)
        self.judge = judge
        self.scorer = Scorer(judge, cfg.reward)
        self.batcher = MicroBatcher(self._score_batch, cfg.max_batch_items, cfg.max_wait_ms / 1000.0)
        self.metrics = Metrics()
        self.in_flight = 0
        self.pending_items = 0  # accepted, not yet judged (all requests)
        self.draining = False
        self._seen: OrderedDict[str, None] = OrderedDict()

    @property
    def pairwise(self) -> bool:
        return self.scorer.pairwise

    async def warm_up(self) -> None:
        """Build the backend (loads hf weights) before the first request, off the event loop."""
        await asyncio.to_thread(lambda: self.judge.backend)

    def describe(self) -> dict:
        s = self.judge.spec
        return {"name": s.name, "model": s.model, "backend": s.backend, "format": s.format, "mode": s.mode,
                "fingerprint": self.judge.fingerprint, "reward": self.cfg.reward.model_dump(),
                "group_size": self.cfg.group_size}

    def live(self) -> dict:
        return {"in_flight": self.in_flight, "queued": self.batcher.queued, "pending_items": self.pending_items,
                "batch_items_max": self.batcher.batch_items_max, "draining": self.draining,
                "max_in_flight": self.cfg.max_in_flight, "judge_backend_calls": self.judge.backend_calls,
                "reward_totals": self.scorer.totals(), "prefix_memo_tokens_reused": self._memo_tokens()}

    def _memo_tokens(self) -> int:
        memo = getattr(getattr(self.judge, "_backend", None), "prefix_memo", None)  # never builds the backend
        return memo.tokens_reused if memo is not None else 0

    def check(self, groups: list[Group]) -> int:
        """Refuse malformed groups (422) and groups already seen in an earlier request (409); count items."""
        n = sum(len(g.completions) for g in groups)
        if n > self.cfg.max_items_per_request:
            raise RequestError(413, f"{n} completions in one request; the limit is {self.cfg.max_items_per_request} "
                                    f"(max_items_per_request)")
        ids = [g.group_id for g in groups if g.group_id is not None]
        again = [i for i in ids if i in self._seen]
        if again:
            raise RequestError(409, f"group {again[0]!r} was already sent in an earlier request: a group must arrive "
                                    f"whole in one request (its rewards depend on all its members)")
        for g in groups:
            label = f"group {g.group_id!r}" if g.group_id else "a group"
            if self.pairwise and len(g.completions) < 2:
                raise RequestError(422, "a pairwise judge rewards completions by their win rate inside their group: "
                                        "every completion needs a group of at least 2 (use `responses`, or the same "
                                        f"`group` id on several items); {label} has {len(g.completions)}")
            if self.cfg.group_size and g.named and len(g.completions) != self.cfg.group_size:
                raise RequestError(422, f"{label} has {len(g.completions)} completions; this server's group_size is "
                                        f"{self.cfg.group_size}")
        for i in ids:
            self._seen[i] = None
            if len(self._seen) > self.cfg.remember_groups:
                self._seen.popitem(last=False)
        return n

    def _use_prefix_memo(self) -> None:
        """The server's own judge keeps its prompt head across micro-batches (config `prefix_memo`)."""
        from judgerl.judges.hf import HFBackend
        from judgerl.judges.prefix_memo import PrefixMemo

        backend = getattr(self.judge, "backend", None)
        if self.cfg.prefix_memo and isinstance(backend, HFBackend) and backend.prefix_memo is None:
            backend.prefix_memo = PrefixMemo()

    async def _score_batch(self, groups: list[Group]) -> None:
        self._use_prefix_memo()
        t0 = time.perf_counter()
        try:
            counts = await asyncio.wait_for(self.scorer.score(groups), self.cfg.batch_timeout_s)
        except asyncio.TimeoutError:  # a hung backend: every item of the batch fails on its own, counted
            error = f"judge timed out: the batch was not judged within {self.cfg.batch_timeout_s:g} s (batch_timeout_s)"
            verdicts = [Verdict(valid=False, error=error) for g in groups for _ in g.completions]
            for g in groups:
                g.results = [{"reward": None, "verdict": verdict_summary(Verdict(valid=False, error=error))}
                             for _ in g.completions]
            self.metrics.judged(verdicts, {"judge/dropped": len(verdicts)}, time.perf_counter() - t0)
            return
        self.metrics.judged(self.scorer.verdicts, counts, time.perf_counter() - t0)

    async def score(self, groups: list[Group]) -> list[Group]:
        """Check, then judge the groups (batched with concurrent requests); fills each group's results.
        More than max_queued_items waiting in all: 429 with Retry-After."""
        n = sum(len(g.completions) for g in groups)
        if self.pending_items + n > self.cfg.max_queued_items and n <= self.cfg.max_items_per_request:
            raise RequestError(429, f"{self.pending_items} items are waiting to be judged (max_queued_items "
                                    f"{self.cfg.max_queued_items}); retry later", {"Retry-After": "2"})
        n = self.check(groups)
        self.pending_items += n
        try:
            await self.batcher.submit(groups, n)
        finally:
            self.pending_items -= n
        return groups

    async def close(self, timeout: float | None = None) -> int:
        self.draining = True
        return await self.batcher.close(timeout)


def local_service(config: str | Path | ServeConfig | dict) -> RewardService:
    """A RewardService from a serve YAML, a judge YAML / model name (default reward settings), or a config."""
    from judgerl.config import load_config, read_yaml

    if isinstance(config, ServeConfig):
        return RewardService(config)
    if isinstance(config, dict):
        return RewardService(ServeConfig.model_validate(config))
    p = Path(config)
    if p.suffix in (".yaml", ".yml") and p.is_file() and "judge" in read_yaml(p) and (
            set(read_yaml(p)) & {"reward", "kind", "max_batch_items", "group_size", "run_dir"}):
        return RewardService(load_config(ServeConfig, p))
    if p.suffix in (".yaml", ".yml") and not p.is_file():
        raise JudgerlError(f"judge/serve config not found: {p}")
    return RewardService(ServeConfig(judge=str(config)))
