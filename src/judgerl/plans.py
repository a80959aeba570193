"""Dry-run plans of every stage: stages, models, endpoints and the expected judge calls, no model loaded.

`judgerl <stage> --dry-run` and `judgerl validate --dry-run` print `format_plan(plan(kind, cfg))`.
"""

from __future__ import annotations

from pathlib import Path

from judgerl import JudgerlError
from judgerl.training.policy_config import check_policy
from judgerl.validate import endpoints


def _spec_line(s) -> str:
    where = f" @ {', '.join(s.base_urls)}" if s.remote else ""
    effort = f", effort {s.reasoning_effort}" if s.reasoning_effort else ""
    return f"{s.model} ({s.backend}, {s.format}, {s.mode}{effort}, max {s.sampling.max_new_tokens} tokens){where}"


def plan_policy(cfg) -> dict:
    from judgerl.training.rewards import scheme_calls

    c = check_policy(cfg)
    g, judge, gold = cfg.grpo, c["judge"], c["gold"]
    procs = c["layout"]["generation_batch_size"] // (g.per_device_train_batch_size * c["layout"]["steps_per_generation"])
    per_step = g.per_device_train_batch_size * procs * g.gradient_accumulation_steps // g.num_iterations
    if judge.format == "pairwise":
        r = cfg.reward
        per_step = per_step // g.num_generations * scheme_calls(g.num_generations, r.scheme, r.k, r.both_orders)
    m = cfg.monitor
    passes = len({0, g.max_steps, *range(m.every_steps, g.max_steps + 1, m.every_steps)}) if m.enabled else 0
    mult = lambda s: 2 if (s.format == "pairwise" and m.both_orders) else 1  # noqa: E731
    mon = passes * m.n_prompts * (mult(judge) + (mult(gold) if gold else 0))
    return {"kind": "policy", "stages": [
        f"GRPO: {g.max_steps} steps, G={g.num_generations}, {c['layout']['prompts_per_step']} prompts/step, "
        f"lr {g.learning_rate}, T {g.temperature}, clip {g.epsilon}/{g.epsilon_high}, beta {g.beta}, loss {g.loss_type}",
        f"reward: {'expected score' if judge.format == 'pointwise' else 'in-group win rate (' + cfg.reward.scheme + ')'}"
        f", on failure: {cfg.reward.on_failure}",
        (f"gold monitor: {passes} passes (every {m.every_steps} steps) x {m.n_prompts} held-out prompts; alarm "
         f"window {cfg.alarm.window}, on trigger: {cfg.alarm.on_trigger}") if m.enabled else "gold monitor: off"],
        "models": {"policy": cfg.policy, "judge": _spec_line(judge), **({"gold": _spec_line(gold)} if gold else {})},
        "endpoints": endpoints("policy", cfg),
        "judge_calls": {"reward": per_step * g.max_steps, "monitor": mon}, "run_dir": cfg.run_dir}


def plan_annotate(cfg) -> dict:
    from judgerl.annotate.config import load_config_items, stages

    try:
        items, _ = load_config_items(cfg)
        n, two = sum(len(i["responses"]) for i in items), sum(len(i["responses"]) == 2 for i in items)
        count = len(items)
    except JudgerlError as e:
        items, n, two, count = None, None, None, f"unknown ({e})"
    calls = {}
    for name, kind, _ in stages(cfg):
        if items is not None:
            calls[name] = len(items) if kind == "rubric" else n if kind == "pointwise" else 2 * two
    return {"kind": "annotate", "stages": [s[0] for s in stages(cfg)], "items": count,
            "models": {"gold": _spec_line(cfg.judge)}, "endpoints": endpoints("annotate", cfg),
            "judge_calls": calls or {"total": "unknown (items not readable)"}, "run_dir": cfg.output_dir}


