"""Judges of graded quality for the study, and their agreement with the gold (alpha vs number of labels).

- `prompted`: the base model prompted as a pointwise judge (default template), expected score read from
  the `Score: ` next-token distribution. No training.
- `sft-<N>`: a non-reasoning judge (the library's `non_reasoning` SFT stage: `Score: N` target, loss on
  the verdict only) trained with a LoRA adapter on the first N judge-train labels (a random subset). The
  adapter is kept (study/adapters.py), merged for use.
- Agreement: `evaluate_judge` (eval.json, the report's agreement table) on the judge-test answers (answers
  to prompts no judge saw), plus Krippendorff alpha of the expected score with a 95% bootstrap interval
  over prompts.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Callable

from judgerl.study.config import StudyConfig


def prompted_spec(cfg: StudyConfig, batch_size: int = 64):
    from judgerl.judges.spec import JudgeSpec, Sampling

    return JudgeSpec(name="prompted", backend="hf", model=cfg.base, format="pointwise", mode="direct",
                     device=cfg.device, batch_size=batch_size, sampling=Sampling(max_new_tokens=8))


def sft_spec(folder: Path, name: str, device: str, batch_size: int = 64):
    from judgerl.config import load_judge_spec

    return load_judge_spec(str(folder / "judge.yaml")).model_copy(  # merged/ beside it (the run dir may have moved)
        update={"name": name, "device": device, "batch_size": batch_size, "model": str((folder / "merged").resolve())})


def sft_epochs(cfg: StudyConfig, n_labels: int) -> float:
    """judges.epochs, cut so that a judge sees at most judges.max_examples examples."""
    j = cfg.judges
    return j.epochs if j.max_examples is None else min(j.epochs, j.max_examples / n_labels)


def train_sft_judge(cfg: StudyConfig, n_labels: int, annotations: Path, folder: Path,
                    log: Callable[[str], None]) -> dict:
    """SFT (LoRA) on the first `n_labels` judge-train labels; saves adapter/, merged/, judge.yaml, train.json."""
    from judgerl.config import dump_yaml
    from judgerl.study.adapters import merged_model, save_adapter
    from judgerl.training.checkpoints import load_causal
    from judgerl.training.judge_config import TrainJudgeConfig
    from judgerl.training.judge_sft import run_sft
    from judgerl.training.train_judge import check_data, judge_spec

    j = cfg.judges
    tcfg = TrainJudgeConfig(name=f"sft-{n_labels}", output_dir=str(folder), variant="non_reasoning",
                            base_model=cfg.base, annotations=str(annotations), limit=n_labels, finetune="lora",
                            lora={"r": j.lora.r, "alpha": j.lora.alpha}, seed=cfg.seed,
                            sft={"learning_rate": j.learning_rate, "num_train_epochs": sft_epochs(cfg, n_labels),
                                 "max_steps": j.max_steps, "per_device_train_batch_size": min(j.micro_batch, j.batch_size),
                                 "gradient_accumulation_steps": max(1, j.batch_size // j.micro_batch),
                                 "max_length": j.max_length, "logging_steps": 20, "save_steps": j.save_steps},
                            judge_sampling={"temperature": 0.0, "max_new_tokens": 8})
    check_data(tcfg)
    folder.mkdir(parents=True, exist_ok=True)
    log(f"judge sft-{n_labels}: SFT (LoRA r{j.lora.r}) on {n_labels:,} labels")
    model, tok = load_causal(cfg.base, tcfg.dtype)
    with open(folder / "train.log", "a", encoding="utf-8") as f, contextlib.redirect_stdout(f):  # TRL's dicts
        model, stats = run_sft(tcfg, judge_spec(tcfg, str(folder / "merged")), model, tok, str(folder / "checkpoints"))
    adapter = save_adapter(model, folder / "adapter", {"base": cfg.base, "kind": "causal", "labels": n_labels})
    del model
    merged = merged_model(cfg.base, folder / "adapter", "causal", folder / "merged")
    dump_yaml(judge_spec(tcfg, str(merged.resolve())), folder / "judge.yaml")
    rec = {"labels": n_labels, "train": stats, "adapter": adapter}
    (folder / "train.json").write_text(json.dumps(rec, indent=2, default=float), encoding="utf-8")
    return rec


def judge_alpha(cfg: StudyConfig, spec, annotations: Path, folder: Path, limit: int | None = None) -> dict:
    """eval.json through evaluate_judge, plus alpha (expected score) with a bootstrap interval over prompts."""
    from judgerl.annotate.dataset import load_annotations
    from judgerl.evaluation.eval_judge import evaluate_judge
    from judgerl.judges.judge import Judge
    from judgerl.judges.spec import JudgeRequest
    from judgerl.study.stats import cluster_bootstrap, interval_alpha

    import time

    from judgerl.judges.cache import Ledger

    folder.mkdir(parents=True, exist_ok=True)
    judge = Judge(spec, cache=folder / "cache.sqlite", ledger=folder / "ledger.sqlite", stage="eval-judge")
    limit = limit or cfg.judges.eval_limit
    before = Ledger(folder / "ledger.sqlite").summary("eval-judge")
    t0 = time.perf_counter()
    res = evaluate_judge(spec, folder, str(annotations), "test", limit, [], cfg.shared_data, judge=judge)
    wall = time.perf_counter() - t0
    after = Ledger(folder / "ledger.sqlite").summary("eval-judge")
    led = {k: after[k] - before[k] for k in ("backend_calls", "tokens_in", "tokens_out")}  # this evaluation's calls
    rows = load_annotations(annotations, "pointwise", "test")
    rows = rows[:limit] if limit else rows
    vs = judge.judge([JudgeRequest(prompt=r["prompt"], responses=[r["response"]]) for r in rows])  # cache hits
    pairs = [(r["item_id"], r["score"], v.expected if v.valid else None) for r, v in zip(rows, vs)]
    ci = cluster_bootstrap(pairs, lambda x: x[0], lambda rs: interval_alpha([g for _, g, _ in rs], [p for _, _, p in rs]),
                           cfg.gold.bootstrap, cfg.seed)
    gold = res.get("gold", {})
    return {"judge": spec.name, "alpha_expected": ci, "alpha_label": gold.get("alpha"),
            "exact_match": gold.get("exact_match"), "pairwise_accuracy": gold.get("pairwise_accuracy"),
            "invalid_rate": gold.get("invalid_rate"), "mean_thinking_tokens": gold.get("mean_thinking_tokens"),
            "n": len(rows),
            **verdict_cost(wall, len(rows), led)}


def verdict_cost(wall: float, n: int, calls: dict) -> dict:
    """Cost per verdict of one evaluation: its wall seconds per verdict and tokens per backend call, only when every
    verdict was a backend call (verdicts from the cache of an earlier run cost nothing here and would hide it)."""
    if n == 0 or calls["backend_calls"] < n:
        return {"cost_note": f"not measured: {n - calls['backend_calls']} of {n} verdicts came from the cache"}
    return {"seconds_per_verdict": round(wall / n, 5),
            "tokens_in_per_verdict": round(calls["tokens_in"] / calls["backend_calls"], 1),
            "tokens_out_per_verdict": round(calls["tokens_out"] / calls["backend_calls"], 1)}


def earlier_alpha_rows(judges_dir: Path, config: dict) -> dict[str, dict]:
    """The curve rows of the last judges-eval that still hold, by judge folder (prompted, sft-<N>, reasoning): that
    evaluation finished with the same settings (the label counts aside) after the judge's own stage finished. A
    judge added to the curve later is then scored alone instead of every judge again (the reasoning judge alone
    takes minutes of GPU); a judge trained again after it is scored again."""
    rec_path, curve = judges_dir / "stage-judges-eval.json", judges_dir / "curve.json"
    if not (rec_path.is_file() and curve.is_file()):
        return {}
    from judgerl.study.stages import last_done

    rec = last_done(json.loads(rec_path.read_text()))  # a re-run stopped half-way keeps the last finished record
    if rec is None or {k: v for k, v in rec.get("config", {}).items() if k != "counts"} != \
            {k: v for k, v in config.items() if k != "counts"}:
        return {}
    kept = {}
    for row in json.loads(curve.read_text()):
        folder = "reasoning" if row.get("reasoning") else row["judge"]
        stage = judges_dir / folder / f"stage-judge-{folder}.json"
        trained = json.loads(stage.read_text()).get("finished") if stage.is_file() else None
        if "missing" not in row and (folder == "prompted" or (trained is not None and trained < rec["started"])):
            kept[folder] = row
    return kept
