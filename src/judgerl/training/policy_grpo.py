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
- Sharded policies (FSDP2 / DeepSpeed ZeRO-3 through `accelerate launch`; training/sharding.py): also on CPU
  processes, judges load whole on every rank, the gold monitor generates on all ranks, final/ is gathered,
  --resume takes the newest complete sharded checkpoint (tests/training/test_policy_sharded.py).
- Rollouts: `grpo.rollout` (auto = judgerl's static-cache CUDA-graph decoder where it supports the
  setup, training/rollout.py; else TRL's own generate()).

Run dir: config.yaml, ledger.sqlite, cache.sqlite, metrics.jsonl (trainer logs), monitor.jsonl,
samples/, flagged/, alarm.json, checkpoints/checkpoint-N, final/, summary.json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from transformers import TrainerCallback

from judgerl import JudgerlError
from judgerl.evaluation.monitor import GoldMonitor
from judgerl.judges.spec import JudgeSpec
from judgerl.model_loader import load_model, shared_model
from judgerl.rundir import RunDir
from judgerl.training.policy_config import VLLM_FIELDS, PolicyConfig, check_policy
from judgerl.training.rewards import make_reward
from judgerl.training.sharding import (ddp_backend, enable_cpu_fsdp, full_weights, gathered, last_checkpoint, save_final,
                                       sharding)


def validate(cfg: PolicyConfig) -> dict:
    """All checks that need no model (check_policy), then the prompts. Returns resolved pieces."""
    from judgerl.training.prompts import load_prompts

    checked = check_policy(cfg)
    layout = checked["layout"]
    if cfg.grpo.use_vllm:
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise JudgerlError("grpo.use_vllm needs vLLM in this environment (`pip install trl[vllm]`, CUDA only); "
                               "it is not installed here. Set grpo.use_vllm: false to roll out with generate()")

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
    return {**checked, "prompts": prompts, "heldout": held}


# ---- building the trainer --------------------------------------------------------------------
class MetricsLogger(TrainerCallback):
    """Every trainer log record (rewards, judge/* counts, monitor/*) also goes to metrics.jsonl."""

    def __init__(self, run: RunDir):
        self.run = run

    def on_log(self, args, state, control, logs=None, **kw):
        if state.is_world_process_zero and logs:
            self.run.log_metrics({"step": state.global_step, **logs})


def _judges(run: RunDir, judge_spec: JudgeSpec, gold_spec: JudgeSpec | None, models: dict | None,
            own_proxy: bool = False):
    """Reward judge, monitor proxy judge (same backend object; with `own_proxy` its own backend on the same
    weights, so that a monitor scored on another thread does not hold the reward's backend lock), gold judge;
    weights from the shared registry (each model loaded once per process) unless `models` hands some in by role."""
    loaded: dict = dict(models or {})

    def weights(role: str, spec: JudgeSpec):
        if role in loaded:
            return loaded[role]
        return shared_model(spec.model, spec.model_kind, spec.device, spec.dtype) if spec.model_kind else (None, None)

    m, t = weights("judge", judge_spec)
    reward_judge = run.judge(judge_spec, "policy-reward", model=m, tokenizer=t)
    proxy = (run.judge(judge_spec, "monitor-proxy", model=m, tokenizer=t) if own_proxy else
             run.judge(judge_spec, "monitor-proxy", backend=reward_judge.backend))
    gold = None
    if gold_spec is not None:
        gm, gt = weights("gold", gold_spec)
        gold = run.judge(gold_spec, "monitor-gold", model=gm, tokenizer=gt)
    return reward_judge, proxy, gold


def grpo_args(cfg: PolicyConfig, output_dir: Path, layout: dict, configured_state: bool = False):
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
    kw.update({f: getattr(g, f) for f in VLLM_FIELDS})  # TRL 1.16 GRPOConfig names, one to one
    if configured_state:  # keep the accelerate state judgerl set up (sharding.enable_cpu_fsdp)
        kw["accelerator_config"] = {"use_configured_state": True}
    if ddp_backend():  # DeepSpeed on CPU processes (sharding.ddp_backend)
        kw["ddp_backend"] = ddp_backend()
    kw.update(g.trl)
    try:
        return GRPOConfig(**kw)
    except (TypeError, ValueError) as e:
        raise JudgerlError(f"invalid GRPO settings: {str(e).splitlines()[0]}") from None


def freeze_below(model, top: int | None) -> dict:
    """Leave only the top `top` decoder blocks trainable (None: leave the model as it is)."""
    if top is None:
        return {"trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    n_layers = model.config.num_hidden_layers
    if top > n_layers:
        raise JudgerlError(f"grpo.trainable_layers={top}, but the policy has {n_layers} blocks")
    keep = tuple(f"layers.{i}." for i in range(n_layers - top, n_layers))
    for name, p in model.named_parameters():
        p.requires_grad_(any(k in name for k in keep))
    return {"trainable": sum(p.numel() for p in model.parameters() if p.requires_grad), "layers": top}


def share_base(cfg: PolicyConfig, policy, spec: JudgeSpec, judge) -> int:
    """A judge that is the policy's own base model (same checkpoint and dtype) lends the policy its weights for the
    frozen blocks (model_loader.share_frozen), so they are held once: in the quickstart's run against the prompted
    base model, 0.43 GB of a 135M policy's 0.54. Not for sharded or multi-process runs. Returns the bytes shared."""
    import torch

    from judgerl.model_loader import share_frozen

    model = getattr(judge.backend, "model", None)
    if (cfg.grpo.trainable_layers is None or spec.model_kind != "causal" or spec.model != cfg.policy
            or int(os.environ.get("WORLD_SIZE", "1")) > 1 or not isinstance(model, torch.nn.Module)):
        return 0
    return share_frozen(policy, model)


def share_with_peers(cfg: PolicyConfig, policy, shared_with_judge: int) -> int:
    """Policies of this process trained at the same time from the same base (checkpoint, dtype, trainable top
    blocks) read one copy of the frozen blocks (model_loader.share_frozen_with_peers): the quickstart's gold control
    beside the reasoning run, 0.43 GB of 0.54 each. Not with a judge's weights already shared, sharded or multi-process."""
    from judgerl.model_loader import share_frozen_with_peers

    if cfg.grpo.trainable_layers is None or shared_with_judge or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return 0
    return share_frozen_with_peers(policy, (cfg.policy, str(next(policy.parameters()).dtype), cfg.grpo.trainable_layers))


def build_trainer(cfg: PolicyConfig, policy, tok, reward_funcs: list, args, train, callbacks: list):
    """GRPOTrainer with the rollout path `cfg.grpo.rollout` asks for (see training/rollout.py)."""
    import warnings

    from trl import GRPOTrainer

    from judgerl.training.epoch_order import order_by_epoch
    from judgerl.training.rollout import FastRollout, SeededRollout, unsupported

    kind = cfg.grpo.rollout
    rollout = SeededRollout(cfg.grpo.seed) if kind == "seeded" else FastRollout(cfg.grpo.seed) if kind != "trl" else None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*rollout_func.*experimental")
        trainer = order_by_epoch(GRPOTrainer(model=policy, reward_funcs=reward_funcs, args=args, train_dataset=train,
                                             processing_class=tok, callbacks=callbacks, rollout_func=rollout))
    if kind == "seeded":
        trainer.judgerl_rollout = "seeded"
        return trainer
    why = unsupported(trainer) if rollout is not None else None
    if why and cfg.grpo.rollout == "engine":
        raise JudgerlError(f"grpo.rollout: engine cannot serve this run: {why} (use auto or trl)")
    if why:
        trainer.rollout_func = None  # auto: TRL's own generate()
    trainer.judgerl_rollout = "trl" if trainer.rollout_func is None else "engine"
    return trainer


def train_policy(cfg: PolicyConfig, resume: bool = False, models: dict | None = None,
                 extra_callbacks: list | None = None, monitor_base: dict | None = None,
                 monitor_scorer=None) -> dict:
    """Validate, build the GRPOTrainer with the judge reward and the gold monitor, train, summarise.

    `models` optionally maps "judge" / "gold" to already loaded (model, tokenizer) pairs for hf judges;
    `extra_callbacks` are TrainerCallbacks (e.g. a wall-clock budget), run after the monitor;
    `monitor_base` is the monitor's step 0 computed by an earlier run of the same base policy, prompts, decoding
    and gold (GoldMonitor.shared_base); `monitor_scorer` (evaluation/monitor_async.MonitorScorer) scores the
    monitor's answers off the training thread (GoldMonitor.scorer).
    """
    from datasets import Dataset

    v = validate(cfg)
    run = RunDir(cfg.run_dir)
    ckpt_dir = run.path / "checkpoints"
    last = last_checkpoint(ckpt_dir)
    if resume and last is None:
        raise JudgerlError(f"--resume: no checkpoint in {ckpt_dir}")
    if not resume and (last is not None or (run.path / "monitor.jsonl").exists()):
        raise JudgerlError(f"{run.path} already holds a run; pass --resume or choose another run_dir")
    rank = int(os.environ.get("RANK", "0"))  # under `accelerate launch`, rank 0 writes the run files
    main_process = rank == 0
    if main_process:
        run.save_config(cfg)
    # FSDP on CPU processes (gloo): accelerate alone would fall back to DDP (training/sharding.py)
    args = grpo_args(cfg, ckpt_dir, v["layout"], configured_state=enable_cpu_fsdp())
    policy, tok = load_model(cfg.policy, "causal", device=None, dtype=cfg.grpo.policy_dtype)
    trainable = freeze_below(policy, cfg.grpo.trainable_layers)
    with full_weights():  # judges are not sharded: whole on every rank
        reward_judge, proxy, gold = _judges(run, v["judge"], v["gold"], models, own_proxy=monitor_scorer is not None)
    trainable["shared_with_judge_bytes"] = share_base(cfg, policy, v["judge"], reward_judge)
    trainable["shared_with_policy_bytes"] = share_with_peers(cfg, policy, trainable["shared_with_judge_bytes"])
    reward = make_reward(reward_judge, cfg.reward, cfg.grpo.num_generations)
    train = Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} for p in v["prompts"]])
    callbacks: list = [MetricsLogger(run)]
    monitor = None
    if cfg.monitor.enabled:
        held = [[{"role": "user", "content": p}] for p in v["heldout"]]
        monitor = GoldMonitor(run, held, proxy, gold, cfg.monitor, cfg.alarm)
        monitor.shared_base, monitor.scorer = monitor_base, monitor_scorer
        callbacks.append(monitor)
    callbacks += list(extra_callbacks or [])
    trainer = build_trainer(cfg, policy, tok, [reward], args, train, callbacks)
    shard = sharding(trainer)
    if shard and cfg.alarm.keep_best_gold:
        raise JudgerlError(f"alarm.keep_best_gold is not supported with sharded policy weights ({shard}): "
                           "the monitor would save a shard; use the checkpoints or final/")
    if monitor is not None:
        monitor.trainer, monitor.gather = trainer, (gathered if shard else None)
        if resume:
            state = json.loads((Path(last) / "trainer_state.json").read_text(encoding="utf-8"))
            monitor.restore(int(state["global_step"]))
    trainer.train(resume_from_checkpoint=last if resume else None)
    if cfg.grpo.save_final:
        save_final(trainer, tok, run.path / "final", main_process)
    summary = {"steps": trainer.state.global_step, "reward": dict(reward.totals), "layout": v["layout"],
               "rollout": trainer.judgerl_rollout, "sharding": shard, "trainable_params": trainable,
               "judge_calls": run.ledger_summary(),
               "monitor": monitor.records[-1] if monitor and monitor.records else None,
               "alarm": monitor.alarm.state() if monitor else None, "processes": trainer.accelerator.num_processes}
    # each process scored its own slice of every batch: rank 0 writes summary.json, others summary.rankN.json
    run.write_json("summary.json" if main_process else f"summary.rank{rank}.json", {**summary, "rank": rank})
    return summary
