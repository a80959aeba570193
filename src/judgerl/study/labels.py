"""Prompts and gold labels at volume for the study.

- Prompts: the RL pools (never AlpacaEval / Arena-Hard; a pool prompt that is also an AlpacaEval
  instruction, i.e. the gold's training data, is dropped), ordered by a seeded hash of the text and cut
  into three disjoint sets: `monitor` (the gold monitor's held-out prompts), `label` (answers labelled
  for the judges; split again by prompt into judge-train and judge-test) and `policy` (GRPO training).
- Answers: the base policy's own answers, `labels.samples_per_prompt` per label prompt, sampled at
  `labels.temperature` with the policy's token budget (the distribution the judges will reward).
- Labels: the gold RM's reward of each answer, mapped to 0-9 by the gold-reward deciles of the
  calibration set (the judge-train answers): label = number of the 9 decile cuts at or below the reward.
  The cuts are saved; answers of a trained policy above the top cut all score 9 (the paper's ceiling).
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Callable

from judgerl.study.config import StudyConfig

SETS = ("monitor", "label", "policy")


def gold_instructions(root: Path) -> set[str]:
    """AlpacaEval's instructions: the gold's training data, never RL or judge prompts."""
    import gzip

    from judgerl.study.gold import REFERENCES

    with gzip.open(root / REFERENCES, "rt", encoding="utf-8") as f:
        return {r["instruction"].strip() for r in json.load(f)}


def split_prompts(cfg: StudyConfig, root: Path) -> dict[str, list[str]]:
    """{monitor, label_train, label_test, policy}: disjoint prompt lists (deterministic in cfg.seed)."""
    from judgerl import JudgerlError
    from judgerl.training.prompts import load_prompts

    p = cfg.prompts
    prompts = load_prompts(p.sources, root, None, p.max_chars, cfg.seed)
    gold_seen = gold_instructions(root)
    prompts = [x for x in prompts if x.strip() not in gold_seen]  # (one WizardLM prompt is an AlpacaEval one)
    order = sorted(prompts, key=lambda s: hashlib.sha256(f"{cfg.seed}:{s}".encode()).hexdigest())[:p.limit]
    if len(order) < p.monitor + 4:
        raise JudgerlError(f"{len(order)} prompts cannot spare {p.monitor} monitor prompts and still leave "
                           f"label and policy prompts; lower prompts.monitor")
    monitor, rest = order[:p.monitor], order[p.monitor:]
    n_label = max(2, int(round(len(rest) * p.label_fraction)))
    label, policy = rest[:n_label], rest[n_label:]
    n_test = max(1, int(round(len(label) * p.label_test_fraction)))
    if not policy or n_test >= len(label):
        raise JudgerlError(f"prompt split leaves no policy or no judge-train prompts ({len(rest)} after the "
                           f"monitor); change prompts.label_fraction / label_test_fraction")
    return {"monitor": monitor, "label_test": label[:n_test], "label_train": label[n_test:], "policy": policy}


def write_prompts(folder: Path, sets: dict[str, list[str]]) -> dict:
    """<set>_prompts.jsonl per set (not monitor.jsonl: that name marks a policy run for the report)."""
    from judgerl.data import write_jsonl_atomic

    folder.mkdir(parents=True, exist_ok=True)
    for name, ps in sets.items():
        write_jsonl_atomic(folder / f"{name}_prompts.jsonl", [{"prompt": x} for x in ps])
    return {k: len(v) for k, v in sets.items()}


def read_prompts(folder: Path, name: str) -> list[str]:
    from judgerl.data import read_jsonl

    return [r["prompt"] for r in read_jsonl(folder / f"{name}_prompts.jsonl")]


def sample_answers(cfg: StudyConfig, prompt_dir: Path, out: Path, log: Callable[[str], None]) -> dict:
    """The base policy's answers to the label prompts (judge-train then judge-test), written to answers.jsonl."""
    from judgerl.data import write_jsonl_atomic
    from judgerl.judges.judge import Judge, run_sync
    from judgerl.judges.spec import JudgeSpec, Sampling

    lab = cfg.labels
    rows = []
    for split, name in (("train", "label_train"), ("test", "label_test")):
        for p in read_prompts(prompt_dir, name):
            pid = hashlib.sha256(p.encode()).hexdigest()[:12]
            rows += [{"prompt_id": pid, "prompt": p, "idx": k, "split": split} for k in range(lab.samples_per_prompt)]
    spec = JudgeSpec(name="policy-sampler", backend="hf", model=cfg.base, device=cfg.device, batch_size=lab.batch_size,
                     sampling=Sampling(temperature=lab.temperature, max_new_tokens=lab.max_new_tokens, seed=cfg.seed))
    log(f"answers: sampling {len(rows):,} answers ({lab.samples_per_prompt} per prompt, T {lab.temperature}, "
        f"<= {lab.max_new_tokens} tokens)")
    outs = run_sync(Judge(spec, stage="answers").agenerate([[{"role": "user", "content": r["prompt"]}] for r in rows]))
    for r, o in zip(rows, outs):
        r["response"] = o.raw.strip()
        r["tokens"] = o.tokens_out
        r["truncated"] = o.tokens_out >= lab.max_new_tokens
    rows = [r for r in rows if r["response"]]
    write_jsonl_atomic(out, rows)
    return {"answers": len(rows), "truncated": sum(r["truncated"] for r in rows),
            "prompts": len({r["prompt_id"] for r in rows})}


