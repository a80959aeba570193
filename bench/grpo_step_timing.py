"""How bench/grpo_step.py times a GRPO step and its judge (bench 3; the arms and the report are in grpo_step.py).

In the loop: `Split` wraps GRPOTrainer._generate / _calculate_rewards (rollout / judge seconds per call, the device
synchronised at both ends), `Stamp` stamps each optimizer step (and with --profile logs allocator counters, the
garbage collector's pauses from `GCPauses` and a torch.profiler table), `summarise` turns one arm's stamps and calls
into its row of the JSON (with `rollout_roofline` on CUDA); `watch_compiled` / `dynamo_graphs` tell what compiled.
Outside the loop: `replay_judge` replays a step's judge call alone and `standalone` times the judge model's bare
decode path at the in-loop shape (--replay, --standalone).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Callable

from transformers import TrainerCallback

PREFILL_COUNTS = ("prefill_tokens", "prefill_tokens_one_forward", "prompt_tokens", "prefill_forwards")
MEMORY_STATS = ("num_device_alloc", "num_device_free", "num_alloc_retries", "reserved_bytes.all.current",
                "allocated_bytes.all.peak")
PROFILE_SORTS = ("self_cpu_time_total", "self_cuda_time_total", "cpu_time_total")


def median(xs: list[float]) -> float | None:
    xs = xs[1:] if len(xs) > 1 else xs
    return statistics.median(xs) if xs else None


def sync(torch) -> None:
    """Wait for the device (CUDA) so that a wall-clock time covers its work; nothing on a CPU."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


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


def rollout_roofline(torch, model: str) -> Callable[[int, float], float] | None:
    """On CUDA, the rollout tok/s roofline of `rows` rows at mean context `ctx`: a decode step reads the weights once
    and the KV cache (2 bytes a value) at the measured copy bandwidth. None on a CPU."""
    if not torch.cuda.is_available():
        return None
    from judge_decode import copy_bandwidth

    from judgerl.model_loader import shared_model

    bw = copy_bandwidth(torch)
    m = shared_model(model, "causal", "auto", "auto")[0]
    c, n_params = m.config, sum(p.numel() for p in m.parameters())
    hd = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    kv_tok = 2 * c.num_hidden_layers * c.num_key_value_heads * hd * 2

    def roof(rows: int, ctx: float) -> float:
        return rows / ((n_params * 2 + rows * ctx * kv_tok) / bw)

    return roof


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


class Split:
    """Per-call timings of GRPOTrainer._generate and _calculate_rewards (class-level wrappers)."""

    def __init__(self, torch):
        self.torch, self.calls, self.judge_tokens = torch, [], lambda: 0
        self.phases = False  # --judge-phases: split every in-loop judge call (judges/phases.py)
        self.requests: list = []  # (Judge, requests) of each policy-reward judge call (--replay)

    def sync(self):
        sync(self.torch)

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


class GCPauses:
    """--profile: the garbage collector's pauses (all threads) since the last `take()`; a gc.callbacks entry."""

    def __init__(self):
        self.s, self.n, self.full, self.t = 0.0, 0, 0, 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.t = time.perf_counter()
        else:
            self.s += time.perf_counter() - self.t
            self.n += 1
            self.full += info.get("generation") == 2

    def take(self) -> dict:
        """Seconds, pauses and full (generation 2) collections since the last take."""
        out = {"gc_s": round(self.s, 3), "gc_n": self.n, "gc_full": self.full}
        self.s, self.n, self.full = 0.0, 0, 0
        return out


def profile_table(prof) -> str:
    """A finished torch.profiler run's top 30 operators by each of PROFILE_SORTS."""
    tables = []
    for key in PROFILE_SORTS:
        try:
            tables.append(f"== sorted by {key} ==\n" + prof.key_averages().table(sort_by=key, row_limit=30))
        except Exception as e:  # noqa: BLE001 - a key this torch does not know
            tables.append(f"== {key}: {e}")
    return "\n".join(tables)


class Stamp(TrainerCallback):
    """Wall-clock stamps at the start of training and at each optimizer step's end (device synchronised). With
    `gc_pauses` (--profile) also each step's allocator counters and GC pauses (`mem`), and a torch.profiler table of
    step `profile_step`, printed and written next to `out` (`<out stem>_profile_<arm>.txt`) when `out` is set."""

    def __init__(self, arm: str, torch, gc_pauses: GCPauses | None = None, profile_step: int = 0,
                 out: str | None = None):
        self.t: list[float] = []
        self.arm, self.mem, self.prof = arm, [], None
        self.torch, self.cuda = torch, torch.cuda.is_available()
        self.gc_pauses, self.profile_step, self.out = gc_pauses, profile_step, out

    def on_train_begin(self, args, state, control, **kw):
        self.t = [time.perf_counter()]

    def on_step_begin(self, args, state, control, **kw):
        if self.gc_pauses is not None and state.global_step + 1 == self.profile_step:
            acts = self.torch.profiler.ProfilerActivity
            self.prof = self.torch.profiler.profile(activities=[acts.CPU] + ([acts.CUDA] if self.cuda else []))
            self.prof.__enter__()

    def on_step_end(self, args, state, control, **kw):
        sync(self.torch)
        self.t.append(time.perf_counter())
        if self.gc_pauses is not None:
            m = self.torch.cuda.memory_stats() if self.cuda else {}
            self.mem.append({**{k: m.get(k) for k in MEMORY_STATS}, **self.gc_pauses.take()})
        if self.prof is not None:
            self.prof.__exit__(None, None, None)
            text = profile_table(self.prof)
            print(text, flush=True)
            if self.out:
                Path(self.out).with_name(Path(self.out).stem + f"_profile_{self.arm}.txt").write_text(text)
            self.prof = None


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


def replay_judge(torch, judge, requests: list, in_loop: dict, ledger: Path, reps: int) -> dict:
    """The judge call of a measured step again, alone: the same Judge object's backend (model, graphs, batch size,
    seed: the same tokens), its own ledger; one warm-up call, `reps` timed calls (best kept), then one call split
    into phases. `in_loop` is that step's judge timing from the loop (Split)."""
    from judgerl.judges import Judge, phases

    again = Judge(judge.spec, ledger=ledger, stage=judge.stage, backend=judge.backend)

    def once():
        sync(torch)
        t = time.perf_counter()
        vs = again.judge(requests)
        sync(torch)
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
            sync(torch)
            t = time.perf_counter()
            run()
            sync(torch)
            best = min(best, time.perf_counter() - t)
        out[path] = {"tok_s": rows * a.judge_tokens / best, "first_call_s": first}
        out[path]["in_loop_fraction"] = (new_arm["judge_tok_s"] or 0) / out[path]["tok_s"]
        with phases.recording() as rec:  # one more call, split (prefill / decode / captures) like the replays
            run()
        out[path]["phases"] = rec.as_dict()
        print(json.dumps({path: {k: v for k, v in out[path].items() if k != "phases"}}), flush=True)
        print(f"  raw decode phases: {out[path]['phases']}", flush=True)
    return out
