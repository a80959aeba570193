"""Benchmark 3: GRPO step time with a generative (reasoning) judge reward.

A: judgerl `train_policy` - the judge is an async reward function that judges the whole batch of
   completions at once (batched by length, fast decode path on GPU), cached and ledgered.
B: TRL `GRPOTrainer` with a plain synchronous per-sample reward function: the same judge model and
   prompt, one completion at a time (what a user writes by hand: `for c in completions: judge(c)`).
Same policy, judge, GRPOConfig and prompts. Step time = median wall time between optimizer steps,
first step excluded (warm-up). Prints B / A.

    python bench/grpo_step.py --steps 4 --prompts 4 --generations 4 --completion 32 --judge-tokens 48
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def step_times(stamps: list[float]) -> list[float]:
    return [b - a for a, b in zip(stamps, stamps[1:])]


def main() -> None:
    import torch
    from transformers import TrainerCallback
    from trl import GRPOTrainer
    from datasets import Dataset

    from judgerl.judges import JudgeRequest, JudgeSpec
    from judgerl.judges.cache import Ledger
    from judgerl.judges.hf import HFBackend
    from judgerl.model_loader import load_model
    from judgerl.training.policy_grpo import PolicyConfig, grpo_args, train_policy, validate
    from judgerl.judges.values import completion_text, judge_prompt

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--generations", type=int, default=4)
    ap.add_argument("--completion", type=int, default=32)
    ap.add_argument("--judge-tokens", type=int, default=48)
    ap.add_argument("--data", default=os.environ.get("JUDGERL_SHARED_DATA"))
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.data:
        os.environ["JUDGERL_SHARED_DATA"] = a.data
    tmp = Path(tempfile.mkdtemp())
    atexit.register(shutil.rmtree, tmp, True)  # the bench's runs and caches go with the process
    judge_spec = JudgeSpec(name="bench-judge", backend="hf", model=a.model, mode="reasoning", batch_size=64,
                           cache=False, sampling={"max_new_tokens": a.judge_tokens})
    batch = a.prompts * a.generations

    def cfg(run: str) -> PolicyConfig:
        return PolicyConfig(name=run, run_dir=str(tmp / run), policy=a.model, judge=judge_spec,
                            grpo={"num_generations": a.generations, "per_device_train_batch_size": batch,
                                  "max_steps": a.steps, "max_completion_length": a.completion, "save_steps": 10_000,
                                  "save_final": False, "logging_steps": 1, "learning_rate": 1e-6},
                            data={"sources": ["pool:self-instruct"], "max_prompt_chars": 800},
                            monitor={"enabled": False})

    # A: judgerl
    c = cfg("judgerl")
    t0 = time.time()
    train_policy(c)
    stamps = [json.loads(x)["time"] for x in open(tmp / "judgerl" / "metrics.jsonl") if '"loss"' in x or '"reward' in x]
    a_steps = step_times([t0] + stamps)[1:]

    # B: plain TRL with a synchronous per-sample judge reward (same judge implementation, one at a time)
    jm, jt = load_model(a.model, "causal", "auto", "auto")
    backend = HFBackend(judge_spec, model=jm, tokenizer=jt)

    judge_seconds: list[float] = []  # time inside the reward function, one entry per step

    def sync_reward(prompts, completions, **kw):
        t = time.perf_counter()
        out = []
        for p, comp in zip(prompts, completions):
            v = backend._verdicts([JudgeRequest(prompt=judge_prompt(p), responses=[completion_text(comp)])])[0]
            out.append(v.expected if v.expected is not None else 0.0)
        judge_seconds.append(time.perf_counter() - t)
        return out

    class Stamp(TrainerCallback):
        def __init__(self):
            self.t = [time.time()]

        def on_step_end(self, args, state, control, **kw):
            self.t.append(time.time())

    cb = Stamp()
    cb_cfg = cfg("trl")
    v = validate(cb_cfg)
    policy, tok = load_model(a.model, "causal", device=None, dtype="auto")
    train = Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} for p in v["prompts"]])
    trainer = GRPOTrainer(model=policy, reward_funcs=[sync_reward], args=grpo_args(cb_cfg, tmp / "trl", v["layout"]),
                          train_dataset=train, processing_class=tok, callbacks=[cb])
    cb.t = [time.time()]
    trainer.train()
    b_steps = step_times(cb.t)[1:]
    res = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu x{os.cpu_count()}",
           "torch": torch.__version__, "batch": batch, "completion": a.completion, "judge_tokens": a.judge_tokens,
           "judgerl_step_s": statistics.median(a_steps), "trl_sync_step_s": statistics.median(b_steps),
           "judgerl_steps": a_steps, "trl_steps": b_steps}
    res["speedup"] = res["trl_sync_step_s"] / res["judgerl_step_s"]
    # Amdahl: what the baseline step spends outside its judge (rollouts, loss, optimizer) no judge can remove
    res["trl_judge_s"] = statistics.median(judge_seconds[1:] or judge_seconds)
    res["judgerl_judge_s"] = Ledger(tmp / "judgerl" / "ledger.sqlite").summary()["seconds"] / a.steps
    res["rest_s"] = res["trl_sync_step_s"] - res["trl_judge_s"]
    res["bound_with_free_judge"] = res["trl_sync_step_s"] / res["rest_s"]
    print(json.dumps(res, indent=2))
    print(f"\nGRPO step: judgerl {res['judgerl_step_s']:.2f} s, TRL + sync per-sample judge {res['trl_sync_step_s']:.2f} s"
          f" -> {res['speedup']:.2f}x (target >= 3x)")
    print(f"judge time a step: TRL sync {res['trl_judge_s']:.2f} s, judgerl {res['judgerl_judge_s']:.2f} s; the rest of the "
          f"step {res['rest_s']:.2f} s caps the ratio at {res['bound_with_free_judge']:.2f}x even with a free judge")
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
