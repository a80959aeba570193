"""Gao et al.'s RL form of gold reward against distance, fitted online as monitor points arrive.

    gold(d) = g0 + d (alpha - beta ln d),    d = sqrt(KL(policy || base))

Distance (`gao_distance`). The policy's weights are not kept, so no exact KL. Per point, in this order:
- `kl` on the point (a per-token KL estimate written by the run, e.g. base vs policy log-probs on the answers);
- otherwise the analysis's `distance`, the NLL shift: base NLL/token of the policy's greedy answers minus base
  NLL/token of the base's own step-0 greedy answers. On greedy answers KL(policy || base) per token is
  E[-log base(y)] - E[-log policy(y)]; the shift stands in for it by taking the policy's NLL of its own greedy
  answers to equal the base's NLL of its own (both decode greedily, so both are near their mode). The shift
  can come out negative (answers the base finds likelier than its own, e.g. shorter ones); it is clipped at 0.
d is the square root of that non-negative per-token estimate (nats per token).

Fit (`fit_gao`). The offset g0 is fixed at the gold of the first point (the base policy: d = 0 there, where the
form gives 0), so alpha and beta come from linear least squares of gold - g0 on (d, -d ln d) over the points with
d > 0 (two at least, two distinct). With beta > 0 the curve has a peak at d* = exp(alpha / beta - 1), where
gold* = g0 + beta d*; beta <= 0 has no peak (gold keeps rising with distance, or never rose).

Online (`online_fits`, `fit_report`). At every point the fit on the points so far gives (d*, gold*). The run's
peak *happened* at the point of highest mean gold, provided a later point exists (a peak at the last point has
not happened yet). The peak was *predicted* at the first point whose fit puts d* within `d_tol` (relative) of the
happened peak's d and gold* inside that point's 95% interval; it was *called* at the first point whose fit says
the peak is behind (beta > 0 and d at that point >= d*).
"""

from __future__ import annotations

import math


def gao_distance(points: list[dict]) -> tuple[list[float | None], str]:
    """(d per point, which estimate): sqrt of the run's KL estimate where present, else of the clipped NLL shift."""
    if points and all(p.get("kl") is not None for p in points):
        return [math.sqrt(max(0.0, p["kl"])) for p in points], "sqrt(kl): the run's per-token KL estimate"
    ds = [None if p.get("distance") is None else math.sqrt(max(0.0, p["distance"])) for p in points]
    return ds, "sqrt(max(0, NLL shift)): base NLL/token of the answers minus that of the base's step-0 answers"


# A fitted peak further than this many times the largest observed distance is reported as none in range.
EXTRAPOLATE = 3.0


def fit_gao(ds: list[float], golds: list[float], g0: float) -> dict:
    """Least squares of gold - g0 = alpha d - beta d ln d over the points with d > 0; the peak when beta > 0."""
    import numpy as np

    use = [(d, g) for d, g in zip(ds, golds) if d is not None and g is not None and d > 0]
    if len({round(d, 12) for d, _ in use}) < 2:
        return {"n": len(use), "alpha": None, "beta": None, "g0": g0, "r2": None, "peak": None}
    X = np.array([[d, -d * math.log(d)] for d, _ in use])
    y = np.array([g - g0 for _, g in use])
    (alpha, beta), *_ = np.linalg.lstsq(X, y, rcond=None)
    pred = X @ np.array([alpha, beta])
    ss = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else None
    peak, beyond = None, False
    if beta > 0:  # compared in log space: exp of a far-out peak would overflow
        if alpha / beta - 1 <= math.log(EXTRAPOLATE * max(d for d, _ in use)):
            d_star = math.exp(alpha / beta - 1)
            peak = {"d": d_star, "gold": g0 + beta * d_star}
        else:  # a curve that bends only far beyond the data: no peak the data can speak for
            beyond = True
    return {"n": len(use), "alpha": float(alpha), "beta": float(beta), "g0": g0, "r2": r2, "peak": peak,
            "peak_beyond": beyond}


def curve(fit: dict, d: float) -> float | None:
    """The fitted gold at distance d."""
    if fit.get("alpha") is None:
        return None
    return fit["g0"] + (0.0 if d <= 0 else d * (fit["alpha"] - fit["beta"] * math.log(d)))


def online_fits(points: list[dict]) -> list[dict]:
    """At each point, the fit on that point and every earlier one (the analysis's points, with gold CIs)."""
    ds, _ = gao_distance(points)
    golds = [p["gold"]["value"] for p in points]
    if not points or golds[0] is None:
        return []
    out = []
    for k, p in enumerate(points):
        f = fit_gao(ds[:k + 1], golds[:k + 1], golds[0])
        passed = f["peak"] is not None and ds[k] is not None and ds[k] >= f["peak"]["d"]
        out.append({"step": p["step"], "d": ds[k], "gold": golds[k], "g0": golds[0], "alpha": f["alpha"],
                    "beta": f["beta"], "r2": f["r2"], "n_fit": f["n"], "peak": f["peak"],
                    "peak_beyond": f.get("peak_beyond", False), "peak_passed": passed})
    return out


def fit_report(points: list[dict], d_tol: float = 0.25) -> dict:
    """The online fits, the final fit, when the peak happened, and when the fits predicted and called it."""
    ds, source = gao_distance(points)
    fits = online_fits(points)
    res = {"distance": source, "offset": "g0 = gold of the first point (the base policy, d = 0), fixed",
           "online": fits, "final": fits[-1] if fits else None, "happened": None, "predicted_step": None,
           "called_step": None, "d_tol": d_tol}
    ok = [(k, p) for k, p in enumerate(points) if p["gold"]["value"] is not None and ds[k] is not None]
    if not ok:
        return res
    k, peak = max(ok, key=lambda kp: (kp[1]["gold"]["value"], -kp[0]))
    if k < len(points) - 1:
        res["happened"] = {"step": peak["step"], "d": ds[k], "gold": peak["gold"]["value"],
                           "gold_lo": peak["gold"].get("lo"), "gold_hi": peak["gold"].get("hi")}
    h = res["happened"]
    for f in fits:
        pk = f["peak"]
        if h and res["predicted_step"] is None and pk and h["d"] > 0 and abs(pk["d"] - h["d"]) <= d_tol * h["d"] \
                and (h["gold_lo"] is None or h["gold_lo"] <= pk["gold"] <= h["gold_hi"]):
            res["predicted_step"] = f["step"]
        if res["called_step"] is None and f["peak_passed"]:
            res["called_step"] = f["step"]
    return res
