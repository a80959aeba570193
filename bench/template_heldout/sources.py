"""Pools of real (prompt, answer) pairs read from /work/shared/data for the template held-out set.

Each pool is one answering model (or one human answer set) of one source, so a group built from a pool
looks like one policy's answers at one monitor point. Nothing here is copied into the repository: the
pools are read at build time, and only the answers that land in a group reach heldout.jsonl.gz.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

MAX_RESPONSE = 2500  # characters; longer answers are left out (not cut), so no answer ends mid-sentence
MAX_PROMPT = 1500
MAX_STORY = 8000  # the EQ-Bench stories are long by design; they are kept whole too

LICENCES = {
    "alpaca-eval": "CC BY-NC 4.0 (AlpacaEval/AlpacaFarm data); model outputs also under their providers' terms",
    "arena-hard-auto": "Apache-2.0 (repo); prompts from Chatbot Arena users, answers from commercial models",
    "eq-bench": "MIT",
    "pandalm": "Apache-2.0",
    "self-instruct": "Apache-2.0",
    "hh-rlhf": "MIT",
}


@dataclass
class Item:
    prompt: str
    response: str
    source: str  # "<folder>:<model>"
    lang: str = "en"
    tags: list[str] = field(default_factory=list)


def read_any(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        text = f.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.split("\n") if line.strip()]


def lang_of(text: str) -> str:
    head = text[:600]
    if re.search(r"[\u3040-\u30ff]{3}", head):
        return "ja"
    if re.search(r"[\u4e00-\u9fff]{4}", head):
        return "zh"
    if re.search(r"[\u0400-\u04ff]{4}", head):
        return "ru"
    if re.search(r"[ạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹđ]", head):
        return "vi"
    return "en"


POEM = re.compile(r"\b(poem|poems|haiku|limerick|sonnet|verse|lyrics|song|rap)\b", re.I)
CODE = re.compile(r"```")
LIST_LINE = re.compile(r"^\s*(\d+[.)]|[-*•])\s", re.M)


def tag(prompt: str, response: str, extra: list[str]) -> list[str]:
    tags = list(extra)
    if POEM.search(prompt[:400]):
        tags.append("poem")
    if CODE.search(response):
        tags.append("code")
    if len(LIST_LINE.findall(response)) >= 3:
        tags.append("list")
    headers = re.findall(r"^#{1,4} ", response, re.M)
    bold_leads = re.findall(r"^\s*(?:[-*]\s*)?\*\*[^*\n]+\*\*", response, re.M)
    if len(headers) >= 2 or len(bold_leads) >= 3:
        tags.append("markdown")
    if len(response) <= 60:
        tags.append("short")
    return tags


def keep(prompt: str, response: str, limit: int) -> bool:
    return bool(prompt.strip()) and bool(response.strip()) and len(response) <= limit and len(prompt) <= MAX_PROMPT


def add(pools: dict, name: str, prompt: str, response, extra: list[str] = ()) -> None:
    if not isinstance(response, str):  # PandaLM stores a few yes/no answers as JSON booleans
        response = str(response)
    prompt, response = prompt.strip(), response.strip()
    if keep(prompt, response, MAX_STORY if "story" in extra else MAX_RESPONSE):
        pools.setdefault(name, []).append(
            Item(prompt, response, name, lang_of(prompt + " " + response[:200]), tag(prompt, response, list(extra))))


def alpaca(root: Path, pools: dict) -> None:
    folder = root / "alpaca-eval" / "weighted_alpaca_eval_gpt4_turbo_annotations"
    for path in sorted(folder.glob("*.jsonl.gz")):
        model = path.name[: -len(".jsonl.gz")]
        if model in ("NullModel", "gpt4_gamed"):  # the constant attack is read separately; gamed = cut to 10 chars
            continue
        for r in read_any(path):
            add(pools, f"alpaca-eval:{model}", r["instruction"], r["output_2"])
    for r in read_any(root / "alpaca-eval" / "reference_outputs" / "gpt4_1106_preview.json.gz"):
        add(pools, "alpaca-eval:gpt4_1106_preview", r["instruction"], r["output"])


def nullmodel(root: Path) -> list[Item]:
    path = root / "alpaca-eval" / "weighted_alpaca_eval_gpt4_turbo_annotations" / "NullModel.jsonl.gz"
    return [Item(r["instruction"], r["output_2"], "alpaca-eval:NullModel") for r in read_any(path)]


def arena(root: Path, pools: dict) -> None:
    base = root / "arena-hard-auto"
    for version in ("v0.1", "v2.0"):
        questions = {q["uid"]: q for q in read_any(base / version / "question.jsonl.gz")}
        for path in sorted((base / version / "model_answer").glob("*.jsonl.gz")):
            model = path.name[: -len(".jsonl.gz")]
            for r in read_any(path):
                q = questions.get(r["uid"], {})
                extra = [f"cluster={q['cluster']}"] if "cluster" in q else []
                extra += [q["subcategory"]] if "subcategory" in q else []
                add(pools, f"arena-hard-{version}:{model}", r["messages"][0]["content"],
                    r["messages"][1]["content"]["answer"], extra)


def judgemark(root: Path, pools: dict) -> None:
    prompts = read_any(root / "eq-bench" / "creative_writing_prompts.json")
    stories = read_any(root / "eq-bench" / "judgemark_test_set.json.gz")
    for model in sorted(stories):
        for pid in sorted(stories[model], key=int):
            add(pools, f"eq-bench:{model}", prompts[pid]["writing_prompt"], stories[model][pid], ["story"])


def pandalm(root: Path, pools: dict) -> None:
    for r in read_any(root / "pandalm" / "testset-v1.json.gz"):
        prompt = r["instruction"] + (f"\n\n{r['input']}" if r["input"].strip() else "")
        first, second = r["cmp_key"].split("_", 1)
        add(pools, f"pandalm:{first}", prompt, r["response1"])
        add(pools, f"pandalm:{second}", prompt, r["response2"])


def self_instruct(root: Path, pools: dict) -> None:
    for name in ("seed_tasks.jsonl", "user_oriented_instructions.jsonl"):
        for r in read_any(root / "self-instruct" / name):
            for inst in r["instances"]:
                prompt = r["instruction"] + (f"\n\n{inst['input']}" if inst["input"].strip() else "")
                add(pools, "self-instruct:human", prompt, inst["output"])


def hh(root: Path, pools: dict) -> None:
    for r in read_any(root / "hh-rlhf" / "harmless-base" / "test.jsonl.gz"):
        turns = re.split(r"\n\n(Human|Assistant): ", r["chosen"])
        if r["chosen"].count("\n\nHuman:") == 1 and len(turns) == 5:
            add(pools, "hh-rlhf:chosen", turns[2], turns[4])


def load_pools(root: Path) -> dict[str, list[Item]]:
    """name -> items, one pool per answering model; prompts inside a pool are made unique (first kept)."""
    if not (root / "README.md").is_file():
        raise SystemExit(f"error: shared data not found at {root} (pass --data)")
    pools: dict[str, list[Item]] = {}
    for reader in (alpaca, arena, judgemark, pandalm, self_instruct, hh):
        reader(root, pools)
    for name, items in pools.items():
        seen, unique = set(), []
        for it in items:
            key = re.sub(r"\s+", " ", it.prompt.lower())
            if key not in seen:
                seen.add(key)
                unique.append(it)
        pools[name] = unique
    return pools
