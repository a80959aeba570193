"""Cluster bootstrap confidence intervals for the study's figures (accuracy, alpha, monitor means).

Units that share a prompt are not independent (several answers to one prompt, several model answers
to one AlpacaEval instruction), so every interval resamples whole clusters (prompts), with replacement.
Intervals are percentile 95% intervals; `n < SMALL_N` clusters marks a figure as small-n.
"""

from __future__ import annotations

from judgerl.evaluation.judge_metrics import SMALL_N, cluster_bootstrap, interval_alpha  # noqa: F401


def fmt_ci(ci: dict, nd: int = 1) -> str:
    """'87.4 [85.1, 89.6] (n 1,600, 80 prompts)' with a small-n mark."""
    if ci.get("value") is None:
        return "–"
    rng = f" [{ci['lo']:.{nd}f}, {ci['hi']:.{nd}f}]" if ci.get("lo") is not None else ""
    mark = ", small n" if ci.get("small_n") else ""
    return f"{ci['value']:.{nd}f}{rng} (n {ci['n']:,}, {ci['clusters']} prompts{mark})"
