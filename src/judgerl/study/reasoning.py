"""The study's reasoning judge, at the non-reasoning judges' scale and on the same gold labels.

The gold (a Bradley-Terry RM) writes no reasoning, so there is no gold thinking to distil. The judge learns to
reason by rejection-sampled self-distillation, then RL on the labels:

1. traces: the base model judges `reasoning.items` judge-train answers `reasoning.samples` times each in
   reasoning mode (think, then `Score: N`; T 1.0, one sampling seed per pass). A trace is kept when its score
   is within `reasoning.tolerance` of the gold label; its verdict line is then set to the gold label (the
   target the judge should state; at most `tolerance` away from what the trace argued).
   `reasoning.traces: rationalize` (STaR's rationalisation, Zelikman et al. 2022) shows the base model the gold
   label as a hint while it thinks (in the prompt's rubric slot, `rationale_hint`), so the kept traces argue for
   the gold's grade on every item, not only where the unaided model happened to land near it; the SFT prompt
   has no hint (the judge must reach the grade from the answer alone).
2. sft: LoRA SFT on the kept traces (reasoning + verdict; loss on the assistant turn), merged.
3. grpo: a second LoRA trained with GRPO on the Eq. 1 reward against the gold labels of the whole judge-train
   split (the library's reasoning-judge trainer), merged.

Both adapters are kept (a few MB each); `merged/` is base + sft + grpo. The judge is used in reasoning mode
with greedy decoding and `reasoning.max_new_tokens` + VERDICT_ROOM tokens.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Callable

from judgerl.study.config import StudyConfig


# Traces are sampled with max_new_tokens (a trace cut there gets its verdict forced), so an SFT target can be that
# long plus the verdict line: GRPO completions (which must state the verdict themselves, Eq. 1) and the trained
# judge get this many tokens more.
VERDICT_ROOM = 48


def base_reasoning_spec(cfg: StudyConfig, seed: int, batch_size: int = 128):
    from judgerl.judges.spec import JudgeSpec, Sampling

    r = cfg.reasoning
    hinted = r.traces == "rationalize"
    return JudgeSpec(name=f"base-reasoning{'-hinted' if hinted else ''}-s{seed}", backend="hf", model=cfg.base,
                     format="pointwise", mode="reasoning", device=cfg.device, batch_size=batch_size, rubric=hinted,
                     sampling=Sampling(temperature=1.0, max_new_tokens=r.max_new_tokens, seed=seed))


def rationale_hint(score: int) -> str:
    """The gold label shown to the base model while it writes a rationalised trace (not to the trained judge)."""
    return (f"A reference grader who compared many responses to this instruction gave this one {score}. "
            f"Explain step by step what in the response earns {score}, then end with Score: {score}")


def sample_traces(cfg: StudyConfig, annotations: Path, folder: Path, log: Callable[[str], None]) -> dict:
    """Step 1: sample, filter by the gold label, write traces/annotations (pointwise, train split)."""
    from judgerl.annotate.dataset import load_annotations
    from judgerl.judges.judge import Judge
    from judgerl.judges.spec import JudgeRequest
    from judgerl.study.gold import write_annotations

    r = cfg.reasoning
    rows = load_annotations(annotations, "pointwise", "train")[:r.items]
    hint = r.traces == "rationalize"
    reqs = [JudgeRequest(prompt=x["prompt"], responses=[x["response"]],
                         rubric=rationale_hint(x["score"]) if hint else None) for x in rows]
    kept, stats = [], {"items": len(rows), "samples": r.samples, "sampled": 0, "valid": 0, "kept": 0,
                       "abs_err": []}
    for s in range(r.samples):
        judge = Judge(base_reasoning_spec(cfg, cfg.seed + s), ledger=folder / "ledger.sqlite", stage="traces")
        vs = judge.judge(reqs, progress=True, desc=f"traces pass {s + 1}/{r.samples}")
        for x, v in zip(rows, vs):
            stats["sampled"] += 1
            if not (v.valid and v.label is not None and v.reasoning.strip()):
                continue
            stats["valid"] += 1
            err = abs(v.label - x["score"])
            stats["abs_err"].append(err)
            if err <= r.tolerance:
                kept.append({**x, "reasoning": v.reasoning.strip(), "trace_score": v.label, "trace_seed": s,
                             "split": "train"})
    errs = stats.pop("abs_err")
    stats.update(traces=r.traces, kept=len(kept),
                 items_with_a_trace=len({(k["item_id"], k["response_idx"]) for k in kept}),
                 base_mean_abs_error=sum(errs) / len(errs) if errs else None)
    how = "shown the gold label as a hint (rationalisation), " if hint else ""
    write_annotations(folder / "annotations", "pointwise", kept,
                      {"source": f"base-model reasoning traces on judge-train answers, {how}kept when within "
                                 f"{r.tolerance} of the gold label (verdict set to the gold label)",
                       "judge": {"name": "gold-rm", "score_min": 0, "score_max": 9}})
    (folder / "traces.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    log(f"reasoning traces: {stats['kept']:,} kept of {stats['sampled']:,} sampled ({stats['valid']:,} valid; "
        f"{stats['items_with_a_trace']:,} of {stats['items']:,} items have one)")
    return stats


def _train_config(cfg: StudyConfig, folder: Path, annotations: Path, finetune: str):
    from judgerl.training.judge_config import TrainJudgeConfig

    r = cfg.reasoning
    return TrainJudgeConfig(
        name="reasoning", output_dir=str(folder), variant="reasoning", base_model=cfg.base,
        annotations=str(annotations), finetune=finetune, lora={"r": r.lora.r, "alpha": r.lora.alpha}, seed=cfg.seed,
        sft={"learning_rate": r.sft_learning_rate, "num_train_epochs": r.sft_epochs,
             "per_device_train_batch_size": cfg.judges.micro_batch,
             "gradient_accumulation_steps": max(1, cfg.judges.batch_size // cfg.judges.micro_batch),
             "max_length": cfg.judges.max_length, "logging_steps": 10},
        grpo={"learning_rate": r.grpo_learning_rate, "max_steps": max(1, r.grpo_steps),
              "num_generations": r.grpo_generations,
              "per_device_train_batch_size": r.grpo_prompts * r.grpo_generations, "temperature": 1.0,
              "max_prompt_length": cfg.judges.max_length, "max_completion_length": r.max_new_tokens + VERDICT_ROOM,
              "loss_type": "dapo", "epsilon": 0.2, "epsilon_high": 0.3, "beta": 0.0, "logging_steps": 1},
        judge_sampling={"temperature": 0.0, "max_new_tokens": r.max_new_tokens + VERDICT_ROOM})


def train_reasoning_judge(cfg: StudyConfig, labels: Path, traces: Path, folder: Path,
                          log: Callable[[str], None]) -> dict:
    """Steps 2-3: SFT on the kept traces (adapter sft_adapter/), GRPO on the gold labels (adapter adapter/)."""
    from peft import get_peft_model

    from judgerl.config import dump_yaml
    from judgerl.study.adapters import check_adapter, merged_model, save_adapter
    from judgerl.training.checkpoints import load_causal, peft_config
    from judgerl.training.judge_grpo import run_grpo
    from judgerl.training.judge_sft import run_sft
    from judgerl.training.train_judge import judge_spec

    r = cfg.reasoning
    folder.mkdir(parents=True, exist_ok=True)
    sft_cfg = _train_config(cfg, folder, traces, "lora")
    spec = judge_spec(sft_cfg, str((folder / "merged").resolve()))
    stats: dict = {}
    done = folder / "sft_adapter"
    if (done / "adapter.json").is_file():  # a re-run (e.g. its GRPO stage was cut off): the SFT stage is kept
        log("judge reasoning: SFT adapter of an earlier run kept, merged")
        sft_adapter = check_adapter(done)
        if (folder / "sft.json").is_file():
            stats.update(json.loads((folder / "sft.json").read_text(encoding="utf-8")))
        model, tok = load_causal(str(merged_model(cfg.base, done, "causal", folder / "merged_sft").resolve()),
                                 sft_cfg.dtype)
    else:
        model, tok = load_causal(cfg.base, sft_cfg.dtype)
        log(f"judge reasoning: SFT (LoRA r{r.lora.r}) on the kept traces")
        with open(folder / "train.log", "a", encoding="utf-8") as f, contextlib.redirect_stdout(f):
            model, st = run_sft(sft_cfg, spec, model, tok, str(folder / "checkpoints-sft"))
        stats.update(st)
        sft_adapter = save_adapter(model, done, {"base": cfg.base, "kind": "causal", "stage": "sft"})
        (folder / "sft.json").write_text(json.dumps(st, indent=2, default=float), encoding="utf-8")
        model = model.merge_and_unload()
    grpo_adapter = None
    if r.grpo_steps > 0:
        g_cfg = _train_config(cfg, folder, labels, "full")  # the LoRA is applied here, so that it can be kept
        model = get_peft_model(model, peft_config(sft_cfg))  # the same LoRA settings as the SFT stage
        log(f"judge reasoning: GRPO (Eq. 1 reward, gold labels) for {r.grpo_steps} steps")
        with open(folder / "train.log", "a", encoding="utf-8") as f, contextlib.redirect_stdout(f):
            model, st = run_grpo(g_cfg, spec, model, tok, str(folder / "checkpoints-grpo"))
        stats.update(st)
        grpo_adapter = save_adapter(model, folder / "adapter", {"base": "sft_adapter merged into " + cfg.base,
                                                                 "kind": "causal", "stage": "grpo"})
    del model
    merged = merged_reasoning(cfg, folder)
    dump_yaml(spec.model_copy(update={"model": str(merged.resolve())}), folder / "judge.yaml")
    rec = {"train": stats, "sft_adapter": sft_adapter, "adapter": grpo_adapter}
    (folder / "train.json").write_text(json.dumps(rec, indent=2, default=float), encoding="utf-8")
    return rec


def has_grpo_adapter(folder: Path) -> bool:
    """Whether the GRPO stage saved an adapter (an empty adapter/ folder, e.g. made by a copy script, is none)."""
    return (folder / "adapter" / "adapter_config.json").is_file()


def merged_reasoning(cfg: StudyConfig, folder: Path) -> Path:
    """base + sft_adapter (+ adapter, the GRPO stage) merged into folder/merged (rebuilt from the adapters)."""
    from judgerl.study.adapters import merged_model

    sft = merged_model(cfg.base, folder / "sft_adapter", "causal", folder / "merged_sft")
    if not has_grpo_adapter(folder):
        return sft
    return merged_model(str(sft.resolve()), folder / "adapter", "causal", folder / "merged")


def reasoning_spec(cfg: StudyConfig, folder: Path, batch_size: int = 64):
    """The reasoning judge's JudgeSpec: base + SFT (+ GRPO when that stage's adapter exists). Without judge.yaml
    (a run whose GRPO stage did not finish) the spec is rebuilt from the config, as training saved it."""
    from judgerl.config import load_judge_spec
    from judgerl.training.train_judge import judge_spec

    merged = folder / "merged" if has_grpo_adapter(folder) else folder / "merged_sft"
    spec = load_judge_spec(str(folder / "judge.yaml")) if (folder / "judge.yaml").is_file() else \
        judge_spec(_train_config(cfg, folder, folder, "lora"), str(merged.resolve()))
    stage = "sft+grpo" if has_grpo_adapter(folder) else "sft only"
    return spec.model_copy(update={"name": f"reasoning ({stage})", "device": cfg.device, "batch_size": batch_size,
                                   "model": str(merged.resolve())})
