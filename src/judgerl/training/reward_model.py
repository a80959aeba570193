"""Bradley-Terry reward model on the pairwise gold labels (TRL RewardTrainer): the classic non-reasoning
baseline, and a cheap gold judge for small-scale studies.

Algorithm choices:
- Loss -log sigmoid(r(x, y_chosen) - r(x, y_rejected)) (TRL RewardTrainer), optional reward centering.
- Input = the chat template applied to [user: instruction, assistant: response] (the usual RM input;
  the prompt's chat messages are kept as they are). Chosen/rejected come from the gold `label`; with
  `rm.consistent_only` only order-consistent gold labels are used.
- Sequence-classification head with one output (AutoModelForSequenceClassification, num_labels=1);
  the checkpoint is saved in HF format with a JudgeSpec of backend `rm` (scalar reward as the score).
"""

from __future__ import annotations

from judgerl import JudgerlError
from judgerl.model_loader import load_model
from judgerl.training.checkpoints import peft_config, training_precision
from judgerl.training.judge_config import TrainJudgeConfig
from judgerl.training.judge_data import load_examples, require_rows


def prompt_messages(prompt) -> list[dict]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def preference_rows(cfg: TrainJudgeConfig, split: str, limit: int | None = None) -> list[dict]:
    """Pairwise gold labels -> TRL implicit-prompt preference rows."""
    from judgerl.annotate.dataset import load_annotations

    examples = load_examples(cfg.annotations, "pairwise", split, limit=limit)
    if cfg.rm.consistent_only:
        consistent = {str(r.get("item_id")) for r in load_annotations(cfg.annotations, "pairwise", split)
                      if r.get("consistent")}
        examples = [e for e in examples if e.item_id in consistent]
    rows = []
    for ex in examples:
        r1, r2 = ex.request.responses
        chosen, rejected = (r1, r2) if ex.gold == 1 else (r2, r1)
        rows.append({"prompt": prompt_messages(ex.request.prompt),
                     "chosen": [{"role": "assistant", "content": chosen}],
                     "rejected": [{"role": "assistant", "content": rejected}]})
    return rows


def run_reward_model(cfg: TrainJudgeConfig, out_dir: str, callbacks: list | None = None) -> tuple:
    """Train a BT reward model from cfg.base_model; returns (model, tokenizer, stats). `callbacks`: extra
    TrainerCallbacks (e.g. a wall-clock budget)."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    rows = preference_rows(cfg, cfg.train_split, cfg.limit)
    if not rows:
        raise JudgerlError(f"{cfg.annotations}: no order-consistent pairs for rm.consistent_only")
    model, tok = load_model(cfg.base_model, "reward", device=None, dtype=cfg.dtype, padding_side=None)
    r = cfg.rm
    args = RewardConfig(
        output_dir=str(out_dir), learning_rate=r.learning_rate, lr_scheduler_type=r.lr_scheduler_type,
        warmup_steps=r.warmup_ratio, num_train_epochs=r.num_train_epochs, max_steps=r.max_steps,
        per_device_train_batch_size=r.per_device_train_batch_size,
        gradient_accumulation_steps=r.gradient_accumulation_steps, max_length=r.max_length,
        center_rewards_coefficient=r.center_rewards_coefficient, logging_steps=r.logging_steps,
        save_strategy="no", report_to=[], seed=cfg.seed, **training_precision(),
    )
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                            peft_config=peft_config(cfg, task_type="SEQ_CLS"), callbacks=callbacks)
    n_kept = len(trainer.train_dataset)
    require_rows(list(range(n_kept)), len(rows), "reward-model", "rm.max_length")
    result = trainer.train()
    stats = {"rm_train_pairs": n_kept, "rm_dropped_too_long": len(rows) - n_kept,
             "rm_steps": trainer.state.global_step, "rm_train_loss": float(result.training_loss)}
    return trainer.model, tok, stats

