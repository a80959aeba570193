"""`judgerl eval-judge`: a judge against gold annotations (held-out split) and human-labelled sets.

Reported (all through the Judge class, so cached and ledgered under stage `eval-judge`):
- pointwise judges: alpha (interval, x100) of the judge's integer score vs the gold score, and of its
  expected score with a 95% bootstrap interval over items (`small_n` below 30 items); exact-match rate; pairwise accuracy on items with two responses whose gold scores
  differ (preference from the expected score, else the label; a predicted tie = half a point).
- pairwise judges: accuracy vs the gold label (order as annotated), accuracy averaged over both
  presentation orders, and both-order position consistency.
- invalid-output rate; mean output tokens of reasoning judges (the thinking budget, Table 4).
- human sets: accuracy on non-tie items; PandaLM also `accuracy_with_ties` (a human tie is matched only
  by a predicted tie, which only pointwise judges can give). Pairwise judges are run in both orders
  when `both_orders` (accuracy = mean of the two orders).
Writes eval.json and eval.md to the run directory and returns the result dict.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from judgerl.annotate.dataset import load_annotations
from judgerl.data import check_output_dir
from judgerl.evaluation import judge_metrics as jm
from judgerl.evaluation.human_sets import load_human_set
from judgerl.judges.spec import JudgeRequest, JudgeSpec, Verdict
from judgerl.judges.values import point_value
from judgerl.rundir import RunDir
from judgerl.annotate.dataset import check_score_range, request_of


def score_of(v: Verdict) -> float | None:
    """A pointwise verdict's score for comparisons: expected score if known, else the label (values.point_value)."""
    return point_value(v)


def swapped(req: JudgeRequest) -> JudgeRequest:
    return req.model_copy(update={"responses": list(reversed(req.responses))})


def judge_pairs(judge, spec: JudgeSpec, reqs: list[JudgeRequest], both_orders: bool) -> dict:
    """Predicted preference per pair (original order), the swapped-order ones, and all verdicts."""
    if spec.format == "pairwise":
        v1 = judge.judge(reqs, progress=True, desc="pairs")
        pred = [v.label if v.valid else None for v in v1]
        if not both_orders:
            return {"pred": pred, "pred_swapped": None, "verdicts": v1}
        v2 = judge.judge([swapped(r) for r in reqs], progress=True, desc="pairs (swapped)")
        return {"pred": pred, "pred_swapped": [v.label if v.valid else None for v in v2], "verdicts": v1 + v2}
    singles = [JudgeRequest(prompt=r.prompt, responses=[resp], rubric=r.rubric) for r in reqs for resp in r.responses]
    vs = judge.judge(singles, progress=True, desc="responses")
    pred = [jm.prefer_from_scores(score_of(vs[2 * i]), score_of(vs[2 * i + 1])) for i in range(len(reqs))]
    return {"pred": pred, "pred_swapped": None, "verdicts": vs}


def pair_metrics(gold: list[int], res: dict) -> dict:
    pred, pred_sw = res["pred"], res["pred_swapped"]
    keep = [i for i, g in enumerate(gold) if g != 0]
    out = {"n": len(gold), "n_ties": len(gold) - len(keep),
           "accuracy": jm.pairwise_accuracy([gold[i] for i in keep], [pred[i] for i in keep]),
           "invalid_rate": jm.invalid_rate([v.valid for v in res["verdicts"]])}
    if pred_sw is not None:
        back = [jm.swap_back(p) for p in pred_sw]
        acc_sw = jm.pairwise_accuracy([gold[i] for i in keep], [back[i] for i in keep])
        out["accuracy_swapped"] = acc_sw
        out["accuracy"] = jm.mean([out["accuracy"], acc_sw])
        out["position_consistency"] = jm.position_consistency(pred, pred_sw)
    if out["n_ties"]:
        out["accuracy_with_ties"] = jm.pairwise_accuracy(gold, pred)
    return out


def thinking_tokens(spec: JudgeSpec, verdicts: list[Verdict]) -> float | None:
    if spec.mode != "reasoning":
        return 0.0
    return jm.mean([float(v.tokens_out) for v in verdicts if not v.failed])


def eval_pointwise(judge, spec: JudgeSpec, data: str, split: str, limit: int | None) -> dict:
    rows = load_annotations(data, "pointwise", split)
    check_score_range(data, rows, spec.score_min, spec.score_max)
    rows = rows[:limit] if limit else rows
    vs = judge.judge([request_of(r, "pointwise") for r in rows], progress=True, desc=f"{split} responses")
    gold = [r["score"] for r in rows]
    labels = [v.label if v.valid else None for v in vs]
    by_item: dict[str, dict[int, tuple[int, Verdict]]] = defaultdict(dict)
    for r, v in zip(rows, vs):
        by_item[str(r["item_id"])][int(r.get("response_idx", 0))] = (r["score"], v)
    g_pref, p_pref = [], []
    for resp in by_item.values():
        if 0 in resp and 1 in resp and resp[0][0] != resp[1][0]:
            g_pref.append(1 if resp[0][0] > resp[1][0] else 2)
            p_pref.append(jm.prefer_from_scores(score_of(resp[0][1]), score_of(resp[1][1])))
    if not spec.bounded_scores:  # rm: unbounded scalar rewards: only the induced preferences are comparable
        return {"n": len(rows), "note": "rm judge: rewards are unbounded, alpha/exact match not defined",
                "pairwise_accuracy": jm.pairwise_accuracy(g_pref, p_pref), "pairwise_n": len(g_pref),
                "invalid_rate": jm.invalid_rate([v.valid for v in vs]), "mean_thinking_tokens": 0.0}
    ci = jm.cluster_bootstrap([(str(r["item_id"]), g, v.expected if v.valid else None) for r, g, v in zip(rows, gold, vs)],
                              lambda x: x[0], lambda rs: jm.interval_alpha([x[1] for x in rs], [x[2] for x in rs]))
    return {"n": len(rows), "items": ci["clusters"],
            "alpha": jm.krippendorff_alpha(gold, labels),
            "alpha_expected_ci": [ci["lo"], ci["hi"]], "small_n": ci["small_n"],
            "alpha_expected": jm.krippendorff_alpha(gold, [v.expected if v.valid else None for v in vs]),
            "exact_match": jm.mean([float(lab == g) for lab, g in zip(labels, gold)]),
            "pairwise_accuracy": jm.pairwise_accuracy(g_pref, p_pref), "pairwise_n": len(g_pref),
            "invalid_rate": jm.invalid_rate([v.valid for v in vs]),
            "mean_thinking_tokens": thinking_tokens(spec, vs)}


