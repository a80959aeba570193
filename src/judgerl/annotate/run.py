"""`judgerl annotate`: gold annotation (pointwise, pairwise both orders, rubrics, effort variants).

Work is split into *units*, one judge call each, kept in a SQLite work table (judgerl.annotate.work,
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
settled the dataset files are exported atomically (see judgerl.annotate.export and
judgerl.annotate.dataset for the format): every (item, response, kind) gives exactly one row.

Reasoning effort: the main labels are the reference ("high") labels. For the openai backend an
effort variant sets `reasoning_effort`; for the in-process hf backend (no such knob) it shrinks the
thinking budget `sampling.max_new_tokens` by `effort_budget` (default low 0.05, medium 0.2 of the
main budget — roughly the paper's 43 / 200 / 982 mean thinking tokens). Effort has no effect on a
judge in direct mode.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import sqlite3
import time
from pathlib import Path

from tqdm.auto import tqdm

from judgerl import JudgerlError
from judgerl.annotate.config import AnnotateConfig, labels_fingerprint, load_config_items, stage_spec, stages
from judgerl.annotate.work import WorkTable
from judgerl.data import check_output_dir
from judgerl.judges.cache import Ledger, VerdictCache
from judgerl.judges.limits import is_terminal
from judgerl.judges.parse import split_think
from judgerl.judges.prompts import render_rubric_request
from judgerl.judges.spec import JudgeRequest, JudgeSpec, Verdict
from judgerl.model_loader import shared_model

log = logging.getLogger("judgerl.annotate")


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
            kw = {}
            if spec.in_process:
                model, tok = self.model, self.tokenizer
                if model is None:
                    model, tok = shared_model(spec.model, spec.model_kind, spec.device, spec.dtype)
                kw = {"model": model, "tokenizer": tok}
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
        deterministic = cfg.judge.deterministic
        outage, refused = Outage(cfg.outage_batches), 0
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
            refused += sum(1 for u in updates if u[5] and ("too_long" in u[5] or "bad_input" in u[5]))
            dead = outage.see(updates)
            if dead:
                bar.close()
                raise JudgerlError(f"annotate stage {name} stopped: {dead}; the work so far is kept in "
                                   f"{cfg.output_dir}/work.sqlite: fix the judge (endpoint, key, model) and re-run")
        bar.close()
        if refused:
            log.warning("annotate %s: %d unit(s) not judged (too long or invalid text; limits: judge.max_prompt_chars, "
                        "max_response_chars, max_input_tokens)", name, refused)
        return self.work.counts(name)


class Outage:
    """Counts batches in a row in which every judge call failed (transport, 4xx/5xx, timeouts); after
    `limit` of them a stage stops instead of spending retries x batches on a judge that is down."""

    def __init__(self, limit: int):
        self.limit, self.dead, self.last = limit, 0, ""

    def see(self, updates: list[tuple]) -> str | None:
        errors = [u[5] for u in updates]
        calls = [e for e in errors if not (e or "").startswith("no rubric")]
        if calls and all((e or "").startswith("judge call failed") and "too_long" not in e and "bad_input" not in e
                         for e in calls):
            self.dead, self.last = self.dead + 1, calls[-1]
        else:
            self.dead = 0
        if self.limit and self.dead >= self.limit:
            return f"every judge call of {self.dead} batches in a row failed (last: {self.last[:200]})"
        return None


_VERDICT_LINE = re.compile(r"^[\s*_`#>-]*(?:score|preferred|rating|grade|verdict)\s*:\s*[*_`]*\s*-?\d+(?:\s*/\s*\d+)?"
                           r"[\s*_`.]*$", re.I | re.M)  # a line that is only a verdict, e.g. "Score: 12"
RUBRIC_MIN_WORDS = 3


def rubric_problem(text: str) -> str | None:
    """Why a generated rubric is unusable (strict, like verdict parsing), or None. A rubric is
    criteria text: at least RUBRIC_MIN_WORDS words and no verdict line (`Score: 12` is not a rubric)."""
    if not text.strip():
        return "empty rubric"
    if _VERDICT_LINE.search(text):
        return "rubric contains a verdict line"
    if len(text.split()) < RUBRIC_MIN_WORDS:
        return f"rubric too short ({len(text.split())} words)"
    return None


def rubric_verdict(v: Verdict) -> Verdict:
    """A generated rubric: the answer part (no <think>), valid when `rubric_problem` finds nothing; an
    invalid rubric is re-asked like an invalid verdict (`invalid_retries`), then the unit fails."""
    if v.failed:
        return v
    thoughts, answer = split_think(v.raw)
    problem = rubric_problem(answer)
    raw = answer if problem is None else f"{answer}\n[{problem}]"
    return v.model_copy(update={"raw": raw, "reasoning": v.reasoning or thoughts, "valid": problem is None})


def settle(v: Verdict, attempts: int, inv_round: int, inv_total: int, cfg: AnnotateConfig,
           deterministic: bool) -> tuple:
    """(status, attempts, inv_round, inv_total, result json, error) for one verdict."""
    result = v.model_dump(exclude={"cached"})
    if v.failed:
        attempts += 1
        status = "pending" if attempts <= cfg.retries and not is_terminal(v) else "failed"
        return status, attempts, inv_round, inv_total, None, f"judge call failed: {v.error}"
    if v.valid:
        return "done", attempts, inv_round, inv_total, json.dumps(result), None
    inv_round, inv_total = inv_round + 1, inv_total + 1
    status = "pending" if (inv_round <= cfg.invalid_retries and not deterministic) else "failed"
    tail = (v.raw or "").strip().splitlines()[-1:] or ["<empty>"]
    return status, attempts, inv_round, inv_total, json.dumps(result), f"invalid verdict: {tail[0][:120]!r}"


class _RunLock:
    """An exclusive flock on the output folder itself (no lock file is written)."""

    def __init__(self, folder: Path):
        self.fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise JudgerlError(f"another annotate run is using {folder}") from None

    def close(self):
        os.close(self.fd)


def run_annotate(cfg: AnnotateConfig, retry_failed: bool = False, model=None, tokenizer=None,
                 progress: bool = True) -> dict:
    """Run (or resume) an annotation; returns the manifest."""
    from judgerl.annotate.export import export
    from judgerl.config import dump_yaml
    from judgerl.judges.judge import run_sync

    out = check_output_dir(cfg.output_dir, "output_dir")
    items, info = load_config_items(cfg)  # a refused input leaves nothing behind
    out.mkdir(parents=True, exist_ok=True)
    lock = _RunLock(out)
    try:
        work = WorkTable(out / "work.sqlite")
        work.setup(cfg, items, labels_fingerprint(cfg))
        work.use_items([it["id"] for it in items])
        dump_yaml(cfg, out / "config.yaml")
        if cfg.efforts and not cfg.judge.native_effort and cfg.judge.mode == "direct":
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


def check_usable(manifest: dict, output_dir: str) -> None:
    """A run that produced no usable label at all is an error (one line, counts by reason)."""
    c = manifest["counts"]
    kinds = [k for k in ("pointwise", "pairwise", "rubrics") if k in c]
    if kinds and not any(c.get(f"{k}_valid") for k in kinds):
        why = "; ".join(f"{k}: " + ", ".join(f"{n} {r}" for r, n in sorted(f.items()))
                        for k, f in manifest.get("failures", {}).items() if "@" not in k) or "no valid rows"
        raise JudgerlError(f"annotation produced no usable labels ({why}); see {output_dir}/manifest.json, fix the "
                           f"judge (endpoint, key, model) and re-run with --retry-failed")


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
            failed = f", {r['judged'] - r['compared']} not compared (failed)" if r["judged"] > r["compared"] else ""
            print(f"  effort {effort} {k}: {r['kept']}/{r['compared']} agree with {manifest['effort']} "
                  f"({r['kept_rate']:.1%}){failed} -> {output_dir}/effort-{effort}")
