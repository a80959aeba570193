"""bt_regular: a k-regular pair design balanced in presentation order, and round-robin win rates with
the unjudged pairs imputed by a Bradley–Terry fit (training/pairwise_rank.py)."""

from __future__ import annotations

import math
import random

import pytest

from judgerl.training.pairwise_rank import design, fit_strengths, imputed_win_rates
from judgerl.training.rewards import group_rewards, pairs_for, scheme_agreement, scheme_calls, win_rates


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@pytest.mark.parametrize("g,k", [(8, 4), (8, 2), (6, 4), (16, 4), (5, 2)])
def test_design_is_regular_and_balanced(g, k):
    pairs = design(g, k, random.Random(3))
    assert len({frozenset(p) for p in pairs}) == len(pairs) == g * k // 2  # distinct pairs, 2G calls at k = 4
    for i in range(g):
        assert sum(i in p for p in pairs) == k  # every rollout plays k games ...
        assert sum(p[0] == i for p in pairs) == k // 2  # ... shown first in half of them
    assert scheme_calls(8, "bt_regular") == 16 == 2 * 8  # default k = 4: twice the pointwise calls


def test_g8_k4_design_is_k44():
    """Offsets 1 and 3 of a cycle of 8: the complete bipartite graph (any two rollouts share opponents)."""
    pairs = design(8, 4, random.Random(0))
    nbrs = {i: {j for p in pairs for j in p if i in p and j != i} for i in range(8)}
    a = next(iter(range(8)))
    side = {a} | {j for i in nbrs[a] for j in nbrs[i]}
    assert len(side) == 4 and all(nbrs[i] == set(range(8)) - side for i in side)


def test_fit_recovers_bradley_terry_order_and_imputation_is_exact_on_full_data():
    s = [0.0, 0.5, 1.5, -1.0, 2.5, 0.2]
    g = len(s)
    games = {(i, j): sig(s[i] - s[j]) for i in range(g) for j in range(g) if i < j}
    fit = fit_strengths(g, games, ridge=1e-6)
    assert sorted(range(g), key=lambda i: fit[i]) == sorted(range(g), key=lambda i: s[i])
    assert max(abs((fit[i] - fit[0]) - (s[i] - s[0])) for i in range(g)) < 1e-3
    full = imputed_win_rates(g, games)  # every pair judged: exactly the round-robin win rates
    assert full == pytest.approx(win_rates(g, list(games), games))
    sparse = {p: games[tuple(sorted(p))] if p[0] < p[1] else 1 - games[(p[1], p[0])]
              for p in design(g, 2, random.Random(1))}
    est = imputed_win_rates(g, sparse)  # BT-consistent preferences: the imputed reward is the round robin's
    assert est == pytest.approx(full, abs=0.05)


def test_unusable_verdicts_and_group_rewards():
    assert imputed_win_rates(3, {(0, 1): None, (1, 2): None}) == [None, None, None]
    out = imputed_win_rates(4, {(0, 1): 0.9, (1, 2): None, (2, 3): 0.4})
    assert all(x is not None for x in out) and out[0] > out[1]
    pairs = pairs_for(8, "bt_regular", rng=random.Random(0))
    p = {(i, j): sig(0.3 * (i - j)) for i, j in pairs}
    r = group_rewards(8, "bt_regular", pairs, p)
    assert sorted(range(8), key=lambda i: r[i]) == list(range(8)) and sum(r) / 8 == pytest.approx(0.5)


def test_bt_regular_agrees_with_the_round_robin():
    quality = [0.0, 0.4, 0.8, 1.2, 1.6, 2.0, 2.4, 2.8]
    pref = [[sig(a - b) for b in quality] for a in quality]
    bt = scheme_agreement(pref, "bt_regular", trials=50, sample=False)
    k4 = scheme_agreement(pref, "k_opponents", k=4, trials=50, sample=False)
    assert bt["calls"] == k4["calls"] == 16
    assert bt["kendall_tau"] > 0.95 > k4["kendall_tau"]  # same calls, imputation recovers the full ranking
