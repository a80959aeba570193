"""Annotation config and stages: what a run annotates, in which order, with which judge spec per stage."""

from __future__ import annotations

import hashlib
import logging
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from judgerl import JudgerlError
from judgerl.judges.spec import JudgeSpec, Sampling

Kind = Literal["pointwise", "pairwise", "rubric"]
Effort = Literal["low", "medium"]


def _embedded_gold() -> JudgeSpec:
    return JudgeSpec(name="gold-embedded", backend="hf", model="smollm2-135m-instruct", mode="reasoning",
                     sampling=Sampling(temperature=0.0, max_new_tokens=256))


class AnnotateConfig(BaseModel):
    """Configuration of a gold annotation run (YAML; every field can be overridden with --set)."""

    model_config = ConfigDict(extra="forbid")
    input: str | None = Field(None, description="Item file: JSONL(.gz), JSON list, Parquet or a saved HF "
                              "datasets folder of {id, prompt, responses} or {prompt, chosen, rejected}.")
    loader: Literal["alpaca_eval", "writingbench", "eq_bench"] | None = Field(
        None, description="Built-in shared-data loader used instead of `input` (see judgerl.annotate.loaders).")
    loader_options: dict = Field(default_factory=dict, description="Options passed to the built-in loader.")
    output_dir: str = Field(..., description="Annotation dataset folder (also holds work.sqlite, cache, ledger).")
    judge: JudgeSpec = Field(default_factory=_embedded_gold, description="The gold judge (default: embedded "
                             "SmolLM2 in reasoning mode; a given `judge:` mapping starts from JudgeSpec defaults, e.g. mode direct). Its `format` is set "
                             "per kind; its `rubric` flag is set by `rubric_conditioned`.")
    templates: dict[Literal["pointwise", "pairwise"], str] = Field(
        default_factory=dict, description="Prompt template file per format, overriding judge.template.")
    kinds: list[Kind] = Field(default_factory=lambda: ["pointwise", "pairwise", "rubric"],
                              description="What to annotate: pointwise scores, pairwise labels, rubrics.")
    rubric_conditioned: bool = Field(False, description="Give the generated rubric to the gold judge in "
                                     "pointwise/pairwise annotation (needs kind 'rubric').")
    rubric_max_new_tokens: int = Field(512, ge=1, description="Token budget for writing one rubric.")
    rubric_template: str | None = Field(None, description="Rubric-writing prompt template overriding the default.")
    efforts: list[Effort] = Field(default_factory=list, description="Effort variants re-annotated and filtered "
                                  "against the main (high-effort) labels, e.g. [medium, low].")
    effort_budget: dict[str, float] = Field(default_factory=lambda: {"low": 0.05, "medium": 0.2},
                                            description="hf backend only: fraction of sampling.max_new_tokens "
                                            "used as the thinking budget of each effort.")
    effort_tolerance: int = Field(0, ge=0, le=9, description="Pointwise scores agree when they differ by at most this.")
    split_seed: int = Field(0, description="Seed of the deterministic train/validation/test split by item id.")
    split_fractions: tuple[float, float, float] = Field((0.8, 0.1, 0.1), description="train, validation, test.")
    concurrency: int = Field(8, ge=1, le=1024, description="Judge requests in flight (openai backend).")
    batch_size: int = Field(16, ge=1, le=4096, description="Units per judge batch and per work-table commit.")
    max_prompt_chars: int | None = Field(32000, ge=16, description="Longest allowed instruction (characters).")
    over_long: Literal["truncate", "skip", "refuse"] = Field(
        "truncate", description="Over-long prompts: truncate (warning), skip the item (warning) or refuse (error).")
    retries: int = Field(2, ge=0, le=50, description="Re-attempts of a failed judge call (error, 5xx, timeout).")
    outage_batches: int = Field(2, ge=0, le=1000, description="Stop the run (exit 2, work kept) after this many "
                                "batches in a row in which every judge call failed (a judge that is down); 0 = never.")
    invalid_retries: int = Field(1, ge=0, le=50, description="Re-asks (new seed) of an invalid verdict; "
                                 "skipped for greedy hf judges, which are deterministic.")
    limit: int | None = Field(None, ge=1, description="Annotate only the first N items.")
    cache: str | None = Field(None, description="Verdict cache file (default <output_dir>/cache.sqlite).")

    @field_validator("kinds", mode="before")
    @classmethod
    def _kinds(cls, v):
        v = [("rubric" if k == "rubrics" else k) for k in (v or [])]
        if not v:
            raise ValueError("kinds needs at least one of pointwise, pairwise, rubric")
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _check(self) -> "AnnotateConfig":
        if (self.input is None) == (self.loader is None):
            raise ValueError("give exactly one of input (a file) or loader (a built-in loader name)")
        if abs(sum(self.split_fractions) - 1.0) > 1e-6 or min(self.split_fractions) < 0:
            raise ValueError(f"split_fractions must be >= 0 and sum to 1, got {self.split_fractions}")
        if self.rubric_conditioned and "rubric" not in self.kinds:
            raise ValueError("rubric_conditioned needs 'rubric' in kinds")
        both = {"pointwise", "pairwise"} <= set(self.kinds)
        if self.judge.template and both and set(self.templates) != {"pointwise", "pairwise"}:
            raise ValueError("judge.template is one format's template: with both pointwise and pairwise "
                             "kinds, give templates: {pointwise: FILE, pairwise: FILE}")
        for k, t in self.templates.items():
            if not Path(t).is_file():
                raise ValueError(f"templates.{k}: file not found: {t}")
        if self.efforts and not ({"pointwise", "pairwise"} & set(self.kinds)):
            raise ValueError("efforts need pointwise or pairwise in kinds")
        missing = [e for e in self.efforts if e not in self.effort_budget]
        if missing and not self.judge.native_effort:
            raise ValueError(f"effort_budget has no entry for {missing}")
        return self


