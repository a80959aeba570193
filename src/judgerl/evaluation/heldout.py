"""Held-out measurement of the adversarial-pattern detectors (issue 13, R5).

The held-out set (`tests/evaluation/data/heldout_patterns.jsonl`) was written without looking at the
detectors, so its figures are an honest estimate of how they generalise. Each line is
`{"id", "patterns": [names, [] for a hard negative], "where": replace|append|prepend|middle, "text"}`.
Every item is planted into `per_item` honest AlpacaEval reference answers (GPT-4-1106 outputs) and
`detect` is run on the result. Per pattern we report recall over the items that carry it, precision
over every planted case flagged with it (negatives included), the hard negatives it fires on, and how
often it already fires on the clean references used. Do not tune the detectors on this file.

    python -m judgerl.evaluation.heldout [path]
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from judgerl import JudgerlError
from judgerl.data import iter_jsonl

PATTERNS = ("policy_refusal", "fake_end_marker", "self_assessment", "fabricated_policy",
            "injected_requirements")
WHERE = ("replace", "append", "prepend", "middle")
DEFAULT_PATH = Path(__file__).resolve().parents[3] / "tests" / "evaluation" / "data" / "heldout_patterns.jsonl"


def load_heldout(path: str | Path) -> list[dict]:
    """The items of a held-out file, schema-checked; a one-line JudgerlError on any bad line."""
    path = Path(path)
    if not path.is_file():
        raise JudgerlError(f"held-out pattern file not found: {path}")
    items, seen = [], set()
    for no, item in iter_jsonl(path):
        if set(item) != {"id", "patterns", "where", "text"}:
            raise JudgerlError(f"{path}:{no}: want exactly the keys id, patterns, where, text")
        if not isinstance(item["id"], str) or item["id"] in seen:
            raise JudgerlError(f"{path}:{no}: id {item['id']!r} is not a string or is repeated")
        pats = item["patterns"]
        if not isinstance(pats, list) or len(set(pats)) != len(pats) or not set(pats) <= set(PATTERNS):
            raise JudgerlError(f"{path}:{no}: patterns must be distinct names from {', '.join(PATTERNS)}")
        if item["where"] not in WHERE:
            raise JudgerlError(f"{path}:{no}: where {item['where']!r} is not one of {', '.join(WHERE)}")
        if not isinstance(item["text"], str) or not item["text"].strip():
            raise JudgerlError(f"{path}:{no}: text must be a non-empty string")
        seen.add(item["id"])
        items.append(item)
    if not items:
        raise JudgerlError(f"{path}: no items")
    return items


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def measure_heldout(path: str | Path = DEFAULT_PATH, shared_data: str | Path | None = None,
                    per_item: int = 1, seed: int = 0) -> dict:
    """Plant every item into `per_item` random references and score the detectors (see module doc).

    Precision is 0.0 when a detector flags nothing (its `flagged` count says so)."""
    from judgerl.evaluation.patterns import detect, load_references, plant
    from judgerl.paths import data_root

    if per_item < 1:
        raise JudgerlError(f"per_item must be at least 1 (got {per_item})")
    items = load_heldout(path)
    refs = load_references(data_root(shared_data))
    if len(refs) < per_item:
        raise JudgerlError(f"only {len(refs)} references for per_item={per_item}")
    rng = random.Random(seed)
    cases, used = [], set()
    for item in items:
        for ri in rng.sample(range(len(refs)), per_item):
            text, base = plant(refs[ri], item)
            flags = detect(text, base)
            cases.append({"id": item["id"], "ref": ri, "patterns": item["patterns"],
                          "flagged": sorted(p for p in PATTERNS if flags.get(p))})
            used.add(ri)
    clean = {ri: detect(refs[ri]) for ri in sorted(used)}
    negatives = [c for c in cases if not c["patterns"]]
    per = {}
    for p in PATTERNS:
        pos = [c for c in cases if p in c["patterns"]]
        tp = sum(p in c["flagged"] for c in pos)
        flagged = sum(p in c["flagged"] for c in cases)
        per[p] = {"n_items": sum(p in it["patterns"] for it in items), "n_pos": len(pos), "tp": tp,
                  "recall": _ratio(tp, len(pos)), "flagged": flagged,
                  "precision": _ratio(tp, flagged),
                  "neg_fp": sum(p in c["flagged"] for c in negatives),
                  "clean_flagged": sum(bool(f.get(p)) for f in clean.values())}
    return {"path": str(path), "per_item": per_item, "seed": seed, "n_items": len(items),
            "n_cases": len(cases), "n_neg_cases": len(negatives),
            "neg_flagged_any": sum(bool(c["flagged"]) for c in negatives),
            "n_clean": len(clean), "patterns": per, "cases": cases}


def format_table(result: dict) -> str:
    """A markdown table of `measure_heldout`'s figures."""
    rows = ["| pattern | items | cases | recall | precision | flagged | FP on hard negatives | fires on clean refs |",
            "|---|---|---|---|---|---|---|---|"]
    for p, r in result["patterns"].items():
        rows.append(f"| {p} | {r['n_items']} | {r['n_pos']} | {r['tp']}/{r['n_pos']} = {r['recall']:.2f} "
                    f"| {r['precision']:.2f} | {r['flagged']} | {r['neg_fp']}/{result['n_neg_cases']} "
                    f"| {r['clean_flagged']}/{result['n_clean']} |")
    rows.append(f"\nHard-negative cases flagged with any pattern: {result['neg_flagged_any']}/"
                f"{result['n_neg_cases']}. {result['n_items']} items x {result['per_item']} reference(s) "
                f"= {result['n_cases']} cases, seed {result['seed']}.")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        result = measure_heldout(args[0] if args else DEFAULT_PATH)
    except JudgerlError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
