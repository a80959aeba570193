"""Judge SFT (TRL SFTTrainer): the non-reasoning, rubric and distillation stages.

Algorithm choices:
- Examples are pre-tokenised by `judge_data.tokenize_sft`: the prompt is exactly the hf judge's
  rendered chat prompt (same JudgeSpec, same template), the target is the verdict line (non-reasoning,
  rubric) or gold reasoning + verdict line (distillation), ending with the end-of-turn token so that a
  reasoning judge learns to stop. Prompt and target are tokenised as one string, as at inference.
- Loss on the target tokens only (`completion_only_loss` over the assistant turn = assistant-only loss).
- Examples longer than `sft.max_length` are dropped and counted, never truncated.
- Paper defaults: lr 1e-5, linear decay, 3% warm-up; epochs optionally picked by validation loss or by
  the judge's validation agreement (`judge_selection`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from judgerl.judges.spec import JudgeSpec
from judgerl.training.checkpoints import peft_config, training_precision
from judgerl.training.judge_config import TrainJudgeConfig
from judgerl.training.judge_data import load_examples, require_rows, tokenize_sft

log = logging.getLogger(__name__)


def sft_datasets(cfg: TrainJudgeConfig, spec: JudgeSpec, tok) -> tuple:
    """(train Dataset, validation Dataset | None, stats)."""
    from datasets import Dataset

    need_reasoning = cfg.variant == "reasoning"
    need_rubric = cfg.variant == "rubric"
    train = load_examples(cfg.annotations, cfg.format, cfg.train_split, cfg.score_min, cfg.score_max,
                          cfg.limit, need_reasoning=need_reasoning, need_rubric=need_rubric)
    rows, dropped = tokenize_sft(tok, spec, train, cfg.sft.max_length, cfg.think_tags)
    require_rows(rows, dropped, "SFT", "sft.max_length")
    stats = {"sft_train_examples": len(rows), "sft_dropped_too_long": dropped}
    val_ds = None
    if cfg.sft.select_by_validation and cfg.sft.select_metric == "loss":
        val = load_examples(cfg.annotations, cfg.format, cfg.validation_split, cfg.score_min, cfg.score_max,
                            None, need_reasoning=need_reasoning, need_rubric=need_rubric)
        vrows, _ = tokenize_sft(tok, spec, val, cfg.sft.max_length, cfg.think_tags)
        require_rows(vrows, len(val), "validation", "sft.max_length")
        val_ds = Dataset.from_list(vrows)
        stats["sft_validation_examples"] = len(vrows)
    return Dataset.from_list(rows), val_ds, stats


def run_sft(cfg: TrainJudgeConfig, spec: JudgeSpec, model, tok, out_dir: str, ledger=None) -> tuple:
    """Train `model` in place with SFT; returns (trained model (LoRA not yet merged), stats). With
    `sft.select_by_validation`, the model returned has the best epoch's weights."""
    from trl import SFTConfig, SFTTrainer

    train_ds, val_ds, stats = sft_datasets(cfg, spec, tok)
    s = cfg.sft
    select = val_ds is not None  # by validation loss, through the Trainer's own evaluation
    periodic = bool(s.save_steps) and not select  # resumable: the last checkpoint kept, picked up on a re-run
    selector = None
    if "sft" in cfg.judged_selection:
        from judgerl.training.judge_selection import ValidationSelector

        selector = ValidationSelector(cfg, spec, tok, stage="sft", max_new_tokens=spec.sampling.max_new_tokens,
                                      every_epoch=True, ledger=ledger)
    args = SFTConfig(
        output_dir=str(out_dir), learning_rate=s.learning_rate, lr_scheduler_type=s.lr_scheduler_type,
        warmup_steps=s.warmup_ratio, num_train_epochs=s.num_train_epochs, max_steps=s.max_steps,
        per_device_train_batch_size=s.per_device_train_batch_size,
        gradient_accumulation_steps=s.gradient_accumulation_steps, weight_decay=s.weight_decay,
        max_length=s.max_length, completion_only_loss=True, gradient_checkpointing=s.gradient_checkpointing,
        logging_steps=s.logging_steps, save_strategy="epoch" if select else "steps" if periodic else s.save_strategy,
        save_steps=s.save_steps or 500,
        eval_strategy="epoch" if select else "no", load_best_model_at_end=select,
        metric_for_best_model="eval_loss" if select else None, greater_is_better=False if select else None,
        save_total_limit=1 if periodic else None, report_to=[], seed=cfg.seed, dataset_num_proc=None, **training_precision(),
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
                         processing_class=tok, peft_config=peft_config(cfg), callbacks=[selector] if selector else None)
    resume = latest_checkpoint(out_dir) if periodic else None
    if resume:
        stats["sft_resumed_from_step"] = int(resume.rsplit("-", 1)[1])
    result = trainer.train(resume_from_checkpoint=resume)
    if selector:
        stats.update(selector.stats())
    stats.update({"sft_steps": trainer.state.global_step, "sft_train_loss": float(result.training_loss)})
    if select and trainer.state.best_metric is not None:
        stats["sft_best_eval_loss"] = float(trainer.state.best_metric)
    return trainer.model, stats


def latest_checkpoint(out_dir: str) -> str | None:
    """The Trainer's newest complete checkpoint-<step> folder in `out_dir` (None: none to resume from)."""
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(out_dir) if Path(out_dir).is_dir() else None
