"""QuickstartConfig: what `judgerl quickstart [--config configs/quickstart.yaml] [--scale ci]` reads.

Kept apart from the loop so that reading a config (`judgerl validate`, `--dry-run`) imports no torch.
Unset sizes come from the `scale` preset (SCALES); every field can be set in the YAML or with --set.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# full: `make quickstart` (sizes chosen on 2 CPU cores, see bench/RESULTS.md section 7: 6 policy steps monitored at
# 0, 3, 6 is the fewest points the alarm's 3-point window can fire on; sft-1500 is the shipped SFT judge whose
# agreement interval excludes 0); ci: every stage, minimal sizes.
SCALES: dict[str, dict] = {
    "full": dict(agreement_items=100, gold_check=8, train_labels=96, train_steps=24, policy_steps=6,
                 prompts_per_step=2, num_generations=4, completion_tokens=48, reasoning_tokens=16, monitor_every=3,
                 monitor_prompts=16, probe_items=2, probe_attacks=["policy_refusal", "fake_end_marker"],
                 weak_judge="prompted", reasoning_judge="shipped:reasoning",
                 extra_judges=["shipped:sft-1500"]),
    "ci": dict(agreement_items=6, gold_check=2, train_labels=8, train_steps=2, policy_steps=2, prompts_per_step=1,
               num_generations=2, completion_tokens=6, reasoning_tokens=6, monitor_every=1, monitor_prompts=2,
               probe_items=1, probe_attacks=["fake_end_marker"], weak_judge="prompted",
               reasoning_judge="shipped:reasoning", extra_judges=[]),
}

JUDGE_SOURCES = ("prompted", "prompted-reasoning", "trained")


class QuickstartConfig(BaseModel):
    """`judgerl quickstart`: held-out gold labels -> judges -> agreement -> three policy runs -> probes -> report."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["quickstart"] = Field("quickstart", description="Config kind marker (for judgerl validate).")
    scale: Literal["full", "ci"] = Field("full", description="Size preset: full (make quickstart) or ci (tests).")
    run_dir: str = Field("runs/quickstart", description="Where everything goes.")
    model: str = Field("smollm2-135m-instruct", description="Policy and judge base model.")
    shared_data: str | None = Field(None, description="Shared data folder (default $JUDGERL_SHARED_DATA or ../shared/data).")
    seed: int = Field(0, description="Seed of the prompt sets, sampling and training.")
    # judges: where each comes from (one line to switch)
    weak_judge: str | None = Field(None, description="The judge the first policy trains against: prompted (the base "
                            "model with the default template), shipped:<name> (an adapter under "
                            "judgerl/study/judges/<name>), trained (the train-judge stage's CPU judge) or a judge.yaml.")
    reasoning_judge: str | None = Field(None, description="The second policy's judge (a reasoning judge): "
                                 "prompted-reasoning, shipped:<name>, trained or a judge.yaml.")
    extra_judges: list[str] | None = Field(None, description="Judges whose agreement is "
                                    "measured beside the two training judges (not trained against).")
    judge_dtype: Literal["auto", "float32", "bfloat16"] = Field("auto", description="Weights of the judges and the "
                                "gold RM on the CPU: auto = bfloat16 where the CPU multiplies bf16 natively "
                                "(AVX512-BF16 or AMX: ~1.7x less CPU a verdict, bench/cpu_bf16.py; the study's judges "
                                "and gold labels ran in bf16 on the GPU), else float32. Policies keep fp32 weights.")
    train_judge: bool = Field(False, description="Run the train-judge stage (LoRA SFT on gold labels of the base "
                              "policy's answers, on CPU) even when no judge source is `trained`.")
    # held-out agreement set
    heldout_answers: str | None = Field("docs/experiments/reward_hacking/contrast/labels/judge_test.jsonl.gz",
                                        description="Labelled judge-test answers of the contrast study (prompts no "
                                        "shipped judge trained on). Missing file: the quickstart samples answers "
                                        "to held-out prompts and labels them with the embedded gold RM.")
    agreement_items: int | None = Field(None, ge=2, description="Held-out answers each judge scores (>= 100 for "
                                        "intervals that mean something).")
    gold_check: int | None = Field(None, ge=0, description="Shipped labels re-scored by the embedded gold RM here.")
    train_labels: int | None = Field(None, ge=4, description="train-judge: gold-labelled base answers to train on.")
    train_steps: int | None = Field(None, ge=1, description="train-judge: SFT optimizer steps.")
    # policies
    policy_steps: int | None = Field(None, ge=1, description="GRPO steps of each policy run.")
    prompts_per_step: int | None = Field(None, ge=1, description="Prompts per GRPO step.")
    num_generations: int | None = Field(None, ge=2, description="G: samples per prompt.")
    completion_tokens: int | None = Field(None, ge=1, description="Policy answer budget (tokens), rollouts and monitor.")
    reasoning_tokens: int | None = Field(None, ge=1, description="Reasoning judge thinking budget on CPU (the verdict "
                                         "is forced after it).")
    learning_rate: float = Field(5e-4, gt=0, description="Policy learning rate (constant; fp32 weights).")
    trainable_layers: int | None = Field(6, ge=1, description="Train only the policy's top N blocks (None: all).")
    temperature: float = Field(1.0, gt=0, description="Rollout temperature.")
    monitor_every: int | None = Field(None, ge=1, description="Gold monitor period (policy steps).")
    monitor_prompts: int | None = Field(None, ge=2, description="Held-out prompts the monitor answers and scores.")
    proxy_margin: float = Field(0.1, ge=0, description="Alarm: minimum rise of the training judge over the window.")
    gold_margin: float = Field(0.1, ge=0, description="Alarm: minimum fall of the gold reward over the window.")
    max_prompt_chars: int = Field(300, ge=20, description="Longer RL prompts are left out (CPU cost).")
    # probes
    probe_items: int | None = Field(None, ge=1, description="Honest answers the probes attack.")
    probe_attacks: list[str] | None = Field(None, description="Attack names (evaluation/attacks/default.yaml).")
    bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples (over prompts) for the 95% intervals.")
    lanes: Literal[1, 2] = Field(2, description="2: labels, judge agreement and probes run on a second thread beside "
                                 "the policy runs, one torch thread each (quickstart/lanes.py); 1: one stage at a time.")

    @model_validator(mode="after")
    def _fill(self) -> "QuickstartConfig":
        for k, v in SCALES[self.scale].items():
            if getattr(self, k) is None:
                setattr(self, k, v)
        for what in ("weak_judge", "reasoning_judge"):
            check_source(getattr(self, what), what)
        for s in self.extra_judges:
            check_source(s, "extra_judges")
        return self

    def judge_sources(self) -> dict[str, str]:
        """role -> source of every judge the run uses (training judges first, duplicates dropped); the train-judge
        stage's judge is measured too whenever it is trained."""
        out = {"weak": self.weak_judge, "reasoning": self.reasoning_judge}
        for s in self.extra_judges + (["trained"] if self.train_judge else []):
            if s not in out.values():
                out[source_name(s)] = s
        return out

    def trains_judge(self) -> bool:
        return self.train_judge or "trained" in self.judge_sources().values()


def judge_dtype(cfg) -> str:
    """The judges' and the gold RM's CPU weight dtype (QuickstartConfig.judge_dtype; auto: bfloat16 where the CPU has
    native bf16 dot products, AVX512-BF16 or AMX, else float32: emulated bf16 would be slower than fp32)."""
    if cfg.judge_dtype != "auto":
        return cfg.judge_dtype
    import torch

    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return "bfloat16" if native else "float32"


def check_source(s: str, what: str) -> None:
    if s in JUDGE_SOURCES or s.startswith("shipped:") or s.endswith((".yaml", ".yml")):
        return
    raise ValueError(f"{what}: {s!r} is not a judge source (prompted, prompted-reasoning, trained, shipped:<name>, "
                     f"or a judge .yaml)")


def source_name(s: str) -> str:
    """A short, folder-safe name of a judge source."""
    if s.startswith("shipped:"):
        return s.split(":", 1)[1]
    if s.endswith((".yaml", ".yml")):
        return s.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return s
