"""The quickstart's data: prompt sets, the held-out agreement answers and their gold labels.

- Prompt sets: the contrast study's split (`study.labels.split_prompts` with the study's defaults, seed 0), so
  that the quickstart's policy and monitor prompts are the study's and never the prompts the shipped judges
  were trained or tested on. Long prompts (> max_prompt_chars) are left out for the CPU's sake.
- Held-out answers: the study's labelled judge-test answers (base-policy answers to the 33 judge-test prompts,
  gold label 0-9 = the embedded gold RM's reward against the study's decile cuts), when the file is there:
  `agreement_items` of them to prompts of at most max_prompt_chars (the CPU's cost is in the prompt tokens),
  spread round-robin over the prompts. `gold_check` of them are re-scored here by
  the embedded gold RM to show the labels are that RM's. Without the file, the base policy answers the
  judge-test prompts here (T 1.0) and the embedded gold RM labels the answers (deciles of their own rewards).
- Train labels (train-judge stage only): base answers to the study's judge-train prompts, labelled the same way.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from pathlib import Path

from judgerl import JudgerlError
from judgerl.quickstart.config import judge_dtype


STUDY_PROMPTS = Path("docs/experiments/reward_hacking/contrast/prompts")


def prompt_sets(root: Path, max_chars: int, study_prompts: Path = STUDY_PROMPTS) -> dict[str, list[str]]:
    """{monitor, policy, label_test, label_train}: the study's disjoint prompt sets (its committed files when
    present, else re-split with the study's defaults), short prompts only."""
    names = ("monitor", "policy", "label_test", "label_train")
    if all((study_prompts / f"{n}_prompts.jsonl").is_file() for n in names):
        from judgerl.study.labels import read_prompts

        sets = {n: read_prompts(study_prompts, n) for n in names}
    else:
        from judgerl.study.config import StudyConfig
        from judgerl.study.labels import split_prompts

        sets = split_prompts(StudyConfig(), root)
    return {k: [p for p in v if len(p) <= max_chars] for k, v in sets.items()}


def read_shipped(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(x) for x in f if x.strip()]


def round_robin(rows: list[dict], n: int, seed: int) -> list[dict]:
    """n rows taken one prompt at a time (seeded order), so that the bootstrap sees many prompts."""
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["item_id"], []).append(r)
    rng = random.Random(seed)
    keys = sorted(by)
    rng.shuffle(keys)
    for k in keys:
        rng.shuffle(by[k])
    out: list[dict] = []
    while len(out) < n and any(by[k] for k in keys):
        for k in keys:
            if by[k] and len(out) < n:
                out.append(by[k].pop())
    return out


def gold_rewards(prompts: list[str], answers: list[str], cache: Path, ledger: Path,
                 dtype: str = "float32") -> list[float | None]:
    from judgerl.judges.judge import Judge
    from judgerl.judges.spec import JudgeRequest
    from judgerl.study.embedded import embedded_gold_spec

    spec = embedded_gold_spec("cpu", 16, "gold").model_copy(update={"dtype": dtype})
    gold = Judge(spec, cache=cache, ledger=ledger, stage="labels")
    vs = gold.judge([JudgeRequest(prompt=p, responses=[a]) for p, a in zip(prompts, answers)])
    return [v.expected if v.valid else None for v in vs]


def sample_answers(model: str, prompts: list[str], per_prompt: int, tokens: int, seed: int) -> list[dict]:
    """The base policy's sampled answers (T 1.0), per_prompt for each prompt."""
    import torch

    from judgerl.evaluation.monitor import generate
    from judgerl.model_loader import shared_model

    m, tok = shared_model(model, "causal", "cpu", "float32")
    chats = [[{"role": "user", "content": p}] for p in prompts for _ in range(per_prompt)]
    torch.manual_seed(seed)
    answers = generate(m, tok, chats, tokens, 1.0, 32)
    return [{"item_id": hashlib.sha256(c[0]["content"].encode()).hexdigest()[:12], "prompt": c[0]["content"],
             "response": a.strip()} for c, a in zip(chats, answers) if a.strip()]


