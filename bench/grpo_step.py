"""Benchmark 3: GRPO step time with a generative (reasoning) judge reward, split into rollout / judge / update.

Arms (same policy, judge, GRPOConfig and prompts; one process, one run):
  new    judgerl `train_policy`: engine rollouts (training/rollout.py) and the judge on the graph engine
         (judges/static_decode.py), both the defaults now.
  today  judgerl `train_policy` as it was before: TRL `generate()` rollouts (grpo.rollout=trl) and the judge
         on transformers' compiled static-cache path (HFBackend.fast="compile").
  trl    TRL `GRPOTrainer` with a plain synchronous reward function judging one completion at a time
         through the same judge implementation (compiled path): what a user writes by hand.
  engine_rollout / engine_judge   one half of `new` each (the other half as in `today`), for --profile.
  new_opt  `new` with the judge options that are off by default until measured on a GPU (JUDGE_OPTIONS: the verdict
         read from the engine's KV instead of a re-prefill, tokenisation on a few threads).
  new_bkt  `new` with the judge's prompts prefilled in length buckets (JudgeSpec.prefill_buckets = --prefill-buckets,
         judges/prefill.py); with --judge-phases or --replay each arm reports its prefilled tokens (padded), those one
         forward would have prefilled, and the real ones (`judge_prefill`).
  new_cmp  `new` with the decode step compiled (judges/compiled_step.py, JUDGERL_COMPILED_STEP=1; SDPA attention): the
         policy's rollouts and the judge (same engine) through torch.compile'd fused steps. Its compile (tens of
         seconds, once per process and model shape) lands in its first step; `compiled_steps` says whether each
         engine's step compiled (false: it fell back to the eager step) and its first call's seconds;
         `new_over_new_cmp`: new's step / rollout / judge seconds over new_cmp's (> 1: compiled faster).
  new_cmpm `new_cmp` with the attention as plain matmuls in the compiled graph (JUDGERL_COMPILED_ATTN=math).
  new_eager `new` with the fused step eager (JUDGERL_COMPILED_STEP=0), where the compiled step is the default (CUDA).
  new_flex `new` with flex attention in the compiled step (JUDGERL_COMPILED_ATTN=flex: inductor's flex-decoding kernel).
Split per step: rollout = `GRPOTrainer._generate`, judge = `GRPOTrainer._calculate_rewards` (the device is
synchronised at both ends), update = the rest of the step (policy log-probs, loss, backward, optimizer).
Step time = wall time between optimizer steps; medians exclude the first step (warm-up, compilation).
Rollout tok/s counts the completion tokens kept; its roofline is rows / (bytes a decode step must read:
weights once + the KV cache at the mean context) / measured copy bandwidth. Judge tok/s = reasoning tokens
generated in the step / judge time. `--standalone` also times the judge model's decode path alone at the
in-loop batch and lengths (random prompts of the mean judge-prompt length, all rows to full length).
`--replay` replays the judge requests of the last step of each arm that judges on the engine, through the same
Judge (same backend, batch size, seed: the same tokens), warm, outside the loop, and reports in-loop / replay and
replay / raw decode apart, with the replay's split into phases (judges/phases.py: render+tokenise, batch, prefill, decode, graph captures,
detokenise, verdict ids, verdict forward, parse, backend thread hop, ledger writes; device synchronised at each
boundary). `--judge-phases` records the same split for every in-loop judge call (a few extra syncs a call).
The timing itself (Split, Stamp, summarise, the roofline, the replays, the standalone decode) is in grpo_step_timing.py.

    python bench/grpo_step.py --steps 6 --prompts 4 --generations 8 --completion 64 --judge-tokens 128
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from grpo_step_timing import (GCPauses, Split, Stamp, dynamo_graphs, ledger_tokens, prefill_counts,  # noqa: E402
                              print_breakdown, replay_judge, rollout_roofline, standalone, summarise,
                              watch_compiled)

# judgerl arms: (policy rollout path, judge decode path). The two mixed arms isolate one half each
# (used with --profile to find which half changes the update time).
JUDGERL_ARMS = {"new": ("engine", "engine"), "today": ("trl", "compile"),
                "engine_rollout": ("engine", "compile"), "engine_judge": ("trl", "engine"),
                "new_opt": ("engine", "engine"), "new_bkt": ("engine", "engine"), "new_cmp": ("engine", "engine"),
                "new_cmpm": ("engine", "engine"), "new_eager": ("engine", "engine"), "new_flex": ("engine", "engine")}
# Options an arm sets for its run (and its replay), still off by default: HFBackend class attributes,
# judges/static_decode.py module settings (prefixed "static_decode."), JudgeSpec fields (prefixed "spec.") and
# environment variables (prefixed "env."; the engine reads JUDGERL_COMPILED_STEP at every generate)
JUDGE_OPTIONS = {"new_opt": {"engine_kv_verdict": True, "tokenize_threads": 4, "static_decode.ENTRY_HEADROOM": 256},
                 "new_bkt": {"spec.prefill_buckets": 4},
                 "new_cmp": {"env.JUDGERL_COMPILED_STEP": "1", "env.JUDGERL_COMPILED_ATTN": "sdpa"},
                 "new_cmpm": {"env.JUDGERL_COMPILED_STEP": "1", "env.JUDGERL_COMPILED_ATTN": "math"},
                 "new_eager": {"env.JUDGERL_COMPILED_STEP": "0"},
                 "new_flex": {"env.JUDGERL_COMPILED_STEP": "1", "env.JUDGERL_COMPILED_ATTN": "flex"}}


def set_options(options: dict) -> dict:
    """Apply an arm's JUDGE_OPTIONS; returns what they replaced (apply it to restore)."""
    from judgerl.judges import static_decode
    from judgerl.judges.hf import HFBackend

    saved = {}
    for k, v in options.items():
        if k.startswith("spec."):  # a JudgeSpec field: the arm's spec (spec_options)
            continue
        if k.startswith("env."):  # None: unset
            saved[k] = os.environ.get(k[4:])
            os.environ.pop(k[4:], None) if v is None else os.environ.__setitem__(k[4:], str(v))
            continue
        owner, attr = (static_decode, k.split(".", 1)[1]) if k.startswith("static_decode.") else (HFBackend, k)
        saved[k] = getattr(owner, attr)
        setattr(owner, attr, v)
    return saved


