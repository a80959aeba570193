"""Benchmark 3: GRPO step time with a generative (reasoning) judge reward, split into rollout / judge / update.

Arms (same policy, judge, GRPOConfig and prompts; one process, one run):
  new    judgerl `train_policy`: engine rollouts (training/rollout.py) and the judge on the graph engine
         (judges/static_decode.py), both the defaults now.
  today  judgerl `train_policy` as it was before: TRL `generate()` rollouts (grpo.rollout=trl) and the judge
         on transformers' compiled static-cache path (HFBackend.fast="compile").
  trl    TRL `GRPOTrainer` with a plain synchronous reward function judging one completion at a time
         through the same judge implementation (compiled path): what a user writes by hand.
  engine_rollout / engine_judge   one half of `new` each (the other half as in `today`), for --profile.
Split per step: rollout = `GRPOTrainer._generate`, judge = `GRPOTrainer._calculate_rewards` (the device is
synchronised at both ends), update = the rest of the step (policy log-probs, loss, backward, optimizer).
Step time = wall time between optimizer steps; medians exclude the first step (warm-up, compilation).
Rollout tok/s counts the completion tokens kept; its roofline is rows / (bytes a decode step must read:
weights once + the KV cache at the mean context) / measured copy bandwidth. Judge tok/s = reasoning tokens
generated in the step / judge time. `--standalone` also times the judge model's decode path alone at the
in-loop batch and lengths (random prompts of the mean judge-prompt length, all rows to full length).

    python bench/grpo_step.py --steps 6 --prompts 4 --generations 8 --completion 64 --judge-tokens 128
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


# judgerl arms: (policy rollout path, judge decode path). The two mixed arms isolate one half each
# (used with --profile to find which half changes the update time).
JUDGERL_ARMS = {"new": ("engine", "engine"), "today": ("trl", "compile"),
                "engine_rollout": ("engine", "compile"), "engine_judge": ("trl", "engine")}


def median(xs: list[float]) -> float | None:
    xs = xs[1:] if len(xs) > 1 else xs
    return statistics.median(xs) if xs else None


class Split:
    """Per-call timings of GRPOTrainer._generate and _calculate_rewards (class-level wrappers)."""

    def __init__(self, torch):
        self.torch, self.calls, self.judge_tokens = torch, [], lambda: 0

    def sync(self):
        if self.torch.cuda.is_available():
            self.torch.cuda.synchronize()

    def install(self, cls):
        gen, rew, split = cls._generate, cls._calculate_rewards, self

        def _generate(trainer, prompts):
            split.sync()
            t = time.perf_counter()
            out = gen(trainer, prompts)
            split.sync()
            comp = out[1]
            split.calls.append({"what": "rollout", "s": time.perf_counter() - t, "rows": len(comp),
                                "tokens": sum(len(c) for c in comp), "prompt_tokens": sum(len(p) for p in out[0])})
            return out

        def _calculate_rewards(trainer, *args, **kw):
            split.sync()
            t, n0 = time.perf_counter(), split.judge_tokens()
            out = rew(trainer, *args, **kw)
            split.sync()
            split.calls.append({"what": "judge", "s": time.perf_counter() - t, "tokens": split.judge_tokens() - n0})
            return out

        cls._generate, cls._calculate_rewards = _generate, _calculate_rewards

    def install_profile(self, cls):
        """--profile: time the parts of the update too (device synchronised around each)."""
        from accelerate import Accelerator
        from accelerate.optimizer import AcceleratedOptimizer

        split = self

        def timed(owner, attr, what):
            fn = getattr(owner, attr)

            def wrapper(*args, **kw):
                split.sync()
                t = time.perf_counter()
                out = fn(*args, **kw)
                split.sync()
                split.calls.append({"what": what, "s": time.perf_counter() - t})
                return out
            setattr(owner, attr, wrapper)

        timed(cls, "_generate_and_score_completions", "score_all")  # rollout + judge + the rest of scoring
        timed(cls, "compute_loss", "loss")
        timed(Accelerator, "backward", "backward")
        timed(AcceleratedOptimizer, "step", "optimizer")


def ledger_tokens(path: Path) -> int:
    """Reasoning tokens the reward judge generated so far (tokens_out counts the verdict token too)."""
    if not path.exists():
        return 0
    with sqlite3.connect(path) as c:
        n, k = c.execute("SELECT COALESCE(SUM(tokens_out), 0), COUNT(*) FROM calls WHERE stage='policy-reward'").fetchone()
    return int(n) - int(k)


def summarise(name: str, stamps: list[float], calls: list[dict], roof) -> dict:
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    ro = [c for c in calls if c["what"] == "rollout"]
    ju = [c for c in calls if c["what"] == "judge"]
    n = min(len(steps), len(ro), len(ju))
    upd = [steps[i] - ro[i]["s"] - ju[i]["s"] for i in range(n)]
    r = {"arm": name, "steps": len(steps), "step_s": median(steps), "rollout_s": median([c["s"] for c in ro]),
         "judge_s": median([c["s"] for c in ju]), "update_s": median(upd), "first_step_s": steps[0] if steps else None,
         "step_all": steps, "rollout_all": [c["s"] for c in ro], "judge_all": [c["s"] for c in ju]}
    later = ro[1:] or ro
    for part in ("score_all", "loss", "backward", "optimizer"):
        xs = [c["s"] for c in calls if c["what"] == part]
        if xs:
            r[f"{part}_all"] = xs
            r[f"{part}_s"] = median(xs)
    r["rollout_tokens"] = sum(c["tokens"] for c in later) / len(later)
    r["rollout_tok_s"] = sum(c["tokens"] for c in later) / sum(c["s"] for c in later)
    jl = ju[1:] or ju
    r["judge_tok_s"] = sum(c["tokens"] for c in jl) / sum(c["s"] for c in jl) if jl else None
    if roof:
        mean_prompt = sum(c["prompt_tokens"] for c in later) / sum(c["rows"] for c in later)
        r["rollout_roofline_tok_s"] = roof(later[0]["rows"], mean_prompt + r["rollout_tokens"] / later[0]["rows"] / 2)
        r["rollout_roofline_frac"] = r["rollout_tok_s"] / r["rollout_roofline_tok_s"]
    return r


def main() -> None:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from judgerl.judges import JudgeRequest, JudgeSpec
    from judgerl.judges.hf import HFBackend, init_cudagraph_tls
    from judgerl.judges.values import completion_text, judge_prompt
    from judgerl.model_loader import load_model, shared_model
    from judgerl.training.policy_grpo import PolicyConfig, grpo_args, train_policy, validate

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--trl-steps", type=int, default=None, help="steps of the trl arm (default --steps)")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--generations", type=int, default=4)
    ap.add_argument("--completion", type=int, default=32)
    ap.add_argument("--judge-tokens", type=int, default=48)
    ap.add_argument("--judge-batch", type=int, default=64, help="the judge spec's batch_size (rows a judge decode call)")
    ap.add_argument("--arms", default="new,today,trl")
    ap.add_argument("--standalone", default="", help="decode paths to time alone at the in-loop shape: engine,compile")
    ap.add_argument("--data", default=os.environ.get("JUDGERL_SHARED_DATA"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--profile", action="store_true",
                    help="split the update (scoring rest / loss / backward / optimizer), log allocator counters and "
                         "GC pauses per step and write a torch.profiler table of step --profile-step of each arm next to --out")
    ap.add_argument("--profile-step", type=int, default=4)
    a = ap.parse_args()
    if a.data:
        os.environ["JUDGERL_SHARED_DATA"] = a.data
    tmp = Path(tempfile.mkdtemp())
    atexit.register(shutil.rmtree, tmp, True)  # the bench's runs and caches go with the process
    cuda = torch.cuda.is_available()
    judge_spec = JudgeSpec(name="bench-judge", backend="hf", model=a.model, mode="reasoning", batch_size=a.judge_batch,
                           cache=False, sampling={"max_new_tokens": a.judge_tokens})
    batch = a.prompts * a.generations
    split = Split(torch)
    split.install(GRPOTrainer)
    if a.profile:
        split.install_profile(GRPOTrainer)
    roof = None
    if cuda:
        from judge_decode import copy_bandwidth

        bw = copy_bandwidth(torch)
        c = shared_model(a.model, "causal", "auto", "auto")[0].config
        n_params = sum(p.numel() for p in shared_model(a.model, "causal", "auto", "auto")[0].parameters())
        hd = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        kv_tok = 2 * c.num_hidden_layers * c.num_key_value_heads * hd * 2

        def roof(rows: int, ctx: float) -> float:
            return rows / ((n_params * 2 + rows * ctx * kv_tok) / bw)

    def cfg(run: str, rollout: str, steps: int) -> PolicyConfig:
        return PolicyConfig(name=run, run_dir=str(tmp / run), policy=a.model, judge=judge_spec,
                            grpo={"num_generations": a.generations, "per_device_train_batch_size": batch,
                                  "max_steps": steps, "max_completion_length": a.completion, "save_steps": 10_000,
                                  "save_final": False, "logging_steps": 1, "learning_rate": 1e-6, "rollout": rollout},
                            data={"sources": ["pool:self-instruct"], "max_prompt_chars": 800},
                            monitor={"enabled": False})

    gc_pause = {"s": 0.0, "n": 0, "full": 0, "t": 0.0}

    def on_gc(phase, info):  # --profile: time the garbage collector's pauses (all threads)
        if phase == "start":
            gc_pause["t"] = time.perf_counter()
        else:
            gc_pause["s"] += time.perf_counter() - gc_pause["t"]
            gc_pause["n"] += 1
            gc_pause["full"] += info.get("generation") == 2

    if a.profile:
        import gc

        gc.callbacks.append(on_gc)

    class Stamp(TrainerCallback):
        def __init__(self, arm: str = ""):
            self.t: list[float] = []
            self.arm, self.mem, self.prof = arm, [], None

        def on_train_begin(self, args, state, control, **kw):
            self.t = [time.perf_counter()]

        def on_step_begin(self, args, state, control, **kw):
            if a.profile and state.global_step + 1 == a.profile_step:
                acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
                self.prof = torch.profiler.profile(activities=acts)
                self.prof.__enter__()

        def on_step_end(self, args, state, control, **kw):
            split.sync()
            self.t.append(time.perf_counter())
            if a.profile:
                m = torch.cuda.memory_stats() if cuda else {}
                self.mem.append({**{k: m.get(k) for k in ("num_device_alloc", "num_device_free", "num_alloc_retries",
                                                           "reserved_bytes.all.current", "allocated_bytes.all.peak")},
                                 "gc_s": round(gc_pause["s"], 3), "gc_n": gc_pause["n"], "gc_full": gc_pause["full"]})
                gc_pause.update(s=0.0, n=0, full=0)
            if self.prof is not None:
                self.prof.__exit__(None, None, None)
                tables = []
                for key in ("self_cpu_time_total", "self_cuda_time_total", "cpu_time_total"):
                    try:
                        tables.append(f"== sorted by {key} ==\n" + self.prof.key_averages().table(sort_by=key, row_limit=30))
                    except Exception as e:  # noqa: BLE001 - a key this torch does not know
                        tables.append(f"== {key}: {e}")
                text = "\n".join(tables)
                print(text, flush=True)
                if a.out:
                    Path(a.out).with_name(Path(a.out).stem + f"_profile_{self.arm}.txt").write_text(text)
                self.prof = None

    arms, res = {}, {"device": torch.cuda.get_device_name() if cuda else f"cpu x{os.cpu_count()}",
                     "torch": torch.__version__, "batch": batch, "prompts": a.prompts, "generations": a.generations,
                     "completion": a.completion, "judge_tokens": a.judge_tokens, "judge_batch": a.judge_batch,
                     "JUDGERL_FUSED_STEP": os.environ.get("JUDGERL_FUSED_STEP")}
    for name in a.arms.split(","):
        split.calls = []
        cb = Stamp(name)
        t0 = time.perf_counter()
        if name in JUDGERL_ARMS:
            roll, judge_path = JUDGERL_ARMS[name]
            HFBackend.fast = "compile" if (judge_path == "compile" and cuda) else None
            split.judge_tokens = lambda n=name: ledger_tokens(tmp / n / "ledger.sqlite")
            s = train_policy(cfg(name, roll, a.steps), extra_callbacks=[cb])
            HFBackend.fast = None
            rollout = s["rollout"]
        else:  # plain TRL + a synchronous per-sample judge (same judge implementation, one at a time)
            jm, jt = shared_model(a.model, "causal", "auto", "auto")  # the judge weights the other arms used
            backend = HFBackend(judge_spec, model=jm, tokenizer=jt)
            backend.fast = "compile" if cuda else None
            made = [0]
            split.judge_tokens = lambda: made[0]

            def sync_reward(prompts, completions, **kw):
                init_cudagraph_tls()  # the compiled path's graph trees on the trainer's own thread
                out = []
                for p, comp in zip(prompts, completions):
                    v = backend._verdicts([JudgeRequest(prompt=judge_prompt(p), responses=[completion_text(comp)])])[0]
                    made[0] += v.tokens_out - 1
                    out.append(v.expected if v.expected is not None else 0.0)
                return out

            c = cfg("trl", "trl", a.trl_steps or a.steps)
            v = validate(c)
            policy, tok = load_model(a.model, "causal", device=None, dtype="auto")
            train = Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} for p in v["prompts"]])
            trainer = GRPOTrainer(model=policy, reward_funcs=[sync_reward], args=grpo_args(c, tmp / "trl", v["layout"]),
                                  train_dataset=train, processing_class=tok, callbacks=[cb])
            trainer.train()
            rollout = "trl"
        arms[name] = summarise(name, cb.t, split.calls, roof)
        arms[name].update(rollout=rollout, wall_s=time.perf_counter() - t0)
        if cb.mem:
            arms[name]["memory_per_step"] = cb.mem
        print(json.dumps({k: v for k, v in arms[name].items() if not k.endswith("_all")}), flush=True)
        if a.out:
            Path(a.out).write_text(json.dumps({**res, "arms": arms}, indent=2))
    res["arms"] = arms
    if a.standalone and "new" in arms:
        res["standalone"] = standalone(torch, a, tmp / "new" / "ledger.sqlite", batch, arms["new"])
    base = arms.get("new", {}).get("step_s")
    for other in ("today", "trl"):
        if base and other in arms and arms[other]["step_s"]:
            res[f"{other}_over_new"] = arms[other]["step_s"] / base
    if base:  # steps in 25 minutes of one GPU: the first step (warm-up) once, then the median step
        first = arms["new"]["first_step_s"] or base
        res["steps_in_25_min"] = int(1 + max(0.0, 1500 - first) // base)
    print(json.dumps({k: v for k, v in res.items() if k != "arms"}, indent=2))
    print("\narm    step_s  rollout_s  judge_s  update_s  rollout tok/s  judge tok/s")
    for n, r in arms.items():
        print(f"{n:<6}{r['step_s']:>8.2f}{r['rollout_s']:>11.2f}{r['judge_s']:>9.2f}{r['update_s']:>10.2f}"
              f"{r['rollout_tok_s']:>15.0f}{(r['judge_tok_s'] or 0):>13.0f}")
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2))


def standalone(torch, a, ledger: Path, rows: int, new_arm: dict) -> dict:
    """The judge model's decode path alone at the in-loop batch and lengths (bench 1's method)."""
    from judgerl.judges.decode import generate_ids
    from judgerl.model_loader import shared_model

    with sqlite3.connect(ledger) as c:
        n_in, k = c.execute("SELECT SUM(tokens_in), COUNT(*) FROM calls WHERE stage='policy-reward'").fetchone()
    prompt = max(1, round(n_in / k))
    model, _ = shared_model(a.model, "causal", "auto", "auto")
    g = torch.Generator(device=model.device).manual_seed(0)
    ids = torch.randint(10, model.config.vocab_size - 10, (rows, prompt), device=model.device, generator=g)
    mask = torch.ones_like(ids)
    out = {"rows": rows, "prompt": prompt, "new": a.judge_tokens, "in_loop_judge_tok_s": new_arm["judge_tok_s"]}
    for path in a.standalone.split(","):
        fast = True if path == "engine" else path

        def run():
            return generate_ids(model, ids, mask, max_new_tokens=a.judge_tokens, temperature=0.7, top_k=20,
                                top_p=0.95, pad_token_id=0, eos_token_id=None, fast=fast, pad_rows_to=a.judge_batch)

        t = time.perf_counter()
        run()
        first = time.perf_counter() - t
        best = float("inf")
        for _ in range(2):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            t = time.perf_counter()
            run()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
        out[path] = {"tok_s": rows * a.judge_tokens / best, "first_call_s": first}
        out[path]["in_loop_fraction"] = (new_arm["judge_tok_s"] or 0) / out[path]["tok_s"]
        print(json.dumps({path: out[path]}), flush=True)
    return out


if __name__ == "__main__":
    main()
