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

    python bench/grpo_step.py --steps 6 --prompts 4 --generations 8 --completion 64 --judge-tokens 128
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
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
PREFILL_COUNTS = ("prefill_tokens", "prefill_tokens_one_forward", "prompt_tokens", "prefill_forwards")


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


def watch_compiled() -> list:
    """Every CompiledStep built from now on (the policy's and the judge's engines), to report whether it compiled."""
    from judgerl.judges.compiled_step import CompiledStep

    built, init = [], CompiledStep.__init__

    def recorded(step, model):
        init(step, model)
        built.append(step)

    CompiledStep.__init__ = recorded
    return built


def dynamo_graphs() -> int:
    """Graphs torch.compile has compiled in this process so far (recompiles included)."""
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def prefill_counts(phase_dicts: list[dict | None]) -> dict | None:
    """The prefill counters and seconds of judge calls split into phases: medians per call (median() leaves the
    first call out, as for times)."""
    calls = [p for p in phase_dicts if p]
    if not calls:
        return None
    out = {k: median([p["counts"].get(k, 0) for p in calls]) for k in PREFILL_COUNTS}
    out["prefill_s"] = median([p["seconds"].get("prefill", 0.0) for p in calls])
    if out["prefill_tokens"]:
        out["padding_frac"] = 1 - out["prompt_tokens"] / out["prefill_tokens"]
    return out


def median(xs: list[float]) -> float | None:
    xs = xs[1:] if len(xs) > 1 else xs
    return statistics.median(xs) if xs else None


