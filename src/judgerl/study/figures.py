"""The study's figures (matplotlib, Agg): proxy vs gold per run with intervals and alarm markers, gold vs
distance from the base policy, judge alpha vs number of labels, and the Gao-style pair: gold vs d = sqrt(KL
estimate) per run with the fitted RL form, and each run's gold peak (value, step) vs its training judge's alpha."""

from __future__ import annotations

from pathlib import Path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, out: Path, name: str) -> str:
    """Lay out, write out/name at 110 dpi, close; returns the file name (what draw_all lists)."""
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def _band(ax, xs, cis, color, label):
    ys = [c["value"] for c in cis]
    ax.plot(xs, ys, "o-", color=color, label=label, ms=3)
    lo = [c["lo"] if c["lo"] is not None else c["value"] for c in cis]
    hi = [c["hi"] if c["hi"] is not None else c["value"] for c in cis]
    ax.fill_between(xs, lo, hi, color=color, alpha=0.15)


def curves(res: dict, out: Path) -> str | None:
    runs = {k: v for k, v in res["runs"].items() if v["points"]}
    if not runs:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.4), squeeze=False)
    for ax, (name, r) in zip(axes[0], runs.items()):
        pts = [p for p in r["points"] if p["proxy"]["value"] is not None and p["gold"]["value"] is not None]
        xs = [p["step"] for p in pts]
        _band(ax, xs, [p["proxy"] for p in pts], "tab:blue", "training judge")
        ax.set_xlabel("GRPO step")
        ax.set_ylabel("training judge (held-out)", color="tab:blue")
        ax2 = ax.twinx()
        _band(ax2, xs, [p["gold"] for p in pts], "tab:orange", "gold RM")
        ax2.set_ylabel("gold RM reward (held-out)", color="tab:orange")
        if r["alarm"].get("triggered"):
            ax.axvline(r["alarm"]["first_step"], color="red", ls="--", lw=1)
            ax.text(r["alarm"]["first_step"], ax.get_ylim()[1], " alarm", color="red", va="top", fontsize=8)
        ax.set_title(f"{name} (judge: {r['judge']})", fontsize=9)
    return _save(plt, fig, out, "proxy_vs_gold.png")


def distance(res: dict, out: Path) -> str | None:
    runs = {k: v for k, v in res["runs"].items() if any(p.get("distance") is not None for p in v["points"])}
    if not runs:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for name, r in runs.items():
        pts = [p for p in r["points"] if p.get("distance") is not None and p["gold"]["value"] is not None]
        ax.plot([p["distance"] for p in pts], [p["gold"]["value"] for p in pts], "o-", ms=3, label=name)
    ax.set_xlabel("distance from base (base NLL/token of the answers, minus step 0)")
    ax.set_ylabel("gold RM reward (held-out)")
    ax.legend(fontsize=8)
    return _save(plt, fig, out, "gold_vs_distance.png")


def alpha_curve(res: dict, out: Path) -> str | None:
    rows = [r for r in res.get("judges", []) if r["labels"] > 0 and (r.get("alpha_expected") or {}).get("value") is not None
            and not r.get("reasoning")]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    xs = [r["labels"] for r in rows]
    ci = [r["alpha_expected"] for r in rows]
    ax.errorbar(xs, [c["value"] for c in ci], yerr=[[c["value"] - (c["lo"] if c["lo"] is not None else c["value"])
                                                     for c in ci],
                                                    [(c["hi"] if c["hi"] is not None else c["value"]) - c["value"]
                                                     for c in ci]], fmt="o-", capsize=3, label="SFT judge")
    pr = [r for r in res.get("judges", []) if r["labels"] == 0 and (r.get("alpha_expected") or {}).get("value") is not None]
    if pr:
        ax.axhline(pr[0]["alpha_expected"]["value"], color="gray", ls=":", label="prompted base")
    for r in res.get("judges", []):
        c = r.get("alpha_expected") or {}
        if r.get("reasoning") and c.get("value") is not None:
            err = [[c["value"] - c["lo"]], [c["hi"] - c["value"]]] if c.get("lo") is not None else None
            ax.errorbar([r["labels"]], [c["value"]], yerr=err, fmt="s", color="tab:red", capsize=3,
                        label=f"{r['judge']} (reasoning; x = labelled items)")
    ax.set_xscale("log")
    ax.set_xlabel("gold labels used for SFT")
    ax.set_ylabel("Krippendorff alpha x100 vs gold")
    ax.legend(fontsize=8)
    return _save(plt, fig, out, "alpha_vs_labels.png")


