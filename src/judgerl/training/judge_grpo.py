"""Judge GRPO (TRL GRPOTrainer) with the paper's verifiable reward: the reasoning variant's second stage,
and the whole of the RL-only ablation.

Algorithm choices (paper §4, Eq. 1-3; all configurable under `grpo:`):
- Reward: Eq. 1 (pointwise) / Eq. 3 (pairwise) from `judge_rewards`, validity by the strict parser.
- G = num_generations samples per prompt at temperature 1.0; advantage (r - mean) / std within the
  group (`scale_rewards: group`), applied to every token of the sample.
- Token-level importance ratio (`importance_sampling_level: token`) and clipped surrogate with
  asymmetric clipping epsilon_low 0.2 / epsilon_high 0.3.
- Aggregation `loss_type: dapo` (token-mean, verl's default); `grpo` gives Eq. 2's 1/|y_i| then 1/G.
- beta = 0: no KL term, so TRL loads no reference model.
- Checkpoint choice: the last step, or with `select_every` the best validation point (`judge_selection`).
- Prompts are the judge's chat messages (`prompts.render` with the saved JudgeSpec); TRL applies the
  same chat template as the hf backend. TRL tokenises the rendered text, so control-token spellings
  inside a candidate are broken with a space first (`judge_data.grpo_messages`), as the openai backend does. Prompts over `max_prompt_length` tokens are dropped, not cut.
"""

from __future__ import annotations

import logging

from judgerl.judges.spec import JudgeSpec
from judgerl.training.checkpoints import peft_config, training_precision
from judgerl.training.judge_config import TrainJudgeConfig
from judgerl.training.judge_data import grpo_messages, load_examples, prompt_ids, require_rows
from judgerl.training.judge_rewards import JudgeGRPOReward

log = logging.getLogger(__name__)


def grpo_dataset(cfg: TrainJudgeConfig, spec: JudgeSpec, tok) -> tuple:
    """Dataset of {prompt: chat messages, gold: label}, and stats."""
    from datasets import Dataset

    examples = load_examples(cfg.annotations, cfg.format, cfg.train_split, cfg.score_min, cfg.score_max,
                             cfg.limit, need_rubric=spec.rubric)
    rows, dropped = [], 0
    for ex in examples:
        if len(prompt_ids(tok, spec, ex.request)) > cfg.grpo.max_prompt_length:
            dropped += 1
            continue
        rows.append({"prompt": grpo_messages(spec, ex.request), "gold": ex.gold})
    require_rows(rows, dropped, "GRPO", "grpo.max_prompt_length")
    return Dataset.from_list(rows), {"grpo_train_prompts": len(rows), "grpo_dropped_too_long": dropped}


def run_grpo(cfg: TrainJudgeConfig, spec: JudgeSpec, model, tok, out_dir: str, ledger=None) -> tuple:
    """Train `model` with GRPO; returns (trained model (LoRA not yet merged), stats). With
    `grpo.select_every`, the model returned has the best validation weights (`judge_selection`)."""
    from trl import GRPOConfig, GRPOTrainer

    ds, stats = grpo_dataset(cfg, spec, tok)
    g = cfg.grpo
    args = GRPOConfig(
        output_dir=str(out_dir), learning_rate=g.learning_rate, lr_scheduler_type=g.lr_scheduler_type,
        warmup_steps=g.warmup_ratio, max_steps=g.max_steps, num_train_epochs=g.num_train_epochs,
        per_device_train_batch_size=g.per_device_train_batch_size,
        gradient_accumulation_steps=g.gradient_accumulation_steps, steps_per_generation=g.steps_per_generation,
        num_generations=g.num_generations, temperature=g.temperature, top_p=g.top_p,
        max_completion_length=g.max_completion_length, loss_type=g.loss_type,
        importance_sampling_level=g.importance_sampling_level, epsilon=g.epsilon, epsilon_high=g.epsilon_high,
        beta=g.beta, scale_rewards=g.scale_rewards, num_iterations=g.num_iterations,
        mask_truncated_completions=g.mask_truncated_completions, gradient_checkpointing=g.gradient_checkpointing,
        logging_steps=g.logging_steps, save_strategy="steps" if g.save_steps else "no",
        save_steps=g.save_steps or 500, report_to=[], seed=cfg.seed, **training_precision(),
    )
    reward = JudgeGRPOReward(cfg.format, cfg.score_min, cfg.score_max)
    selector = None
    if "grpo" in cfg.judged_selection:
        from judgerl.training.judge_selection import ValidationSelector

        selector = ValidationSelector(cfg, spec, tok, stage="grpo", max_new_tokens=g.max_completion_length,
                                      every_steps=g.select_every, include_start=True, ledger=ledger)
    trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=args, train_dataset=ds,
                          processing_class=tok, peft_config=peft_config(cfg),
                          callbacks=[selector] if selector else None)
    trainer.train()
    if selector:
        stats.update(selector.stats())
    history = [h for h in trainer.state.log_history if "reward" in h]
    stats.update({"grpo_steps": trainer.state.global_step,
                  "grpo_reward_first": history[0]["reward"] if history else None,
                  "grpo_reward_last": history[-1]["reward"] if history else None})
    return trainer.model, stats
