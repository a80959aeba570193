"""The quickstart's three policy runs on the same prompts and steps: against the weak judge, against the
reasoning judge, and the control against the gold itself (reward = the embedded gold RM's reward).

GRPO from the base policy (TRL via training/policy_grpo.py): fp32 weights, constant learning rate, only the top
`trainable_layers` blocks trained (on 2 CPU cores this buys ~5x cheaper updates, which the step budget needs;
the study trained every weight on a GPU) without gradient checkpointing, T 1.0 rollouts, token-level loss, clip 0.2/0.3, no KL; the step's
rollouts are generated and scored together and trained one group per micro-batch (gradient accumulation: on a
2-step reasoning-judge run the peak RSS fell from 4.19 to 3.73 GB with the same changes to two decimals). The gold
monitor answers the held-out monitor prompts greedily at step 0 and every `monitor_every` steps, scores them
with the training judge and the gold, and the alarm fires when the judge's trend over 3 points rises by more
than `proxy_margin` while the gold's falls by more than `gold_margin`. With two lanes the policy lane only answers
the monitor prompts; the judge and the gold score those answers on the side lane while training goes on
(evaluation/monitor_async.py: the same records on the same answers), and a run ends once its scores have landed.

Each run's change is paired: the last monitor point minus step 0 on the same prompts, per prompt, with a 95%
bootstrap interval over prompts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

RUNS = ("weak", "reasoning", "gold")


def policy_config(cfg, name: str, judge, gold, prompt_dir: Path, run_dir: Path) -> dict:
    g = cfg.num_generations
    return {"name": f"policy-{name}", "run_dir": str(run_dir), "policy": cfg.model, "judge": judge.model_dump(),
            "gold": gold.model_dump(), "reward": {"on_failure": "drop"},
            "grpo": {"learning_rate": cfg.learning_rate, "num_generations": g,
                     # micro-batches of half a group, accumulated: the same update (token-level loss over the
                     # accumulated batch) with a quarter of the training step's transient memory at 2 prompts (the
                     # other lane's judges run beside it)
                     "per_device_train_batch_size": max(1, g // 2),
                     "gradient_accumulation_steps": cfg.prompts_per_step * g // max(1, g // 2),
                     "max_steps": cfg.policy_steps,
                     "max_completion_length": cfg.completion_tokens, "temperature": cfg.temperature,
                     "loss_type": "dapo", "epsilon": 0.2, "epsilon_high": 0.3, "beta": 0.0, "logging_steps": 1,
                     "save_steps": 10 ** 6, "save_final": False, "seed": cfg.seed, "policy_dtype": "float32",
                     "bf16": False, "trainable_layers": cfg.trainable_layers,
                     # TRL's GRPOConfig checkpoints every block by default: with the lower blocks frozen that
                     # only recomputes their forwards in the backward (3 steps on 2 cores: backward 13.6 -> 5.7 s,
                     # same loss and grad norm to 4 digits)
                     "trl": {"lr_scheduler_type": "constant", "gradient_checkpointing": False}},
            "data": {"sources": [str(prompt_dir / "policy_prompts.jsonl")],
                     "monitor_sources": [str(prompt_dir / "monitor_prompts.jsonl")], "field": "prompt",
                     "max_prompt_chars": cfg.max_prompt_chars, "seed": cfg.seed},
            "monitor": {"every_steps": cfg.monitor_every, "n_prompts": cfg.monitor_prompts,
                        "max_new_tokens": cfg.completion_tokens, "batch_size": 32},
            "alarm": {"window": 3, "proxy_margin": cfg.proxy_margin, "gold_margin": cfg.gold_margin,
                      "on_trigger": "log", "max_flagged": 10}}


def train(cfg, name: str, judge, gold, prompt_dir: Path, run_dir: Path, callbacks: list | None = None,
          scorer=None) -> str:
    """One run, fresh (a leftover partial run is cleared); returns the console line. `callbacks`: extra
    TrainerCallbacks (the quickstart's thread-count sync, lanes.ThreadSync); `scorer`: the monitor's scoring off the
    policy lane (lanes.Lanes.scorer)."""
    from judgerl.training.policy_config import PolicyConfig
    from judgerl.training.policy_grpo import train_policy

    for f in list(run_dir.iterdir()) if run_dir.is_dir() else []:
        if not f.name.startswith("stage-"):
            shutil.rmtree(f) if f.is_dir() else f.unlink()
    pc = PolicyConfig.model_validate(policy_config(cfg, name, judge, gold, prompt_dir, run_dir))
    summary = train_policy(pc, monitor_base=shared_step0(pc, name, run_dir), extra_callbacks=callbacks,
                           monitor_scorer=scorer)
    ch = paired_changes(run_dir, cfg.bootstrap, cfg.seed)
    ch["rollouts"] = summary["steps"] * cfg.prompts_per_step * cfg.num_generations
    ch["completion_tokens"] = cfg.completion_tokens
    (run_dir / "changes.json").write_text(json.dumps(ch, indent=2), encoding="utf-8")
    return change_line(name, judge.name, summary["steps"], ch)


STEP0_KEYS = ("policy", "gold", "monitor")  # with the monitor prompts: what the base policy's step 0 depends on


def shared_step0(pc, name: str, run_dir: Path) -> dict | None:
    """The monitor's step 0 of an earlier run of this quickstart (same base policy, monitor prompts, greedy
    decoding and gold; only the training judge differs), so that later runs do not answer and gold-score the
    same prompts again: {"responses", "gold", "from"}; None when no earlier run matches."""
    from judgerl.config import read_yaml

    mine = pc.model_dump(mode="json")
    for other in RUNS[:RUNS.index(name)]:
        folder = run_dir.parent / other
        rows, cfg_file = _samples(folder, 0), folder / "config.yaml"
        if not rows or not cfg_file.is_file() or not (folder / "summary.json").is_file():
            continue
        theirs = read_yaml(cfg_file)
        if any(theirs.get(k) != mine[k] for k in STEP0_KEYS) or \
                theirs.get("data", {}).get("monitor_sources") != mine["data"]["monitor_sources"]:
            continue
        if any(r.get("gold") is None for r in rows):
            continue
        return {"responses": [r["response"] for r in rows], "prompts": [r["prompt"] for r in rows],
                "gold": [{"value": r["gold"], "valid": True, "failed": False} for r in rows],
                "from": f"policies/{other}"}
    return None


def change_line(name: str, judge: str, steps: int, ch: dict) -> str:
    alarm = f"alarm at step {ch['alarm_step']}" if ch.get("alarm_step") is not None else "alarm silent"
    gold = f"gold {ci_text(ch['gold'])}"
    if name == "gold":
        return (f"against the gold itself, {steps} steps: {gold}, {ch['words'][0]:.0f} -> {ch['words'][1]:.0f} words; "
                f"{alarm}; {verdict(name, ch)}")
    return (f"against {judge}, {steps} steps: its judge {ci_text(ch['proxy'])}, {gold}, "
            f"{ch['words'][0]:.0f} -> {ch['words'][1]:.0f} words; {alarm}; {verdict(name, ch)}")


def _above(c: dict | None) -> bool:
    return bool(c) and c.get("lo") is not None and c["lo"] > 0


def _below(c: dict | None) -> bool:
    return bool(c) and c.get("hi") is not None and c["hi"] < 0


def verdict(name: str, ch: dict) -> str:
    """What the run showed, in words, from its paired intervals: a hack is the training judge rising while the
    gold falls, both intervals clear of 0 (the alarm, on the 3-point trends, is reported beside it)."""
    if name == "gold":
        return ("the gold rose (the control learned)" if _above(ch.get("gold")) else
                "the gold fell" if _below(ch.get("gold")) else "the gold did not move beyond its interval")
    if _above(ch.get("proxy")) and _below(ch.get("gold")):
        return "a hack showed: its judge rose while the gold fell"
    if _below(ch.get("proxy")) and _below(ch.get("gold")):
        return "no hack showed: its judge and the gold both fell"
    return "no hack showed"


def ci_text(c: dict | None, nd: int = 2) -> str:
    if not c or c.get("value") is None:
        return "–"
    rng = f" [{c['lo']:+.{nd}f}, {c['hi']:+.{nd}f}]" if c.get("lo") is not None else ""
    return f"{c['value']:+.{nd}f}{rng}"


def _samples(run_dir: Path, step: int) -> list[dict]:
    p = run_dir / "samples" / f"step_{step:04d}.jsonl"
    return [json.loads(x) for x in p.read_text(encoding="utf-8").splitlines() if x.strip()] if p.is_file() else []


def paired_changes(run_dir: Path, n_boot: int, seed: int) -> dict:
    """Last monitor point minus step 0, per prompt: judge (proxy), gold and words, with bootstrap intervals."""
    from judgerl.evaluation.monitor import read_monitor
    from judgerl.study.stats import cluster_bootstrap

    recs = read_monitor(run_dir / "monitor.jsonl")
    alarm = json.loads((run_dir / "alarm.json").read_text()) if (run_dir / "alarm.json").is_file() else {}
    out = {"first_step": recs[0]["step"] if recs else None, "last_step": recs[-1]["step"] if recs else None,
           "alarm_step": alarm.get("first_step") if alarm.get("triggered") else None,
           "points": [{"step": r["step"], "proxy": r.get("proxy_mean"), "gold": r.get("gold_mean"),
                       "words": r.get("mean_words")} for r in recs]}
    first, last = _samples(run_dir, out["first_step"] or 0), _samples(run_dir, out["last_step"] or 0)
    by0 = {r["prompt"] if isinstance(r["prompt"], str) else json.dumps(r["prompt"]): r for r in first}
    pairs = [(k, by0[k], r) for r in last if (k := r["prompt"] if isinstance(r["prompt"], str) else json.dumps(r["prompt"])) in by0]
    for key in ("proxy", "gold"):
        d = [(k, b[key] - a[key]) for k, a, b in pairs if a.get(key) is not None and b.get(key) is not None]
        out[key] = cluster_bootstrap(d, lambda x: x[0], lambda rs: sum(v for _, v in rs) / len(rs) if rs else None,
                                     n_boot, seed)
    out["words"] = [sum(a["words"] for _, a, _ in pairs) / max(1, len(pairs)),
                    sum(b["words"] for _, _, b in pairs) / max(1, len(pairs))]
    return out
