"""The study's figures (matplotlib, Agg): proxy vs gold per run with intervals and alarm markers, gold vs
distance from the base policy, judge alpha vs number of labels."""

from __future__ import annotations

from pathlib import Path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
    fig.tight_layout()
    p = out / "proxy_vs_gold.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p.name


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
    fig.tight_layout()
    p = out / "gold_vs_distance.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p.name


def alpha_curve(res: dict, out: Path) -> str | None:
    rows = [r for r in res.get("judges", []) if r["labels"] > 0 and r["alpha_expected"]["value"] is not None]
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
    pr = [r for r in res.get("judges", []) if r["labels"] == 0 and r["alpha_expected"]["value"] is not None]
    if pr:
        ax.axhline(pr[0]["alpha_expected"]["value"], color="gray", ls=":", label="prompted base")
    ax.set_xscale("log")
    ax.set_xlabel("gold labels used for SFT")
    ax.set_ylabel("Krippendorff alpha x100 vs gold")
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = out / "alpha_vs_labels.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p.name


def draw_all(res: dict, out: Path) -> list[str]:
    return [f for f in (curves(res, out), distance(res, out), alpha_curve(res, out)) if f]
