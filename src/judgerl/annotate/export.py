"""Export of a settled annotation run: the dataset files, effort-variant datasets and the manifest.

Everything is rebuilt from the work table on every run and written with atomic replaces, manifest
last, so a reader sees either the previous complete dataset or the new one. Rows follow
judgerl.annotate.dataset; in addition each row carries `error` (why a unit failed, else None) and `meta`
(the input's extra fields, e.g. AlpacaEval's GPT-4-Turbo preference), pairwise rows carry
`expected`/`expected_swapped` (P(response 1 preferred), in the original order) and
`reasoning_swapped`, and rubric rows carry `valid`/`split`/`error`. Failed units are exported as
rows with `valid: false`, so nothing is silently missing; `load_annotations` skips them by default.

Effort variants go to `effort-<E>/`, itself an annotation dataset (manifest, pointwise.jsonl,
pairwise.jsonl, rubrics.jsonl, splits.json) holding only the rows whose decision agrees with the
main (high-effort) label: the paper's consistency filter (§4.3). The decision is the score
(pointwise; `effort_tolerance` allows a difference) or the label judged as given (pairwise).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from pathlib import Path

import judgerl
from judgerl.annotate.dataset import split_of
from judgerl.data import write_json_atomic, write_jsonl_atomic
from judgerl.annotate.config import main_effort, stage_spec, stages
from judgerl.judges.prompts import TEMPLATE_DIR, template_text


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _label(v: dict | None):
    return v.get("label") if v and v.get("valid") else None


def pointwise_rows(items, results, splits, rubrics, effort):
    rows = []
    for it in items:
        for idx, resp in enumerate(it["responses"]):
            status, v, err = results[(it["id"], idx)]
            v = v or {}
            valid = status == "done" and bool(v.get("valid"))
            rows.append({"item_id": it["id"], "prompt": it["prompt"], "response_idx": idx, "response": resp,
                         "score": v.get("label") if valid else None, "expected": v.get("expected"),
                         "reasoning": v.get("reasoning", ""), "valid": valid, "split": splits[it["id"]],
                         "rubric": rubrics.get(it["id"]), "effort": effort, "error": err,
                         "tokens_in": v.get("tokens_in", 0), "tokens_out": v.get("tokens_out", 0),
                         "meta": it["meta"]})
    return rows


def pairwise_rows(items, results, splits, rubrics, effort):
    rows = []
    for it in items:
        if len(it["responses"]) != 2:
            continue
        (s1, v1, e1), (s2, v2, e2) = results[(it["id"], 0)], results[(it["id"], 1)]
        l1 = _label(v1) if s1 == "done" else None
        l2 = _label(v2) if s2 == "done" else None
        swapped = None if l2 is None else 3 - l2
        exp2 = (v2 or {}).get("expected")
        rows.append({"item_id": it["id"], "prompt": it["prompt"], "responses": it["responses"], "label": l1,
                     "label_swapped": swapped, "consistent": l1 is not None and l1 == swapped,
                     "reasoning": (v1 or {}).get("reasoning", ""),
                     "reasoning_swapped": (v2 or {}).get("reasoning", ""),
                     "expected": (v1 or {}).get("expected"), "expected_swapped": None if exp2 is None else 1 - exp2,
                     "valid": l1 is not None and swapped is not None, "split": splits[it["id"]],
                     "rubric": rubrics.get(it["id"]), "effort": effort,
                     "error": "; ".join(filter(None, [e1 and f"as given: {e1}", e2 and f"swapped: {e2}"])) or None,
                     "tokens_in": sum((v or {}).get("tokens_in", 0) for v in (v1, v2)),
                     "tokens_out": sum((v or {}).get("tokens_out", 0) for v in (v1, v2)),
                     "meta": it["meta"]})
    return rows


def reason(error: str) -> str:
    """Failure class of an error text: 'judge call failed (http 401)', 'invalid verdict', 'no rubric (...)'."""
    for prefix in ("as given: ", "swapped: "):
        error = error.removeprefix(prefix)
    head, _, rest = error.partition(": ")
    m = re.match(r"(http \d+|timeout|connection error|bad response)", rest) if head == "judge call failed" else None
    return f"{head} ({m.group(1)})" if m else head


def kind_stats(rows: list[dict], kind: str | None = None) -> dict:
    n = len(rows)
    valid = sum(r["valid"] for r in rows)
    out = {"rows": n, "valid": valid, "invalid_rate": (n - valid) / n if n else 0.0,
           "tokens_in": sum(r.get("tokens_in", 0) for r in rows), "tokens_out": sum(r.get("tokens_out", 0) for r in rows),
           "failures": dict(Counter(reason(r["error"]) for r in rows if r["error"]))}
    if kind == "pairwise" or (rows and "consistent" in rows[0]):
        out["consistent"] = sum(r["consistent"] for r in rows)
    return out


def agree(a: dict, b: dict, kind: str, tol: int) -> bool:
    if not (a["valid"] and b["valid"]):
        return False
    if kind == "pointwise":
        return abs(a["score"] - b["score"]) <= tol
    return a["label"] == b["label"]


def write_dataset(folder: Path, files: dict[str, list[dict]], splits_obj: dict, manifest: dict) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    names = {}
    digest = hashlib.sha256()
    for kind, rows in files.items():
        p = write_jsonl_atomic(folder / f"{kind}.jsonl", rows)
        names[kind] = p.name
        digest.update(p.read_bytes())
    write_json_atomic(folder / "splits.json", splits_obj)
    names["splits"] = "splits.json"
    manifest = {**manifest, "files": names, "content_sha256": digest.hexdigest()}
    write_json_atomic(folder / "manifest.json", manifest)
    return manifest


def export(cfg, work, items: list[dict], info: dict, ledger, seconds: float) -> dict:

    out = Path(cfg.output_dir)
    fr = cfg.split_fractions
    splits = {it["id"]: split_of(it["id"], cfg.split_seed, fr) for it in items}
    splits_obj = {"seed": cfg.split_seed, "fractions": dict(zip(("train", "validation", "test"), fr)),
                  "item_ids": {s: [i for i in splits if splits[i] == s] for s in ("train", "validation", "test")}}
    rubric_rows, rubrics = [], {}
    if "rubric" in cfg.kinds:
        res = work.results("rubric")
        for it in items:
            status, v, err = res[(it["id"], 0)]
            ok = status == "done"
            text = (v or {}).get("raw", "").strip() if ok else None
            rubric_rows.append({"item_id": it["id"], "prompt": it["prompt"], "rubric": text, "valid": ok,
                                "split": splits[it["id"]], "error": err,
                                "tokens_in": (v or {}).get("tokens_in", 0), "tokens_out": (v or {}).get("tokens_out", 0)})
            if ok:
                rubrics[it["id"]] = text
    builders = {"pointwise": pointwise_rows, "pairwise": pairwise_rows}
    main: dict[str, list[dict]] = {}
    variants: dict[str, dict[str, list[dict]]] = {}
    for name, kind, effort in stages(cfg):
        if kind == "rubric":
            continue
        rows = builders[kind](items, work.results(name), splits, rubrics, effort or main_effort(cfg))
        (main if effort is None else variants.setdefault(effort, {}))[kind] = rows
    files = dict(main)
    if rubric_rows:
        files["rubrics"] = rubric_rows
    spec_main = stage_spec(cfg, cfg.kinds[0] if cfg.kinds[0] != "rubric" else cfg.judge.format, None)
    templates = {k: _sha(template_text(stage_spec(cfg, k, None))) for k in ("pointwise", "pairwise") if k in cfg.kinds}
    if "rubric" in cfg.kinds:
        templates["rubric"] = _sha(Path(cfg.rubric_template).read_text() if cfg.rubric_template
                                   else (TEMPLATE_DIR / "rubric_generation.txt").read_text())
    counts = {"items": len(items), **{k: len(v) for k, v in files.items()}}
    stats = {k: kind_stats(v, k) for k, v in files.items()}
    for k, s in stats.items():
        counts[f"{k}_valid"] = s["valid"]
    if "pairwise" in stats:
        counts["pairwise_consistent"] = stats["pairwise"]["consistent"]
    counts["failed"] = sum(s["rows"] - s["valid"] for s in stats.values())
    counts["splits"] = {s: len(v) for s, v in splits_obj["item_ids"].items()}
    base = {"version": 1, "judgerl_version": judgerl.__version__, "created": time.time(),
            "judge": spec_main.model_dump(mode="json"), "rubric_conditioned": cfg.rubric_conditioned,
            "template_sha256": next(iter(templates.values())), "templates_sha256": templates,
            "input": cfg.input or {"loader": cfg.loader, "options": cfg.loader_options}, "input_info": info}
    effort_report, effort_failures = {}, {}
    for effort, kinds in variants.items():
        kept_files, rep = {}, {}
        for kind, rows in kinds.items():
            ref = {(r["item_id"], r.get("response_idx")): r for r in main[kind]}
            kept = [r for r in rows if agree(r, ref[(r["item_id"], r.get("response_idx"))], kind, cfg.effort_tolerance)]
            s = kind_stats(rows, kind)
            # agreement over the pairs where both labels exist: a failed unit is not a disagreement
            compared = sum(r["valid"] and ref[(r["item_id"], r.get("response_idx"))]["valid"] for r in rows)
            rep[kind] = {"judged": len(rows), "valid": s["valid"], "compared": compared, "kept": len(kept),
                         "kept_rate": len(kept) / compared if compared else 0.0,
                         "tokens_out": s["tokens_out"], "tokens_in": s["tokens_in"]}
            if s["failures"]:
                effort_failures[f"{kind}@{effort}"] = s["failures"]
            kept_files[kind] = kept
        if rubric_rows:
            kept_files["rubrics"] = rubric_rows
        spec_e = stage_spec(cfg, next(iter(kinds)), effort)
        write_dataset(out / f"effort-{effort}", kept_files, splits_obj,
                      {**base, "judge": spec_e.model_dump(mode="json"), "effort": effort,
                       "filter": {"agrees_with": main_effort(cfg), "tolerance": cfg.effort_tolerance},
                       "counts": {"items": len(items), **{k: len(v) for k, v in kept_files.items()}},
                       "effort_filter": rep})
        effort_report[effort] = rep
    summary = ledger.summary() if ledger is not None else {}
    manifest = {**base, "effort": main_effort(cfg), "counts": counts,
                "invalid_rate": {k: s["invalid_rate"] for k, s in stats.items()},
                "tokens": {**{k: {"in": s["tokens_in"], "out": s["tokens_out"]} for k, s in stats.items()},
                           "ledger": summary},
                "failures": {**{k: s["failures"] for k, s in stats.items() if s["failures"]}, **effort_failures},
                "effort_filter": effort_report, "run_seconds": seconds}
    return write_dataset(out, files, splits_obj, manifest)