def label(rows: list[dict], cache: Path, ledger: Path, dtype: str = "float32") -> list[float]:
    """Gold rewards into rows, labels = number of the rewards' own decile cuts at or below; returns the cuts."""
    from judgerl.study.labels import decile_cuts, to_label

    rewards = gold_rewards([r["prompt"] for r in rows], [r["response"] for r in rows], cache, ledger, dtype)
    for r, g in zip(rows, rewards):
        r["gold_reward"] = g
    rows[:] = [r for r in rows if r["gold_reward"] is not None]
    cuts = decile_cuts([r["gold_reward"] for r in rows])
    for r in rows:
        r["score"] = to_label(r["gold_reward"], cuts)
    return cuts


def heldout(cfg, sets: dict, folder: Path) -> dict:
    """Write folder/heldout.jsonl (the agreement set) and folder/labels.json; returns the record."""
    from judgerl.data import write_jsonl_atomic

    cache, ledger = folder / "cache.sqlite", folder / "ledger.sqlite"
    shipped = Path(cfg.heldout_answers) if cfg.heldout_answers else None
    if shipped is not None and shipped.is_file():
        rows = round_robin([r for r in read_shipped(shipped) if r.get("split", "test") == "test"
                            and len(r["prompt"]) <= cfg.max_prompt_chars], cfg.agreement_items, cfg.seed)
        check = rows[:cfg.gold_check]
        got = gold_rewards([r["prompt"] for r in check], [r["response"] for r in check], cache, ledger, judge_dtype(cfg))
        diffs = [abs(g - r["gold_reward"]) for g, r in zip(got, check) if g is not None]
        rec = {"source": str(shipped), "gold_check": {"n": len(diffs), "max_abs_diff": max(diffs, default=None)}}
    else:
        prompts = sets["label_test"]
        if not prompts:
            raise JudgerlError("no judge-test prompt fits max_prompt_chars; raise it")
        per = -(-cfg.agreement_items // len(prompts))
        rows = sample_answers(cfg.model, prompts, per, cfg.completion_tokens, cfg.seed)
        rows = round_robin(rows, cfg.agreement_items, cfg.seed)
        rec = {"source": "sampled here (base policy, T 1.0) and labelled by the embedded gold RM",
               "decile_cuts": label(rows, cache, ledger, judge_dtype(cfg))}
    write_jsonl_atomic(folder / "heldout.jsonl", rows)
    rec.update(n=len(rows), prompts=len({r["item_id"] for r in rows}),
               histogram=[sum(r["score"] == k for r in rows) for k in range(10)])
    (folder / "labels.json").write_text(json.dumps(rec, indent=2), encoding="utf-8")
    return rec


def train_annotations(cfg, sets: dict, folder: Path) -> Path:
    """An annotation folder (train + a small validation split) of gold-labelled base answers to judge-train prompts."""
    from judgerl.study.gold import write_annotations

    prompts = sets["label_train"]
    per = max(1, -(-cfg.train_labels // max(1, len(prompts))))
    rows = sample_answers(cfg.model, prompts[:cfg.train_labels], per, cfg.completion_tokens, cfg.seed + 1)
    rows = round_robin(rows, cfg.train_labels, cfg.seed)
    cuts = label(rows, folder / "cache.sqlite", folder / "ledger.sqlite", judge_dtype(cfg))
    n_val = max(1, len(rows) // 8)
    ann = [{"item_id": r["item_id"], "prompt": r["prompt"], "response_idx": i, "response": r["response"],
            "score": r["score"], "expected": None, "reasoning": "", "valid": True,
            "split": "validation" if i < n_val else "train", "rubric": None, "effort": "high",
            "gold_reward": r["gold_reward"]} for i, r in enumerate(rows)]
    return write_annotations(folder / "annotations", "pointwise", ann,
                             {"judge": {"name": "gold-rm", "score_min": 0, "score_max": 9},
                              "label_rule": "embedded gold RM reward -> number of decile cuts at or below it",
                              "decile_cuts": cuts})
