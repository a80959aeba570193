"""The reward-hacking study's part of `judgerl report <study run_dir>`: reads analysis/study.json (written by
the study's analyze stage) and shows the gold checks, alpha vs labels, each run's paired judge/gold changes
with intervals, alarm step and exploit detector scores, and the analysis figures. Empty when absent."""

from __future__ import annotations

import base64
import json
from pathlib import Path


def _ci(c: dict | None, nd: int = 2) -> str:
    if not c or c.get("value") is None:
        return "–"
    rng = f" [{c['lo']:.{nd}f}, {c['hi']:.{nd}f}]" if c.get("lo") is not None else ""
    return f"{c['value']:.{nd}f}{rng}" + (" (small n)" if c.get("small_n") else "")


def study_section(root: Path, esc, table) -> str:
    """The study's HTML section; `esc` and `table` are the report's own helpers (passed in: no import circle)."""
    p = root / "analysis" / "study.json"
    if not p.is_file():
        return ""
    d = json.loads(p.read_text(encoding="utf-8"))
    out = ["<h2>Reward-hacking study</h2><p class='small'>analysis/study.json; intervals are 95% bootstrap "
           "intervals over prompts; changes are paired against step 0 on the same held-out prompts.</p>"]
    if d.get("gold"):
        out.append("<h3>Gold RM checks (held-out)</h3>" + table(
            ["check", "accuracy % [95% CI]", "n", "prompts"],
            [[k, _ci(v, 1), v.get("n"), v.get("clusters")] for k, v in d["gold"].items() if isinstance(v, dict)]))
    if d.get("judges"):
        out.append("<h3>Judges: alpha (expected score) vs gold on judge-test answers</h3>" + table(
            ["judge", "gold labels", "alpha ×100 [95% CI]", "n", "invalid rate"],
            [[r["judge"], r["labels"], _ci(r["alpha_expected"], 1), r["n"], r.get("invalid_rate")] for r in d["judges"]
             if r.get("alpha_expected")]))
    rows = []
    for name, r in d.get("runs", {}).items():
        pts = r.get("points") or []
        last = pts[-1] if pts else {}
        col = ((r.get("exploit") or {}).get("detectors") or {}).get("length_collapse") or {}
        rows.append([name, r["judge"], last.get("step"), _ci(last.get("proxy_delta_vs_step0")),
                     _ci(last.get("gold_delta_vs_step0")), r["alarm"].get("first_step") if r["alarm"].get("triggered")
                     else "silent", f"{r.get('peak_step')} / {r.get('peak_gold', float('nan')):.2f}",
                     f"{col.get('flags', '–')} flags, P {col.get('precision') or 0:.2f} R {col.get('recall') or 0:.2f}"
                     if col.get("flags") else "–"])
    if rows:
        out.append("<h3>Policy runs</h3>" + table(["run", "training judge", "last step", "judge change",
                                                    "gold change", "alarm", "gold peak (step / value)",
                                                    "length_collapse vs gold"], rows, left=2))
    for png in sorted((root / "analysis").glob("*.png")):
        out.append(f"<img class='fig' alt='{esc(png.stem)}' src='data:image/png;base64,"
                   f"{base64.b64encode(png.read_bytes()).decode()}'>")
    return "".join(out)
