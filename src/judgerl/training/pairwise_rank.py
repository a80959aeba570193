"""Pairwise group rewards at pointwise-like cost: a sparse design plus Bradley–Terry imputation.

The full pairwise reward (paper Eq. 4) is each rollout's mean win probability against the other
G−1 rollouts of its group: G(G−1)/2 judge calls (28 at G = 8, 56 with both orders). Scheme
`bt_regular` judges only a k-regular subset (k = 4: 2G calls, twice the pointwise count) and fills in
the pairs it did not judge from a Bradley–Terry model fitted to the ones it did:

    reward_i = 1/(G−1) · [ Σ_{j judged} P(i ≻ j) + Σ_{j not judged} σ(s_i − s_j) ]

which estimates the round-robin reward itself, not a different one. The design is a circulant graph
on a random permutation of the group: offsets {1, 3} for G = 8 (the complete bipartite K4,4: every
rollout meets 4 others and any two rollouts share opponents, so strengths are well tied together),
generally the odd offsets 1, 3, … (or 1..k/2 when they do not give degree k). Each pair is judged in
one order, oriented along the circulant so every rollout is shown first in half of its games
(position bias cancels per rollout without doubling the calls). The fit is a ridge-regularised
maximum likelihood (Newton steps on soft outcomes P(i ≻ j) ∈ [0, 1]; the ridge keeps 0/1 votes finite).
"""

from __future__ import annotations

import math
import random

RIDGE = 0.01  # L2 on strengths: finite fits for 0/1 votes; small next to the information of k games


def _offsets(g: int, k: int) -> list[int]:
    """Circulant offsets giving degree k (k even, or k odd with g even using the g/2 'diameter' offset)."""
    half = g // 2
    odd = [d for d in range(1, half + 1, 2)]
    for cand in (odd, list(range(1, half + 1))):
        chosen, deg = [], 0
        for d in cand:
            step = 1 if (g % 2 == 0 and d == half) else 2
            if deg + step <= k:
                chosen.append(d)
                deg += step
            if deg == k:
                return chosen
    return list(range(1, half + 1))  # k >= g - 1: every pair


def design(g: int, k: int = 4, rng: random.Random | None = None) -> list[tuple[int, int]]:
    """Ordered pairs (first shown, second shown) of a k-regular circulant design on a random permutation."""
    if g < 2:
        return []
    if k >= g - 1:
        pairs = [(i, j) for i in range(g) for j in range(i + 1, g)]
        return [(i, j) if (i + j) % 2 else (j, i) for i, j in pairs]  # alternate who is shown first
    order = list(range(g))
    (rng or random.Random(0)).shuffle(order)
    out, seen = [], set()
    for d in _offsets(g, k):
        for pos in range(g):
            a, b = order[pos], order[(pos + d) % g]
            key = (min(a, b), max(a, b))
            if a != b and key not in seen:
                seen.add(key)
                out.append((a, b))  # along the cycle: every rollout is first once and second once per offset
    return out


def fit_strengths(g: int, games: dict[tuple[int, int], float], ridge: float | None = None,
                  iters: int = 50) -> list[float]:
    """Bradley–Terry strengths from soft outcomes games[(i, j)] = P(i beats j) (ridge MLE, Newton)."""
    ridge = RIDGE if ridge is None else ridge
    s = [0.0] * g
    for _ in range(iters):
        grad = [-ridge * x for x in s]
        hess = [[0.0] * g for _ in range(g)]
        for i in range(g):
            hess[i][i] = ridge
        for (i, j), y in games.items():
            p = 1.0 / (1.0 + math.exp(-(s[i] - s[j])))
            grad[i] += y - p
            grad[j] -= y - p
            w = p * (1 - p)
            hess[i][i] += w
            hess[j][j] += w
            hess[i][j] -= w
            hess[j][i] -= w
        step = _solve(hess, grad)
        s = [a + b for a, b in zip(s, step)]
        if max(abs(x) for x in step) < 1e-9:
            break
    return s


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (g ≤ a few dozen)."""
    n = len(b)
    m = [row[:] + [v] for row, v in zip(a, b)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[p] = m[p], m[c]
        for r in range(c + 1, n):
            f = m[r][c] / m[c][c]
            for k in range(c, n + 1):
                m[r][k] -= f * m[c][k]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - sum(m[r][k] * x[k] for k in range(r + 1, n))) / m[r][r]
    return x


def imputed_win_rates(g: int, games: dict[tuple[int, int], float | None]) -> list[float | None]:
    """Round-robin win rates: judged pairs as judged, the others from the Bradley–Terry fit.
    games[(i, j)] = P(i beats j) or None (unusable verdict). A rollout with no usable game gets None."""
    ok = {k: v for k, v in games.items() if v is not None}
    played = [0] * g
    for i, j in ok:
        played[i] += 1
        played[j] += 1
    if not ok:
        return [None] * g
    s = fit_strengths(g, ok)
    out: list[float | None] = []
    for i in range(g):
        if not played[i]:
            out.append(None)
            continue
        total = 0.0
        for j in range(g):
            if j == i:
                continue
            if (i, j) in ok:
                total += ok[(i, j)]
            elif (j, i) in ok:
                total += 1.0 - ok[(j, i)]
            else:
                total += 1.0 / (1.0 + math.exp(-(s[i] - s[j])))
        out.append(total / (g - 1))
    return out
