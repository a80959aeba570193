"""Cluster bootstrap confidence intervals for the study's figures (accuracy, alpha, monitor means).

Units that share a prompt are not independent (several answers to one prompt, several model answers
to one AlpacaEval instruction), so every interval resamples whole clusters (prompts), with replacement.
Intervals are percentile 95% intervals; `n < SMALL_N` clusters marks a figure as small-n.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Callable, Sequence

SMALL_N = 30


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


def fmt_ci(ci: dict, nd: int = 1) -> str:
    """'87.4 [85.1, 89.6] (n 1,600, 80 prompts)' with a small-n mark."""
    if ci.get("value") is None:
        return "–"
    rng = f" [{ci['lo']:.{nd}f}, {ci['hi']:.{nd}f}]" if ci.get("lo") is not None else ""
    mark = ", small n" if ci.get("small_n") else ""
    return f"{ci['value']:.{nd}f}{rng} (n {ci['n']:,}, {ci['clusters']} prompts{mark})"
