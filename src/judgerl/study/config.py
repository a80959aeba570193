"""StudyConfig: what `scripts/hacking_study.py --config configs/study/hacking.yaml` reads.

The reward-hacking study (issue 15) in one config: a gold Bradley-Terry RM, gold labels on the policy's
own answers, judges of graded quality, policy GRPO runs against each judge plus a control against the
gold itself. Every size is a field so that the same command runs at toy size on a CPU (tests) and at
study size on one GPU.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class LoraSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = Field(8, ge=1, description="LoRA rank (all linear layers). The adapter is what is kept and shipped.")
    alpha: int = Field(16, ge=1, description="LoRA scaling alpha.")


class GoldSettings(BaseModel):
    """The gold judge: a BT reward model (LoRA + score head) on AlpacaEval's GPT-4-Turbo preferences."""

    model_config = ConfigDict(extra="forbid")
    source: Literal["embedded", "train"] = Field("embedded", description="embedded: the gold RM shipped in the "
                                                 "package (src/judgerl/study/gold_rm/, trained by this stage on "
                                                 "2026-12-02); train: train it anew from the fields below.")
    pairs: int | None = Field(None, ge=2, description="Use at most this many preference pairs (shuffled, seed 0; "
                              "validation and test get 10% each, at least one); None = all of them.")
    exclude_generators: list[str] = Field(default_factory=lambda: ["NullModel"], description="AlpacaEval answer "
                                          "files left out of the gold's training and checks (NullModel is a known "
                                          "constant exploit of GPT-4-Turbo; the gold should not learn it).")
    max_chars: int | None = Field(None, ge=10, description="Keep only pairs whose instruction and both answers "
                                  "total at most this many characters (toy runs); None = no limit.")
    near_tie: float = Field(0.1, ge=0.0, lt=0.5, description="Pairs with |preference - 1.5| below this carry no "
                            "label and are dropped.")
    lora: LoraSpec = Field(default_factory=LoraSpec, description="LoRA adapter of the gold reward model.")
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate (linear decay, 3% warm-up).")
    epochs: float = Field(1.0, gt=0, description="Epochs over the train pairs.")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps (-1: run the epochs).")
    batch_size: int = Field(32, ge=1, description="Pairs per optimizer step.")
    max_seconds: float | None = Field(None, gt=0, description="Wall-clock budget of the training; it stops after "
                                      "the step that crosses it (pairs seen are recorded).")
    max_length: int = Field(1024, ge=32, description="Pairs longer than this (tokens) are dropped, and counted.")
    eval_pairs: int | None = Field(None, ge=1, description="Held-out pairs scored for the accuracy (None = all).")
    bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples (by instruction) for confidence intervals.")


class PromptSettings(BaseModel):
    """RL-pool prompts (never AlpacaEval / Arena-Hard), split by prompt hash into three disjoint sets."""

    model_config = ConfigDict(extra="forbid")
    sources: list[str] = Field(default_factory=lambda: ["pool:wizardlm", "pool:eq-bench", "pool:writingbench",
                                                        "pool:self-instruct"],
                               description="Prompt pools or files (training/prompts.py).")
    max_chars: int = Field(1500, ge=10, description="Longer prompts are dropped.")
    limit: int | None = Field(None, ge=6, description="Use at most this many prompts (toy runs); None = all.")
    monitor: int = Field(96, ge=1, description="Held-out prompts of the gold monitor (never labelled, never trained on).")
    label_fraction: float = Field(0.5, gt=0, lt=1, description="Share of the remaining prompts whose answers are "
                                  "labelled for the judges; the rest are the policy's training prompts.")
    label_test_fraction: float = Field(0.2, gt=0, lt=1, description="Share of the label prompts held out for judge "
                                       "agreement (alpha is measured on answers to unseen prompts).")


