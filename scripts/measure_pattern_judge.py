"""One-off measurement of the judge-backed pattern detector on a planted set (docs/detectors.md).

    .venv/bin/python scripts/measure_pattern_judge.py dev     [--judge smollm2-135m-instruct] [--limit N]
    .venv/bin/python scripts/measure_pattern_judge.py heldout [--thresholds dev.json]

`dev` = the author-written paraphrase set (src/judgerl/evaluation/data/planted_paraphrases.jsonl); it
writes per-case P(yes) and the per-pattern thresholds that maximise F1 there to --out. `heldout` =
tests/evaluation/data/heldout_patterns.jsonl, planted exactly as `judgerl.evaluation.heldout` does;
it prints only the tables (never item text), at threshold 0.5 and at the dev thresholds if given.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

from judgerl.config import load_judge_spec
from judgerl.evaluation.pattern_judge import format_scores, measure, pattern_spec, planted_cases, score_cases
from judgerl.evaluation.patterns import TEXT_DETECTORS, load_planted
from judgerl.judges.judge import Judge
from judgerl.paths import data_root


def best_thresholds(cases: list[dict]) -> dict[str, float]:
    out = {}
    for d in TEXT_DETECTORS:
        def f1(t):
            r = score_cases(cases, [d], {d: t})[d]
            p, q = r["precision"] or 0.0, r["recall"] or 0.0
            return 2 * p * q / (p + q) if p + q else 0.0
        grid = sorted({round(c["p_yes"][d], 4) for c in cases if c["p_yes"][d] is not None} | {0.5})
        out[d] = max(grid, key=f1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("which", choices=["dev", "heldout"])
    ap.add_argument("--judge", default="smollm2-135m-instruct")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--thresholds", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("/tmp/pattern_judge_dev.json"))
    a = ap.parse_args()
    if a.which == "dev":
        items = [it for it in load_planted(Path("src/judgerl/evaluation/data/planted_paraphrases.jsonl")) if "text" in it]
    else:
        from judgerl.evaluation.heldout import DEFAULT_PATH, load_heldout
        items = load_heldout(DEFAULT_PATH)
    with gzip.open(data_root() / "alpaca-eval" / "reference_outputs" / "gpt4_1106_preview.json.gz", "rt") as f:
        rows = json.load(f)
    cases = planted_cases(items, [r["output"] for r in rows], 1, 0, [r["instruction"] for r in rows])[:a.limit]
    spec = pattern_spec(load_judge_spec(a.judge, a.overrides))
    judge = Judge(spec, cache="/tmp/pattern_judge_cache.sqlite")
    cost = measure(judge, cases)
    print(f"judge {spec.model} ({spec.backend}, {spec.mode}); {len(cases)} cases; cost per sample: {json.dumps(cost)}")
    print(format_scores(score_cases(cases, TEXT_DETECTORS, {})))
    if a.which == "dev":
        th = best_thresholds(cases)
        print("dev thresholds (max F1):", th)
        print(format_scores(score_cases(cases, TEXT_DETECTORS, th)))
        a.out.write_text(json.dumps({"thresholds": th, "cost": cost, "cases": [
            {k: c[k] for k in ("id", "patterns", "p_yes")} for c in cases]}, indent=1))
    elif a.thresholds:
        th = json.loads(a.thresholds.read_text())["thresholds"]
        print("at the dev thresholds:", th)
        print(format_scores(score_cases(cases, TEXT_DETECTORS, th)))


if __name__ == "__main__":
    main()
