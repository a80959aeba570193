"""Annotation inputs: item files and the built-in loaders for the shared data sets.

An *item* is `{"id", "prompt" (str | chat messages), "responses" (list[str]), "meta" (dict)}`.

Item files (JSONL(.gz), JSON list, Parquet, or a saved HF `datasets` folder) hold rows of
`{id, prompt, responses: [..]}`; `{prompt, chosen, rejected}` (responses = [chosen, rejected]) and
`{prompt, response}` are accepted too. Without `id`, the id is a hash of the row's content, and exact
duplicate rows are dropped with a warning; two rows with the same explicit `id` are an error.
Other fields are kept under `meta`.

Built-in loaders (`loader: NAME` + `loader_options: {...}` in the annotate config) read the shared
data folder (`$JUDGERL_SHARED_DATA`, else `../shared/data` next to the repository):

- `alpaca_eval`  instruction + [GPT-4-Turbo reference output, model output] from the AlpacaEval 2.0
  annotations; meta keeps the official judge's soft preference (`gpt4_turbo_preference` in [1, 2],
  `p_response_2_better` = preference − 1). Options: `models` (list; default all 22), `limit_per_model`.
- `writingbench` prompt-only WritingBench queries. Options: `lang` (default "en"), `domains` (domain1 list).
- `eq_bench`     prompt-only EQ-Bench creative-writing prompts with `<SEED>` filled from the seed
  modifiers. Options: `seeds`: "first" (default, 19 prompts) or "all" (one prompt per modifier).

`policy_prompts(name, **options)` returns the prompt texts of a prompt-only loader for the policy stage.
"""

from __future__ import annotations

import gzip
import hashlib
import inspect
import json
import logging
from pathlib import Path

from judgerl import JudgerlError
from judgerl.data import read_records
from judgerl.paths import data_root
from judgerl.judges.prompts import instruction_text

log = logging.getLogger("judgerl.annotate.loaders")

_RESERVED = {"id", "prompt", "responses", "response", "chosen", "rejected"}


def _check_prompt(prompt, where: str):
    if isinstance(prompt, str):
        if not prompt.strip():
            raise JudgerlError(f"{where}: empty prompt")
        return prompt
    if isinstance(prompt, list) and prompt and all(
            isinstance(m, dict) and isinstance(m.get("content"), str) and isinstance(m.get("role", "user"), str)
            for m in prompt):
        return [{"role": m.get("role", "user"), "content": m["content"]} for m in prompt]
    raise JudgerlError(f"{where}: 'prompt' must be a non-empty string or a list of {{role, content}} messages")


def normalise_record(rec: dict, where: str, need_responses: bool = True) -> dict:
    """One input row -> an item; every problem is a JudgerlError naming `where` (file:line)."""
    if "prompt" not in rec:
        raise JudgerlError(f"{where}: missing field 'prompt'")
    prompt = _check_prompt(rec["prompt"], where)
    if "responses" in rec:
        responses = rec["responses"]
    elif "chosen" in rec or "rejected" in rec:
        if "chosen" not in rec or "rejected" not in rec:
            raise JudgerlError(f"{where}: a preference pair needs both 'chosen' and 'rejected'")
        responses = [rec["chosen"], rec["rejected"]]
    elif "response" in rec:
        responses = [rec["response"]]
    else:
        responses = None
    if responses is None or (hasattr(responses, "__len__") and len(responses) == 0):
        if need_responses:
            raise JudgerlError(f"{where}: missing responses (give 'responses', 'response' or 'chosen'/'rejected')")
        responses = []
    if not isinstance(responses, (list, tuple)) or not all(isinstance(r, str) for r in responses):
        raise JudgerlError(f"{where}: responses must be a list of strings")
    if any(not r.strip() for r in responses):
        raise JudgerlError(f"{where}: empty response text")
    responses = list(responses)
    if rec.get("id") is not None:
        item_id = str(rec["id"])
        if not item_id.strip():
            raise JudgerlError(f"{where}: empty id")
    else:
        item_id = hashlib.sha256(json.dumps([prompt, responses], sort_keys=True).encode()).hexdigest()[:16]
    meta = {k: v for k, v in rec.items() if k not in _RESERVED}
    if "chosen" in rec and "responses" not in rec:
        meta["preferred"] = 1
    return {"id": item_id, "prompt": prompt, "responses": responses, "meta": json.loads(json.dumps(meta, default=str))}


