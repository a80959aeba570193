"""Best-checkpoint selection for judge GRPO (the paper picks its GRPO judge checkpoints by validation).

`ValidationSelector` is a transformers `TrainerCallback`. Before the first step, every
`grpo.select_every` steps and after the last one, it scores the validation split with the model being
trained, through the hf backend (the judge's own prompt, parser and decoding, no verdict cache: the
weights change between calls), and keeps a CPU copy of the trainable weights (LoRA: the adapters) of the
best point. When training ends those weights are put back, so the judge saved is the best one seen.
Step 0, the model before GRPO, is a candidate too: GRPO that only hurts is not kept.

Metric: the one `eval-judge` reports first. Pointwise: Krippendorff's α (interval) of the judge's labels
against the gold scores, invalid verdicts counted as missing. Pairwise: accuracy over both orders.
Ties go to the earlier step; if no point has a defined metric (all verdicts invalid, or
constant labels), the last weights stay. Every process scores the same rows, so all ranks restore the same step;
sharded parameters (DeepSpeed ZeRO-3, FSDP) are refused before training starts.
"""

from __future__ import annotations

import os

from transformers import TrainerCallback

from judgerl import JudgerlError
from judgerl.judges.spec import JudgeSpec
from judgerl.training.judge_config import TrainJudgeConfig


def check_selection_supported() -> None:
    zero3 = os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true" and \
        os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3"
    if zero3 or os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        raise JudgerlError("grpo.select_every needs whole parameters on every process; it is not supported "
                           "under DeepSpeed ZeRO-3 or FSDP (set grpo.select_every: 0)")


def validation_metric(cfg: TrainJudgeConfig, spec: JudgeSpec, judge) -> dict:
    """{"metric", "invalid_rate", "n"} of `judge` on the configured validation split."""
    from judgerl.evaluation.eval_judge import eval_pairwise, eval_pointwise

    limit = cfg.grpo.validation_limit
    if spec.format == "pointwise":
        res = eval_pointwise(judge, spec, cfg.annotations, cfg.validation_split, limit)
        metric = res["alpha"]
    else:
        res = eval_pairwise(judge, spec, cfg.annotations, cfg.validation_split, limit, both_orders=True)
        metric = res["accuracy"]
    return {"metric": metric, "invalid_rate": res["invalid_rate"], "n": res["n"]}


class ValidationSelector(TrainerCallback):
    """Scores the model on the validation split during GRPO and restores the best weights at the end."""

    def __init__(self, cfg: TrainJudgeConfig, spec: JudgeSpec, tokenizer, ledger=None):
        self.cfg, self.tok, self.ledger = cfg, tokenizer, ledger
        # validation decodes as the judge is trained to: at most max_completion_length new tokens
        self.spec = spec.model_copy(update={"sampling": spec.sampling.model_copy(
            update={"max_new_tokens": min(spec.sampling.max_new_tokens, cfg.grpo.max_completion_length)})})
        self.history: list[dict] = []
        self.best: dict | None = None
        self._best_weights: dict | None = None

    def score(self, model, step: int) -> dict:
        from judgerl.judges.judge import Judge

        judge = Judge(self.spec, ledger=self.ledger, stage="grpo-validation", model=model, tokenizer=self.tok)
        judge.backend.fast = False  # no CUDA graphs / attention swap on the model being trained
        was_training = model.training
        model.eval()
        try:
            return validation_metric(self.cfg, self.spec, judge)
        finally:
            model.train(was_training)

    def _record(self, model, step: int) -> None:
        if self.history and self.history[-1]["step"] == step:
            return
        rec = {"step": step, **self.score(model, step)}
        self.history.append(rec)
        m = rec["metric"]
        if m is not None and (self.best is None or m > self.best["metric"]):
            self.best = rec
            self._best_weights = {n: p.detach().to("cpu", copy=True)
                                  for n, p in model.named_parameters() if p.requires_grad}

    def on_train_begin(self, args, state, control, model=None, **kw):
        self._record(model, state.global_step)

    def on_step_end(self, args, state, control, model=None, **kw):
        if state.global_step % self.cfg.grpo.select_every == 0:
            self._record(model, state.global_step)

    def on_train_end(self, args, state, control, model=None, **kw):
        import torch

        self._record(model, state.global_step)
        if self._best_weights is None or self.best["step"] == state.global_step:
            return
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in self._best_weights:
                    p.copy_(self._best_weights[n].to(p.device))

    def stats(self) -> dict:
        return {"grpo_validation": self.history, "grpo_best_step": self.best["step"] if self.best else None,
                "grpo_best_metric": self.best["metric"] if self.best else None}
