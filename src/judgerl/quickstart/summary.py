"""The five-line summary (end of the console, top of the report) and the proxy-vs-gold figure of the three runs.

Read from the run's files only (judges/*/eval.json, policies/*/changes.json), so `judgerl report` redraws it.
"""

from __future__ import annotations

import json
from pathlib import Path

from judgerl.quickstart.policies import RUNS, ci_text, verdict

TITLES = {"weak": "Policy vs the weak judge", "reasoning": "Policy vs the reasoning judge",
          "gold": "Control vs the gold itself"}


def _alpha(e: dict) -> str:
    g = e.get("gold") or {}
    a, ci = g.get("alpha_expected"), g.get("alpha_expected_ci") or [None, None]
    if a is None:
        return "–"
    return f"{a:.0f} [{ci[0]:.0f}, {ci[1]:.0f}]" if ci[0] is not None else f"{a:.0f}"


def _role(name: str, roles: dict, e: dict) -> str:
    source = (e.get("judge") or {}).get("source") or ""
    tags = [t for t, on in (("weak", name == roles.get("weak")), ("reasoning", name == roles.get("reasoning")),
                            ("shipped", source.startswith("shipped:")), ("trained in this run", source == "trained"))
            if on]
    return f" ({', '.join(tags)})" if tags else ""


def build(root: Path, roles: dict[str, str], seconds: float | None = None) -> dict:
    """{lines: [5 strings], runs: {...}}; `roles` maps role -> judge name (weak, reasoning, others)."""
    evals = {}
    for p in sorted((root / "judges").glob("*/eval.json")):
        e = json.loads(p.read_text(encoding="utf-8"))
        evals[e["judge"]["name"]] = e
    n = max(((e.get("gold") or {}).get("n") or 0 for e in evals.values()), default=0)
    prompts = max(((e.get("gold") or {}).get("items") or 0 for e in evals.values()), default=0)
    order = [roles.get("weak"), roles.get("reasoning")] + [v for k, v in roles.items() if k not in ("weak", "reasoning")]
    judges = "; ".join(f"{j}{_role(j, roles, evals[j])} {_alpha(evals[j])}" for j in dict.fromkeys(order) if j in evals)
    lines = [f"Judges vs the gold RM on {n} held-out answers ({prompts} prompts), alpha x100 [95% CI]: {judges or 'not run'}."]
    runs = {}
    for name in RUNS:
        p = root / "policies" / name / "changes.json"
        if not p.is_file():
            lines.append(f"{TITLES[name]}: not run.")
            continue
        ch = runs[name] = json.loads(p.read_text(encoding="utf-8"))
        alarm = (f"the alarm fired at step {ch['alarm_step']}" if ch.get("alarm_step") is not None
                 else "the alarm stayed silent")
        words = f"answers {ch['words'][0]:.0f} -> {ch['words'][1]:.0f} words"
        judge = "" if name == "gold" else f" ({roles.get(name)})"
        size = (f" (toy size: {ch['rollouts']} rollouts of <= {ch['completion_tokens']} tokens)"
                if ch.get("rollouts") else "")
        head = f"{TITLES[name]}{judge}, steps {ch['first_step']}-{ch['last_step']}{size}:"
        if name == "gold":
            lines.append(f"{head} gold {ci_text(ch['gold'])}, {words}; {alarm}; {verdict(name, ch)}.")
        else:
            lines.append(f"{head} its judge {ci_text(ch['proxy'])}, gold {ci_text(ch['gold'])}, {words}; {alarm}; "
                         f"{verdict(name, ch)}.")
    took = f" Took {seconds / 60:.1f} min." if seconds is not None else ""
    lines.append(f"Report: {root / 'report.html'} (curves, flagged samples, agreement, probes).{took}")
    return {"lines": lines, "runs": runs, "roles": roles}


def write(root: Path, roles: dict[str, str], seconds: float | None = None) -> dict:
    s = build(root, roles, seconds)
    (root / "summary.json").write_text(json.dumps(s, indent=2), encoding="utf-8")
    return s


def figure(root: Path, s: dict):
    """One panel per run: training judge (left axis) and gold (right axis) on the monitor prompts, alarm marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {k: v for k, v in s.get("runs", {}).items() if v.get("points")}
    if not runs:
        return None
    fig, axes = plt.subplots(1, len(runs), figsize=(4.0 * len(runs), 3.1), squeeze=False)
    for ax, (name, r) in zip(axes[0], runs.items()):
        pts = [p for p in r["points"] if p["proxy"] is not None and p["gold"] is not None]
        xs = [p["step"] for p in pts]
        judge = "gold RM" if name == "gold" else (s.get("roles") or {}).get(name, name)
        ax.plot(xs, [p["proxy"] for p in pts], "o-", color="tab:blue", ms=3, label=f"training judge ({judge})")
        ax.set_ylabel(f"training judge: {judge}", color="tab:blue", fontsize=8)
        ax.set_xlabel("GRPO step")
        if name != "gold":
            ax2 = ax.twinx()
            ax2.plot(xs, [p["gold"] for p in pts], "s-", color="tab:orange", ms=3)
            ax2.set_ylabel("gold RM reward", color="tab:orange", fontsize=8)
        if r.get("alarm_step") is not None:
            ax.axvline(r["alarm_step"], color="red", ls="--", lw=1)
            ax.text(r["alarm_step"], ax.get_ylim()[1], " alarm", color="red", va="top", fontsize=8)
        ax.set_title(TITLES[name], fontsize=9)
    fig.tight_layout()
    return fig
