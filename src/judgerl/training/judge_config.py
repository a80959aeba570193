"""TrainJudgeConfig: what `judgerl train-judge --config judge.yaml` reads (typed fields with help text).

Variants (paper §4):
- non_reasoning: SFT on the verdict line only (`Score: N`), loss on the assistant turn only.
- reasoning:     SFT distillation on the gold thinking + verdict, then GRPO with the verifiable reward.
- rl_only:       GRPO from the base model, no distillation (ablation).
- rubric:        non_reasoning SFT with the item's gold rubric in the judge prompt (ablation).
- bt_rm:         Bradley-Terry scalar reward model (TRL RewardTrainer) on the pairwise gold labels.
Defaults are small (embedded SmolLM2, CPU); configs/paper/*.yaml hold the paper's hyperparameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from judgerl.judges.spec import Sampling

Variant = Literal["non_reasoning", "reasoning", "rl_only", "rubric", "bt_rm"]


class LoraSettings(BaseModel):
    """peft LoRA adapter settings (used when finetune: lora). Adapters are merged before saving."""

    model_config = ConfigDict(extra="forbid")
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA scaling alpha.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    target_modules: list[str] | str = Field("all-linear", description="Modules to adapt ('all-linear' or names).")


class SFTSettings(BaseModel):
    """Judge SFT (TRL SFTTrainer). Paper: lr 1e-5, linear schedule, 3% warmup, batch 128, 1-2 epochs
    non-reasoning and 2-3 reasoning, chosen by validation."""

    model_config = ConfigDict(extra="forbid")
    learning_rate: float = Field(1e-5, gt=0, description="Peak learning rate (paper: 1e-5).")
    lr_scheduler_type: str = Field("linear", description="transformers scheduler name (paper: linear).")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Fraction of steps for warm-up (paper: 3%).")
    num_train_epochs: float = Field(2.0, gt=0, description="Epochs (paper: 1-2 non-reasoning, 2-3 reasoning).")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps (-1: run the epochs).")
    per_device_train_batch_size: int = Field(4, ge=1, description="Examples per device per micro-step.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Global batch = per-device x devices x this.")
    max_length: int = Field(4096, ge=16, description="Max prompt+target tokens; longer examples are dropped "
                            "(truncating a judge prompt would teach the wrong task).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    select_by_validation: bool = Field(False, description="Evaluate the validation split every epoch and keep the "
                                       "best epoch (paper: epochs chosen by validation).")
    select_metric: Literal["loss", "alpha"] = Field("loss", description="loss: lowest validation loss (teacher "
                                                    "forcing, cheap). alpha: the judge's own verdicts on the "
                                                    "validation split, best Krippendorff alpha (pairwise: "
                                                    "accuracy); costs one judging pass per epoch.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in the backward pass (less memory, slower).")
    logging_steps: int = Field(10, ge=1, description="Log trainer metrics every N steps.")
    save_strategy: Literal["no", "epoch", "steps"] = Field("no", description="Intermediate TRL checkpoints.")
    save_steps: int = Field(0, ge=0, description="Keep a checkpoint every N optimizer steps (only the last) and "
                            "resume from the latest one in the output folder when the same training runs again "
                            "(0: off). Ignored with select_by_validation (it checkpoints every epoch).")


class GRPOSettings(BaseModel):
    """Judge GRPO (TRL GRPOTrainer) with the verifiable reward (Eq. 1 / Eq. 3). Paper: lr 1e-6, batch 2048 /
    mini-batch 512, 8 samples per prompt, temperature 1.0, eps 0.2 / 0.3, beta 0, max 4096 / 4096 tokens."""

    model_config = ConfigDict(extra="forbid")
    learning_rate: float = Field(1e-6, gt=0, description="Paper: 1e-6.")
    lr_scheduler_type: str = Field("constant", description="Learning-rate schedule (transformers name: constant, linear, cosine ...).")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="Fraction of the steps spent warming the learning rate up.")
    max_steps: int = Field(200, description="Optimizer steps (paper: best checkpoint at 100-200). -1: use epochs.")
    num_train_epochs: float = Field(1.0, gt=0, description="Passes over the training split (when max_steps is -1).")
    num_generations: int = Field(8, ge=2, description="G samples per prompt (paper: 8).")
    per_device_train_batch_size: int = Field(8, ge=1, description="Completions per device per micro-step; "
                                             "must be divisible into whole groups with the generation batch.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-steps accumulated per optimiser step.")
    steps_per_generation: int | None = Field(None, ge=1, description="Micro-steps per generation batch (TRL); "
                                             "generation batch / optimizer batch = mini-batch updates per rollout.")
    temperature: float = Field(1.0, gt=0, description="Rollout sampling temperature (paper: 1.0).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling threshold of the judge's GRPO rollouts (1 = off).")
    max_prompt_length: int = Field(4096, ge=16, description="Prompts longer than this are dropped (paper: 4096).")
    max_completion_length: int = Field(4096, ge=1, description="Rollout budget in tokens (paper: 4096).")
    loss_type: Literal["dapo", "grpo", "dr_grpo", "bnpo"] = Field(
        "dapo", description="Token-level aggregation: 'dapo' = token-mean over the batch (verl's default "
        "token-mean); 'grpo' = Eq. 2 read literally (1/|y_i| per sample, then 1/G).")
    importance_sampling_level: Literal["token", "sequence"] = Field("token", description="Token-level ratio (Eq. 2).")
    epsilon: float = Field(0.2, gt=0, description="Lower clip epsilon_low (paper: 0.2).")
    epsilon_high: float = Field(0.3, gt=0, description="Upper clip epsilon_high (paper: 0.3).")
    beta: float = Field(0.0, ge=0, description="KL coefficient (paper: 0, no KL; no reference model is loaded).")
    scale_rewards: Literal["group", "batch", "none"] = Field("group", description="Advantage (r - mean) / std "
                                                            "within the group (Eq. 2).")
    num_iterations: int = Field(1, ge=1, description="Updates per rollout batch (mu).")
    mask_truncated_completions: bool = Field(False, description="Drop truncated rollouts from the loss. Off: a "
                                             "truncated rollout has no verdict, scores -1, and is penalised.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in the backward pass (less memory, slower).")
    logging_steps: int = Field(10, ge=1, description="Log trainer metrics every N steps.")
    save_steps: int = Field(0, ge=0, description="Save a TRL checkpoint every N steps (0: none).")
    select_every: int = Field(0, ge=0, description="Score the validation split every N steps (and before the "
                              "first and after the last) and keep the weights with the best validation alpha "
                              "(pairwise: accuracy), decoding at most max_completion_length tokens; 0: keep the "
                              "last step. Paper: GRPO checkpoints chosen by validation.")


class RMSettings(BaseModel):
    """Bradley-Terry reward model (TRL RewardTrainer): -log sigmoid(r_chosen - r_rejected)."""

    model_config = ConfigDict(extra="forbid")
    learning_rate: float = Field(1e-5, gt=0, description="AdamW learning rate.")
    lr_scheduler_type: str = Field("linear", description="Learning-rate schedule (transformers name: constant, linear, cosine ...).")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Fraction of the steps spent warming the learning rate up.")
    num_train_epochs: float = Field(1.0, gt=0, description="Passes over the training split (when max_steps is -1).")
    max_steps: int = Field(-1, description="Optimiser steps; -1 = num_train_epochs decides.")
    per_device_train_batch_size: int = Field(4, ge=1, description="Pairs per device per step.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-steps accumulated per optimiser step.")
    max_length: int = Field(4096, ge=16, description="Pairs longer than this are dropped.")
    center_rewards_coefficient: float | None = Field(None, description="Optional reward-centering penalty.")
    consistent_only: bool = Field(False, description="Use only pairs whose gold label agreed in both orders.")
    logging_steps: int = Field(10, ge=1, description="Log trainer metrics every N steps.")


class TrainJudgeConfig(BaseModel):
    """`judgerl train-judge` configuration."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("judge", description="Run name; output goes to runs/<name> unless output_dir is set.")
    output_dir: str | None = Field(None, description="Run directory (default runs/<name>). The judge is saved "
                                   "to <output_dir>/judge and its JudgeSpec to <output_dir>/judge.yaml.")
    variant: Variant = Field("non_reasoning", description="non_reasoning | reasoning | rl_only | rubric | bt_rm.")
    format: Literal["pointwise", "pairwise"] = Field("pointwise", description="Judge format (bt_rm: pairwise data, "
                                                     "pointwise scalar judge).")
    base_model: str = Field("smollm2-135m-instruct", description="Embedded model name, local folder or HF id.")
    annotations: str = Field(..., description="Annotation dataset folder (see judgerl.annotate.dataset).")
    train_split: str = Field("train", description="Annotation split the judge is trained on.")
    validation_split: str = Field("validation", description="Annotation split used for checkpoint selection and validation loss.")
    validation_limit: int | None = Field(None, ge=1, description="Validation rows judged at each selection point "
                                         "(sft.select_metric alpha, grpo.select_every; first N, default all).")
    limit: int | None = Field(None, ge=1, description="Use at most this many training rows (first N).")
    score_min: int = Field(0, ge=0, le=9, description="Must equal the annotations' score range.")
    score_max: int = Field(9, ge=0, le=9, description="Highest pointwise score (must match the annotation).")
    template: str | None = Field(None, description="Prompt template file; copied next to the saved judge.")
    think_tags: bool = Field(False, description="Wrap distilled reasoning in <think>...</think> (Qwen3 style).")
    finetune: Literal["full", "lora"] = Field("full", description="Full fine-tuning or a LoRA adapter (merged).")
    lora: LoraSettings = Field(default_factory=LoraSettings, description="LoRA adapter settings (used when finetune is lora).")
    dtype: Literal["auto", "float32", "bfloat16"] = Field("auto", description="auto: bf16 on GPU, fp32 on CPU.")
    seed: int = Field(0, description="Seed of the trainer and data order.")
    save_stages: bool = Field(True, description="Also save the SFT stage of the reasoning variant (<out>/sft).")
    sft: SFTSettings = Field(default_factory=SFTSettings, description="Supervised fine-tuning stage settings.")
    grpo: GRPOSettings = Field(default_factory=GRPOSettings, description="Judge GRPO stage settings (Eq. 1 / Eq. 3 rewards).")
    rm: RMSettings = Field(default_factory=RMSettings, description="Bradley-Terry reward-model stage settings.")
    judge_sampling: Sampling = Field(default_factory=lambda: Sampling(max_new_tokens=4096),
                                     description="Decoding settings written into the saved judge's spec.")

    @model_validator(mode="after")
    def _check(self) -> "TrainJudgeConfig":
        if self.score_min >= self.score_max:
            raise ValueError(f"score_min ({self.score_min}) must be below score_max ({self.score_max})")
        if self.template and not Path(self.template).is_file():
            raise ValueError(f"template file not found: {self.template}")
        if self.variant in ("reasoning", "rl_only"):
            g = self.grpo
            if (g.per_device_train_batch_size * (g.steps_per_generation or g.gradient_accumulation_steps)) \
                    % g.num_generations:
                raise ValueError(f"grpo: the generation batch (per_device_train_batch_size x steps_per_generation) "
                                 f"must be a multiple of num_generations ({g.num_generations})")
        return self

    @property
    def mode(self) -> str:
        """The saved judge's mode: reasoning variants think before the verdict."""
        return "reasoning" if self.variant in ("reasoning", "rl_only") else "direct"

    @property
    def stages(self) -> list[str]:
        return {"non_reasoning": ["sft"], "rubric": ["sft"], "reasoning": ["sft", "grpo"],
                "rl_only": ["grpo"], "bt_rm": ["rm"]}[self.variant]

    @property
    def judged_selection(self) -> list[str]:
        """The stages whose checkpoint is chosen by judging the validation split (`judge_selection`)."""
        on = {"sft": self.sft.select_by_validation and self.sft.select_metric == "alpha",
              "grpo": bool(self.grpo.select_every)}
        return [s for s in self.stages if on.get(s)]
