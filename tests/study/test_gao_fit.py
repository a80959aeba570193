"""Gao's RL form gold(d) = g0 + d(alpha - beta ln d), fitted online: the fit recovers a planted curve, predicts
and calls its peak, finds no peak on a rising control, and takes the run's KL where it has one."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from judgerl.study.gao_fit import curve, fit_gao, fit_report, gao_distance, online_fits

ROOT = Path(__file__).resolve().parents[2]


def points(ds: list[float], f, noise: float = 0.0, seed: int = 0) -> list[dict]:
    r = random.Random(seed)
    out = []
    for k, d in enumerate(ds):
        g = f(d) + (r.gauss(0, noise) if k else 0.0)
        out.append({"step": 5 * k, "distance": d * d, "gold": {"value": g, "lo": g - 0.1, "hi": g + 0.1}})
    return out


def gao(d: float, g0: float = -0.1, a: float = 1.0, b: float = 1.5) -> float:
    return g0 + (d * (a - b * math.log(d)) if d > 0 else 0.0)


def test_fit_recovers_a_planted_curve_and_its_peak():
    ds = [0.1 * k for k in range(16)]
    f = fit_gao(ds, [gao(d) for d in ds], -0.1)
    assert abs(f["alpha"] - 1.0) < 1e-9 and abs(f["beta"] - 1.5) < 1e-9 and f["r2"] > 0.999999
    d_star = math.exp(1.0 / 1.5 - 1)
    assert abs(f["peak"]["d"] - d_star) < 1e-9 and abs(f["peak"]["gold"] - gao(d_star)) < 1e-9
    assert abs(curve(f, 0.5) - gao(0.5)) < 1e-9


def test_online_fit_predicts_then_calls_the_peak():
    ds = [0.1 * k for k in range(16)]  # peak at d* = 0.717: the point at d = 0.7, step 35
    rep = fit_report(points(ds, gao, noise=0.01))
    assert rep["happened"]["step"] == 35
    assert rep["predicted_step"] is not None and rep["predicted_step"] <= rep["happened"]["step"]
    assert rep["called_step"] is not None and rep["called_step"] >= 35
    assert rep["online"][0]["alpha"] is None and rep["online"][1]["alpha"] is None  # one point with d > 0: no fit
    assert rep["online"][2]["n_fit"] == 2


def test_rising_control_has_no_peak():
    ds = [0.1 * k for k in range(12)]
    rep = fit_report(points(ds, lambda d: -0.1 + 2 * d + 0.5 * d * d, noise=0.01))
    assert rep["happened"] is None and rep["called_step"] is None and rep["predicted_step"] is None
    assert rep["final"]["peak"] is None or rep["final"]["peak"]["d"] > ds[-1]


def test_distance_uses_the_runs_kl_else_the_clipped_nll_shift():
    pts = [{"distance": 0.0}, {"distance": -0.04}, {"distance": 0.25}]
    ds, src = gao_distance(pts)
    assert ds == [0.0, 0.0, 0.5] and src.startswith("sqrt(max(0, NLL shift))")
    ds, src = gao_distance([{**p, "kl": k} for p, k in zip(pts, [0.0, 0.09, 0.16])])
    assert ds == [0.0, 0.3, 0.4] and src.startswith("sqrt(kl)")


def test_committed_runs_have_too_few_points_for_a_fit():
    study = json.loads((ROOT / "docs/experiments/reward_hacking/study.json").read_text())
    for name, run in study["runs"].items():
        fits = online_fits(run["points"])
        assert len(fits) == 2 and fits[-1]["alpha"] is None, name  # two sampled points, one with d > 0


def test_a_peak_far_beyond_the_data_is_not_reported():
    """Nearly straight points (the gold still rising linearly): the least-squares curve bends only at a d many times
    the observed range, which the data cannot speak for."""
    from judgerl.study.gao_fit import EXTRAPOLATE, fit_gao

    ds = [0.1, 0.2, 0.3, 0.4, 0.5]
    f = fit_gao(ds, [0.0 + 2.0 * d - 0.01 * d * __import__("math").log(d) for d in ds], 0.0)
    assert f["beta"] > 0 and f["peak"] is None and f["peak_beyond"]
    g = fit_gao(ds, [d * (1.0 - 1.0 * __import__("math").log(d)) for d in ds], 0.0)  # d* = exp(0) = 1.0, in range
    assert g["peak"] is not None and abs(g["peak"]["d"] - 1.0) < 1e-6 and 1.0 <= EXTRAPOLATE * max(ds)
