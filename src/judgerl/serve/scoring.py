"""Groups of (prompt, completions) -> rewards + verdicts, through train-policy's own reward callables.

The numbers come from `training.rewards.make_reward` (PointwiseReward / PairwiseReward), called exactly
as TRL calls them: `await reward(prompts, completions, log_metric=...)`, groups laid out as consecutive
blocks. Nothing here recomputes a reward; a tap around the judge only records the verdicts the reward
callable asked for, so that they can be returned next to the rewards.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

from judgerl.judges.spec import Verdict
from judgerl.judges.values import completion_text
from judgerl.training.rewards import JudgeRewardConfig, make_reward, scheme_calls

_TAPE: contextvars.ContextVar[list | None] = contextvars.ContextVar("judgerl_serve_tape", default=None)


@dataclass
class Group:
    """Completions of one prompt that are rewarded together (a single item is a group of one)."""

    prompt: str | list
    completions: list
    group_id: str | None = None
    named: bool = False  # has an id or came as `responses`: group_size applies
    results: list[dict] = field(default_factory=list)
    comparisons: list[dict] = field(default_factory=list)


class _TapJudge:
    """The real Judge, with every ajudge call's (requests, verdicts) appended to the current tape."""

    def __init__(self, judge):
        self.judge = judge
        self.spec = judge.spec

    async def ajudge(self, requests, **kw):
        verdicts = await self.judge.ajudge(requests, **kw)
        tape = _TAPE.get()
        if tape is not None:
            tape.append((requests, verdicts))
        return verdicts


def verdict_summary(v: Verdict | None) -> dict | None:
    if v is None:
        return None
    return {"label": v.label, "expected": v.expected, "valid": v.valid, "error": v.error, "cached": v.cached,
            "tokens_in": v.tokens_in, "tokens_out": v.tokens_out, "reasoning": v.reasoning or None}


class Scorer:
    """Rewards for whole groups with the reward callable train-policy would build for this judge."""

    def __init__(self, judge, cfg: JudgeRewardConfig | None = None):
        self.judge = judge
        self.cfg = cfg or JudgeRewardConfig()
        self.pairwise = judge.spec.format == "pairwise"
        self.whole_groups = self.pairwise or self.cfg.on_failure == "group_mean"
        self._tap = _TapJudge(judge)
        self._rewards: dict[int, object] = {}
        self.verdicts: list[Verdict] = []  # verdicts of the last `score` call (metrics read them)

    def reward_fn(self, size: int):
        """One callable per group size (TRL's num_generations); sizes matter only when groups do."""
        key = size if self.whole_groups else 1
        if key not in self._rewards:
            self._rewards[key] = make_reward(self._tap, self.cfg, key)
        return self._rewards[key]

    def totals(self) -> dict:
        """The reward callables' cumulative judge counts (calls, failed, invalid, unscored, dropped)."""
        out: dict = {}
        for fn in self._rewards.values():
            for k, v in fn.totals.items():
                out[k] = out.get(k, 0) + v
        return out

    async def score(self, groups: list[Group]) -> dict:
        """Fill each group's `results` (and `comparisons` for pairwise); returns the judge counts."""
        buckets: dict[int, list[Group]] = {}
        for g in groups:
            buckets.setdefault(len(g.completions) if self.whole_groups else 1, []).append(g)
        counts: dict[str, float] = {}
        self.verdicts = []

        def log_metric(name, value):
            counts[name] = counts.get(name, 0.0) + value

        for size, members in buckets.items():
            prompts = [g.prompt for g in members for _ in g.completions]
            completions = [c for g in members for c in g.completions]
            tape: list = []
            token = _TAPE.set(tape)
            try:
                rewards = await self.reward_fn(size)(prompts, completions, log_metric=log_metric)
            finally:
                _TAPE.reset(token)
            verdicts = [v for _, vs in tape for v in vs]
            if not self.pairwise and len(verdicts) != len(completions):  # every retry raised: no verdicts
                verdicts = [Verdict(valid=False, error="judge call raised (see the server log)")] * len(completions)
            self.verdicts += verdicts
            pos = 0
            for g in members:
                g.results = [{"reward": r} for r in rewards[pos:pos + len(g.completions)]]
                pos += len(g.completions)
            if self.pairwise:
                self._attach_comparisons(members, [r for reqs, _ in tape for r in reqs], verdicts)
            else:
                for res, v in zip((r for g in members for r in g.results), verdicts):
                    res["verdict"] = verdict_summary(v)
        return counts

    def _attach_comparisons(self, members: list[Group], requests: list, verdicts: list[Verdict]) -> None:
        """Pairwise verdicts back onto their group: which two completions, in which order, and the verdict."""
        pos = 0
        for g in members:
            n = scheme_calls(len(g.completions), self.cfg.scheme, self.cfg.k, self.cfg.both_orders)
            texts = [completion_text(c) for c in g.completions]
            for req, v in zip(requests[pos:pos + n], verdicts[pos:pos + n]):
                first, second = (texts.index(t) if t in texts else None for t in req.responses)
                g.comparisons.append({"first": first, "second": second, **verdict_summary(v)})
            pos += n
