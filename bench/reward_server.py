"""Benchmark: `judgerl serve` overhead vs the same reward callable in-process, and throughput under clients.

Same SmolLM2 judge weights (hf backend, default pointwise template, batch_size 16), cache off, ledger on,
AlpacaEval prompts/outputs cut to 400 characters, distinct items.

A. Overhead: one batch of --n items scored by train-policy's reward callable in-process (`await reward(
   prompts, completions)`) vs the same batch sent as one POST /v1/rewards to a server on 127.0.0.1
   (HTTP + JSON + batcher + response). Alternating A/B --repeats times; medians; target <= 10%.
B. Load: 1, 8 and 64 concurrent clients, each sending its share of --n items as requests of
   --per-request items (1 = how verl's reward loop and OpenRLHF call); items/s, per-request p50/p99
   latency, items per judge batch, errors (non-200 or a null reward), and the ratio to the reward
   callable judging the same --n items in-process in one call, measured right before each client count.

    python bench/reward_server.py --n 64 --chars 150 --skip-overhead --out bench/reward_server_cpu_load.json
    (--no-prefix-memo: the server without its prompt-head memo, the "before" figures)
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gzip
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from judgerl.judges import Judge, JudgeSpec  # noqa: E402
from judgerl.serve import RewardService, ServeConfig  # noqa: E402
from judgerl.serve.app import server_thread  # noqa: E402
from judgerl.training.rewards import JudgeRewardConfig, make_reward  # noqa: E402

MODEL = "smollm2-135m-instruct"


def alpaca(data: Path, n: int, chars: int = 400) -> tuple[list[str], list[str]]:
    rows = json.load(gzip.open(data / "alpaca-eval/reference_outputs/gpt4_1106_preview.json.gz", "rt"))[:n]
    return [r["instruction"][:chars] for r in rows], [r["output"][:chars] for r in rows]


async def post_all(url: str, items: list[dict], clients: int, per_request: int) -> tuple[float, list, list, int]:
    """(seconds, rewards in item order (None where a request failed), per-request latencies, errors):
    `clients` concurrent clients share the requests."""
    import httpx

    starts = list(range(0, len(items), per_request))
    shares = [starts[c::clients] for c in range(clients)]
    rewards: list = [None] * len(items)
    latencies: list = []
    errors = 0

    async def client(c, share):
        nonlocal errors
        for s in share:
            t = time.perf_counter()
            r = await c.post("/v1/rewards", json={"items": items[s:s + per_request]})
            latencies.append(time.perf_counter() - t)
            if r.status_code != 200 or None in r.json()["rewards"]:
                errors += 1
                continue
            rewards[s:s + per_request] = r.json()["rewards"]

    # the clients are built before the clock starts: each AsyncClient loads an SSL context (tens of ms on a
    # busy CPU, blocking the loop), which is the client's set-up, not the server's throughput
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    conns = [httpx.AsyncClient(base_url=url, timeout=900, limits=limits) for _ in shares]
    try:
        t = time.perf_counter()
        await asyncio.gather(*(client(c, s) for c, s in zip(conns, shares)))
        dt = time.perf_counter() - t
    finally:
        await asyncio.gather(*(c.aclose() for c in conns))
    return dt, rewards, latencies, errors


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[max(0, math.ceil(p * len(xs)) - 1)]


def main() -> None:
    import torch
    import transformers

    from judgerl.model_loader import load_model
    from judgerl.models import fetch

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3, help="A/B alternations of part A")
    ap.add_argument("--repeats-b", type=int, default=1, help="runs per client count in part B (median)")
    ap.add_argument("--per-request", type=int, default=1)
    ap.add_argument("--max-batch-items", type=int, default=64)
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--chars", type=int, default=400, help="instructions and outputs cut to this many characters")
    ap.add_argument("--skip-overhead", action="store_true", help="only part B")
    ap.add_argument("--clients", default="1,8,64")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default); the "
                    "in-process baseline and the server share them")
    ap.add_argument("--no-prefix-memo", action="store_true", help="serve with prefix_memo off (the before figures)")
    ap.add_argument("--data", default=os.environ.get("JUDGERL_SHARED_DATA", str(Path(__file__).resolve().parents[2] / "shared/data")))
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    model, tok = load_model(str(fetch(MODEL, progress=lambda m: None)), "causal", device="cpu", dtype="float32")
    spec = JudgeSpec(name="bench", backend="hf", model=MODEL, device="cpu", dtype="float32", batch_size=16, cache=False)
    prompts, outputs = alpaca(Path(a.data), a.n, a.chars)
    items = [{"prompt": p, "response": o} for p, o in zip(prompts, outputs)]
    inproc_judge = Judge(spec, ledger=tmp / "inproc.sqlite", stage="bench", model=model, tokenizer=tok)
    reward = make_reward(inproc_judge, JudgeRewardConfig(), 1)
    cfg = ServeConfig(judge=spec, run_dir=str(tmp / "serve"), port=0, max_batch_items=a.max_batch_items,
                      max_wait_ms=a.max_wait_ms, prefix_memo=not a.no_prefix_memo)
    service = RewardService(cfg, model=model, tokenizer=tok)
    res: dict = {"n": a.n, "chars": a.chars, "repeats": a.repeats, "repeats_b": a.repeats_b, "per_request": a.per_request, "judge_batch_size": spec.batch_size,
                 "prefix_memo": not a.no_prefix_memo, "max_batch_items": a.max_batch_items, "max_wait_ms": a.max_wait_ms,
                 "torch_threads": torch.get_num_threads(),
                 "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared), no GPU",
                 "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                              "python": platform.python_version()},
                 "command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d")}
    with server_thread(service) as url:
        asyncio.run(post_all(url, items[:4], 1, 4))  # warm-up: first-call allocations on both paths
        asyncio.run(reward(prompts[:4], outputs[:4]))
        inproc, served = [], []
        for _ in range(0 if a.skip_overhead else a.repeats):
            t = time.perf_counter()
            ref = asyncio.run(reward(prompts, outputs))
            inproc.append(time.perf_counter() - t)
            dt, got, _, _ = asyncio.run(post_all(url, items, 1, len(items)))
            served.append(dt)
            assert max(abs(g - r) for g, r in zip(got, ref)) < 1e-4, "server rewards differ from the in-process ones"
        if inproc:
            ti, ts = statistics.median(inproc), statistics.median(served)
            pair = statistics.median(s / i for i, s in zip(inproc, served))  # robust to load drift between pairs
            res["overhead"] = {"inproc_s": inproc, "server_s": served, "inproc_median_s": ti, "server_median_s": ts,
                               "overhead_pct": 100 * (ts / ti - 1), "overhead_pct_median_pair": 100 * (pair - 1),
                               "inproc_items_per_s": a.n / ti}
            print(f"A. one batch of {a.n}: in-process {ti:.2f} s, server {ts:.2f} s (medians) -> overhead "
                  f"{100 * (ts / ti - 1):+.1f}%; median of paired ratios {100 * (pair - 1):+.1f}%")
            save(a.out, res)
        res["throughput"] = []
        for c in [int(x) for x in a.clients.split(",") if x]:
            res["throughput"].append(load_pass(url, service, reward, prompts, outputs, c, a))
            save(a.out, res)
        res["server_metrics"] = service.metrics.snapshot(service.live())
        memo = getattr(service.judge.backend, "prefix_memo", None)
        res["prefix_memo_tokens_reused"] = memo.tokens_reused if memo is not None else 0
    save(a.out, res)
    print(f"wrote {a.out}" if a.out else "")


def load_pass(url, service, reward, prompts, outputs, clients: int, a) -> dict:
    """--repeats-b pairs of (in-process judging of the --n items, the same items sent by `clients` clients);
    the row of the median server time, with every pair's ratio, the load average and the largest reward gap."""
    items = [{"prompt": p, "response": o} for p, o in zip(prompts, outputs)]
    runs = []
    for _ in range(a.repeats_b):
        load0 = os.getloadavg()[0]
        b0 = service.batcher.batches
        t, c = time.perf_counter(), time.process_time()
        ref = asyncio.run(reward(prompts, outputs))  # in-process, same items, same run: the baseline
        t_in, cpu_in = time.perf_counter() - t, time.process_time() - c
        c = time.process_time()
        dt, got, lat, errors = asyncio.run(post_all(url, items, clients, a.per_request))
        cpu = time.process_time() - c  # this process's CPU time (server, judge and clients): work, not waiting
        gap = max((abs(g - r) for g, r in zip(got, ref) if g is not None), default=float("nan"))
        runs.append({"seconds": dt, "batches": service.batcher.batches - b0, "inproc_s": t_in, "vs_inproc": t_in / dt,
                     "latencies": lat, "errors": errors, "answered": sum(g is not None for g in got),
                     "max_reward_gap": gap, "load_1min": [load0, os.getloadavg()[0]], "cpu_s": cpu, "inproc_cpu_s": cpu_in,
                     "vs_inproc_cpu": cpu_in / cpu})
    mid = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    row = {"clients": clients, **{k: v for k, v in mid.items() if k != "latencies"}, "items_per_s": a.n / mid["seconds"],
           "items_per_batch": a.n / mid["batches"], "latency_p50_s": pct(mid["latencies"], 0.5),
           "latency_p99_s": pct(mid["latencies"], 0.99),
           "vs_inproc_pairs": [r["vs_inproc"] for r in runs],
           "vs_inproc_median_pair": statistics.median(r["vs_inproc"] for r in runs),
           "load_1min_all": [r["load_1min"] for r in runs]}
    print(f"B. {clients:2d} clients x {a.per_request}-item requests: {row['items_per_s']:.2f} items/s, "
          f"{row['batches']} batches ({row['items_per_batch']:.1f} items each), p50 {row['latency_p50_s']:.2f} s, "
          f"p99 {row['latency_p99_s']:.2f} s, {row['errors']} errors, max reward gap {row['max_reward_gap']:.1e}; "
          f"in-process {row['inproc_s']:.1f} s -> {row['vs_inproc']:.2f}x of in-process throughput (pairs: "
          f"{', '.join(f'{x:.2f}' for x in row['vs_inproc_pairs'])}); CPU s {row['cpu_s']:.1f} vs in-process "
          f"{row['inproc_cpu_s']:.1f} -> {row['vs_inproc_cpu']:.2f}x; load {row['load_1min_all']}", flush=True)
    return row


def save(path: str | None, res: dict) -> None:
    """Written after each part, so a long CPU run that is stopped keeps what it measured."""
    if path:
        Path(path).write_text(json.dumps(res, indent=2, default=float))


if __name__ == "__main__":
    main()
