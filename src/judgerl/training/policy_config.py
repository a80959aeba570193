"""Policy GRPO configuration (typed, described, YAML) and the checks that need no weights and no data.

`check_policy` is the one set of policy checks: `judgerl validate` and `train-policy` both call it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from judgerl import JudgerlError
from judgerl.evaluation.alarm import AlarmConfig
from judgerl.evaluation.monitor_config import MonitorConfig
from judgerl.judges.spec import JudgeSpec
from judgerl.training.rewards import JudgeRewardConfig


class GRPOSettings(BaseModel):
    """TRL GRPOConfig fields with the paper's policy-RL defaults; `trl:` passes any other field."""

    model_config = ConfigDict(extra="forbid")
    learning_rate: float = Field(1e-6, gt=0, description="AdamW learning rate (paper: 1e-6, full fine-tuning).")
    num_generations: int = Field(8, ge=1, description="G: completions sampled per prompt (one GRPO group).")
    per_device_train_batch_size: int = Field(8, ge=1, description="Completions per process per optimiser micro-step.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-steps accumulated per optimiser step.")
    steps_per_generation: int | None = Field(None, ge=1, description="Default: gradient_accumulation_steps.")
    generation_batch_size: int | None = Field(None, ge=1, description="Default: per_device × processes × steps_per_generation.")
    num_processes: int | None = Field(None, ge=1, description="World size; default WORLD_SIZE from the launcher, else 1.")
    max_steps: int = Field(1200, ge=1, description="Optimiser steps to train for.")
    max_completion_length: int = Field(2048, ge=1, description="Longest policy completion in tokens (longer ones are cut).")
    temperature: float = Field(0.7, gt=0.0, description="Policy sampling temperature for rollouts.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Policy nucleus sampling threshold (1 = off).")
    top_k: int = Field(0, ge=0, description="Policy top-k sampling (0 = off).")
    loss_type: str = Field("dapo", description="dapo = token-level normalisation (Eq. 2).")
    epsilon: float = Field(0.2, ge=0, description="Lower PPO clip range ε_low.")
    epsilon_high: float = Field(0.3, ge=0, description="Upper PPO clip range ε_high (asymmetric clipping, paper 0.3).")
    beta: float = Field(0.0, ge=0.0, description="KL coefficient; 0 = no reference model (paper).")
    scale_rewards: Literal["group", "batch", "none"] = Field("group", description="Advantage scaling: divide by the group's (or batch's) reward std, or not at all.")
    num_iterations: int = Field(1, ge=1, description="Optimisation passes over each generated batch (μ).")
    logging_steps: int = Field(1, ge=1, description="Log trainer metrics every N steps (to metrics.jsonl).")
    save_steps: int = Field(100, ge=1, description="Save a resumable checkpoint every N steps.")
    save_total_limit: int | None = Field(None, ge=1, description="Keep at most N checkpoints (None = all).")
    save_final: bool = Field(True, description="Save the final policy to final/.")
    seed: int = Field(0, description="Seed of the trainer (data order, sampling).")
    bf16: bool | None = Field(None, description="Default: on when CUDA supports it.")
    report_to: list[str] = Field(default_factory=lambda: ["none"], description="tensorboard, wandb, ...")
    trainable_layers: int | None = Field(None, ge=1, description="Train only the top N transformer blocks; the "
                                         "embeddings (and a tied LM head), the lower blocks and the final norm stay "
                                         "frozen, so the backward pass stops at block L-N (a CPU budget: ~5x cheaper "
                                         "updates and no optimizer state for frozen weights). None = every weight.")
    policy_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="Policy weight dtype; auto = bfloat16 on a GPU, float32 on the CPU.")
    rollout: Literal["auto", "engine", "trl", "seeded"] = Field(
        "auto", description="Policy rollouts. engine: judgerl's static-cache decoder (training/rollout.py: one CUDA "
        "graph per batch shape, each prompt prefilled once for its G rollouts, the trainer's exact sampling); trl: "
        "TRL's own generate(); auto: engine where it supports the setup (no vLLM, PEFT, ZeRO-3 or FSDP; a full-"
        "attention model; no min_p / repetition_penalty / generation_kwargs), else trl (bench 3: faster on GPU and CPU); "
        "seeded: each completion drawn from its own seeded generator, the same samples on 1 or N processes, also "
        "under FSDP / ZeRO-3 (slower; the sharded equivalence tests use it).")
    use_vllm: bool = Field(False, description="Roll out with vLLM instead of transformers' generate (TRL use_vllm). "
                           "Needs vLLM on a CUDA machine (`pip install trl[vllm]`); it does not install on CPU-only hosts.")
    vllm_mode: Literal["server", "colocate"] = Field("colocate", description=(
        "server: a separate `trl vllm-serve` process on its own GPUs generates and receives the new weights each "
        "step; colocate: a vLLM engine inside every training process shares its GPU."))
    vllm_server_host: str = Field("127.0.0.1", description="Host of the `trl vllm-serve` rollout server (server mode).")
    vllm_server_port: int = Field(8000, ge=1, le=65535, description="Port of the `trl vllm-serve` rollout server (server mode).")
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0.0, le=1.0, description=(
        "GPU memory fraction vLLM may take in colocate mode (server mode: pass --gpu-memory-utilization to trl vllm-serve)."))
    vllm_tensor_parallel_size: int = Field(1, ge=1, description=(
        "GPUs per vLLM engine in colocate mode; must divide the world size (server mode: trl vllm-serve "
        "--tensor-parallel-size)."))
    trl: dict = Field(default_factory=dict, description="Extra GRPOConfig fields, passed through.")

    def vllm_url(self) -> str:
        return f"http://{self.vllm_server_host}:{self.vllm_server_port}"