# ---- items -----------------------------------------------------------------------------------
def load_config_items(cfg: AnnotateConfig) -> tuple[list[dict], dict]:
    """Items of the run (validated, limited, length-checked) and a summary of what was done to them."""
    from judgerl.annotate.loaders import builtin_items, limit_prompt_length, load_items

    need_responses = bool({"pointwise", "pairwise"} & set(cfg.kinds))
    if cfg.input is not None:
        items = load_items(cfg.input, need_responses=need_responses)
    else:
        items = builtin_items(cfg.loader, cfg.loader_options)
        if need_responses and any(not it["responses"] for it in items):
            raise JudgerlError(f"loader {cfg.loader!r} gives prompt-only items: use kinds [rubric]")
    if cfg.limit:
        items = items[:cfg.limit]
    items, info = limit_prompt_length(items, cfg.max_prompt_chars, cfg.over_long)
    if not items:
        raise JudgerlError("no items to annotate")
    if "pairwise" in cfg.kinds:  # pairwise compares exactly two responses: other items are skipped up front
        skipped = sum(len(it["responses"]) != 2 for it in items)
        if skipped:
            info["pairwise_skipped"] = skipped
            logging.getLogger("judgerl.annotate").warning(
                "%d of %d item(s) do not have exactly two responses: pairwise annotation skips them", skipped, len(items))
    return items, info


# ---- stages and judge specs -----------------------------------------------------------------
def stages(cfg: AnnotateConfig) -> list[tuple[str, str, str | None]]:
    """(stage name, kind, effort or None for the main labels), in execution order."""
    out = [("rubric", "rubric", None)] if "rubric" in cfg.kinds else []
    main = [k for k in ("pointwise", "pairwise") if k in cfg.kinds]
    out += [(k, k, None) for k in main]
    out += [(f"{k}@{e}", k, e) for e in cfg.efforts for k in main]
    return out


def main_effort(cfg: AnnotateConfig) -> str:
    return cfg.judge.reasoning_effort or "high"


def stage_spec(cfg: AnnotateConfig, kind: str, effort: str | None, seed_bump: int = 0) -> JudgeSpec:
    data = cfg.judge.model_dump()
    data["concurrency"] = cfg.concurrency
    if kind != "rubric":
        data["format"] = kind
        data["rubric"] = cfg.rubric_conditioned
        data["template"] = cfg.templates.get(kind, cfg.judge.template)
    if effort is not None:
        if cfg.judge.native_effort:
            data["reasoning_effort"] = effort
        else:
            budget = cfg.effort_budget[effort]
            data["sampling"]["max_new_tokens"] = max(1, round(cfg.judge.sampling.max_new_tokens * budget))
        data["name"] = f"{cfg.judge.name}@{effort}"
    data["sampling"]["seed"] += seed_bump
    return JudgeSpec.model_validate(data)


def labels_fingerprint(cfg: AnnotateConfig) -> dict[str, str]:
    """Per stage, what must not change between a run and its resumption (it changes the labels).
    Adding kinds or efforts to an existing run is fine; changing the judge of a stage is not."""
    rubric = [cfg.judge.fingerprint(), cfg.rubric_max_new_tokens,
              Path(cfg.rubric_template).read_text() if cfg.rubric_template else None]
    out = {}
    for name, kind, effort in stages(cfg):
        parts = rubric if kind == "rubric" else [stage_spec(cfg, kind, effort).fingerprint(), cfg.rubric_conditioned]
        out[name] = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]
    return out


