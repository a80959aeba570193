"""Judge agreement metrics (paper §7): Krippendorff's alpha, pairwise accuracy, position consistency.

Conventions:
- alpha: interval level, x100, computed by the `krippendorff` package on two coders (gold, judge).
  An invalid judge output is a missing value (it is counted in the invalid rate instead). Undefined
  (None) when fewer than two units have both values or the pooled values do not vary.
- Pairwise accuracy: predictions 1|2 (or 0 = tie, worth half a point against a non-tie gold label);
  invalid predictions count as wrong (so accuracy is over all items, not just the valid ones).
- Intervals: `cluster_bootstrap` resamples whole clusters (all answers to one prompt together), percentile
  95%; `interval_alpha` is the closed form of interval alpha for two coders (the `krippendorff` package
  builds a value-by-value matrix, unusable inside a bootstrap of continuous expected scores).
- Position consistency: a pair judged in both orders is consistent when the swapped-order verdict,
  mapped back to the original order, names the same response. Invalid in either order = inconsistent.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Sequence

SMALL_N = 30  # fewer units (clusters) than this: a figure is marked small-n


def krippendorff_alpha(gold: Sequence[float | None], pred: Sequence[float | None]) -> float | None:
    """Interval alpha x 100 between gold and judge values; None = missing."""
    import krippendorff
    import numpy as np

    if len(gold) != len(pred):
        raise ValueError("gold and pred must have the same length")
    g = [math.nan if v is None else float(v) for v in gold]
    p = [math.nan if v is None else float(v) for v in pred]
    paired = [(a, b) for a, b in zip(g, p) if not (math.isnan(a) or math.isnan(b))]
    if len(paired) < 2 or len({v for pair in paired for v in pair}) < 2:
        return None
    a = krippendorff.alpha(reliability_data=np.array([g, p], dtype=float), level_of_measurement="interval")
    return None if math.isnan(a) else 100.0 * float(a)


def pairwise_accuracy(gold: Sequence[int], pred: Sequence[int | None]) -> float | None:
    """Share of items where pred == gold (tie prediction 0: half a point; None/invalid: wrong)."""
    if len(gold) != len(pred):
        raise ValueError("gold and pred must have the same length")
    if not gold:
        return None
    pts = [1.0 if p == g else (0.5 if p == 0 else 0.0) for g, p in zip(gold, pred)]
    return sum(pts) / len(pts)


def swap_back(label: int | None) -> int | None:
    """A verdict on the swapped pair (2, 1) expressed in the original order."""
    return {1: 2, 2: 1, 0: 0}.get(label) if label is not None else None


def position_consistency(original: Sequence[int | None], swapped: Sequence[int | None]) -> float | None:
    """Share of pairs whose verdicts agree across both presentation orders (swapped verdicts in swapped order)."""
    if len(original) != len(swapped):
        raise ValueError("original and swapped must have the same length")
    if not original:
        return None
    ok = [a is not None and a == swap_back(b) for a, b in zip(original, swapped)]
    return sum(ok) / len(ok)


def invalid_rate(valid: Sequence[bool]) -> float | None:
    return (sum(not v for v in valid) / len(valid)) if valid else None


def prefer_from_scores(s1: float | None, s2: float | None) -> int | None:
    """Pointwise scores of two responses -> preference 1|2, 0 for a tie, None if either is missing."""
    if s1 is None or s2 is None:
        return None
    return 1 if s1 > s2 else (2 if s2 > s1 else 0)


def mean(xs: Sequence[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def cluster_bootstrap(rows: Sequence, cluster_of: Callable, stat: Callable[[list], float | None],
                      n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """{value, lo, hi, n, clusters, small_n} for `stat(rows)`, with rows resampled by cluster."""
    groups: dict = defaultdict(list)
    for r in rows:
        groups[cluster_of(r)].append(r)
    keys = list(groups)
    value = stat(list(rows))
    out = {"value": value, "lo": None, "hi": None, "n": len(rows), "clusters": len(keys),
           "small_n": len(keys) < SMALL_N}
    if value is None or n_boot <= 0 or len(keys) < 2:
        return out
    rng = random.Random(seed)
    draws = []
    for _ in range(n_boot):
        sample = [r for _ in keys for r in groups[keys[rng.randrange(len(keys))]]]
        v = stat(sample)
        if v is not None:
            draws.append(v)
    if draws:
        draws.sort()
        a = (1 - level) / 2
        out["lo"] = draws[int(a * (len(draws) - 1))]
        out["hi"] = draws[int((1 - a) * (len(draws) - 1))]
    return out


def interval_alpha(gold: Sequence[float | None], pred: Sequence[float | None]) -> float | None:
    """Krippendorff's alpha (interval, x100) for two coders, closed form (O(n); the `krippendorff` package
    builds a value-by-value matrix, which is slow for continuous expected scores inside a bootstrap).

    With N units coded by both (pairs with a missing value dropped) and the 2N pooled values v:
    alpha = 1 - (2N - 1) * sum_u (a_u - b_u)^2 / (2N * sum_i (v_i - mean v)^2).
    """
    pairs = [(float(a), float(b)) for a, b in zip(gold, pred) if a is not None and b is not None]
    if len(pairs) < 2:
        return None
    vals = [x for p in pairs for x in p]
    n = len(vals)
    m = sum(vals) / n
    ss = sum((v - m) ** 2 for v in vals)
    if ss == 0:
        return None
    return 100.0 * (1.0 - (n - 1) * sum((a - b) ** 2 for a, b in pairs) / (n * ss))