VLLM_FIELDS = ("use_vllm", "vllm_mode", "vllm_server_host", "vllm_server_port", "vllm_gpu_memory_utilization",
               "vllm_tensor_parallel_size")


class DataConfig(BaseModel):
    """Where the policy's training and held-out monitor prompts come from."""

    model_config = ConfigDict(extra="forbid")
    sources: list[str] = Field(default_factory=lambda: ["pool:self-instruct"],
                               description="pool:<name> or files (training/prompts.py).")
    data_root: str | None = Field(None, description="Shared data folder; default JUDGERL_SHARED_DATA or ../shared/data.")
    field: str | None = Field(None, description="Prompt field of file sources (default: prompt, instruction, query, ...).")
    max_prompt_chars: int | None = Field(4000, ge=1, description="Drop prompts longer than this (characters).")
    max_prompts: int | None = Field(None, ge=1, description="Cap on training prompts.")
    monitor_sources: list[str] | None = Field(None, description="Held-out monitor prompts; default: "
                                              "monitor.n_prompts held out of the training pool.")
    seed: int = Field(0, description="Seed of the prompt shuffle and held-out split.")


class PolicyConfig(BaseModel):
    """`judgerl train-policy --config policy.yaml`."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("policy", description="Run label in reports and ledgers.")
    run_dir: str = Field("runs/policy", description="Run directory (config, ledger, metrics, checkpoints).")
    policy: str = Field("smollm2-135m-instruct", description="Embedded name, folder or HF id of the policy.")
    judge: JudgeSpec | str = Field(..., description="Training judge: inline spec, judge YAML path, or model name.")
    gold: JudgeSpec | str | None = Field(None, description="Gold judge for the monitor.")
    reward: JudgeRewardConfig = Field(default_factory=JudgeRewardConfig, description="How verdicts become rewards.")
    grpo: GRPOSettings = Field(default_factory=GRPOSettings, description="GRPO / TRL trainer settings.")
    data: DataConfig = Field(default_factory=DataConfig, description="Training and monitor prompts.")
    monitor: MonitorConfig = Field(default_factory=MonitorConfig, description="Gold monitor during training.")
    alarm: AlarmConfig = Field(default_factory=AlarmConfig, description="Reward-hacking alarm on the monitor curves.")


# ---- validation (everything that can fail before any weights are loaded) --------------------
def world_size(g: GRPOSettings) -> int:
    return g.num_processes or int(os.environ.get("WORLD_SIZE", "1"))


def check_group_layout(g: GRPOSettings, whole_groups: bool, processes: int) -> dict:
    """The batch layout TRL will use; refuses layouts that split a group when `whole_groups`.

    TRL's RepeatSampler emits each prompt num_generations times in a row, and each process scores
    its own consecutive slice of per_device_train_batch_size × steps_per_generation completions.
    """
    pd, G = g.per_device_train_batch_size, g.num_generations
    if g.generation_batch_size is not None and g.steps_per_generation is not None:
        raise JudgerlError("set grpo.generation_batch_size or grpo.steps_per_generation, not both")
    if g.generation_batch_size is not None:
        if g.generation_batch_size % (pd * processes):
            raise JudgerlError(f"grpo.generation_batch_size ({g.generation_batch_size}) must be a multiple of "
                               f"per_device_train_batch_size × processes ({pd} × {processes})")
        spg = g.generation_batch_size // (pd * processes)
    else:
        spg = g.steps_per_generation or g.gradient_accumulation_steps
    gbs = pd * processes * spg
    local = pd * spg
    if gbs % G:
        raise JudgerlError(f"generation batch ({pd} per device × {processes} processes × {spg} steps_per_generation "
                           f"= {gbs}) must be a multiple of num_generations ({G})")
    if whole_groups and local % G:
        raise JudgerlError(f"pairwise / group_mean rewards need whole groups on each process, but each of the "
                           f"{processes} process(es) scores {pd} per device × {spg} steps_per_generation = {local} "
                           f"completions, not a multiple of num_generations ({G}): a group would be split across "
                           f"processes. Make per_device_train_batch_size × steps_per_generation a multiple of {G}")
    return {"steps_per_generation": spg, "generation_batch_size": gbs, "local_generation_batch": local,
            "prompts_per_step": gbs // G}


def resolve_judge(value, what: str) -> JudgeSpec:
    from judgerl.config import load_judge_spec
    from judgerl.models import resolve

    if isinstance(value, str):
        p = Path(value)
        if p.suffix in (".yaml", ".yml") and not p.is_file():
            raise JudgerlError(f"{what}: judge config file not found: {value}")
        try:
            spec = load_judge_spec(value)
        except JudgerlError as e:
            raise JudgerlError(f"{what}: {e}") from None
    else:
        spec = value
    if spec.in_process:
        try:
            resolve(spec.model, fetch_missing=False)
        except JudgerlError as e:
            raise JudgerlError(f"{what} judge: {e}") from None
    return spec


def check_policy(cfg: PolicyConfig) -> dict:
    """Every policy check that needs no weights and no data (used by `validate` and `train-policy`):
    judges resolve, the monitor has a gold judge, pairwise has G >= 2, groups stay whole per process."""
    judge = resolve_judge(cfg.judge, "training")
    if cfg.monitor.enabled and cfg.gold is None:
        raise JudgerlError("the gold monitor needs a gold judge: set `gold:` (a judge spec, judge YAML or model "
                           "name) or `monitor.enabled: false`")
    gold = resolve_judge(cfg.gold, "gold") if cfg.gold is not None else None
    pairwise = judge.format == "pairwise"
    if pairwise and cfg.grpo.num_generations < 2:
        raise JudgerlError("a pairwise judge needs grpo.num_generations >= 2")
    layout = check_group_layout(cfg.grpo, pairwise or cfg.reward.on_failure == "group_mean", world_size(cfg.grpo))
    check_vllm(cfg.grpo, world_size(cfg.grpo), [s for s in (judge, gold) if s is not None])
    return {"judge": judge, "gold": gold, "layout": layout}


def check_vllm(g: GRPOSettings, processes: int, judges: list[JudgeSpec]) -> None:
    """vLLM rollout settings: typed fields not shadowed in `trl:`, colocate TP divides the world size, and
    a rollout server that is not also a judge endpoint."""
    shadow = sorted(set(g.trl) & set(VLLM_FIELDS))
    if shadow:
        raise JudgerlError(f"set grpo.{shadow[0]} directly, not under grpo.trl (it is a typed field)")
    if not g.use_vllm:
        return
    if getattr(g, "rollout", "auto") in ("engine", "seeded"):
        raise JudgerlError(f"grpo.rollout: {g.rollout} and grpo.use_vllm both choose the rollout path; set one "
                           "(rollout: auto or trl with use_vllm)")
    if g.vllm_mode == "colocate" and processes % g.vllm_tensor_parallel_size:
        raise JudgerlError(f"grpo.vllm_tensor_parallel_size ({g.vllm_tensor_parallel_size}) must divide the world size "
                           f"({processes} process(es)) in colocate mode: each vLLM engine spans that many training ranks")
    if g.vllm_mode == "server":
        url = g.vllm_url()
        for s in judges:
            if s.remote and any(u.rstrip("/").removesuffix("/v1") == url for u in s.base_urls):
                raise JudgerlError(f"the vLLM rollout server {url} is also the endpoint of judge {s.name!r}: "
                                   f"trl vllm-serve serves the policy being trained; give the judge its own server")