def decile_cuts(values: list[float]) -> list[float]:
    s = sorted(values)
    return [s[min(len(s) - 1, (k * len(s)) // 10)] for k in range(1, 10)]


def to_label(reward: float, cuts: list[float]) -> int:
    return sum(reward >= c for c in cuts)


def score_answers(cfg: StudyConfig, answers: Path, gold_model: Path, folder: Path, log: Callable[[str], None]) -> dict:
    """Gold rewards for every answer, 0-9 labels by calibration deciles, a pointwise annotation folder."""
    from judgerl.data import read_jsonl
    from judgerl.judges.judge import Judge
    from judgerl.judges.spec import JudgeRequest
    from judgerl.study.gold import rm_spec, write_annotations

    rows = read_jsonl(answers)
    gold = Judge(rm_spec(gold_model, "gold-rm", cfg.device, 64), cache=folder / "cache.sqlite", stage="labels")
    vs = gold.judge([JudgeRequest(prompt=r["prompt"], responses=[r["response"]]) for r in rows], progress=True,
                    desc="gold labels")
    rows = [{**r, "gold_reward": v.expected} for r, v in zip(rows, vs) if v.valid and v.expected is not None]
    cuts = decile_cuts([r["gold_reward"] for r in rows if r["split"] == "train"])
    ann = [{"item_id": r["prompt_id"], "prompt": r["prompt"], "response_idx": r["idx"], "response": r["response"],
            "score": to_label(r["gold_reward"], cuts), "expected": None, "reasoning": "", "valid": True,
            "split": r["split"], "rubric": None, "effort": "high", "gold_reward": r["gold_reward"],
            "truncated": r["truncated"]} for r in rows]
    random.Random(cfg.seed).shuffle(ann)  # `limit` (first N train rows) then takes a random subset
    write_annotations(folder / "annotations", "pointwise", ann,
                      {"source": "base-policy answers to RL-pool prompts, scored by the study's gold RM",
                       "judge": {"name": "gold-rm", "score_min": 0, "score_max": 9},
                       "label_rule": "number of gold-reward decile cuts (judge-train answers) <= reward",
                       "decile_cuts": cuts})
    hist = [sum(a["score"] == k for a in ann) for k in range(10)]
    rec = {"answers": len(ann), "train": sum(a["split"] == "train" for a in ann),
           "test": sum(a["split"] == "test" for a in ann), "decile_cuts": cuts, "label_histogram": hist}
    (folder / "labels.json").write_text(json.dumps(rec, indent=2), encoding="utf-8")
    log(f"labels: {rec['train']:,} judge-train / {rec['test']:,} judge-test answers labelled; "
        f"decile cuts {[round(c, 2) for c in cuts]}")
    return rec
