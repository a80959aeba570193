"""The annotation dataset format: what `annotate` writes and the training/evaluation stages read.

An annotation dataset is a folder:

    <dir>/manifest.json      {"version": 1, "judge": {...JudgeSpec...}, "template_sha256": "...",
                              "counts": {...}, "invalid_rate": {...}, "tokens": {...}, "files": {...}}
    <dir>/pointwise.jsonl    one row per (item, response):
        {"item_id", "prompt", "response_idx", "response", "score" (int|None), "expected" (float|None),
         "reasoning" (gold thinking text), "valid", "split", "rubric" (str|None), "effort"}
    <dir>/pairwise.jsonl     one row per item with two responses (order as in the input):
        {"item_id", "prompt", "responses": [r1, r2], "label" (1|2|None: preferred, judged as given),
         "label_swapped" (1|2|None: judged with the order swapped, mapped back to the original order),
         "consistent" (bool: both orders agree), "reasoning", "valid", "split", "rubric", "effort"}
    <dir>/rubrics.jsonl      {"item_id", "prompt", "rubric", "valid", "split", "error"}
    <dir>/effort-<low|medium>/   the same layout for an effort variant, filtered to the rows whose
                             decision agrees with the main (high-effort) label
    <dir>/splits.json        {"seed": int, "fractions": {...}, "item_ids": {"train": [...], ...}}

Rows may carry more fields (`error`, `meta`, `expected_swapped`, `reasoning_swapped`, token counts);
failed judge calls are rows with valid false and `error` set (see judgerl.annotate.export).

`split` is deterministic per item id (seeded hash), so every row of an item lands in the same split.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from judgerl import JudgerlError
from judgerl.data import iter_jsonl, read_json
from judgerl.judges.spec import JudgeRequest

KINDS = ("pointwise", "pairwise", "rubrics")
SPLITS = ("train", "validation", "test")


def split_of(item_id: str, seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> str:
    """Deterministic split from a seeded hash of the item id."""
    h = int(hashlib.sha256(f"{seed}:{item_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if h < fractions[0]:
        return "train"
    return "validation" if h < fractions[0] + fractions[1] else "test"


def load_manifest(path: str | Path) -> dict:
    p = Path(path) / "manifest.json"
    if not Path(path).is_dir():
        raise JudgerlError(f"annotation dataset {path} is not a folder (give the folder `judgerl annotate` wrote)")
    if not p.is_file():
        raise JudgerlError(f"{path} is not an annotation dataset (no manifest.json); give the folder "
                           f"`judgerl annotate` wrote")
    try:
        return read_json(p, "annotation manifest", dict)
    except JudgerlError as e:
        raise JudgerlError(f"{e}; re-export the dataset (re-run the same `judgerl annotate`)") from None


def load_annotations(path: str | Path, kind: str = "pointwise", split: str | None = None,
                     valid_only: bool = True) -> list[dict]:
    """Rows of one kind (and split); raises a clear error when the split is empty."""
    if kind not in KINDS:
        raise JudgerlError(f"unknown annotation kind {kind!r}; known: {', '.join(KINDS)}")
    load_manifest(path)
    f = Path(path) / f"{kind}.jsonl"
    if not f.is_file():
        raise JudgerlError(f"{path} has no {kind} annotations ({f.name} missing)")
    rows = [r for _, r in iter_jsonl(f)]
    if split is not None:
        rows = [r for r in rows if r.get("split") == split]
    if valid_only:  # rubric rows without a `valid` field (older datasets) count as valid
        rows = [r for r in rows if (r.get("valid", True) if kind == "rubrics" else r.get("valid"))]
    if not rows:
        raise JudgerlError(f"{path}: no {'valid ' if valid_only else ''}{kind} annotations"
                           + (f" in split {split!r}" if split else ""))
    return rows


# ---- helpers the judge trainers and evaluators read ----------------------------------------
def request_of(row: dict, fmt: str) -> JudgeRequest:
    responses = [row["response"]] if fmt == "pointwise" else list(row["responses"])
    return JudgeRequest(prompt=row["prompt"], responses=responses, rubric=row.get("rubric"))


def gold_of(row: dict, fmt: str) -> int | None:
    return row.get("score") if fmt == "pointwise" else row.get("label")


def check_score_range(path: str, rows: list[dict], lo: int, hi: int) -> None:
    """Annotation score range (manifest judge spec and every row) must equal the configured one."""
    judge = load_manifest(path).get("judge") or {}
    a_lo, a_hi = judge.get("score_min", lo), judge.get("score_max", hi)
    if (a_lo, a_hi) != (lo, hi):
        raise JudgerlError(f"score range mismatch: {path} was annotated on {a_lo}-{a_hi}, the config says "
                           f"{lo}-{hi} (set score_min/score_max to match)")
    bad = [r for r in rows if not isinstance(r.get("score"), int) or not lo <= r["score"] <= hi]
    if bad:
        raise JudgerlError(f"score range mismatch: {len(bad)} row(s) of {path} have scores outside {lo}-{hi} "
                           f"(first: item {bad[0].get('item_id')!r} score {bad[0].get('score')!r})")
