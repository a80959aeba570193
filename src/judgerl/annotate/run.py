"""`judgerl annotate`: gold annotation (pointwise, pairwise both orders, rubrics, effort variants).

Work is split into *units*, one judge call each, kept in a SQLite work table (judgerl.annotate_work,
`<output_dir>/work.sqlite`, WAL): (stage, item_id, idx) with a status pending | done | failed. Stages run in order:

    rubric               one unit per item: the gold judge writes an instruction-specific rubric
    pointwise            one unit per (item, response): score 0-9 with the gold reasoning
    pairwise             two units per two-response item: as given (idx 0) and swapped (idx 1)
    pointwise@E, pairwise@E   the same again with reasoning effort E (low | medium)

Each batch of verdicts is committed in one transaction, so a kill -9 loses at most the batch in
flight (whose verdicts the judge cache still holds); re-running the same command continues. A failed
call (transport error, 5xx, timeout) is retried `retries` times and an invalid verdict is re-asked
`invalid_retries` times with a new sampling seed; after that the unit is `failed` with its reason and
the run goes on. `--retry-failed` puts only the failed units back in the queue. When every unit is
settled the dataset files are exported atomically (see judgerl.annotate_export and
judgerl.annotations for the format): every (item, response, kind) gives exactly one row.

Reasoning effort: the main labels are the reference ("high") labels. For the openai backend an
effort variant sets `reasoning_effort`; for the in-process hf backend (no such knob) it shrinks the
thinking budget `sampling.max_new_tokens` by `effort_budget` (default low 0.05, medium 0.2 of the
main budget — roughly the paper's 43 / 200 / 982 mean thinking tokens). Effort has no effect on a
judge in direct mode.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from tqdm.auto import tqdm

from judgerl import JudgerlError
from judgerl.annotate_work import WorkTable
from judgerl.judges.cache import Ledger, VerdictCache
from judgerl.judges.parse import split_think
from judgerl.judges.prompts import render_rubric_request
from judgerl.judges.spec import JudgeRequest, JudgeSpec, Sampling, Verdict

log = logging.getLogger("judgerl.annotate")

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
        None, description="Built-in shared-data loader used instead of `input` (see judgerl.loaders).")
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
        if missing and self.judge.backend != "openai":
            raise ValueError(f"effort_budget has no entry for {missing}")
        return self


# ---- items -----------------------------------------------------------------------------------
def load_config_items(cfg: AnnotateConfig) -> tuple[list[dict], dict]:
    """Items of the run (validated, limited, length-checked) and a summary of what was done to them."""
    from judgerl.loaders import builtin_items, limit_prompt_length, load_items

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
        if cfg.judge.backend == "openai":
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


# ---- running --------------------------------------------------------------------------------
class Runner:
    def __init__(self, cfg: AnnotateConfig, work: WorkTable, items: list[dict], model=None, tokenizer=None,
                 progress: bool = True):
        self.cfg, self.work, self.progress = cfg, work, progress
        self.items = {it["id"]: it for it in items}
        out = Path(cfg.output_dir)
        self.cache = VerdictCache(cfg.cache or out / "cache.sqlite")
        self.ledger = Ledger(out / "ledger.sqlite")
        self.model, self.tokenizer = model, tokenizer
        self.judges: dict[str, object] = {}

    def judge_for(self, spec: JudgeSpec, stage: str):
        from judgerl.judges.judge import Judge

        key = spec.fingerprint() + stage
        if key not in self.judges:
            if spec.backend in ("hf", "rm") and self.model is None:
                from judgerl.judges.hf import load_causal_lm

                self.model, self.tokenizer = load_causal_lm(spec.model, spec.device, spec.dtype)
            kw = {"model": self.model, "tokenizer": self.tokenizer} if spec.backend in ("hf", "rm") else {}
            self.judges[key] = Judge(spec, cache=self.cache, ledger=self.ledger, stage=f"annotate:{stage}", **kw)
        return self.judges[key]

    def request(self, kind: str, item: dict, idx: int, rubric: str | None) -> JudgeRequest:
        r = item["responses"]
        responses = [r[idx]] if kind == "pointwise" else (r if idx == 0 else [r[1], r[0]])
        return JudgeRequest(prompt=item["prompt"], responses=responses, rubric=rubric)

    async def run_stage(self, name: str, kind: str, effort: str | None) -> dict[str, int]:
        cfg = self.cfg
        c = self.work.counts(name)
        total = sum(c.values())
        rubrics = {}
        if kind != "rubric" and cfg.rubric_conditioned:
            rubrics = {i: (r or {}).get("raw") for (i, _), (s, r, _) in self.work.results("rubric").items()
                       if s == "done"}
        deterministic = cfg.judge.backend == "hf" and cfg.judge.sampling.temperature == 0
        bar = tqdm(total=total, initial=total - c["pending"], desc=f"annotate {name}", unit="call",
                   disable=not self.progress or c["pending"] == 0, dynamic_ncols=True)
        while True:
            batch = self.work.pending(name, cfg.batch_size)
            if not batch:
                break
            updates, groups = [], {}
            for item_id, idx, attempts, inv_round, inv_total in batch:
                if kind != "rubric" and cfg.rubric_conditioned and not rubrics.get(item_id):
                    updates.append(("failed", attempts + 1, inv_round, inv_total, None,
                                    "no rubric (rubric generation failed)", name, item_id, idx))
                    continue
                groups.setdefault(inv_total, []).append((item_id, idx, attempts, inv_round, inv_total))
            for bump, units in groups.items():
                spec = stage_spec(cfg, kind, effort, seed_bump=bump)
                judge = self.judge_for(spec, name)
                if kind == "rubric":
                    msgs = [render_rubric_request(self.items[u[0]]["prompt"], cfg.rubric_template) for u in units]
                    verdicts = await judge.agenerate(msgs, max_new_tokens=cfg.rubric_max_new_tokens)
                    verdicts = [rubric_verdict(v) for v in verdicts]
                else:
                    reqs = [self.request(kind, self.items[u[0]], u[1], rubrics.get(u[0])) for u in units]
                    verdicts = await judge.ajudge(reqs)
                for (item_id, idx, attempts, inv_round, inv_total), v in zip(units, verdicts):
                    updates.append(settle(v, attempts, inv_round, inv_total, cfg, deterministic)
                                   + (name, item_id, idx))
            self.work.commit(updates)
            bar.update(sum(1 for u in updates if u[0] != "pending"))
        bar.close()
        return self.work.counts(name)


def rubric_verdict(v: Verdict) -> Verdict:
    """A generated rubric: the answer part (no <think>), valid when non-empty."""
    if v.failed:
        return v
    thoughts, answer = split_think(v.raw)
    return v.model_copy(update={"raw": answer, "reasoning": v.reasoning or thoughts, "valid": bool(answer.strip())})


def settle(v: Verdict, attempts: int, inv_round: int, inv_total: int, cfg: AnnotateConfig,
           deterministic: bool) -> tuple:
    """(status, attempts, inv_round, inv_total, result json, error) for one verdict."""
    result = v.model_dump(exclude={"cached"})
    if v.failed:
        attempts += 1
        status = "pending" if attempts <= cfg.retries else "failed"
        return status, attempts, inv_round, inv_total, None, f"judge call failed: {v.error}"
    if v.valid:
        return "done", attempts, inv_round, inv_total, json.dumps(result), None
    inv_round, inv_total = inv_round + 1, inv_total + 1
    status = "pending" if (inv_round <= cfg.invalid_retries and not deterministic) else "failed"
    tail = (v.raw or "").strip().splitlines()[-1:] or ["<empty>"]
    return status, attempts, inv_round, inv_total, json.dumps(result), f"invalid verdict: {tail[0][:120]!r}"


class _RunLock:
    def __init__(self, path: Path):
        self.f = open(path, "w")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise JudgerlError(f"another annotate run is using {path.parent}") from None

    def close(self):
        self.f.close()


def run_annotate(cfg: AnnotateConfig, retry_failed: bool = False, model=None, tokenizer=None,
                 progress: bool = True) -> dict:
    """Run (or resume) an annotation; returns the manifest."""
    from judgerl.annotate_export import export
    from judgerl.config import dump_yaml
    from judgerl.judges.judge import run_sync

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    lock = _RunLock(out / ".lock")
    try:
        items, info = load_config_items(cfg)
        work = WorkTable(out / "work.sqlite")
        work.setup(cfg, items, labels_fingerprint(cfg))
        work.use_items([it["id"] for it in items])
        dump_yaml(cfg, out / "config.yaml")
        if cfg.efforts and cfg.judge.backend != "openai" and cfg.judge.mode == "direct":
            log.warning("effort variants of a direct-mode hf judge only repeat the main labels (no thinking budget)")
        if retry_failed:
            log.warning("retrying %d failed unit(s)", work.reset_failed())
        runner = Runner(cfg, work, items, model=model, tokenizer=tokenizer, progress=progress)
        t0 = time.perf_counter()

        async def go():
            for name, kind, effort in stages(cfg):
                await runner.run_stage(name, kind, effort)
        run_sync(go())
        return export(cfg, work, items, info, runner.ledger, time.perf_counter() - t0)
    except sqlite3.DatabaseError as e:
        raise JudgerlError(f"{out / 'work.sqlite'}: {e}") from None
    finally:
        lock.close()


def print_summary(manifest: dict, output_dir: str) -> None:
    """Counts, invalid rates, tokens and effort-filter survivors, printed to stdout."""
    c = manifest["counts"]
    print(f"annotations: {output_dir}  ({c['items']} items; splits {c['splits']})")
    for k in ("pointwise", "pairwise", "rubrics"):
        if k in c:
            extra = f", consistent {c['pairwise_consistent']}" if k == "pairwise" else ""
            tok = manifest["tokens"].get(k, {})
            print(f"  {k:9s} {c[k]:6d} rows, valid {c[k + '_valid']}{extra}, invalid rate "
                  f"{manifest['invalid_rate'][k]:.1%}, tokens in/out {tok.get('in', 0)}/{tok.get('out', 0)}")
    for k, f in manifest.get("failures", {}).items():
        print(f"  failed {k}: {f}  (re-run with --retry-failed)")
    for effort, rep in manifest.get("effort_filter", {}).items():
        for k, r in rep.items():
            print(f"  effort {effort} {k}: {r['kept']}/{r['judged']} agree with {manifest['effort']} "
                  f"({r['kept_rate']:.1%}) -> {output_dir}/effort-{effort}")
