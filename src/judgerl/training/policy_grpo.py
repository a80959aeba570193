"""Policy GRPO with an LLM judge as the reward (paper §4-§6), on TRL's GRPOTrainer.

Algorithm choices (paper defaults, all overridable in the YAML):
- GRPO, G = 8 samples per prompt, advantage = (r − mean_group) / std_group (TRL scale_rewards=group).
- Token-level loss: TRL loss_type "dapo" (token losses summed and divided by the active tokens of the
  accumulated batch), asymmetric clipping ε_low 0.2 / ε_high 0.3, no KL (β = 0, no reference model).
- Policy sampling temperature 0.7; judge decoding T 0.7 / top-k 20 / top-p 0.95 (judge spec).
- Reward: pointwise judge → expected score Σ x·p(x) over 0-9; pairwise judge → mean in-group win rate
  (Eq. 4), optionally both orders or a cheaper pairing scheme (training/rewards.py).
- The judge is an *async* reward function: TRL 1.16 awaits it on its own event loop thread.
- Judge failures never crash training: retried, then `drop` (None → TRL zeroes that sample's
  advantage and leaves it out of the group baseline) or `group_mean`; counted as judge/* metrics.
- Pairwise rewards (and group_mean) need whole groups on every process: the config is refused
  unless per_device_train_batch_size × steps_per_generation is a multiple of num_generations.
- Gold monitor + hacking alarm + pattern rates run as a TrainerCallback (evaluation/monitor.py).

Run dir: config.yaml, ledger.sqlite, cache.sqlite, metrics.jsonl (trainer logs), monitor.jsonl,
samples/, flagged/, alarm.json, checkpoints/checkpoint-N, final/, summary.json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from transformers import TrainerCallback

from judgerl import JudgerlError
from judgerl.evaluation.alarm import AlarmConfig
from judgerl.evaluation.monitor import GoldMonitor, MonitorConfig
from judgerl.judges.spec import JudgeSpec
from judgerl.rundir import RunDir
from judgerl.training.rewards import RewardConfig, make_reward


class GRPOSettings(BaseModel):
    """TRL GRPOConfig fields with the paper's policy-RL defaults; `trl:` passes any other field."""

    model_config = ConfigDict(extra="forbid")
    learning_rate: float = 1e-6
    num_generations: int = Field(8, ge=1)
    per_device_train_batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    steps_per_generation: int | None = Field(None, ge=1, description="Default: gradient_accumulation_steps.")
    generation_batch_size: int | None = Field(None, ge=1, description="Default: per_device × processes × steps_per_generation.")
    num_processes: int | None = Field(None, ge=1, description="World size; default WORLD_SIZE from the launcher, else 1.")
    max_steps: int = Field(1200, ge=1)
    max_completion_length: int = Field(2048, ge=1)
    temperature: float = Field(0.7, gt=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    loss_type: str = Field("dapo", description="dapo = token-level normalisation (Eq. 2).")
    epsilon: float = 0.2
    epsilon_high: float = 0.3
    beta: float = Field(0.0, ge=0.0, description="KL coefficient; 0 = no reference model (paper).")
    scale_rewards: Literal["group", "batch", "none"] = "group"
    num_iterations: int = Field(1, ge=1)
    logging_steps: int = Field(1, ge=1)
    save_steps: int = Field(100, ge=1)
    save_total_limit: int | None = Field(None, ge=1)
    save_final: bool = Field(True, description="Save the final policy to final/.")
    seed: int = 0
    bf16: bool | None = Field(None, description="Default: on when CUDA supports it.")
    report_to: list[str] = Field(default_factory=lambda: ["none"], description="tensorboard, wandb, ...")
    policy_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    trl: dict = Field(default_factory=dict, description="Extra GRPOConfig fields, passed through.")


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: list[str] = Field(default_factory=lambda: ["pool:self-instruct"],
                               description="pool:<name> or files (training/prompts.py).")
    data_root: str | None = Field(None, description="Shared data folder; default JUDGERL_SHARED_DATA or ../shared/data.")
    field: str | None = None
    max_prompt_chars: int | None = Field(4000, ge=1)
    max_prompts: int | None = Field(None, ge=1, description="Cap on training prompts.")
    monitor_sources: list[str] | None = Field(None, description="Held-out monitor prompts; default: "
                                              "monitor.n_prompts held out of the training pool.")
    seed: int = 0


class PolicyConfig(BaseModel):
    """`judgerl train-policy --config policy.yaml`."""

    model_config = ConfigDict(extra="forbid")
    name: str = "policy"
    run_dir: str = "runs/policy"
    policy: str = Field("smollm2-135m-instruct", description="Embedded name, folder or HF id of the policy.")
    judge: JudgeSpec | str = Field(..., description="Training judge: inline spec, judge YAML path, or model name.")
    gold: JudgeSpec | str | None = Field(None, description="Gold judge for the monitor.")
    reward: RewardConfig = Field(default_factory=RewardConfig)
    grpo: GRPOSettings = Field(default_factory=GRPOSettings)
    data: DataConfig = Field(default_factory=DataConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    alarm: AlarmConfig = Field(default_factory=AlarmConfig)


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
    if spec.backend in ("hf", "rm"):
        try:
            resolve(spec.model, fetch_missing=False)
        except JudgerlError as e:
            raise JudgerlError(f"{what} judge: {e}") from None
    if spec.backend == "openai":
        import importlib.util

        if importlib.util.find_spec("judgerl.judges.openai_backend") is None:
            raise JudgerlError(f"{what} judge uses backend 'openai', which is not available in this install")
    return spec


def validate(cfg: PolicyConfig) -> dict:
    """All checks that need no model: judges, gold, group layout, prompts. Returns resolved pieces."""
    judge = resolve_judge(cfg.judge, "training")
    if cfg.monitor.enabled and cfg.gold is None:
        raise JudgerlError("the gold monitor needs a gold judge: set `gold:` (a judge spec, judge YAML or model "
                           "name) or `monitor.enabled: false`")
    gold = resolve_judge(cfg.gold, "gold") if cfg.gold is not None else None
    pairwise = judge.format == "pairwise"
    if pairwise and cfg.grpo.num_generations < 2:
        raise JudgerlError("a pairwise judge needs grpo.num_generations >= 2")
    layout = check_group_layout(cfg.grpo, pairwise or cfg.reward.on_failure == "group_mean", world_size(cfg.grpo))
    from judgerl.training.prompts import load_prompts

    d = cfg.data
    prompts = load_prompts(d.sources, d.data_root, d.field, d.max_prompt_chars, d.seed)
    if d.monitor_sources:
        held = load_prompts(d.monitor_sources, d.data_root, d.field, d.max_prompt_chars, d.seed)
        held = held[:cfg.monitor.n_prompts]
        prompts = [p for p in prompts if p not in set(held)]
    else:
        n = cfg.monitor.n_prompts if cfg.monitor.enabled else 0
        if len(prompts) <= n:
            raise JudgerlError(f"{len(prompts)} prompts cannot spare {n} held-out monitor prompts")
        held, prompts = prompts[:n], prompts[n:]
    prompts = prompts[:d.max_prompts] if d.max_prompts else prompts
    if len(prompts) < layout["prompts_per_step"]:
        raise JudgerlError(f"{len(prompts)} training prompts, but one step needs {layout['prompts_per_step']}")
    return {"judge": judge, "gold": gold, "layout": layout, "prompts": prompts, "heldout": held}


# ---- building the trainer --------------------------------------------------------------------
class MetricsLogger(TrainerCallback):
    """Every trainer log record (rewards, judge/* counts, monitor/*) also goes to metrics.jsonl."""

    def __init__(self, run: RunDir):
        self.run = run

    def on_log(self, args, state, control, logs=None, **kw):
        if state.is_world_process_zero and logs:
            self.run.log_metrics({"step": state.global_step, **logs})


def _load_policy(name: str, dtype: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from judgerl.models import resolve

    path = resolve(name)
    if dtype == "auto":
        dtype = "bfloat16" if torch.cuda.is_available() else "float32"
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)), tok


def _judges(run: RunDir, judge_spec: JudgeSpec, gold_spec: JudgeSpec | None, models: dict | None):
    """Reward judge, monitor proxy judge (same backend object), gold judge; hf weights loaded once."""
    from judgerl.judges.hf import load_causal_lm

    loaded: dict = dict(models or {})
    cache: dict = {}

    def weights(role: str, spec: JudgeSpec):
        if role in loaded:
            return loaded[role]
        if spec.backend not in ("hf", "rm"):
            return None, None
        key = (spec.model, spec.device, spec.dtype)
        if key not in cache:
            cache[key] = load_causal_lm(spec.model, spec.device, spec.dtype) if spec.backend == "hf" else (None, None)
        return cache[key]

    m, t = weights("judge", judge_spec)
    reward_judge = run.judge(judge_spec, "policy-reward", model=m, tokenizer=t)
    proxy = run.judge(judge_spec, "monitor-proxy", backend=reward_judge.backend)
    gold = None
    if gold_spec is not None:
        gm, gt = weights("gold", gold_spec)
        gold = run.judge(gold_spec, "monitor-gold", model=gm, tokenizer=gt)
    return reward_judge, proxy, gold


def grpo_args(cfg: PolicyConfig, output_dir: Path, layout: dict):
    import torch
    from trl import GRPOConfig

    g = cfg.grpo
    bf16 = g.bf16 if g.bf16 is not None else bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    kw = dict(output_dir=str(output_dir), learning_rate=g.learning_rate, num_generations=g.num_generations,
              per_device_train_batch_size=g.per_device_train_batch_size,
              gradient_accumulation_steps=g.gradient_accumulation_steps, max_steps=g.max_steps,
              max_completion_length=g.max_completion_length, temperature=g.temperature, top_p=g.top_p, top_k=g.top_k,
              loss_type=g.loss_type, epsilon=g.epsilon, epsilon_high=g.epsilon_high, beta=g.beta,
              scale_rewards=g.scale_rewards, num_iterations=g.num_iterations, logging_steps=g.logging_steps,
              save_strategy="steps", save_steps=g.save_steps, save_total_limit=g.save_total_limit, seed=g.seed,
              bf16=bf16, report_to=g.report_to, log_completions=False, disable_tqdm=True,
              dataloader_pin_memory=torch.cuda.is_available())
    kw["steps_per_generation" if g.generation_batch_size is None else "generation_batch_size"] = (
        layout["steps_per_generation"] if g.generation_batch_size is None else g.generation_batch_size)
    kw.update(g.trl)
    try:
        return GRPOConfig(**kw)
    except (TypeError, ValueError) as e:
        raise JudgerlError(f"invalid GRPO settings: {str(e).splitlines()[0]}") from None


def train_policy(cfg: PolicyConfig, resume: bool = False, models: dict | None = None) -> dict:
    """Validate, build the GRPOTrainer with the judge reward and the gold monitor, train, summarise.

    `models` optionally maps "judge" / "gold" to already loaded (model, tokenizer) pairs for hf judges.
    """
    from datasets import Dataset
    from transformers.trainer_utils import get_last_checkpoint
    from trl import GRPOTrainer

    v = validate(cfg)
    run = RunDir(cfg.run_dir)
    ckpt_dir = run.path / "checkpoints"
    last = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
    if resume and last is None:
        raise JudgerlError(f"--resume: no checkpoint in {ckpt_dir}")
    if not resume and (last is not None or (run.path / "monitor.jsonl").exists()):
        raise JudgerlError(f"{run.path} already holds a run; pass --resume or choose another run_dir")
    rank = int(os.environ.get("RANK", "0"))  # under `accelerate launch`, rank 0 writes the run files
    main_process = rank == 0
    if main_process:
        run.save_config(cfg)
    args = grpo_args(cfg, ckpt_dir, v["layout"])
    policy, tok = _load_policy(cfg.policy, cfg.grpo.policy_dtype)
    reward_judge, proxy, gold = _judges(run, v["judge"], v["gold"], models)
    reward = make_reward(reward_judge, cfg.reward, cfg.grpo.num_generations)
    train = Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} for p in v["prompts"]])
    callbacks: list = [MetricsLogger(run)]
    monitor = None
    if cfg.monitor.enabled:
        held = [[{"role": "user", "content": p}] for p in v["heldout"]]
        monitor = GoldMonitor(run, held, proxy, gold, cfg.monitor, cfg.alarm)
        callbacks.append(monitor)
    trainer = GRPOTrainer(model=policy, reward_funcs=[reward], args=args, train_dataset=train,
                          processing_class=tok, callbacks=callbacks)
    if monitor is not None:
        monitor.trainer = trainer
        if resume:
            state = json.loads((Path(last) / "trainer_state.json").read_text(encoding="utf-8"))
            monitor.restore(int(state["global_step"]))
    trainer.train(resume_from_checkpoint=last if resume else None)
    if cfg.grpo.save_final:
        trainer.save_model(str(run.path / "final"))  # rank 0 writes; every rank must call it
        if main_process:
            tok.save_pretrained(str(run.path / "final"))
    summary = {"steps": trainer.state.global_step, "reward": dict(reward.totals), "layout": v["layout"],
               "judge_calls": run.ledger_summary(),
               "monitor": monitor.records[-1] if monitor and monitor.records else None,
               "alarm": monitor.alarm.state() if monitor else None, "processes": trainer.accelerator.num_processes}
    # each process scored its own slice of every batch: rank 0 writes summary.json, others summary.rankN.json
    run.write_json("summary.json" if main_process else f"summary.rank{rank}.json", {**summary, "rank": rank})
    return summary
