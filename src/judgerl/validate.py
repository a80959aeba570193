"""`judgerl validate CONFIG` and the `--dry-run` plans: check a config without running anything.

A config's kind comes from a `kind:` key (quickstart | annotate | train-judge | policy | judge |
accelerate) or, failing that, from its fields. Validation = the stage's pydantic model plus the
checks that need no weights (judge resolution, GRPO group layout, accelerate fields). `--check-endpoints`
also asks every openai-backend base_url for /models. A plan lists stages, models, endpoints and the
expected number of judge calls, without loading any model.
"""

from __future__ import annotations

from pathlib import Path

from judgerl import JudgerlError
from judgerl.config import format_validation_error, read_yaml
from judgerl.training.policy_config import check_policy

KINDS = ("quickstart", "annotate", "train-judge", "policy", "judge", "accelerate")
ACCEL_TYPES = {"NO", "MULTI_GPU", "MULTI_CPU", "DEEPSPEED", "FSDP", "MEGATRON_LM", "XLA"}


def detect_kind(data: dict, path: str | Path = "config") -> str:
    kind = data.get("kind")
    if kind is not None:
        if kind not in KINDS:
            raise JudgerlError(f"{path}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
        return kind
    keys = set(data)
    if keys & {"distributed_type", "compute_environment"}:
        return "accelerate"
    if "scale" in keys:
        return "quickstart"
    if keys & {"variant", "base_model"}:
        return "train-judge"
    if "policy" in keys or ("grpo" in keys and "judge" in keys):
        return "policy"
    if "output_dir" in keys and keys & {"loader", "input", "kinds"}:
        return "annotate"
    if keys & {"backend", "format", "mode"} or set(data.get("judge") or {}) & {"backend", "model"}:
        return "judge"
    raise JudgerlError(f"{path}: cannot tell what kind of config this is; add `kind: <{'|'.join(KINDS)}>`")


def _model(kind: str):
    from judgerl.annotate import AnnotateConfig
    from judgerl.quickstart import QuickstartConfig
    from judgerl.training.judge_config import TrainJudgeConfig
    from judgerl.training.policy_config import PolicyConfig

    return {"quickstart": QuickstartConfig, "annotate": AnnotateConfig, "train-judge": TrainJudgeConfig,
            "policy": PolicyConfig}[kind]


def check_accelerate(data: dict, path) -> dict:
    dt = data.get("distributed_type")
    if dt not in ACCEL_TYPES:
        raise JudgerlError(f"{path}: distributed_type must be one of {', '.join(sorted(ACCEL_TYPES))}, got {dt!r}")
    n = data.get("num_processes", 1)
    if not isinstance(n, int) or n < 1:
        raise JudgerlError(f"{path}: num_processes must be a positive integer, got {n!r}")
    section = {"DEEPSPEED": "deepspeed_config", "FSDP": "fsdp_config"}.get(dt)
    if section and not isinstance(data.get(section), dict):
        raise JudgerlError(f"{path}: distributed_type {dt} needs a `{section}:` mapping")
    if data.get("mixed_precision", "no") not in ("no", "fp16", "bf16", "fp8"):
        raise JudgerlError(f"{path}: mixed_precision must be no, fp16, bf16 or fp8")
    return data


def load_any(path: str | Path, overrides: list[str] | None = None):
    """(kind, validated config object) for any judgerl config file; one-line JudgerlError when invalid."""
    from pydantic import ValidationError

    from judgerl.config import deep_merge, parse_overrides

    data = deep_merge(read_yaml(path), parse_overrides(overrides))
    kind = detect_kind(data, path)
    if kind == "accelerate":
        return kind, check_accelerate(data, path)
    if kind == "judge":
        from judgerl.judges.spec import JudgeSpec

        data = {k: v for k, v in data.get("judge", data).items() if k != "kind"}
        try:
            return kind, JudgeSpec.model_validate(data)
        except ValidationError as e:
            raise JudgerlError(format_validation_error(e, str(path))) from None
    if kind != "quickstart":
        data = {k: v for k, v in data.items() if k != "kind"}
    try:
        cfg = _model(kind).model_validate(data)
    except ValidationError as e:
        raise JudgerlError(format_validation_error(e, str(path))) from None
    if kind == "policy":
        check_policy(cfg)
    return kind, cfg


def judge_specs(kind: str, cfg) -> dict:
    """role -> JudgeSpec of every judge a config uses (for endpoints and plans)."""
    if kind == "judge":
        return {"judge": cfg}
    if kind == "annotate":
        return {"gold": cfg.judge}
    if kind == "policy":
        c = check_policy(cfg)
        return {k: c[k] for k in ("judge", "gold") if c[k] is not None}
    return {}


def endpoints(kind: str, cfg) -> dict[str, list[str]]:
    return {role: list(s.base_urls) for role, s in judge_specs(kind, cfg).items() if s.remote}


def check_endpoints(kind: str, cfg, timeout: float = 3.0) -> list[str]:
    """GET <base_url>/models for every openai endpoint; one line per URL; raises if any is unreachable."""
    import httpx

    lines, bad = [], []
    for role, urls in endpoints(kind, cfg).items():
        for u in urls:
            try:
                r = httpx.get(u.rstrip("/") + "/models", timeout=timeout)
                ok = r.status_code < 500
                lines.append(f"{role}: {u} -> HTTP {r.status_code}")
            except httpx.HTTPError as e:
                ok = False
                lines.append(f"{role}: {u} -> unreachable ({type(e).__name__})")
            if not ok:
                bad.append(u)
    if bad:
        raise JudgerlError(f"unreachable endpoint(s): {', '.join(bad)}")
    return lines


# ---- plans ------------------------------------------------------------------------------------
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
        from judgerl.quickstart import plan as qplan

        return qplan(cfg)
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
