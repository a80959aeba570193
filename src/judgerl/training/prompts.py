"""RL prompt pools for policy training: the shared data's non-verifiable prompt sets, or any file.

A source is `pool:<name>` (read from the shared data root) or a path to JSONL / JSON / Parquet /
a saved HF dataset with a text field (`field`, else the first of prompt, instruction, query,
Instruction, input that is present). Pools (see ../shared/data/README.md):
  writingbench   WritingBench queries, English only
  eq-bench       EQ-Bench creative-writing prompts (first seed modifier filled in)
  wizardlm       WizardLM test set without math / code skills
  self-instruct  Self-Instruct seed tasks (instruction + input)
AlpacaEval / Arena-Hard prompts are evaluation-only and deliberately not offered as pools.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

from judgerl import JudgerlError
from judgerl.data import read_records
from judgerl.paths import data_root

_TEXT_FIELDS = ("prompt", "instruction", "query", "Instruction", "input")
_WIZARD_EXCLUDE = {"Math", "Code Generation", "Code Debug", "Computer Science", "Physics", "Chemistry"}


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _pool(name: str, root: Path) -> list[str]:
    if name in ("writingbench", "eq-bench"):  # the annotate loaders (English queries; <SEED> filled in)
        from judgerl.annotate.loaders import policy_prompts

        return policy_prompts(name.replace("-", "_"), data_dir=str(root))
    if name == "wizardlm":
        return [r["Instruction"] for r in _jsonl(root / "wizardlm" / "WizardLM_testset.jsonl")
                if r.get("Skill") not in _WIZARD_EXCLUDE]
    if name == "self-instruct":
        out = []
        for r in _jsonl(root / "self-instruct" / "seed_tasks.jsonl"):
            inp = (r.get("instances") or [{}])[0].get("input", "")
            out.append(r["instruction"] + (f"\n\n{inp}" if inp else ""))
        return out
    raise JudgerlError(f"unknown prompt pool {name!r} (writingbench, eq-bench, wizardlm, self-instruct)")


def load_source(src: str, root: Path, field: str | None = None) -> list[str]:
    if src.startswith("pool:"):
        try:
            return _pool(src[5:], root)
        except FileNotFoundError as e:
            raise JudgerlError(f"prompt pool {src}: {e.filename} not found (shared data root {root}; "
                               f"set data.data_root or JUDGERL_SHARED_DATA)") from None
    out = []
    for n, rec in read_records(src):
        keys = [field] if field else [k for k in _TEXT_FIELDS if k in rec]
        if not keys or keys[0] not in rec:
            raise JudgerlError(f"{src}:{n}: no prompt field ({field or ', '.join(_TEXT_FIELDS)})")
        v = rec[keys[0]]
        out.append(v if isinstance(v, str) else json.dumps(v))
    return out


def load_prompts(sources: list[str], root: str | Path | None = None, field: str | None = None,
                 max_chars: int | None = None, seed: int = 0) -> list[str]:
    """All prompts of the sources, de-duplicated, too-long ones dropped, shuffled with `seed`."""
    root = data_root(root)
    seen, out = set(), []
    for src in sources:
        for p in load_source(src, root, field):
            p = p.strip()
            if p and p not in seen and (max_chars is None or len(p) <= max_chars):
                seen.add(p)
                out.append(p)
    if not out:
        raise JudgerlError(f"no prompts loaded from {sources} (all empty or longer than {max_chars} characters?)")
    random.Random(seed).shuffle(out)
    return out