def eval_pairwise(judge, spec: JudgeSpec, data: str, split: str, limit: int | None, both_orders: bool) -> dict:
    rows = load_annotations(data, "pairwise", split)
    rows = [r for r in rows if r.get("label") in (1, 2)]
    rows = rows[:limit] if limit else rows
    res = judge_pairs(judge, spec, [request_of(r, "pairwise") for r in rows], both_orders)
    out = pair_metrics([int(r["label"]) for r in rows], res)
    out["mean_thinking_tokens"] = thinking_tokens(spec, res["verdicts"])
    return out


def eval_human(judge, spec: JudgeSpec, name: str, root, limit: int | None, both_orders: bool) -> dict:
    if spec.rubric:
        return {"skipped": "rubric-conditioned judge: human sets have no rubrics"}
    pairs = load_human_set(name, root, limit)
    reqs = [JudgeRequest(prompt=p.prompt, responses=list(p.responses)) for p in pairs]
    res = judge_pairs(judge, spec, reqs, both_orders)
    out = pair_metrics([p.label for p in pairs], res)
    subsets = sorted({p.set for p in pairs})
    if len(subsets) > 1:
        for s in subsets:
            idx = [i for i, p in enumerate(pairs) if p.set == s]
            sub = {k: ([v[i] for i in idx] if v is not None and k != "verdicts" else v) for k, v in res.items()}
            sub["verdicts"] = [res["verdicts"][i] for i in idx]
            out.setdefault("subsets", {})[s] = pair_metrics([pairs[i].label for i in idx], sub)
    return out


def evaluate_judge(spec: JudgeSpec, run_dir: str | Path, data: str | None = None, split: str = "test",
                   limit: int | None = None, human: list[str] | None = None, shared_data: str | None = None,
                   both_orders: bool = True, judge=None) -> dict:
    """Run the evaluation and write eval.json + eval.md into `run_dir`. Inputs are checked first: a
    refused input leaves no run folder behind."""
    check_output_dir(run_dir, "run folder")
    if data:
        load_annotations(data, spec.format, split)
    for name in human or []:
        if not spec.rubric:
            load_human_set(name, shared_data, 1)
    rd = RunDir(run_dir)
    judge = judge or rd.judge(spec, "eval-judge")
    result: dict = {"judge": spec.model_dump(mode="json", include={"name", "backend", "model", "format", "mode",
                                                                    "rubric", "template", "score_min", "score_max"}),
                    "data": str(data) if data else None, "split": split, "limit": limit}
    if data:
        result["gold"] = (eval_pointwise(judge, spec, data, split, limit) if spec.format == "pointwise"
                          else eval_pairwise(judge, spec, data, split, limit, both_orders))
    result["human"] = {name: eval_human(judge, spec, name, shared_data, limit, both_orders) for name in human or []}
    rd.write_json("eval.json", result)
    (rd.path / "eval.md").write_text(markdown_table(result), encoding="utf-8")
    return result


def table_rows(result: dict) -> list[tuple[str, str, str]]:
    """(section, metric, value) rows for the terminal and markdown tables."""
    def fmt(v):
        return "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))

    rows = []
    for k, v in (result.get("gold") or {}).items():
        rows.append((f"gold ({result['split']})", k, fmt(v)))
    for name, m in result.get("human", {}).items():
        for k, v in m.items():
            if k == "subsets":
                for s, sm in v.items():
                    rows.append((f"{name}/{s}", "accuracy", fmt(sm.get("accuracy"))))
            else:
                rows.append((name, k, fmt(v)))
    return rows


def markdown_table(result: dict) -> str:
    head = f"# Judge evaluation: {result['judge']['name']} ({result['judge']['model']})\n\n"
    lines = ["| set | metric | value |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in table_rows(result)]
    return head + "\n".join(lines) + "\n"


def default_run_dir(judge_arg: str, spec: JudgeSpec) -> Path:
    """A judge YAML's own folder (runs/<name>/ for a trained judge), else runs/eval-judge/<name>."""
    p = Path(judge_arg)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p.parent
    return Path("runs") / "eval-judge" / "".join(c if c.isalnum() or c in "-_." else "_" for c in spec.name)


def print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table("set", "metric", "value", title=f"judge {result['judge']['name']}")
    for row in table_rows(result):
        t.add_row(*row)
    Console().print(t)
