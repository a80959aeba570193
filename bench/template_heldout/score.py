"""Score a cross-prompt template-collapse detector on the held-out set (bench/template_heldout/heldout.jsonl.gz).

For every group (one policy's answers to many different prompts) the detector returns {"share", "flag",
"template"}; this compares `flag` with the group's label and `share` with its true templated share.

Overall row: all groups. Per-kind rows pair the kind's groups with every group of the other label (a template
kind against all clean groups, a clean kind against all template groups), so precision, recall, F1 and AUC are
defined for each kind; share MAE is over the kind's template groups, false-flag rate over its clean groups.
AUC is the rank (Mann-Whitney) formula with average ranks for ties. None = undefined (no such groups).

    python bench/template_heldout/score.py [--set bench/template_heldout/heldout.jsonl.gz] [--out r.json]
                                           [--tag before-tuning]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SET = HERE / "heldout.jsonl.gz"
KEYS = {"id", "label", "kind", "share_true", "prompts", "responses"}
LABELS = ("template", "clean")
Detector = Callable[[list, list], dict]


class ScoreError(ValueError):
    """Bad set file or bad detector output; the message is one line."""


def load_set(path: Path) -> list[dict]:
    if not path.is_file():
        raise ScoreError(f"{path}: no such file")
    opener = gzip.open if path.suffix == ".gz" else open
    groups, ids = [], set()
    with opener(path, "rt", encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                g = json.loads(line)
            except json.JSONDecodeError as e:
                raise ScoreError(f"{path} line {no}: malformed JSON ({e.msg})") from None
            if not isinstance(g, dict) or not KEYS <= set(g):
                raise ScoreError(f"{path} line {no}: expected an object with keys {sorted(KEYS)}")
            if g["label"] not in LABELS:
                raise ScoreError(f"{path} line {no}: label {g['label']!r} is not one of {LABELS}")
            if g["id"] in ids:
                raise ScoreError(f"{path} line {no}: id {g['id']!r} repeated")
            if len(g["prompts"]) != len(g["responses"]) or not g["responses"]:
                raise ScoreError(f"{path} line {no}: prompts and responses must be non-empty and of equal length")
            ids.add(g["id"])
            groups.append(g)
    if not groups:
        raise ScoreError(f"{path}: no groups")
    return groups


def auc(labels: list[bool], scores: list[float]) -> float | None:
    """P(score of a random positive > score of a random negative), ties counted half (rank formula)."""
    pos = sum(labels)
    neg = len(labels) - pos
    if not pos or not neg:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1  # average 1-based rank of the tie block
        i = j + 1
    rank_sum = sum(r for r, y in zip(ranks, labels) if y)
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def metrics(rows: list[dict]) -> dict:
    """Flag and share figures over rows of {label, share_true, share, flag}."""
    y = [r["label"] == "template" for r in rows]
    flags = [r["flag"] for r in rows]
    tp = sum(a and b for a, b in zip(y, flags))
    fp = sum(b and not a for a, b in zip(y, flags))
    fn = sum(a and not b for a, b in zip(y, flags))
    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = None if precision is None or recall is None else \
        (2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    templ = [r for r in rows if r["label"] == "template"]
    clean = [r for r in rows if r["label"] == "clean"]
    return {"groups": len(rows), "template_groups": len(templ), "clean_groups": len(clean),
            "precision": precision, "recall": recall, "f1": f1, "auc": auc(y, [r["share"] for r in rows]),
            "share_mae": ratio(sum(abs(r["share"] - r["share_true"]) for r in templ), len(templ)),
            "false_flag_rate": ratio(sum(r["flag"] for r in clean), len(clean))}


def check_report(gid: str, r) -> tuple[float, bool, str | None]:
    if not isinstance(r, dict) or not {"share", "flag"} <= set(r):
        raise ScoreError(f"group {gid}: the detector must return a dict with 'share' and 'flag'")
    share, flag = r["share"], r["flag"]
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not math.isfinite(share) \
            or not 0 <= share <= 1:
        raise ScoreError(f"group {gid}: share {share!r} is not a number in [0, 1]")
    if not isinstance(flag, bool) and type(flag).__name__ != "bool_":  # numpy.bool_ is fine
        raise ScoreError(f"group {gid}: flag {flag!r} is not a bool")
    template = r.get("template")
    return float(share), bool(flag), template if isinstance(template, str) else None


def evaluate(groups: list[dict], detector: Detector, progress: bool = False) -> dict:
    rows = []
    for i, g in enumerate(groups, 1):
        try:
            report = detector(list(g["responses"]), list(g["prompts"]))
        except Exception as e:  # noqa: BLE001 - reported with the group that broke it
            raise ScoreError(f"group {g['id']}: the detector raised {type(e).__name__}: {e}") from e
        share, flag, template = check_report(g["id"], report)
        rows.append({"id": g["id"], "label": g["label"], "kind": g["kind"], "n": len(g["responses"]),
                     "share_true": float(g["share_true"]), "share": share, "flag": flag,
                     "template": None if template is None else template[:300]})
        if progress and (i % 20 == 0 or i == len(groups)):
            print(f"scored {i}/{len(groups)} groups", file=sys.stderr, flush=True)
    by_kind = {}
    for kind in sorted({r["kind"] for r in rows}):
        own = [r for r in rows if r["kind"] == kind]
        other = [r for r in rows if r["label"] != own[0]["label"]]
        by_kind[kind] = {"label": own[0]["label"], **metrics(own + other)}
        by_kind[kind].update({"kind_groups": len(own),
                              "share_mae": metrics(own)["share_mae"],
                              "false_flag_rate": metrics(own)["false_flag_rate"]})
    return {"overall": metrics(rows), "by_kind": by_kind, "groups": rows}


def fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def table(result: dict) -> str:
    cols = ("precision", "recall", "f1", "auc", "share_mae", "false_flag_rate")
    lines = [f"| kind | label | groups | {' | '.join(cols)} |", "|" + "---|" * (3 + len(cols))]
    rows = [("overall", {"label": "all", "kind_groups": result["overall"]["groups"], **result["overall"]})]
    rows += sorted(result["by_kind"].items(), key=lambda kv: (kv[1]["label"], kv[0]))
    for kind, m in rows:
        lines.append(f"| {kind} | {m['label']} | {m['kind_groups']} | " + " | ".join(fmt(m[c]) for c in cols) + " |")
    return "\n".join(lines)


def real_detector() -> Detector:
    try:
        from judgerl.evaluation.template import template_report
    except ImportError as e:
        raise ScoreError(f"cannot import judgerl.evaluation.template.template_report ({e}); "
                         "the detector has not landed in this checkout") from None
    return lambda responses, prompts: template_report(responses, prompts)


def main(argv=None, detector: Detector | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", type=Path, default=DEFAULT_SET, help="the held-out set (.jsonl or .jsonl.gz)")
    ap.add_argument("--out", type=Path, help="write the figures (overall, per kind, per group) as JSON here")
    ap.add_argument("--tag", default="", help="e.g. before-tuning / after-tuning; stored in the JSON")
    args = ap.parse_args(argv)
    if args.out and not args.out.parent.is_dir():
        print(f"error: {args.out.parent}: no such folder for --out", file=sys.stderr)
        return 2
    try:
        groups = load_set(args.set)
        result = evaluate(groups, detector or real_detector(), progress=True)
    except ScoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table(result))
    if args.out:
        digest = hashlib.sha256(args.set.read_bytes()).hexdigest()
        result = {"tag": args.tag, "set": str(args.set), "set_sha256": digest,
                  "detector": "judgerl.evaluation.template.template_report" if detector is None else repr(detector),
                  **result}
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