def dedupe(rows: list[tuple[str, dict, bool]]) -> list[dict]:
    """(where, item, explicit_id) -> items; duplicate explicit ids are an error, identical rows a warning."""
    seen: dict[str, str] = {}
    out = []
    dropped = 0
    for where, item, explicit in rows:
        if item["id"] in seen:
            if explicit:
                raise JudgerlError(f"{where}: duplicate id {item['id']!r} (first at {seen[item['id']]})")
            dropped += 1
            continue
        seen[item["id"]] = where
        out.append(item)
    if dropped:
        log.warning("dropped %d exact duplicate rows (same prompt and responses, no id)", dropped)
    return out


def load_items(path: str | Path, need_responses: bool = True) -> list[dict]:
    """Items from a file or HF datasets folder, validated with row numbers."""
    path = Path(path)
    rows = []
    for n, rec in read_records(path):
        where = f"{path}:{n}"
        if not isinstance(rec, dict):
            raise JudgerlError(f"{where}: expected an object, got {type(rec).__name__}")
        rows.append((where, normalise_record(rec, where, need_responses), rec.get("id") is not None))
    if not rows:
        raise JudgerlError(f"{path}: no items")
    return dedupe(rows)


# ---- built-in loaders -----------------------------------------------------------------------
def _gz_json(path: Path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def alpaca_eval(models: list[str] | None = None, limit_per_model: int | None = None,
                data_dir: str | None = None) -> list[dict]:
    """AlpacaEval 2.0: instruction + [reference (gpt4_1106_preview), model output_2]."""
    root = data_root(data_dir) / "alpaca-eval"
    ref = {r["instruction"]: r["output"] for r in _gz_json(root / "reference_outputs" / "gpt4_1106_preview.json.gz")}
    ann_dir = root / "weighted_alpaca_eval_gpt4_turbo_annotations"
    available = sorted(p.name[:-len(".jsonl.gz")] for p in ann_dir.glob("*.jsonl.gz"))
    unknown = sorted(set(models or []) - set(available))
    if unknown:
        raise JudgerlError(f"alpaca_eval: unknown model(s) {', '.join(unknown)}; known: {', '.join(available)}")
    items = []
    for model in models or available:
        f = ann_dir / f"{model}.jsonl.gz"
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if limit_per_model is not None and n > limit_per_model:
                    break
                r = json.loads(line)
                if r["instruction"] not in ref:
                    raise JudgerlError(f"{f}:{n}: instruction has no reference output to join on")
                pref = r.get("preference")
                pref = float(pref) if pref is not None else None
                items.append({
                    "id": f"alpaca_eval/{model}/{n - 1}", "prompt": r["instruction"],
                    "responses": [ref[r["instruction"]], r["output_2"]],
                    "meta": {"dataset": r.get("dataset"), "generator_1": r.get("generator_1"),
                             "generator_2": r.get("generator_2", model), "gpt4_turbo_preference": pref,
                             "p_response_2_better": None if pref is None else pref - 1.0}})
    # A few models have empty outputs; they are real data but cannot be judged as responses.
    keep = [it for it in items if all(x.strip() for x in it["responses"])]
    if len(keep) < len(items):
        log.warning("alpaca_eval: skipped %d items with an empty output", len(items) - len(keep))
    return keep


def writingbench(lang: str | None = "en", domains: list[str] | None = None,
                 data_dir: str | None = None) -> list[dict]:
    """Prompt-only WritingBench queries (default English), with domains and checklist in meta."""
    f = data_root(data_dir) / "writingbench" / "benchmark_all.jsonl.gz"
    items = []
    with gzip.open(f, "rt", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            if lang and r.get("lang") != lang:
                continue
            if domains and r.get("domain1") not in domains:
                continue
            items.append({"id": f"writingbench/{r['index']}", "prompt": r["query"], "responses": [],
                          "meta": {"domain1": r.get("domain1"), "domain2": r.get("domain2"),
                                   "lang": r.get("lang"), "checklist": r.get("checklist")}})
    if not items:
        raise JudgerlError(f"writingbench: no queries match lang={lang!r} domains={domains!r}")
    return items


def eq_bench(seeds: str = "first", data_dir: str | None = None) -> list[dict]:
    """Prompt-only EQ-Bench creative-writing prompts; <SEED> filled with the first or every modifier."""
    if seeds not in ("first", "all"):
        raise JudgerlError(f"eq_bench: seeds must be 'first' or 'all', got {seeds!r}")
    data = json.loads((data_root(data_dir) / "eq-bench" / "creative_writing_prompts.json").read_text())
    items = []
    for pid, r in data.items():
        mods = r.get("seed_modifiers") or [""]
        for k, mod in enumerate(mods if seeds == "all" else mods[:1]):
            text = r["writing_prompt"].replace("<SEED>", mod).strip()
            items.append({"id": f"eq_bench/{pid}" + (f"/{k}" if seeds == "all" else ""), "prompt": text,
                          "responses": [], "meta": {"prompt_id": pid, "seed_modifier": mod}})
    return items


LOADERS = {"alpaca_eval": alpaca_eval, "writingbench": writingbench, "eq_bench": eq_bench}
PROMPT_ONLY = ("writingbench", "eq_bench")


def builtin_items(name: str, options: dict | None = None) -> list[dict]:
    if name not in LOADERS:
        raise JudgerlError(f"unknown loader {name!r}; known: {', '.join(LOADERS)}")
    fn = LOADERS[name]
    allowed = set(inspect.signature(fn).parameters)
    bad = sorted(set(options or {}) - allowed)
    if bad:
        raise JudgerlError(f"loader {name!r} has no option(s) {', '.join(bad)}; known: {', '.join(sorted(allowed))}")
    return fn(**(options or {}))


def policy_prompts(name: str, **options) -> list[str]:
    """Prompt texts for policy training/evaluation from a prompt-only loader (writingbench, eq_bench)."""
    if name not in PROMPT_ONLY:
        raise JudgerlError(f"policy_prompts: {name!r} is not a prompt loader; use one of {', '.join(PROMPT_ONLY)}")
    return [it["prompt"] for it in builtin_items(name, options)]


# ---- prompt length -----------------------------------------------------------------------
def truncate_prompt(prompt, limit: int):
    """Cut the prompt to `limit` characters of instruction text, longest message first."""
    marker = "\n[... truncated ...]"
    if isinstance(prompt, str):
        return prompt[:max(0, limit - len(marker))] + marker
    msgs = [dict(m) for m in prompt]
    for m in sorted(msgs, key=lambda m: -len(m["content"])):
        excess = len(instruction_text(msgs)) - limit
        if excess <= 0:
            break
        m["content"] = m["content"][:max(0, len(m["content"]) - excess - len(marker))] + marker
    return msgs


def limit_prompt_length(items: list[dict], max_chars: int | None, policy: str) -> tuple[list[dict], dict]:
    """Apply the over-long prompt policy: truncate (warning), skip (warning) or refuse (error)."""
    info = {"items_read": len(items), "truncated": 0, "skipped_over_long": 0}
    if not max_chars:
        return items, info
    long_ids = [it["id"] for it in items if len(instruction_text(it["prompt"])) > max_chars]
    if not long_ids:
        return items, info
    if policy == "refuse":
        raise JudgerlError(f"{len(long_ids)} prompt(s) longer than max_prompt_chars={max_chars} "
                           f"(first: item {long_ids[0]!r}); raise the limit or set over_long: truncate")
    verb = "truncated" if policy == "truncate" else "skipped"
    log.warning("%s %d prompt(s) longer than %d characters (first: item %r)", verb, len(long_ids), max_chars,
                long_ids[0])
    ids = set(long_ids)
    if policy == "skip":
        info["skipped_over_long"] = len(long_ids)
        return [it for it in items if it["id"] not in ids], info
    out = []
    for it in items:
        if it["id"] in ids:
            n = len(instruction_text(it["prompt"]))
            it = {**it, "prompt": truncate_prompt(it["prompt"], max_chars),
                  "meta": {**it["meta"], "prompt_chars_before_truncation": n}}
        out.append(it)
    info["truncated"] = len(long_ids)
    return out, info