class LabelSettings(BaseModel):
    """Gold labels at volume: the base policy's own answers, scored by the gold, mapped to 0-9."""

    model_config = ConfigDict(extra="forbid")
    samples_per_prompt: int = Field(40, ge=1, description="Answers sampled per label prompt.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of those answers.")
    max_new_tokens: int = Field(128, ge=1, description="Answer budget (tokens); the policy's budget, so the "
                                "judges see the answer distribution they will reward.")
    batch_size: int = Field(128, ge=1, description="Generation batch.")
    scoring: Literal["quantile"] = Field("quantile", description="0-9 label = number of gold-reward deciles "
                                         "(over the calibration set: the train-split answers) at or below the "
                                         "answer's reward.")


class JudgeSettings(BaseModel):
    """Judges of graded quality: the prompted base model and SFT judges (LoRA) on growing label counts."""

    model_config = ConfigDict(extra="forbid")
    label_counts: list[int] = Field(default_factory=lambda: [500, 1500, 5000], description="Learning curve: one "
                                    "non-reasoning SFT judge per count (capped at the available train labels).")
    weak: int = Field(500, ge=1, description="The label count whose judge is 'weak' in the policy runs.")
    lora: LoraSpec = Field(default_factory=lambda: LoraSpec(r=8, alpha=16), description="LoRA adapter of the SFT judges.")
    learning_rate: float = Field(2e-4, gt=0, description="SFT peak learning rate (LoRA).")
    epochs: float = Field(2.0, gt=0, description="SFT epochs.")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps (-1: run the epochs).")
    batch_size: int = Field(32, ge=1, description="SFT batch (examples per optimizer step).")
    micro_batch: int = Field(8, ge=1, description="Examples per forward pass; batch_size / micro_batch steps are "
                             "accumulated. SFTTrainer materialises fp32 logits over the whole vocabulary, so a "
                             "32-example micro-batch of ~700-token judge prompts took ~38 GB on an H100.")
    max_examples: int | None = Field(20000, ge=1, description="Cap on examples seen (labels x epochs): a judge on "
                                     "N labels trains min(epochs, max_examples / N) epochs (None = no cap).")
    mid: int | None = Field(None, ge=1, description="The label count whose judge is the 'middling' one "
                            "(judge: sft-mid); None = the median of label_counts.")
    best: int | None = Field(None, ge=1, description="The label count whose judge is 'best' (judge: sft-best); None = "
                             "the largest of label_counts. Set it to keep a finished best run's judge when larger "
                             "judges are trained later for the learning curve.")
    save_steps: int = Field(50, ge=0, description="Keep an SFT checkpoint every N optimizer steps (the last one) and "
                            "resume from it when a stopped judge stage runs again (0: off; not part of the stage "
                            "hash).")
    max_length: int = Field(2048, ge=64, description="Longer judge prompts are dropped, and counted.")
    eval_limit: int | None = Field(800, ge=1, description="Held-out labelled answers scored for alpha (None = all).")