class Split:
    """Per-call timings of GRPOTrainer._generate and _calculate_rewards (class-level wrappers)."""

    def __init__(self, torch):
        self.torch, self.calls, self.judge_tokens = torch, [], lambda: 0
        self.phases = False  # --judge-phases: split every in-loop judge call (judges/phases.py)
        self.requests: list = []  # (Judge, requests) of each policy-reward judge call (--replay)

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
            from judgerl.judges import phases

            split.sync()
            t, n0 = time.perf_counter(), split.judge_tokens()
            with phases.recording() if split.phases else contextlib.nullcontext() as rec:
                out = rew(trainer, *args, **kw)
            split.sync()
            split.calls.append({"what": "judge", "s": time.perf_counter() - t, "tokens": split.judge_tokens() - n0,
                                **({"phases": rec.as_dict()} if rec is not None else {})})
            return out

        cls._generate, cls._calculate_rewards = _generate, _calculate_rewards

    def install_judge(self, judge_cls):
        """Keep the requests of every policy-reward judge call (the reward function's), for --replay."""
        ajudge, split = judge_cls.ajudge, self

        async def recorded(judge, requests, *args, **kw):
            if judge.stage == "policy-reward":
                split.requests.append((judge, list(requests)))
            return await ajudge(judge, requests, *args, **kw)

        judge_cls.ajudge = recorded

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
    if any("phases" in c for c in ju):
        r["judge_phases_all"] = [c.get("phases") for c in ju]
        r["judge_prefill"] = prefill_counts([c.get("phases") for c in ju])
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
    ap.add_argument("--replay", action="store_true",
                    help="replay each judgerl arm's last judge call alone (same Judge, warm) and split it into phases")
    ap.add_argument("--replay-reps", type=int, default=2, help="timed replays (best kept), after one warm-up")
    ap.add_argument("--judge-phases", action="store_true", help="split every in-loop judge call into phases")
    ap.add_argument("--prefill-buckets", type=int, default=4, help="JudgeSpec.prefill_buckets of the new_bkt arm")
    ap.add_argument("--cpu-engine-judge", action="store_true",
                    help="on a CPU, judge on the graph engine (eager) as on CUDA instead of plain generate (the CPU "
                         "default): the GPU's code path, for profiling it without a GPU")
    a = ap.parse_args()
    JUDGE_OPTIONS["new_bkt"]["spec.prefill_buckets"] = a.prefill_buckets
    compiled_steps = watch_compiled()
    if "new_bkt" in a.arms.split(","):  # refused on CUDA in use (RESULTS.md 3g); the bench arm still measures it
        from judgerl.judges.hf import HFBackend

        HFBackend.allow_cuda_buckets = True
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
    split.phases = a.judge_phases
    if a.replay:
        from judgerl.judges import Judge

        split.install_judge(Judge)
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

    def cfg(run: str, rollout: str, steps: int, judge: JudgeSpec | None = None) -> PolicyConfig:
        return PolicyConfig(name=run, run_dir=str(tmp / run), policy=a.model, judge=judge or judge_spec,
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
    replays = {}
    for name in a.arms.split(","):
        split.calls, split.requests = [], []
        graphs0 = dynamo_graphs()
        cb = Stamp(name)
        t0 = time.perf_counter()
        if name in JUDGERL_ARMS:
            roll, judge_path = JUDGERL_ARMS[name]
            HFBackend.fast = "compile" if (judge_path == "compile" and cuda) else None
            if judge_path == "engine" and not cuda and a.cpu_engine_judge:
                HFBackend.fast = True
            options = JUDGE_OPTIONS.get(name, {})
            saved = set_options(options)
            split.judge_tokens = lambda n=name: ledger_tokens(tmp / n / "ledger.sqlite")
            spec = judge_spec.model_copy(update=spec_options(options))
            s = train_policy(cfg(name, roll, a.steps, spec), extra_callbacks=[cb])
            wall = time.perf_counter() - t0
            if a.replay and split.requests and judge_path == "engine":
                last = next(c for c in reversed(split.calls) if c["what"] == "judge")
                replays[name] = replay_judge(torch, *split.requests[-1], last, tmp / f"replay_{name}.sqlite",
                                             a.replay_reps)
                replays[name]["judge_options"] = options
                replays[name]["judge_prefill"] = prefill_counts([replays[name]["phases"]])
                print(json.dumps({"replay": name, **{k: v for k, v in replays[name].items() if k != "phases"}}),
                      flush=True)
            set_options(saved)
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
        arms[name].update(rollout=rollout, wall_s=wall if name in JUDGERL_ARMS else time.perf_counter() - t0)
        if cb.mem:
            arms[name]["memory_per_step"] = cb.mem
        if compiled_steps:  # built during this arm (new on CUDA, new_cmp, new_cmpm): compiled?, first call's seconds
            arms[name]["compiled_steps"] = [{"compiled": c.compiled, "first_call_s": c.first_call_s, "calls": c.calls}
                                            for c in compiled_steps]
            arms[name]["dynamo_graphs"] = dynamo_graphs() - graphs0  # compiles + recompiles in this arm
            compiled_steps.clear()
        print(json.dumps({k: v for k, v in arms[name].items() if not k.endswith("_all")}), flush=True)
        if a.out:
            Path(a.out).write_text(json.dumps({**res, "arms": arms}, indent=2))
    res["arms"] = arms
    if replays:
        res["judge_replay"] = replays
    if a.standalone and "new" in arms:
        res["standalone"] = standalone(torch, a, tmp / "new" / "ledger.sqlite", batch, arms["new"])
        raw = res["standalone"].get("engine", {}).get("tok_s")
        for r in replays.values():  # replay / raw decode: the judge call's own cost over the bare decode
            r["replay_over_raw"] = r["replay_tok_s"] / raw if raw else None
    if replays:
        print_breakdown(replays)
    base = arms.get("new", {}).get("step_s")
    for other in ("today", "trl"):
        if base and other in arms and arms[other]["step_s"]:
            res[f"{other}_over_new"] = arms[other]["step_s"] / base
        if arms.get("new_opt", {}).get("step_s") and other in arms and arms[other]["step_s"]:
            res[f"{other}_over_new_opt"] = arms[other]["step_s"] / arms["new_opt"]["step_s"]
    if base and arms.get("new_eager", {}).get("step_s"):  # > 1: the default (compiled on CUDA) is faster than eager
        res["new_eager_over_new"] = {k: arms["new_eager"][k] / arms["new"][k] for k in ("step_s", "rollout_s", "judge_s")}
    for cmp in ("new_cmp", "new_cmpm", "new_flex"):  # > 1: the compiled step made the step / rollouts / judge faster
        if base and arms.get(cmp, {}).get("step_s"):
            res[f"new_over_{cmp}"] = {k: arms["new"][k] / arms[cmp][k] for k in ("step_s", "rollout_s", "judge_s")}
    if base and arms.get("new_bkt", {}).get("step_s"):  # > 1: bucketed prefill made the step / the judge faster
        res["new_over_new_bkt"] = {k: arms["new"][k] / arms["new_bkt"][k] for k in ("step_s", "judge_s")}
    if base:  # steps in 25 minutes of one GPU: the first step (warm-up) once, then the median step
        first = arms["new"]["first_step_s"] or base
        res["steps_in_25_min"] = int(1 + max(0.0, 1500 - first) // base)
    print(json.dumps({k: v for k, v in res.items() if k != "arms"}, indent=2))
    print("\narm    step_s  rollout_s  judge_s  update_s  rollout tok/s  judge tok/s  rollout roofline")
    for n, r in arms.items():
        print(f"{n:<6}{r['step_s']:>8.2f}{r['rollout_s']:>11.2f}{r['judge_s']:>9.2f}{r['update_s']:>10.2f}"
              f"{r['rollout_tok_s']:>15.0f}{(r['judge_tok_s'] or 0):>13.0f}{r.get('rollout_roofline_frac', 0):>17.1%}")
    for n, r in arms.items():  # in-loop prefill per judge call (--judge-phases); the replays' counts are printed above
        if r.get("judge_prefill"):
            p = r["judge_prefill"]
            print(f"{n}: prefill {p['prefill_s']:.3f} s, {p['prefill_tokens']:.0f} tokens prefilled in "
                  f"{p['prefill_forwards']:.0f} forward(s), {p['prefill_tokens_one_forward']:.0f} in one forward, "
                  f"{p['prompt_tokens']:.0f} real ({p.get('padding_frac', 0):.1%} padding)")
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2))


