"""Judge -> TRL reward functions for policy GRPO (paper §6), and cheaper pairwise schemes.

- `PointwiseReward`: reward = the judge's expected score Σ x·p(x), p renormalised over the valid
  score tokens (the backend does the renormalisation). A verdict without a distribution falls back
  to its integer label; an invalid verdict (or a failed call) is a *failure*, never a number.
- `PairwiseReward`: reward = each rollout's mean win rate against the other rollouts of its group
  (Eq. 4). P(i beats j) is the judge's P(response 1 preferred) with i shown first. With one order
  (the paper's setting) a seeded coin per pair decides which rollout is shown first (recorded in
  `last_orders`), so a position-biased judge favours no index; with `both_orders` the pair is also
  judged as (j, i) and the two are averaged (position-bias control).
  `aggregate: vote` uses the 0/1 decision instead of the probability.
- Cheaper schemes (`scheme`): `round_robin` (all G(G-1)/2 pairs), `k_opponents` (a random circulant
  design: every rollout meets ≥k others, ~G·⌈k/2⌉ pairs), `anchor` (every rollout vs rollout 0,
  G-1 pairs), `bt_regular` (a k-regular design, k = 4 by default: 2G calls, each pair in one order
  balanced per rollout, the unjudged pairs filled in by a Bradley–Terry fit: training/pairwise_rank.py).
  `scheme_agreement` reports their call count and Kendall τ against round robin.
- Failures never raise: the whole batch is retried `retries` times if the judge raises, then each
  unscorable sample gets the configured `on_failure` policy: `drop` (None: TRL excludes the sample
  from the group baseline and gives it zero advantage) or `group_mean` (the mean reward of the
  scorable members of its group; None when the whole group failed). Counts go to TRL's metrics
  through the `log_metric` keyword TRL passes to reward functions.

Both classes are `async` callables: TRL 1.16 runs async reward functions concurrently on its own
event loop. Groups are the consecutive blocks of `num_generations` completions TRL's RepeatSampler
produces; a block whose prompts differ means the group was split, which is a hard error (config
validation refuses such batch layouts before training, see policy_config.check_group_layout).
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from judgerl import JudgerlError
from judgerl.judges.spec import JudgeRequest, Verdict
from judgerl.judges.values import completion_text, first_wins, judge_prompt, point_value

log = logging.getLogger(__name__)
FailurePolicy = Literal["drop", "group_mean"]
DESIGNED_ORDER = {"bt_regular"}  # schemes whose pairs already say who is shown first (balanced per rollout)
Scheme = Literal["round_robin", "k_opponents", "anchor", "bt_regular"]
DEFAULT_K = {"k_opponents": 2, "bt_regular": 4}


class JudgeRewardConfig(BaseModel):
    """How judge verdicts become rewards (the judge's format picks pointwise or pairwise)."""

    model_config = ConfigDict(extra="forbid")
    on_failure: FailurePolicy = Field("drop", description="drop: None (TRL leaves the sample out); "
                                      "group_mean: the mean reward of the rest of its group.")
    retries: int = Field(1, ge=0, le=10, description="Whole-batch retries when the judge raises "
                         "(the openai backend also retries each request itself).")
    scheme: Scheme = Field("round_robin", description="Pairwise pairing scheme.")
    k: int | None = Field(None, ge=1, description="Opponents per rollout for schemes k_opponents (default 2) and "
                          "bt_regular (default 4: 2G calls a group, twice the pointwise count).")
    both_orders: bool = Field(False, description="Judge each pair in both orders and average.")
    aggregate: Literal["prob", "vote"] = Field("prob", description="Pairwise: P(preferred) or 0/1 vote.")
    seed: int = Field(0, description="Seed of the k_opponents design and random pair order.")


def groups_of(prompts: list, g: int) -> list[list[int]]:
    """Consecutive blocks of g indices; each must share one prompt, else the group was split."""
    if g < 1 or len(prompts) % g:
        raise JudgerlError(f"reward batch of {len(prompts)} completions is not a whole number of groups of "
                           f"{g}: a group was split across processes (see check_group_layout)")
    out = [list(range(s, s + g)) for s in range(0, len(prompts), g)]
    for grp in out:
        if any(prompts[i] != prompts[grp[0]] for i in grp):
            raise JudgerlError(f"completions {grp[0]}..{grp[-1]} do not share one prompt: group split across "
                               f"processes or num_generations mismatch")
    return out


def apply_failure_policy(rewards: list[float | None], groups: list[list[int]], policy: str) -> list[float | None]:
    out = list(rewards)
    if policy == "group_mean":
        for grp in groups:
            ok = [rewards[i] for i in grp if rewards[i] is not None]
            for i in grp:
                if out[i] is None and ok:
                    out[i] = sum(ok) / len(ok)
    return out


def pairs_for(g: int, scheme: str = "round_robin", k: int | None = None,
              rng: random.Random | None = None) -> list[tuple[int, int]]:
    """Pairs (i, j), i != j, i shown first, of a group of g rollouts under a pairing scheme."""
    k = k or DEFAULT_K.get(scheme, 2)
    if g < 2:
        return []
    if scheme == "bt_regular":
        from judgerl.training.pairwise_rank import design

        return design(g, k, rng)
    if scheme == "round_robin" or (scheme == "k_opponents" and k >= g - 1):
        return [(i, j) for i in range(g) for j in range(i + 1, g)]
    if scheme == "anchor":
        return [(0, j) for j in range(1, g)]
    if scheme == "k_opponents":
        order = list(range(g))
        (rng or random.Random(0)).shuffle(order)
        pairs = set()
        for pos in range(g):
            for d in range(1, math.ceil(k / 2) + 1):
                a, b = order[pos], order[(pos + d) % g]
                pairs.add((min(a, b), max(a, b)))
        return sorted(pairs)
    raise JudgerlError(f"unknown pairwise scheme {scheme!r} (round_robin, k_opponents, anchor, bt_regular)")


def group_rewards(g: int, scheme: str, pairs: list[tuple[int, int]], p_first: dict) -> list[float | None]:
    """Each rollout's reward from the judged pairs: mean win rate, or for bt_regular the round-robin win
    rate with the unjudged pairs imputed by Bradley–Terry."""
    if scheme == "bt_regular":
        from judgerl.training.pairwise_rank import imputed_win_rates

        return imputed_win_rates(g, {p: p_first.get(p) for p in pairs})
    return win_rates(g, pairs, p_first)


def win_rates(g: int, pairs: list[tuple[int, int]], p_first: dict[tuple[int, int], float | None]) -> list[float | None]:
    """Mean win rate of each rollout over the pairs it played; `p_first[(i, j)]` = P(i beats j)."""
    wins = [0.0] * g
    games = [0] * g
    for i, j in pairs:
        p = p_first.get((i, j))
        if p is None:
            continue
        wins[i] += p
        wins[j] += 1.0 - p
        games[i] += 1
        games[j] += 1
    return [wins[i] / games[i] if games[i] else None for i in range(g)]


class _JudgeReward:
    def __init__(self, judge, cfg: JudgeRewardConfig | None = None, num_generations: int = 1, name: str = "judge"):
        self.judge = judge
        self.cfg = cfg or JudgeRewardConfig()
        self.num_generations = num_generations
        self.__name__ = name
        self.totals: Counter = Counter()  # cumulative counts, read by tests and the run summary

    async def _call(self, requests: list[JudgeRequest]) -> list[Verdict]:
        err = None
        for attempt in range(self.cfg.retries + 1):
            try:
                return await self.judge.ajudge(requests)
            except Exception as e:  # noqa: BLE001 - a judge failure must never crash training
                err = e
                log.warning("judge call failed (attempt %d/%d): %s", attempt + 1, self.cfg.retries + 1, e)
        self.totals["batch_errors"] += 1
        return [Verdict(valid=False, error=f"{type(err).__name__}: {err}") for _ in requests]

    def _report(self, counts: dict, kw: dict) -> None:
        self.totals.update(counts)
        log_metric = kw.get("log_metric")
        if log_metric is not None:
            for k, v in counts.items():
                log_metric(f"judge/{k}", float(v))


class PointwiseReward(_JudgeReward):
    """reward(y) = E[score] under the judge's verdict-token distribution (paper §6)."""

    def __init__(self, judge, cfg: JudgeRewardConfig | None = None, num_generations: int = 1, name: str = "judge_expected"):
        super().__init__(judge, cfg, num_generations, name)

    async def __call__(self, prompts, completions, **kw) -> list[float | None]:
        reqs = [JudgeRequest(prompt=judge_prompt(p), responses=[completion_text(c)]) for p, c in zip(prompts, completions)]
        verdicts = await self._call(reqs)
        raw = [point_value(v) for v in verdicts]
        whole = self.cfg.on_failure == "group_mean"  # group_mean needs (and checks) whole groups
        groups = groups_of(prompts, self.num_generations) if whole else [[i] for i in range(len(prompts))]
        out = apply_failure_policy(raw, groups, self.cfg.on_failure)
        self._report({"calls": len(reqs), "failed": sum(v.failed for v in verdicts),
                      "invalid": sum((not v.valid) and not v.failed for v in verdicts),
                      "unscored": sum(r is None for r in raw), "dropped": sum(r is None for r in out),
                      **({"whole_groups": len(groups)} if whole else {})}, kw)
        return out


class PairwiseReward(_JudgeReward):
    """reward(y_i) = mean over opponents j of P(judge prefers y_i over y_j) within the group (Eq. 4)."""

    def __init__(self, judge, cfg: JudgeRewardConfig | None = None, num_generations: int = 2, name: str = "judge_winrate"):
        super().__init__(judge, cfg, num_generations, name)
        if num_generations < 2:
            raise JudgerlError("pairwise rewards need num_generations >= 2")
        self._rng = random.Random(self.cfg.seed)
        self._order_rng = random.Random(f"pair-order:{self.cfg.seed}")
        self.last_orders: list[tuple[int, int, int, bool]] = []  # (group, i, j, i shown first) per judge call

    async def __call__(self, prompts, completions, **kw) -> list[float | None]:
        groups = groups_of(prompts, self.num_generations)
        texts = [completion_text(c) for c in completions]
        g = self.num_generations
        plan = []  # (group index, i, j, i shown first?)
        group_pairs = []
        for gi, grp in enumerate(groups):
            pairs = pairs_for(g, self.cfg.scheme, self.cfg.k, self._rng)
            group_pairs.append(pairs)
            for i, j in pairs:
                if self.cfg.both_orders:
                    plan += [(gi, i, j, True), (gi, i, j, False)]
                else:  # one order: a seeded coin per pair picks who is shown first, so position bias favours no index
                    plan.append((gi, i, j, self.cfg.scheme in DESIGNED_ORDER or self._order_rng.random() < 0.5))
        self.last_orders = plan
        reqs = []
        for gi, i, j, first in plan:
            a, b = (groups[gi][i], groups[gi][j]) if first else (groups[gi][j], groups[gi][i])
            reqs.append(JudgeRequest(prompt=judge_prompt(prompts[a]), responses=[texts[a], texts[b]]))
        verdicts = await self._call(reqs)
        # P(i beats j) per pair: average over the orders that produced a usable verdict
        acc: dict[tuple[int, int, int], list[float]] = {}
        for (gi, i, j, first), v in zip(plan, verdicts):
            p = first_wins(v, self.cfg.aggregate)
            if p is not None:
                acc.setdefault((gi, i, j), []).append(p if first else 1.0 - p)
        raw: list[float | None] = [None] * len(prompts)
        for gi, grp in enumerate(groups):
            p_first = {(i, j): (sum(acc[(gi, i, j)]) / len(acc[(gi, i, j)]) if (gi, i, j) in acc else None)
                       for i, j in group_pairs[gi]}
            for local, r in enumerate(group_rewards(g, self.cfg.scheme, group_pairs[gi], p_first)):
                raw[grp[local]] = r
        out = apply_failure_policy(raw, groups, self.cfg.on_failure)
        self._report({"calls": len(reqs), "failed": sum(v.failed for v in verdicts),
                      "invalid": sum((not v.valid) and not v.failed for v in verdicts),
                      "unscored": sum(r is None for r in raw), "dropped": sum(r is None for r in out),
                      "whole_groups": len(groups)}, kw)
        return out


def make_reward(judge, cfg: JudgeRewardConfig | None = None, num_generations: int = 1):
    """The reward callable matching the judge's format."""
    cls = PairwiseReward if judge.spec.format == "pairwise" else PointwiseReward
    return cls(judge, cfg, num_generations)


def scheme_calls(g: int, scheme: str, k: int | None = None, both_orders: bool = False) -> int:
    """Judge calls per group of g rollouts."""
    return len(pairs_for(g, scheme, k, random.Random(0))) * (2 if both_orders else 1)


def scheme_agreement(pref, scheme: str, k: int | None = None, trials: int = 200, sample: bool = True,
                     seed: int = 0) -> dict:
    """Call count and ranking agreement of a cheap pairwise scheme with the full round robin.

    `pref` is a G×G matrix, pref[i][j] = P(judge prefers rollout i over j) (e.g. measured from a
    real judge, or from a Bradley–Terry model). Each trial draws the scheme's pairs (and, with
    `sample`, 0/1 judge outcomes from pref) and computes win rates with the scheme and with the
    round robin on the same outcomes; Kendall τ-b between the two reward vectors is averaged over
    trials (ties, e.g. identical win rates, are handled by τ-b; trials where τ is undefined are skipped).
    """
    import numpy as np
    from scipy.stats import kendalltau

    pref = np.asarray(pref, dtype=float)
    g = pref.shape[0]
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    taus = []
    for _ in range(trials):
        outcome = (nrng.random((g, g)) < pref).astype(float) if sample else pref.copy()
        full = {(i, j): float(outcome[i, j]) for i in range(g) for j in range(i + 1, g)}
        ref = win_rates(g, list(full), full)
        pairs = pairs_for(g, scheme, k, rng)
        seen = {(i, j): full[(i, j)] if i < j else 1.0 - full[(j, i)] for i, j in pairs}
        cheap = group_rewards(g, scheme, pairs, seen)
        a = [x if x is not None else 0.5 for x in cheap]
        tau = kendalltau(ref, a).statistic
        if tau is not None and math.isfinite(tau):
            taus.append(float(tau))
    return {"scheme": scheme, "k": k or DEFAULT_K.get(scheme), "group_size": g, "calls": scheme_calls(g, scheme, k),
            "calls_round_robin": scheme_calls(g, "round_robin"), "kendall_tau": float(np.mean(taus)) if taus else float("nan"),
            "trials": len(taus)}