def spec_options(options: dict) -> dict:
    """The JudgeSpec fields an arm's JUDGE_OPTIONS set."""
    return {k.split(".", 1)[1]: v for k, v in options.items() if k.startswith("spec.")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
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
    ap.add_argument("--replay", action="store_true",
                    help="replay each judgerl arm's last judge call alone (same Judge, warm) and split it into phases")
    ap.add_argument("--replay-reps", type=int, default=2, help="timed replays (best kept), after one warm-up")
    ap.add_argument("--judge-phases", action="store_true", help="split every in-loop judge call into phases")
    ap.add_argument("--prefill-buckets", type=int, default=4, help="JudgeSpec.prefill_buckets of the new_bkt arm")
    ap.add_argument("--cpu-engine-judge", action="store_true",
                    help="on a CPU, judge on the graph engine (eager) as on CUDA instead of plain generate (the CPU "
                         "default): the GPU's code path, for profiling it without a GPU")
    return ap.parse_args(argv)


def install_split(torch, a: argparse.Namespace) -> Split:
    """The in-loop timing hooks: GRPOTrainer's rollout and judge calls, the judge's requests (--replay) and the
    update's parts (--profile)."""
    from trl import GRPOTrainer

    split = Split(torch)
    split.install(GRPOTrainer)
    split.phases = a.judge_phases
    if a.replay:
        from judgerl.judges import Judge

        split.install_judge(Judge)
    if a.profile:
        split.install_profile(GRPOTrainer)
    return split


@dataclass
class Bench:
    """What every arm shares: the options, the judge spec, the timing hooks and a temporary folder for the runs."""

    a: argparse.Namespace
    torch: Any
    tmp: Path
    judge_spec: Any  # JudgeSpec
    split: Split
    roof: Callable[[int, float], float] | None
    gc_pauses: GCPauses | None  # --profile only
    compiled_steps: list  # the CompiledSteps built since the last arm (watch_compiled)

    @property
    def cuda(self) -> bool:
        return self.torch.cuda.is_available()

    @property
    def batch(self) -> int:
        return self.a.prompts * self.a.generations

    def policy_config(self, run: str, rollout: str, steps: int, judge=None):
        """The PolicyConfig of one arm's run (all arms: same policy, GRPO settings and prompts)."""
        from judgerl.training.policy_grpo import PolicyConfig

        a = self.a
        return PolicyConfig(name=run, run_dir=str(self.tmp / run), policy=a.model, judge=judge or self.judge_spec,
                            grpo={"num_generations": a.generations, "per_device_train_batch_size": self.batch,
                                  "max_steps": steps, "max_completion_length": a.completion, "save_steps": 10_000,
                                  "save_final": False, "logging_steps": 1, "learning_rate": 1e-6, "rollout": rollout},
                            data={"sources": ["pool:self-instruct"], "max_prompt_chars": 800},
                            monitor={"enabled": False})

    def stamp(self, arm: str) -> Stamp:
        return Stamp(arm, self.torch, self.gc_pauses, self.a.profile_step, self.a.out)


def setup(a: argparse.Namespace) -> Bench:
    """Apply the options that hold for the whole process, install the timing hooks, make the temporary folder."""
    import torch

    from judgerl.judges import JudgeSpec
    from judgerl.judges.hf import HFBackend

    JUDGE_OPTIONS["new_bkt"]["spec.prefill_buckets"] = a.prefill_buckets
    compiled_steps = watch_compiled()
    if "new_bkt" in a.arms.split(","):  # refused on CUDA in use (RESULTS.md 3g); the bench arm still measures it
        HFBackend.allow_cuda_buckets = True
    if a.data:
        os.environ["JUDGERL_SHARED_DATA"] = a.data
    tmp = Path(tempfile.mkdtemp())
    atexit.register(shutil.rmtree, tmp, True)  # the bench's runs and caches go with the process
    judge_spec = JudgeSpec(name="bench-judge", backend="hf", model=a.model, mode="reasoning", batch_size=a.judge_batch,
                           cache=False, sampling={"max_new_tokens": a.judge_tokens})
    split = install_split(torch, a)
    roof = rollout_roofline(torch, a.model)
    gc_pauses = None
    if a.profile:  # time the garbage collector's pauses (all threads)
        gc_pauses = GCPauses()
        gc.callbacks.append(gc_pauses)
    return Bench(a, torch, tmp, judge_spec, split, roof, gc_pauses, compiled_steps)


def run_judgerl_arm(b: Bench, name: str, cb: Stamp) -> tuple[str, float, dict | None]:
    """A judgerl `train_policy` run with arm `name`'s rollout and judge paths (JUDGERL_ARMS) and options
    (JUDGE_OPTIONS); with --replay its last judge call replayed while the options still hold.
    Returns (rollout path, the run's wall seconds, the replay or None)."""
    from judgerl.judges.hf import HFBackend
    from judgerl.training.policy_grpo import train_policy

    t0 = time.perf_counter()
    roll, judge_path = JUDGERL_ARMS[name]
    HFBackend.fast = "compile" if (judge_path == "compile" and b.cuda) else None
    if judge_path == "engine" and not b.cuda and b.a.cpu_engine_judge:
        HFBackend.fast = True
    options = JUDGE_OPTIONS.get(name, {})
    saved = set_options(options)
    b.split.judge_tokens = lambda: ledger_tokens(b.tmp / name / "ledger.sqlite")
    spec = b.judge_spec.model_copy(update=spec_options(options))
    s = train_policy(b.policy_config(name, roll, b.a.steps, spec), extra_callbacks=[cb])
    wall = time.perf_counter() - t0
    replay = None
    if b.a.replay and b.split.requests and judge_path == "engine":
        replay = replay_last_judge_call(b, name, options)
    set_options(saved)
    HFBackend.fast = None
    return s["rollout"], wall, replay


def replay_last_judge_call(b: Bench, name: str, options: dict) -> dict:
    """--replay: arm `name`'s last in-loop judge call again, alone (replay_judge), printed without its phases."""
    last = next(c for c in reversed(b.split.calls) if c["what"] == "judge")
    r = replay_judge(b.torch, *b.split.requests[-1], last, b.tmp / f"replay_{name}.sqlite", b.a.replay_reps)
    r["judge_options"] = options
    r["judge_prefill"] = prefill_counts([r["phases"]])
    print(json.dumps({"replay": name, **{k: v for k, v in r.items() if k != "phases"}}), flush=True)
    return r


def sync_reward_fn(backend) -> tuple[Callable, list[int]]:
    """A plain synchronous TRL reward function judging one completion at a time through `backend` (what a user
    writes by hand), and a one-item list counting the reasoning tokens it has generated."""
    from judgerl.judges import JudgeRequest
    from judgerl.judges.hf import init_cudagraph_tls
    from judgerl.judges.values import completion_text, judge_prompt

    made = [0]

    def sync_reward(prompts, completions, **kw):
        init_cudagraph_tls()  # the compiled path's graph trees on the trainer's own thread
        out = []
        for p, comp in zip(prompts, completions):
            v = backend._verdicts([JudgeRequest(prompt=judge_prompt(p), responses=[completion_text(comp)])])[0]
            made[0] += v.tokens_out - 1
            out.append(v.expected if v.expected is not None else 0.0)
        return out

    return sync_reward, made


def run_trl_arm(b: Bench, cb: Stamp) -> tuple[str, float]:
    """Plain TRL `GRPOTrainer` + the synchronous per-sample judge (same judge implementation and weights, one
    completion at a time). Returns ("trl", the run's wall seconds)."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from judgerl.judges.hf import HFBackend
    from judgerl.model_loader import load_model, shared_model
    from judgerl.training.policy_grpo import grpo_args, validate

    t0 = time.perf_counter()
    jm, jt = shared_model(b.a.model, "causal", "auto", "auto")  # the judge weights the other arms used
    backend = HFBackend(b.judge_spec, model=jm, tokenizer=jt)
    backend.fast = "compile" if b.cuda else None
    sync_reward, made = sync_reward_fn(backend)
    b.split.judge_tokens = lambda: made[0]
    c = b.policy_config("trl", "trl", b.a.trl_steps or b.a.steps)
    v = validate(c)
    policy, tok = load_model(b.a.model, "causal", device=None, dtype="auto")
    train = Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} for p in v["prompts"]])
    trainer = GRPOTrainer(model=policy, reward_funcs=[sync_reward], args=grpo_args(c, b.tmp / "trl", v["layout"]),
                          train_dataset=train, processing_class=tok, callbacks=[cb])
    trainer.train()
    return "trl", time.perf_counter() - t0


def run_arm(b: Bench, name: str, replays: dict) -> dict:
    """Arm `name` trained and timed from scratch: its row of the JSON (its judge replay, if any, into `replays`)."""
    b.split.calls, b.split.requests = [], []
    graphs0 = dynamo_graphs()
    cb = b.stamp(name)
    if name in JUDGERL_ARMS:
        rollout, wall, replay = run_judgerl_arm(b, name, cb)
        if replay is not None:
            replays[name] = replay
    else:
        rollout, wall = run_trl_arm(b, cb)
    row = summarise(name, cb.t, b.split.calls, b.roof)
    row.update(rollout=rollout, wall_s=wall)
    if cb.mem:
        row["memory_per_step"] = cb.mem
    if b.compiled_steps:  # built during this arm (new on CUDA, new_cmp, new_cmpm): compiled?, first call's seconds
        row["compiled_steps"] = [{"compiled": c.compiled, "first_call_s": c.first_call_s, "calls": c.calls}
                                 for c in b.compiled_steps]
        row["dynamo_graphs"] = dynamo_graphs() - graphs0  # compiles + recompiles in this arm
        b.compiled_steps.clear()
    return row


def header(b: Bench) -> dict:
    """The JSON's description of the run: device, torch and the sizes."""
    a = b.a
    return {"device": b.torch.cuda.get_device_name() if b.cuda else f"cpu x{os.cpu_count()}",
            "torch": b.torch.__version__, "batch": b.batch, "prompts": a.prompts, "generations": a.generations,
            "completion": a.completion, "judge_tokens": a.judge_tokens, "judge_batch": a.judge_batch,
            "JUDGERL_FUSED_STEP": os.environ.get("JUDGERL_FUSED_STEP")}


def add_standalone(b: Bench, res: dict, arms: dict, replays: dict) -> None:
    """--standalone (with the new arm run): the bare decode timings into `res`, and each replay's replay / raw."""
    res["standalone"] = standalone(b.torch, b.a, b.tmp / "new" / "ledger.sqlite", b.batch, arms["new"])
    raw = res["standalone"].get("engine", {}).get("tok_s")
    for r in replays.values():  # replay / raw decode: the judge call's own cost over the bare decode
        r["replay_over_raw"] = r["replay_tok_s"] / raw if raw else None


def ratios(arms: dict) -> dict:
    """The arms' step times against each other (the JSON's `*_over_*` keys) and `steps_in_25_min` of the new arm."""
    out = {}
    base = arms.get("new", {}).get("step_s")
    for other in ("today", "trl"):
        if base and other in arms and arms[other]["step_s"]:
            out[f"{other}_over_new"] = arms[other]["step_s"] / base
        if arms.get("new_opt", {}).get("step_s") and other in arms and arms[other]["step_s"]:
            out[f"{other}_over_new_opt"] = arms[other]["step_s"] / arms["new_opt"]["step_s"]
    if base and arms.get("new_eager", {}).get("step_s"):  # > 1: the default (compiled on CUDA) is faster than eager
        out["new_eager_over_new"] = {k: arms["new_eager"][k] / arms["new"][k] for k in ("step_s", "rollout_s", "judge_s")}
    for cmp in ("new_cmp", "new_cmpm", "new_flex"):  # > 1: the compiled step made the step / rollouts / judge faster
        if base and arms.get(cmp, {}).get("step_s"):
            out[f"new_over_{cmp}"] = {k: arms["new"][k] / arms[cmp][k] for k in ("step_s", "rollout_s", "judge_s")}
    if base and arms.get("new_bkt", {}).get("step_s"):  # > 1: bucketed prefill made the step / the judge faster
        out["new_over_new_bkt"] = {k: arms["new"][k] / arms["new_bkt"][k] for k in ("step_s", "judge_s")}
    if base:  # steps in 25 minutes of one GPU: the first step (warm-up) once, then the median step
        first = arms["new"]["first_step_s"] or base
        out["steps_in_25_min"] = int(1 + max(0.0, 1500 - first) // base)
    return out


def print_table(arms: dict) -> None:
    """One line an arm (medians), then each arm's in-loop prefill per judge call (--judge-phases)."""
    print("\narm    step_s  rollout_s  judge_s  update_s  rollout tok/s  judge tok/s  rollout roofline")
    for n, r in arms.items():
        print(f"{n:<6}{r['step_s']:>8.2f}{r['rollout_s']:>11.2f}{r['judge_s']:>9.2f}{r['update_s']:>10.2f}"
              f"{r['rollout_tok_s']:>15.0f}{(r['judge_tok_s'] or 0):>13.0f}{r.get('rollout_roofline_frac', 0):>17.1%}")
    for n, r in arms.items():  # the replays' counts are printed by print_breakdown
        if r.get("judge_prefill"):
            p = r["judge_prefill"]
            print(f"{n}: prefill {p['prefill_s']:.3f} s, {p['prefill_tokens']:.0f} tokens prefilled in "
                  f"{p['prefill_forwards']:.0f} forward(s), {p['prefill_tokens_one_forward']:.0f} in one forward, "
                  f"{p['prompt_tokens']:.0f} real ({p.get('padding_frac', 0):.1%} padding)")


def main() -> None:
    a = parse_args()
    b = setup(a)
    res, arms, replays = header(b), {}, {}
    for name in a.arms.split(","):
        arms[name] = run_arm(b, name, replays)
        print(json.dumps({k: v for k, v in arms[name].items() if not k.endswith("_all")}), flush=True)
        if a.out:  # what is measured so far, in case a later arm fails
            Path(a.out).write_text(json.dumps({**res, "arms": arms}, indent=2))
    res["arms"] = arms
    if replays:
        res["judge_replay"] = replays
    if a.standalone and "new" in arms:
        add_standalone(b, res, arms, replays)
    if replays:
        print_breakdown(replays)
    res.update(ratios(arms))
    print(json.dumps({k: v for k, v in res.items() if k != "arms"}, indent=2))
    print_table(arms)
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