def gao_curves(res: dict, out: Path) -> str | None:
    """One panel per run: gold (95% CI) vs d, the last online fit of gold = g0 + d(alpha - beta ln d), its peak."""
    import math

    from judgerl.study.gao_fit import curve, gao_distance

    runs = {k: v for k, v in res["runs"].items() if any(p.get("distance") is not None or p.get("kl") is not None
                                                         for p in v["points"])}
    if not runs:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(runs), figsize=(3.8 * len(runs), 3.3), squeeze=False)
    for ax, (name, r) in zip(axes[0], runs.items()):
        ds, source = gao_distance(r["points"])
        pts = [(d, p["gold"]) for d, p in zip(ds, r["points"]) if d is not None and p["gold"]["value"] is not None]
        ys = [g["value"] for _, g in pts]  # d need not grow with the step: error bars, points joined in step order
        err = [[y - (g["lo"] if g.get("lo") is not None else y) for y, (_, g) in zip(ys, pts)],
               [(g["hi"] if g.get("hi") is not None else y) - y for y, (_, g) in zip(ys, pts)]]
        ax.errorbar([d for d, _ in pts], ys, yerr=err, fmt="o-", ms=3, lw=0.6, elinewidth=0.6, capsize=0,
                    color="tab:orange", ecolor="navajowhite", label="gold, step order (95% CI)")
        fit = (r.get("gao") or {}).get("final") or {}
        if fit.get("alpha") is not None and pts:
            hi = max(d for d, _ in pts) * 1.15
            xs = [hi * i / 60 for i in range(61)]
            ax.plot(xs, [curve({**fit, "g0": pts[0][1]["value"]}, x) for x in xs], "k--", lw=1, label="Gao fit")
            if fit.get("peak") and math.isfinite(fit["peak"]["d"]) and fit["peak"]["d"] <= hi:
                ax.plot([fit["peak"]["d"]], [fit["peak"]["gold"]], "k*", ms=9, label="fitted peak")
        ax.set_title(f"{name} ({r.get('judge_name') or r['judge']})", fontsize=9)
        ax.set_xlabel("d = sqrt(KL estimate), nats^0.5/token" if source.startswith("sqrt(kl)") else
                      "d = sqrt(max(0, base NLL shift/token))", fontsize=8)
        ax.set_ylabel("gold RM reward (held-out)")
        ax.legend(fontsize=7)
    return _save(plt, fig, out, "gold_vs_sqrt_kl.png")


def peak_vs_alpha(res: dict, out: Path) -> str | None:
    """Each run's gold peak value (its 95% CI) and step against its training judge's alpha x100 (CI)."""
    rows = [(k, v) for k, v in res["runs"].items() if (v.get("alpha") or {}).get("value") is not None
            and v.get("peak_step") is not None]
    if not rows:
        return None
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.4, 3.4))
    for name, r in rows:
        al = r["alpha"]
        pk = next(p for p in r["points"] if p["step"] == r["peak_step"])["gold"]
        xerr = [[al["value"] - al["lo"]], [al["hi"] - al["value"]]] if al.get("lo") is not None else None
        yerr = [[pk["value"] - pk["lo"]], [pk["hi"] - pk["value"]]] if pk.get("lo") is not None else None
        a1.errorbar([al["value"]], [pk["value"]], xerr=xerr, yerr=yerr, fmt="o", capsize=3, label=name)
        a2.errorbar([al["value"]], [r["peak_step"]], xerr=xerr, fmt="o", capsize=3, label=name)
        tail = "" if r["peak_step"] != r.get("last_step") else " (last point)"
        a1.annotate(f"step {r['peak_step']}{tail}", (al["value"], pk["value"]), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")
    a1.set_xlabel("training judge alpha x100 vs gold")
    a1.set_ylabel("gold peak (held-out mean)")
    a2.set_xlabel("training judge alpha x100 vs gold")
    a2.set_ylabel("step of the gold peak")
    a1.legend(fontsize=7)
    return _save(plt, fig, out, "gold_peak_vs_alpha.png")


def draw_all(res: dict, out: Path) -> list[str]:
    figs = (curves(res, out), distance(res, out), alpha_curve(res, out), gao_curves(res, out), peak_vs_alpha(res, out))
    return [f for f in figs if f]
