"""Human-labelled pairwise sets from the shared data, as (prompt, response 1, response 2, human label).

Sets (label conventions as each set defines them):
- llmbar-natural: llmbar/Natural.json; label 1|2 names the better output; no ties.
- llmbar-adversarial: the four adversarial subsets (Neighbor, GPTInst, GPTOut, Manual), each also
  addressable alone (llmbar-neighbor, ...). `limit` on the union takes items round-robin from the subsets.
- pandalm: pandalm/testset-v1.json.gz; gold = the majority of the three annotators (>= 2 of 3 agree;
  items where all three differ are dropped). 0 = tie, 1/2 = that response is better. Instruction and
  input are joined by a blank line. Ties are kept with gold 0: a binary judge never scores on them, so
  `judge_metrics` reports accuracy both with and without tie items (see eval_judge.pair_metrics).
- mtbench: llmbar/processed_MT-Bench.json; MT-Bench expert majority vote, ties already removed.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from judgerl import JudgerlError
from judgerl.paths import data_root

ADVERSARIAL = {"llmbar-neighbor": "Adversarial_Neighbor.json", "llmbar-gptinst": "Adversarial_GPTInst.json",
               "llmbar-gptout": "Adversarial_GPTOut.json", "llmbar-manual": "Adversarial_Manual.json"}
SETS = ("llmbar-natural", "llmbar-adversarial", *ADVERSARIAL, "pandalm", "mtbench")


@dataclass
class HumanPair:
    set: str
    prompt: str
    responses: tuple[str, str]
    label: int            # 1 | 2, or 0 for a human tie (PandaLM)


def _llmbar(path: Path, name: str) -> list[HumanPair]:
    if not path.is_file():
        raise JudgerlError(f"human set {name}: {path} not found")
    return [HumanPair(name, r["input"], (r["output_1"], r["output_2"]), int(r["label"]))
            for r in json.loads(path.read_text(encoding="utf-8"))]


def pandalm_majority(votes: list[int]) -> int | None:
    value, n = Counter(votes).most_common(1)[0]
    return value if n >= 2 else None


def _pandalm(root: Path) -> list[HumanPair]:
    path = root / "pandalm" / "testset-v1.json.gz"
    if not path.is_file():
        raise JudgerlError(f"human set pandalm: {path} not found")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = json.load(f)
    out = []
    for r in rows:
        gold = pandalm_majority([r["annotator1"], r["annotator2"], r["annotator3"]])
        if gold is None:
            continue
        prompt = r["instruction"] + (f"\n\n{r['input']}" if (r.get("input") or "").strip() else "")
        out.append(HumanPair("pandalm", prompt, (r["response1"], r["response2"]), int(gold)))
    return out


def round_robin(groups: list[list[HumanPair]], limit: int | None) -> list[HumanPair]:
    out: list[HumanPair] = []
    for i in range(max(len(g) for g in groups)):
        for g in groups:
            if i < len(g):
                out.append(g[i])
                if limit and len(out) >= limit:
                    return out
    return out


def load_human_set(name: str, root: str | Path | None = None, limit: int | None = None) -> list[HumanPair]:
    """The first `limit` pairs of a named set (see module docstring)."""
    base = data_root(root)
    if name == "llmbar-natural":
        pairs = _llmbar(base / "llmbar" / "Natural.json", name)
    elif name in ADVERSARIAL:
        pairs = _llmbar(base / "llmbar" / ADVERSARIAL[name], name)
    elif name == "llmbar-adversarial":
        return round_robin([_llmbar(base / "llmbar" / f, n) for n, f in ADVERSARIAL.items()], limit)
    elif name == "pandalm":
        pairs = _pandalm(base)
    elif name == "mtbench":
        pairs = _llmbar(base / "llmbar" / "processed_MT-Bench.json", name)
    else:
        raise JudgerlError(f"unknown human set {name!r}; known: {', '.join(SETS)}")
    return pairs[:limit] if limit else pairs


def parse_set_names(spec: str | None) -> list[str]:
    """'llmbar-natural,pandalm' -> names (validated); 'all' -> the four headline sets."""
    if not spec:
        return []
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if names == ["all"]:
        return ["llmbar-natural", "llmbar-adversarial", "pandalm", "mtbench"]
    unknown = [n for n in names if n not in SETS]
    if unknown:
        raise JudgerlError(f"unknown human set(s) {', '.join(unknown)}; known: {', '.join(SETS)}, all")
    return names