def selection_calls(cfg) -> dict:
    """Validation judging of checkpoint selection: points x rows (x 2 orders for pairwise judges); a
    count when the points and `validation_limit` are known from the config, else how to count it."""
    import math

    points = {}
    if "sft" in cfg.judged_selection:
        points["sft validation (alpha, each epoch)"] = (math.ceil(cfg.sft.num_train_epochs)
                                                        if cfg.sft.max_steps < 0 else None)
    g = cfg.grpo
    if "grpo" in cfg.judged_selection:  # step 0, every N steps, and the last step
        points[f"grpo validation (step 0, every {g.select_every}, last)"] = (
            1 + g.max_steps // g.select_every + (g.max_steps % g.select_every > 0) if g.max_steps > 0 else None)
    per_row = 2 if cfg.format == "pairwise" else 1
    return {k: (n * cfg.validation_limit * per_row if n and cfg.validation_limit
                else f"{n or 'one per epoch'} x validation rows" + (" x 2 orders" if per_row == 2 else ""))
            for k, n in points.items()}


def plan_train_judge(cfg) -> dict:
    from judgerl.training.train_judge import output_dir

    return {"kind": "train-judge", "stages": [f"{s}" for s in cfg.stages], "models": {"base": cfg.base_model},
            "endpoints": {}, "judge_calls": {"reward (verifiable, no judge)": 0, **selection_calls(cfg)},
            "annotations": cfg.annotations, "run_dir": str(output_dir(cfg))}


def plan(kind: str, cfg) -> dict:
    if kind == "policy":
        return plan_policy(cfg)
    if kind == "annotate":
        return plan_annotate(cfg)
    if kind == "train-judge":
        return plan_train_judge(cfg)
    if kind == "quickstart":
        return plan_quickstart(cfg)
    raise JudgerlError(f"no plan for a {kind} config")


def format_plan(p: dict) -> str:
    lines = [f"plan: {p['kind']}" + (f" -> {p['run_dir']}" if p.get("run_dir") else "")]
    for k in ("items", "annotations", "scale"):
        if k in p:
            lines.append(f"  {k}: {p[k]}")
    lines.append("  stages:")
    lines += [f"    {i}. {s}" for i, s in enumerate(p["stages"], 1)]
    lines.append("  models:")
    lines += [f"    {k}: {v}" for k, v in p["models"].items()]
    lines.append("  endpoints:" + ("" if p["endpoints"] else " none (all judges in-process)"))
    lines += [f"    {k}: {', '.join(v)}" for k, v in p["endpoints"].items()]
    calls = p["judge_calls"]
    total = sum(v for v in calls.values() if isinstance(v, int))
    lines.append(f"  expected judge calls: {total}")
    lines += [f"    {k}: {v}" for k, v in calls.items()]
    return "\n".join(lines)


def plan_quickstart(cfg) -> dict:
    """Stages, models and judge calls, without loading any model or data beyond the held-out file's size."""
    from judgerl.quickstart.config import source_name
    from judgerl.quickstart.policies import RUNS

    c = cfg
    sources = c.judge_sources()
    n = c.agreement_items
    passes = len({0, c.policy_steps, *range(c.monitor_every, c.policy_steps + 1, c.monitor_every)})
    rl = c.policy_steps * c.num_generations * c.prompts_per_step
    held = ("the contrast study's labelled judge-test answers" if c.heldout_answers and Path(c.heldout_answers).is_file()
            else "base-policy answers sampled here")
    stages = [("labels", f"{n} held-out answers ({held}); gold RM re-scores {c.gold_check}", c.gold_check)]
    if c.trains_judge():
        stages.append(("train-judge", f"gold labels of {c.train_labels} base answers, LoRA SFT {c.train_steps} steps",
                       c.train_labels))
    stages.append(("judges", f"agreement of {', '.join(source_name(s) for s in sources.values())} on the {n} answers",
                   n * len(sources)))
    for r in RUNS:
        judge = "the gold RM" if r == "gold" else source_name(sources[r])
        stages.append((f"policy-{r}", f"GRPO {c.policy_steps} steps x {c.prompts_per_step} prompts x G "
                       f"{c.num_generations} against {judge}; gold monitor on {c.monitor_prompts} prompts",
                       rl + 2 * passes * c.monitor_prompts))
    n_att = len(c.probe_attacks)
    stages += [("probes", f"{n_att} attacks x {c.probe_items} answers x (2 judges + gold)", 3 * c.probe_items * (1 + n_att)),
               ("report", "summary.json, report.html + figures/*.png", 0)]
    return {"kind": "quickstart", "run_dir": c.run_dir, "scale": c.scale, "items": n,
            "stages": [f"{s}: {w}" for s, w, _ in stages],
            "models": {"gold": "gold-rm-alpacaeval (embedded LoRA BT reward model on SmolLM2, rm backend)",
                       **{f"{k} judge": v for k, v in sources.items()}, "policy": c.model},
            "endpoints": {}, "judge_calls": {s: k for s, _, k in stages if k}}


def plan_eval_judge(spec, data: str | None, split: str, limit: int | None, human: list[str],
                    shared_data: str | None, both_orders: bool, run_dir: str) -> dict:
    """Judge calls of `eval-judge`: gold split rows (x 2 orders for pairwise) + human-label pairs (x 2 orders)."""
    from judgerl.annotate.dataset import load_annotations
    from judgerl.evaluation.human_sets import load_human_set

    orders = 2 if both_orders else 1
    calls = {}
    if data:
        rows = load_annotations(data, spec.format, split)[:limit] if limit else load_annotations(data, spec.format, split)
        calls[f"gold {split} split"] = len(rows) * (orders if spec.format == "pairwise" else 1)
    for name in human:
        pairs = len(load_human_set(name, shared_data, limit))
        calls[f"human {name}"] = pairs * (orders if spec.format == "pairwise" else 2)
    return {"kind": "eval-judge", "stages": [f"judge agreement of {spec.name}"], "models": {"judge": _spec_line(spec)},
            "endpoints": {"judge": list(spec.base_urls)} if spec.remote else {}, "judge_calls": calls,
            "run_dir": run_dir}


def plan_arena_judge(spec, models: list[str], data, categories: list[str], limit: int | None, run_dir: str) -> dict:
    """Judge calls of `arena judge`: questions x models x 2 orders (re-asks for unclear verdicts not counted)."""
    from judgerl.evaluation.arena import check_categories, load_questions

    questions, _ = load_questions(data, check_categories(categories), limit)
    return {"kind": "arena judge", "stages": [f"{len(questions)} questions x {len(models)} model(s) vs the category "
                                              f"baseline, both orders"],
            "models": {"judge": _spec_line(spec)}, "endpoints": {"judge": list(spec.base_urls)} if spec.remote else {},
            "judge_calls": {m: 2 * len(questions) for m in models}, "run_dir": run_dir}


def plan_probe(specs: list, n_items: int, attacks: list, run_dir: str) -> dict:
    """Judge calls of `probe` (as run_probe makes them): pointwise, the honest items plus each attacked copy;
    pairwise, each attacked copy against the honest answer in both orders. Attacks apply per format."""
    def calls_of(s) -> int:
        k = sum(s.format in a.formats for a in attacks)
        return n_items * (1 + k) if s.format == "pointwise" else 2 * n_items * k
    calls = {s.name: calls_of(s) for s in specs}
    return {"kind": "probe", "stages": [f"{len(attacks)} attack(s) x {n_items} items: {', '.join(a.name for a in attacks)}"],
            "models": {s.name: _spec_line(s) for s in specs},
            "endpoints": {s.name: list(s.base_urls) for s in specs if s.remote}, "judge_calls": calls, "run_dir": run_dir}
