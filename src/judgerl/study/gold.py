"""The study's gold judge: a Bradley-Terry reward model on AlpacaEval's GPT-4-Turbo preferences.

- Data: every `weighted_alpaca_eval_gpt4_turbo_annotations/<model>.jsonl.gz` pair (GPT-4-1106 reference vs
  the model's answer), label = the preferred answer; near-ties dropped; the files in
  `gold.exclude_generators` left out (NullModel: a constant answer GPT-4-Turbo is known to over-rate).
  Splits by instruction (`split_of(instruction, 0)`, 80/10/10): the held-out accuracy is on instructions
  the gold never saw.
- Model: the library's `bt_rm` trainer (TRL RewardTrainer) with a LoRA adapter (all linear layers) and
  the one-output score head; the adapter (+ head) is the artefact, merged on demand (study/adapters.py).
- Checks: pairwise accuracy against GPT-4-Turbo on the held-out instructions, with a 95% bootstrap
  interval over instructions; the same on MT-Bench expert votes and LLMBar-Natural (human labels).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import random
from pathlib import Path
from typing import Callable

from judgerl.study.config import StudyConfig

ANNOTATIONS = "alpaca-eval/weighted_alpaca_eval_gpt4_turbo_annotations"
REFERENCES = "alpaca-eval/reference_outputs/gpt4_1106_preview.json.gz"


def _jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(x) for x in f if x.strip()]


def alpaca_pairs(root: Path, cfg: StudyConfig) -> list[dict]:
    """AlpacaEval preference pairs as pairwise annotation rows (reference first), shuffled with seed 0."""
    from judgerl.annotate.dataset import split_of

    g = cfg.gold
    with gzip.open(root / REFERENCES, "rt", encoding="utf-8") as f:
        refs = {r["instruction"]: r["output"] for r in json.load(f)}
    rows = []
    for path in sorted((root / ANNOTATIONS).glob("*.jsonl.gz")):
        gen = path.name.split(".jsonl")[0]
        if gen in g.exclude_generators:
            continue
        for i, r in enumerate(_jsonl_gz(path)):
            p = r.get("preference")
            if p is None or p != p or abs(p - 1.5) < g.near_tie or not r.get("output_2") \
                    or r["instruction"] not in refs:
                continue
            if g.max_chars and len(r["instruction"]) + len(refs[r["instruction"]]) + len(r["output_2"]) > g.max_chars:
                continue
            label = 1 if p < 1.5 else 2
            rows.append({"item_id": f"{gen}:{i}", "prompt": r["instruction"],
                         "responses": [refs[r["instruction"]], r["output_2"]], "label": label,
                         "label_swapped": label, "consistent": True, "reasoning": "", "valid": True,
                         "split": split_of(r["instruction"], 0), "rubric": None, "effort": "high",
                         "generator": gen, "soft_preference": p})
    random.Random(0).shuffle(rows)
    return keep_split_shares(rows, g.pairs) if g.pairs else rows


def keep_split_shares(rows: list[dict], n: int, held_share: float = 0.1) -> list[dict]:
    """At most n rows, in order, with validation and test each given held_share of n (at least one, as far
    as the rows allow) and train the rest: a plain rows[:n] of a small n can leave the held-out split empty,
    since splits are by instruction and AlpacaEval has many answers per instruction."""
    have = {s: sum(r["split"] == s for r in rows) for s in ("train", "validation", "test")}
    quota = {s: min(have[s], max(1, round(n * held_share))) for s in ("validation", "test")}
    quota["train"] = max(0, n - quota["validation"] - quota["test"])
    taken = dict.fromkeys(quota, 0)
    out = []
    for r in rows:
        if taken[r["split"]] < quota[r["split"]]:
            taken[r["split"]] += 1
            out.append(r)
    return out


def write_annotations(folder: Path, kind: str, rows: list[dict], meta: dict) -> Path:
    """A minimal annotation dataset folder (manifest + <kind>.jsonl) the judge trainers read."""
    from judgerl.data import write_json_atomic, write_text_atomic

    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / f"{kind}.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    counts = {s: sum(r["split"] == s for r in rows) for s in ("train", "validation", "test")}
    write_json_atomic(folder / "manifest.json", {"version": 1, "counts": {kind: len(rows)}, "splits": counts, **meta})
    return folder


def rm_spec(model: str, name: str, device: str = "auto", batch_size: int = 32):
    from judgerl.judges.spec import JudgeSpec

    return JudgeSpec(name=name, backend="rm", model=str(model), format="pointwise", mode="direct",
                     device=device, batch_size=batch_size)


def pair_accuracy(judge, items: list[tuple[str, str, str, int]], n_boot: int) -> dict:
    """Share of (prompt, r1, r2, better) items where the RM rewards the better answer more; CI by prompt."""
    from judgerl.judges.spec import JudgeRequest
    from judgerl.study.stats import cluster_bootstrap

    reqs = [JudgeRequest(prompt=p, responses=[r]) for p, r1, r2, _ in items for r in (r1, r2)]
    v = judge.judge(reqs, progress=True, desc="gold check")
    rows = []
    for i, (p, _, _, lab) in enumerate(items):
        a, b = v[2 * i].expected, v[2 * i + 1].expected
        rows.append((p, None if a is None or b is None else float((a > b) == (lab == 1))))

    def acc(rs):
        ok = [x for _, x in rs]
        return 100.0 * sum(x or 0.0 for x in ok) / len(ok) if ok else None
    return cluster_bootstrap(rows, lambda r: r[0], acc, n_boot)


def model_vs_model(held: list[dict], margin: float = 0.5) -> list[tuple[str, str, str, int]]:
    """Pairs of two non-reference answers to one held-out instruction, labelled by GPT-4-Turbo's preferences
    against the shared reference (P(A beats ref) - P(B beats ref) >= margin): a check free of the
    "looks like the GPT-4 reference" shortcut that the reference-vs-model pairs allow."""
    by_prompt: dict[str, list[tuple[float, str]]] = {}
    for r in held:
        by_prompt.setdefault(r["prompt"], []).append((r["soft_preference"] - 1.0, r["responses"][1]))
    out = []
    for p, answers in by_prompt.items():
        for i, (pa, a) in enumerate(answers):
            for pb, b in answers[i + 1:]:
                if abs(pa - pb) >= margin:
                    out.append((p, a, b, 1 if pa > pb else 2))
    return out


def train_gold(cfg: StudyConfig, folder: Path, root: Path, log: Callable[[str], None]) -> dict:
    """Train the gold RM (LoRA), save its adapter, merge it, check it; returns the gold record."""
    from judgerl.study.adapters import merged_model, save_adapter
    from judgerl.study.policy import WallClockBudget
    from judgerl.training.judge_config import TrainJudgeConfig
    from judgerl.training.reward_model import run_reward_model

    g = cfg.gold
    folder.mkdir(parents=True, exist_ok=True)
    pairs = alpaca_pairs(root, cfg)
    ann = write_annotations(folder / "annotations", "pairwise", pairs,
                            {"source": "AlpacaEval weighted GPT-4-Turbo preferences (reference vs model answer)",
                             "excluded_generators": g.exclude_generators, "near_tie": g.near_tie})
    tcfg = TrainJudgeConfig(name="gold-rm", output_dir=str(folder), variant="bt_rm", base_model=cfg.base,
                            annotations=str(ann), finetune="lora", lora={"r": g.lora.r, "alpha": g.lora.alpha},
                            seed=cfg.seed,
                            rm={"learning_rate": g.learning_rate, "num_train_epochs": g.epochs, "max_steps": g.max_steps,
                                "per_device_train_batch_size": g.batch_size, "max_length": g.max_length,
                                "logging_steps": 20})
    n_train = sum(r["split"] == "train" for r in pairs)
    log(f"gold: training the BT reward model (LoRA r{g.lora.r}) on {n_train:,} train pairs")
    with open(folder / "train.log", "a", encoding="utf-8") as f, contextlib.redirect_stdout(f):
        budget = WallClockBudget(g.max_seconds)
        model, tok, stats = run_reward_model(tcfg, str(folder / "checkpoints"), callbacks=[budget])  # dicts to train.log
    stats["stopped_by_budget_at"] = budget.stopped_at
    stats["pairs_seen"] = stats["rm_steps"] * g.batch_size
    adapter = save_adapter(model, folder / "adapter", {"base": cfg.base, "kind": "reward", "lora_r": g.lora.r})
    del model
    merged = merged_model(cfg.base, folder / "adapter", "reward", folder / "merged")
    rec = {"train": stats, "pairs": {s: sum(r["split"] == s for r in pairs) for s in ("train", "validation", "test")},
           "adapter": adapter, "checks": check_gold(cfg, merged, folder, root, pairs)}
    (folder / "gold.json").write_text(json.dumps(rec, indent=2, default=float), encoding="utf-8")
    return rec


def check_gold(cfg: StudyConfig, merged: Path, folder: Path, root: Path, pairs: list[dict] | None = None) -> dict:
    """Held-out pairwise accuracy vs GPT-4-Turbo (and human sets), each with n and a bootstrap interval."""
    from judgerl.evaluation.human_sets import load_human_set
    from judgerl.judges.judge import Judge

    pairs = pairs if pairs is not None else alpaca_pairs(root, cfg)
    judge = Judge(rm_spec(merged, "gold-rm", cfg.device), cache=folder / "cache.sqlite", stage="gold-check")
    held = [r for r in pairs if r["split"] == "test"]
    held = held[:cfg.gold.eval_pairs] if cfg.gold.eval_pairs else held
    test = [(r["prompt"], *r["responses"], r["label"]) for r in held]
    out = {"alpaca_heldout_vs_gpt4_turbo": pair_accuracy(judge, test, cfg.gold.bootstrap),
           "alpaca_heldout_label_share_reference": 100.0 * sum(r["label"] == 1 for r in held) / max(1, len(held)),
           "alpaca_heldout_model_wins_only": pair_accuracy(judge, [t for t in test if t[3] == 2], cfg.gold.bootstrap),
           "alpaca_heldout_model_vs_model": pair_accuracy(judge, model_vs_model(held), cfg.gold.bootstrap)}
    for name in ("mtbench", "llmbar-natural"):
        hp = load_human_set(name, root, cfg.gold.eval_pairs)
        out[f"{name}_human"] = pair_accuracy(judge, [(p.prompt, *p.responses, p.label) for p in hp], cfg.gold.bootstrap)
    return out
