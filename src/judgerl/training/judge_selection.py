"""Checkpoint selection by validation agreement, for judge SFT epochs and GRPO steps (the paper picks
its SFT epochs and GRPO checkpoints by validation).

`ValidationSelector` is a transformers `TrainerCallback`. At its points (SFT: each epoch end; GRPO:
before the first step, every `grpo.select_every` steps and after the last) it scores the validation
split with the model being trained, through the hf backend (the judge's own prompt, parser and
decoding, no verdict cache: the weights change between calls), and keeps a CPU copy of the trainable
weights (LoRA: the adapters) of the best point. When training ends those weights are put back, so the
judge saved is the best one seen. For GRPO, step 0 (the model before GRPO) is a candidate too: GRPO
that only hurts is not kept.

Metric: the one `eval-judge` reports first. Pointwise: Krippendorff's α (interval) of the judge's labels
against the gold scores, invalid verdicts counted as missing. Pairwise: accuracy over both orders.
Ties go to the earlier point; if no point has a defined metric (all verdicts invalid, or
constant labels), the last weights stay. Every process scores the same rows, so all ranks restore the
same point; sharded parameters (DeepSpeed ZeRO-3, FSDP) are refused before training starts.
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
        raise JudgerlError("selection by validation agreement needs whole parameters on every process; it is "
                           "not supported under DeepSpeed ZeRO-3 or FSDP (set grpo.select_every: 0 and "
                           "sft.select_metric: loss)")


def validation_metric(cfg: TrainJudgeConfig, spec: JudgeSpec, judge) -> dict:
    """{"metric", "invalid_rate", "n"} of `judge` on the configured validation split."""
    from judgerl.evaluation.eval_judge import eval_pairwise, eval_pointwise

    limit = cfg.validation_limit
    if spec.format == "pointwise":
        res = eval_pointwise(judge, spec, cfg.annotations, cfg.validation_split, limit)
        metric = res["alpha"]
    else:
        res = eval_pairwise(judge, spec, cfg.annotations, cfg.validation_split, limit, both_orders=True)
        metric = res["accuracy"]
    return {"metric": metric, "invalid_rate": res["invalid_rate"], "n": res["n"]}


class ValidationSelector(TrainerCallback):
    """Scores the model on the validation split during training and restores the best weights at the end."""

    def __init__(self, cfg: TrainJudgeConfig, spec: JudgeSpec, tokenizer, *, stage: str, max_new_tokens: int,
                 every_steps: int = 0, every_epoch: bool = False, include_start: bool = False, ledger=None):
        self.cfg, self.tok, self.ledger, self.stage = cfg, tokenizer, ledger, stage
        self.every_steps, self.every_epoch, self.include_start = every_steps, every_epoch, include_start
        self.spec = spec.model_copy(update={"sampling": spec.sampling.model_copy(
            update={"max_new_tokens": min(spec.sampling.max_new_tokens, max_new_tokens)})})
        self.history: list[dict] = []
        self.best: dict | None = None
        self._best_weights: dict | None = None
        self._judge = None

    def judge(self, model):
        """The judge over the model in training, built at the first point (one backend, one ledger)."""
        from judgerl.judges.judge import Judge

        if self._judge is None or self._judge.backend.model is not model:
            self._judge = Judge(self.spec, ledger=self.ledger, stage=f"{self.stage}-validation", model=model,
                                tokenizer=self.tok)
            self._judge.backend.fast = False  # no CUDA graphs / attention swap on the model being trained
        return self._judge

    def score(self, model, step: int) -> dict:
        judge = self.judge(model)
        was_training = model.training
        model.eval()
        try:
            return validation_metric(self.cfg, self.spec, judge)
        finally:
            model.train(was_training)

    def _record(self, model, state) -> None:
        if self.history and self.history[-1]["step"] == state.global_step:
            return
        rec = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), **self.score(model, state.global_step)}
        self.history.append(rec)
        m = rec["metric"]
        if m is not None and (self.best is None or m > self.best["metric"]):
            self.best = rec
            self._best_weights = {n: p.detach().to("cpu", copy=True)
                                  for n, p in model.named_parameters() if p.requires_grad}

    def on_train_begin(self, args, state, control, model=None, **kw):
        if self.include_start:
            self._record(model, state)

    def on_step_end(self, args, state, control, model=None, **kw):
        if self.every_steps and state.global_step % self.every_steps == 0:
            self._record(model, state)

    def on_epoch_end(self, args, state, control, model=None, **kw):
        if self.every_epoch:
            self._record(model, state)

    def on_train_end(self, args, state, control, model=None, **kw):
        import torch

        self._record(model, state)
        if self._best_weights is None or self.best["step"] == state.global_step:
            return
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in self._best_weights:
                    p.copy_(self._best_weights[n].to(p.device))

    def stats(self) -> dict:
        s = self.stage
        return {f"{s}_validation": self.history, f"{s}_best_step": self.best["step"] if self.best else None,
                f"{s}_best_metric": self.best["metric"] if self.best else None}