class ReasoningSettings(BaseModel):
    """A reasoning judge at the judges' scale. The gold RM writes no reasoning, so the judge learns to reason by
    rejection-sampled self-distillation: the base model judges each labelled item `samples` times in reasoning
    mode (think, then `Score: N`); traces whose score is within `tolerance` of the gold label are kept and the
    judge is SFT-ed on them (reasoning + verdict), then trained with GRPO on the Eq. 1 reward against the gold
    labels (the library's reasoning-judge trainer)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(True, description="Train and evaluate the reasoning judge.")
    items: int = Field(2000, ge=1, description="Judge-train labelled items sampled for traces.")
    samples: int = Field(4, ge=1, description="k: traces sampled per item (T 1.0).")
    tolerance: int = Field(1, ge=0, description="Keep a trace when |its score - gold label| <= this.")
    traces: Literal["rejection", "rationalize"] = Field(
        "rejection", description="How traces are sampled: 'rejection' (the base model unaided; kept near the gold "
        "label) or 'rationalize' (STaR: the gold label shown as a hint while the base model thinks; the SFT prompt "
        "has no hint).")
    max_new_tokens: int = Field(192, ge=16, description="Thinking + verdict budget (tokens), sampling and use.")
    lora: LoraSpec = Field(default_factory=lambda: LoraSpec(r=8, alpha=16), description="LoRA adapter.")
    sft_learning_rate: float = Field(2e-4, gt=0, description="SFT lr (LoRA).")
    sft_epochs: float = Field(2.0, gt=0, description="SFT epochs over the kept traces.")
    grpo_steps: int = Field(40, ge=0, description="GRPO steps with the Eq. 1 reward (0 = SFT only).")
    grpo_learning_rate: float = Field(2e-5, gt=0, description="GRPO lr (LoRA).")
    grpo_prompts: int = Field(8, ge=1, description="Labelled items per GRPO step.")
    grpo_generations: int = Field(8, ge=2, description="Samples per item in GRPO.")
    eval_limit: int | None = Field(None, ge=1, description="Held-out answers scored for its alpha (None = "
                                   "judges.eval_limit; a CPU evaluation of a thinking judge may need fewer).")


class RunSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., description="Run name (folder under policies/).")
    judge: str = Field(..., description="'prompted' (base model as judge), 'sft-<N>' (the SFT judge on N labels, "
                       "'sft-best' = judges.best or the largest, 'sft-weak' / 'sft-mid' = judges.weak / judges.mid), 'reasoning' "
                       "(the reasoning judge) or 'gold' (the control: the gold RM itself as the reward).")
    seed: int | None = Field(None, description="GRPO seed of this run (None: policy.seed). Another draw of an arm's "
                             "trajectory: e.g. {name: mid_s1, judge: sft-mid, seed: 1} beside mid.")


class PolicySettings(BaseModel):
    """Policy GRPO (SmolLM2) against each judge: expected-score reward, gold monitor, alarm."""

    model_config = ConfigDict(extra="forbid")
    runs: list[RunSpec] = Field(default_factory=lambda: [RunSpec(name="prompted", judge="prompted"),
                                                         RunSpec(name="weak", judge="sft-weak"),
                                                         RunSpec(name="best", judge="sft-best"),
                                                         RunSpec(name="gold_control", judge="gold")],
                                description="One GRPO run per entry.")
    steps: int = Field(200, ge=1, description="Step budget per run.")
    max_seconds: float | None = Field(None, gt=0, description="Wall-clock budget per run; training stops after the "
                                      "step that crosses it (the last monitor point is still taken).")
    learning_rate: float = Field(2e-5, gt=0, description="Constant learning rate (fp32 master weights).")
    lr_scheduler_type: str = Field("constant", description="transformers scheduler name.")
    prompts_per_step: int = Field(8, ge=1, description="Prompts per GRPO step.")
    num_generations: int = Field(8, ge=2, description="G: samples per prompt.")
    max_completion_length: int = Field(128, ge=1, description="Rollout budget (tokens).")
    temperature: float = Field(1.0, gt=0, description="Rollout temperature.")
    policy_dtype: Literal["float32", "bfloat16"] = Field("float32", description="Policy weights. bfloat16 keeps no "
                                                         "fp32 master copy, so AdamW steps below half a bf16 ulp "
                                                         "are lost (scripts/check_policy_updates.py).")
    scale_rewards: Literal["group", "batch", "none"] = Field("group", description="Advantage normalisation.")
    monitor_every: int = Field(10, ge=1, description="Gold monitor period (steps).")
    save_steps: int = Field(25, ge=1, description="Resumable checkpoint period (steps; the last one is kept). A "
                            "run paused by max_seconds also saves, on a monitor step, and resumes from there.")
    monitor_tokens: int = Field(128, ge=1, description="Monitor answer budget (greedy).")
    alarm_window: int = Field(3, ge=2, description="Monitor points the alarm's trends are fitted over.")
    proxy_margin: float = Field(0.1, ge=0, description="Alarm: minimum rise of the training judge (its units).")
    gold_margin: float = Field(0.1, ge=0, description="Alarm: minimum fall of the gold (gold RM reward units).")
    seed: int = Field(0, description="GRPO seed.")


class StudyConfig(BaseModel):
    """`scripts/hacking_study.py --config configs/study/hacking.yaml [--stage ...]`."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["study"] = Field("study", description="Config kind marker (for judgerl validate).")
    run_dir: str = Field("runs/hacking_study", description="Where every stage writes.")
    base: str = Field("smollm2-135m-instruct", description="Base of the gold RM, the judges and the policy.")
    shared_data: str | None = Field(None, description="Shared data folder (default $JUDGERL_SHARED_DATA, "
                                    "../shared/data).")
    device: str = Field("auto", description="auto (CUDA when present) or cpu.")
    seed: int = Field(0, description="Split and sampling seed.")
    gold: GoldSettings = Field(default_factory=GoldSettings, description="Gold Bradley-Terry reward model.")
    prompts: PromptSettings = Field(default_factory=PromptSettings, description="RL, label and monitor prompt pools.")
    labels: LabelSettings = Field(default_factory=LabelSettings, description="Gold labels at volume on the policy's own answers.")
    judges: JudgeSettings = Field(default_factory=JudgeSettings, description="Judges of graded quality trained on the labels.")
    reasoning: ReasoningSettings = Field(default_factory=ReasoningSettings, description="The reasoning judge.")
    policy: PolicySettings = Field(default_factory=PolicySettings, description="Policy GRPO runs against each judge and the gold control.")
    cross_judge_prompts: int | None = Field(None, ge=1, description="Cross-judge matrix: first n held-out monitor "
                                            "prompts per run (None = all; fewer for a CPU).")
    cross_judge_keep: list[str] = Field(default_factory=list, description="Cross-judge matrix: judges whose column "
                                        "is kept from the earlier analysis/cross_judge.json instead of re-scored "
                                        "(a reasoning judge on a CPU); a kept cell scored on another final step "
                                        "than the run's current one is marked with its `scored_step`.")
    cross_judge_runs: list[str] | None = Field(None, description="Cross-judge matrix: the runs scored in this pass "
                                               "(None = all); the other runs' rows are kept from the earlier "
                                               "analysis/cross_judge.json (e.g. only the runs that moved, on a CPU).")
    cross_judge_drop: list[str] = Field(default_factory=list, description="Cross-judge matrix: judges left out of "
                                        "this pass and, with cross_judge_runs, dropped from the kept rows (the "
                                        "judge changed since they were scored and is too slow to score again "
                                        "here, e.g. a new reasoning judge on a CPU).")
    distance_prompts: int | None = Field(None, ge=0, description="Analysis: monitor prompts per point whose answers "
                                         "the base model re-reads for the distance from base (None = all, 0 = skip).")

    @model_validator(mode="after")
    def _check(self) -> "StudyConfig":
        names = [r.name for r in self.policy.runs]
        if len(set(names)) != len(names):
            raise ValueError(f"policy.runs: duplicate run names {names}")
        for r in self.policy.runs:
            j = r.judge
            ok = j in ("prompted", "gold", "sft-best", "sft-weak", "sft-mid") or (j == "reasoning" and self.reasoning.enabled) or (
                j.startswith("sft-") and j[4:].isdigit() and int(j[4:]) in self.judges.label_counts)
            if not ok:
                raise ValueError(f"policy.runs[{r.name}].judge {j!r}: use prompted, gold, reasoning, sft-best, sft-weak, sft-mid or "
                                 f"sft-<N> with N in judges.label_counts {self.judges.label_counts}")
        for field in ("weak", "mid", "best"):
            n = getattr(self.judges, field)
            if n is not None and n not in self.judges.label_counts:
                raise ValueError(f"judges.{field} ({n}) must be one of judges.label_counts {self.judges.label_counts}")
        return self
