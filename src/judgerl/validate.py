"""`judgerl validate CONFIG`: check a config without running anything (the plans are in judgerl.plans).

A config's kind comes from a `kind:` key (quickstart | annotate | train-judge | policy | judge |
accelerate | serve) or, failing that, from its fields. Validation = the stage's pydantic model plus the
checks that need no weights (judge resolution, GRPO group layout, vLLM rollout settings, accelerate
fields). `--check-endpoints` also asks every openai-backend base_url for /models, and a policy's vLLM
rollout server (`trl vllm-serve`, grpo.vllm_mode server) for /health.
"""

from __future__ import annotations

from pathlib import Path

from judgerl import JudgerlError
from judgerl.config import format_validation_error, read_yaml
from judgerl.training.policy_config import check_policy

KINDS = ("quickstart", "annotate", "train-judge", "policy", "judge", "accelerate", "serve", "study")
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
    if keys & {"max_batch_items", "max_wait_ms", "max_in_flight", "openrlhf", "failure_reward"}:
        return "serve"
    if keys & {"backend", "format", "mode"} or set(data.get("judge") or {}) & {"backend", "model"}:
        return "judge"
    raise JudgerlError(f"{path}: cannot tell what kind of config this is; add `kind: <{'|'.join(KINDS)}>`")


def _model(kind: str):
    from judgerl.annotate import AnnotateConfig
    from judgerl.quickstart import QuickstartConfig
    from judgerl.serve.config import ServeConfig
    from judgerl.study.config import StudyConfig
    from judgerl.training.judge_config import TrainJudgeConfig
    from judgerl.training.policy_config import PolicyConfig

    return {"quickstart": QuickstartConfig, "annotate": AnnotateConfig, "train-judge": TrainJudgeConfig,
            "policy": PolicyConfig, "serve": ServeConfig, "study": StudyConfig}[kind]


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
    if kind == "serve":
        from judgerl.serve.service import load_spec

        load_spec(cfg.judge, fetch=False)
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
    if kind == "serve":
        from judgerl.serve.service import load_spec

        return {"judge": load_spec(cfg.judge, fetch=False)}
    return {}


def endpoints(kind: str, cfg) -> dict[str, list[str]]:
    """role -> URLs: the remote judges, and a policy's vLLM rollout server (role `rollout`)."""
    out = {role: list(s.base_urls) for role, s in judge_specs(kind, cfg).items() if s.remote}
    if kind == "policy" and cfg.grpo.use_vllm and cfg.grpo.vllm_mode == "server":
        out["rollout"] = [cfg.grpo.vllm_url()]
    return out


def check_endpoints(kind: str, cfg, timeout: float = 3.0) -> list[str]:
    """GET <base_url>/models of every openai endpoint with the judge's API key (/health of a vLLM rollout
    server); one line per URL; raises if any is unreachable or refuses the key (401/403)."""
    import os

    import httpx

    from judgerl.judges.redact import redact

    specs = judge_specs(kind, cfg)
    lines, bad = [], []
    for role, urls in endpoints(kind, cfg).items():
        env = specs[role].api_key_env if role in specs else None
        key = os.environ.get(env) if env else None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        for u in urls:
            try:
                r = httpx.get(u.rstrip("/") + ("/health" if role == "rollout" else "/models"), timeout=timeout,
                              headers=headers)
                code = r.status_code
                if code in (401, 403):
                    ok, note = False, (f" (key in ${env} refused)" if key else f" (no key: ${env} is not set)")
                else:
                    ok, note = (code == 200 if role == "rollout" else code < 500), ""
                lines.append(f"{role}: {u} -> HTTP {code}{note}")
            except httpx.HTTPError as e:
                ok = False
                lines.append(f"{role}: {u} -> unreachable ({type(e).__name__})")
            if not ok:
                bad.append(lines[-1])
    if bad:
        raise JudgerlError(redact("unreachable endpoint(s) or refused key: " + "; ".join(bad),
                                  [s.api_key_env for s in specs.values()]))
    return lines


# ---- plans ------------------------------------------------------------------------------------
