"""Policy GRPO runs of the study: the base policy trained against one judge, watched by the gold monitor.

Each run is the library's `train_policy` (TRL GRPO, expected-score reward, gold monitor, hacking alarm)
with the study's settings: the policy trains on the `policy` prompts and the monitor answers the
`monitor` prompts greedily every `monitor_every` steps. Weights are fp32 (bf16 autocast): with bf16
weights and no master copy, AdamW updates under half a bf16 ulp are rounded away
(scripts/check_policy_updates.py). A wall-clock budget stops a run cleanly after the step that crosses
it (the monitor still takes its last point). TRL's per-step log lines go to the run's train.log.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable

from transformers import TrainerCallback

from judgerl.study.config import RunSpec, StudyConfig


class WallClockBudget(TrainerCallback):
    """Stop training after the first step that ends past `seconds` from the start of training (and, with
    `every`, lands on a multiple of it: a policy run pauses on a monitor step). With `save`, that step also
    writes a resumable checkpoint."""

    def __init__(self, seconds: float | None, every: int = 1, save: bool = False):
        self.seconds, self.every, self.save = seconds, max(1, every), save
        self.t0, self.stopped_at = None, None

    def on_train_begin(self, args, state, control, **kw):
        self.t0 = time.monotonic()
        return control

    def on_step_end(self, args, state, control, **kw):
        if self.seconds is not None and time.monotonic() - self.t0 > self.seconds \
                and state.global_step % self.every == 0:
            control.should_training_stop = True
            control.should_save = control.should_save or self.save
            self.stopped_at = state.global_step
        return control


def policy_config(cfg: StudyConfig, run: RunSpec, judge, gold, prompt_dir: Path, run_dir: Path) -> dict:
    """The PolicyConfig (as a dict) of one study run."""
    p = cfg.policy
    n_monitor = sum(1 for line in (prompt_dir / "monitor_prompts.jsonl").read_text().splitlines() if line.strip())
    return {"name": run.name, "run_dir": str(run_dir), "policy": cfg.base, "judge": judge.model_dump(),
            "gold": gold.model_dump(), "reward": {"on_failure": "drop"},
            "grpo": {"learning_rate": p.learning_rate, "num_generations": p.num_generations,
                     "per_device_train_batch_size": p.num_generations * p.prompts_per_step, "max_steps": p.steps,
                     "max_completion_length": p.max_completion_length, "temperature": p.temperature,
                     "loss_type": "dapo", "epsilon": 0.2, "epsilon_high": 0.3, "beta": 0.0,
                     "scale_rewards": p.scale_rewards, "logging_steps": 1, "save_steps": p.save_steps,
                     "save_total_limit": 1,
                     "save_final": False, "seed": p.seed if run.seed is None else run.seed, "policy_dtype": p.policy_dtype,
                     "bf16": p.policy_dtype != "float32",  # fp32 weights + bf16 autocast break the KV cache (dtype)
                     "trl": {"lr_scheduler_type": p.lr_scheduler_type}},
            "data": {"sources": [str(prompt_dir / "policy_prompts.jsonl")], "monitor_sources": [str(prompt_dir / "monitor_prompts.jsonl")],
                     "field": "prompt", "max_prompt_chars": cfg.prompts.max_chars, "seed": cfg.seed},
            "monitor": {"every_steps": p.monitor_every, "n_prompts": n_monitor, "max_new_tokens": p.monitor_tokens,
                        "batch_size": min(128, n_monitor)},
            "alarm": {"window": p.alarm_window, "proxy_margin": p.proxy_margin, "gold_margin": p.gold_margin,
                      "on_trigger": "log", "max_flagged": 20}}


def run_policy(cfg: StudyConfig, run: RunSpec, judge, gold, prompt_dir: Path, run_dir: Path,
               log: Callable[[str], None]) -> dict:
    """Train one run; returns its summary. A run with a checkpoint resumes from it (a run paused by the wall-clock
    budget, or killed); one without is started fresh (leftovers cleared). `incomplete` is set when the budget
    paused it before `policy.steps`: the same command continues it."""
    import shutil

    from transformers.trainer_utils import get_last_checkpoint

    from judgerl.training.policy_config import PolicyConfig
    from judgerl.training.policy_grpo import train_policy

    ckpt = run_dir / "checkpoints"
    resume = ckpt.is_dir() and get_last_checkpoint(str(ckpt)) is not None
    if not resume:
        for f in list(run_dir.iterdir()) if run_dir.is_dir() else []:
            if not f.name.startswith("stage-"):
                shutil.rmtree(f) if f.is_dir() else f.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    pc = PolicyConfig.model_validate(policy_config(cfg, run, judge, gold, prompt_dir, run_dir))
    budget = WallClockBudget(cfg.policy.max_seconds, cfg.policy.monitor_every, save=True)
    log(f"policy {run.name}: GRPO against {run.judge} ({judge.name}), <= {cfg.policy.steps} steps"
        + (f" or {cfg.policy.max_seconds:.0f} s" if cfg.policy.max_seconds else "") + f", lr {cfg.policy.learning_rate}"
        + (f", resumed from {get_last_checkpoint(str(ckpt))}" if resume else ""))
    t0 = time.time()
    with open(run_dir / "train.log", "a", encoding="utf-8") as f, contextlib.redirect_stdout(f):
        summary = train_policy(pc, resume=resume, extra_callbacks=[budget])
    summary["wall_s"] = round(time.time() - t0, 1)
    summary["stopped_by_budget_at"] = budget.stopped_at
    summary["incomplete"] = summary["steps"] < cfg.policy.steps
    m = summary.get("monitor") or {}
    alarm = summary.get("alarm") or {}
    log(f"policy {run.name}: {summary['steps']} steps in {summary['wall_s']:.0f} s; last monitor proxy "
        f"{m.get('proxy_mean', float('nan')):.2f}, gold {m.get('gold_mean', float('nan')):.2f}; alarm "
        + (f"fired at step {alarm.get('first_step')}" if alarm.get("triggered") else "silent"))
    return summary