def replay_judge(torch, judge, requests: list, in_loop: dict, ledger: Path, reps: int) -> dict:
    """The judge call of a measured step again, alone: the same Judge object's backend (model, graphs, batch size,
    seed: the same tokens), its own ledger; one warm-up call, `reps` timed calls (best kept), then one call split
    into phases. `in_loop` is that step's judge timing from the loop (Split)."""
    from judgerl.judges import Judge, phases

    def sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    again = Judge(judge.spec, ledger=ledger, stage=judge.stage, backend=judge.backend)

    def once():
        sync()
        t = time.perf_counter()
        vs = again.judge(requests)
        sync()
        return time.perf_counter() - t, vs

    warm, _ = once()
    times = []
    for _ in range(max(1, reps)):
        dt, vs = once()
        times.append(dt)
    with phases.recording() as rec:
        phased, _ = once()
    tokens = sum(max(0, v.tokens_out - 1) for v in vs)  # reasoning tokens, as the loop's ledger counts them
    best = min(times)
    out = {"requests": len(requests), "batch_size": judge.spec.batch_size, "warmup_s": warm, "replay_all": times,
           "replay_s": best, "replay_tokens": tokens, "replay_tok_s": tokens / best, "phased_s": phased,
           "in_loop_s": in_loop["s"], "in_loop_tokens": in_loop["tokens"],
           "in_loop_tok_s": in_loop["tokens"] / in_loop["s"] if in_loop["s"] else None,
           "phases": rec.as_dict(), "in_loop_phases": in_loop.get("phases")}
    out["in_loop_over_replay"] = out["in_loop_tok_s"] / out["replay_tok_s"] if out["in_loop_tok_s"] else None
    return out


def print_breakdown(replays: dict) -> None:
    """Seconds per phase of each replayed judge call (and of the same in-loop call when --judge-phases was on)."""
    for name, r in replays.items():
        print(f"\njudge call of arm {name}: in loop {r['in_loop_s']:.3f} s ({r['in_loop_tokens']} tok), replay "
              f"{r['replay_s']:.3f} s ({r['replay_tokens']} tok), phased replay {r['phased_s']:.3f} s; in-loop / replay "
              f"{r['in_loop_over_replay'] or 0:.2f}, replay / raw decode {r.get('replay_over_raw') or 0:.2f}")
        cols = [("replay", r["phases"])] + ([("in loop", r["in_loop_phases"])] if r.get("in_loop_phases") else [])
        names = list(dict.fromkeys(k for _, p in cols for k in p["seconds"]))
        print(f"  {'phase':<22}" + "".join(f"{c:>12}" for c, _ in cols))
        for k in names:
            print(f"  {k:<22}" + "".join(f"{p['seconds'].get(k, 0.0):>12.4f}" for _, p in cols))
        for c, p in cols:
            print(f"  counts ({c}): " + ", ".join(f"{k}={v:g}" for k, v in p["counts"].items()))


def standalone(torch, a, ledger: Path, rows: int, new_arm: dict) -> dict:
    """The judge model's decode path alone at the in-loop batch and lengths (bench 1's method)."""
    from judgerl.judges import phases
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
        with phases.recording() as rec:  # one more call, split (prefill / decode / captures) like the replays
            run()
        out[path]["phases"] = rec.as_dict()
        print(json.dumps({path: {k: v for k, v in out[path].items() if k != "phases"}}), flush=True)
        print(f"  raw decode phases: {out[path]['phases']}", flush=True)
    return out


if __name__ == "__main__":
    main()
