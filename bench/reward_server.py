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

    python bench/reward_server.py --n 128 --skip-overhead --out bench/reward_server_cpu_load.json
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
    """(seconds, rewards, per-request latencies, errors): `clients` concurrent clients share the requests."""
    import httpx

    chunks = [items[i:i + per_request] for i in range(0, len(items), per_request)]
    shares = [chunks[c::clients] for c in range(clients)]
    rewards: list = []
    latencies: list = []
    errors = 0

    async def client(share):
        nonlocal errors
        limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
        async with httpx.AsyncClient(base_url=url, timeout=900, limits=limits) as c:
            for chunk in share:
                t = time.perf_counter()
                r = await c.post("/v1/rewards", json={"items": chunk})
                latencies.append(time.perf_counter() - t)
                if r.status_code != 200 or None in r.json()["rewards"]:
                    errors += 1
                    continue
                rewards.extend(r.json()["rewards"])

    t = time.perf_counter()
    await asyncio.gather(*(client(s) for s in shares))
    return time.perf_counter() - t, rewards, latencies, errors


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
    ap.add_argument("--data", default=os.environ.get("JUDGERL_SHARED_DATA", str(Path(__file__).resolve().parents[2] / "shared/data")))
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    model, tok = load_model(str(fetch(MODEL, progress=lambda m: None)), "causal", device="cpu", dtype="float32")
    spec = JudgeSpec(name="bench", backend="hf", model=MODEL, device="cpu", dtype="float32", batch_size=16, cache=False)
    prompts, outputs = alpaca(Path(a.data), a.n, a.chars)
    items = [{"prompt": p, "response": o} for p, o in zip(prompts, outputs)]
    inproc_judge = Judge(spec, ledger=tmp / "inproc.sqlite", stage="bench", model=model, tokenizer=tok)
    reward = make_reward(inproc_judge, JudgeRewardConfig(), 1)
    cfg = ServeConfig(judge=spec, run_dir=str(tmp / "serve"), port=0, max_batch_items=a.max_batch_items,
                      max_wait_ms=a.max_wait_ms)
    service = RewardService(cfg, model=model, tokenizer=tok)
    res: dict = {"n": a.n, "chars": a.chars, "repeats": a.repeats, "repeats_b": a.repeats_b, "per_request": a.per_request, "judge_batch_size": spec.batch_size,
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
            assert got == ref, "server rewards differ from the in-process reward callable"
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
            runs = []
            for _ in range(a.repeats_b):
                b0 = service.batcher.batches
                t = time.perf_counter()
                asyncio.run(reward(prompts, outputs))  # in-process, same items, same run: the baseline
                t_in = time.perf_counter() - t
                dt, got, lat, errors = asyncio.run(post_all(url, items, c, a.per_request))
                runs.append((dt, service.batcher.batches - b0, t_in, lat, errors, len(got)))
            dt, batches, t_in, lat, errors, n_got = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
            row = {"clients": c, "seconds": dt, "items_per_s": a.n / dt, "batches": batches,
                   "items_per_batch": a.n / batches, "inproc_s": t_in, "vs_inproc": t_in / dt,
                   "latency_p50_s": pct(lat, 0.5), "latency_p99_s": pct(lat, 0.99), "errors": errors,
                   "answered": n_got}
            res["throughput"].append(row)
            print(f"B. {c:2d} clients x {a.per_request}-item requests: {row['items_per_s']:.2f} items/s, "
                  f"{batches} batches ({row['items_per_batch']:.1f} items each), p50 {row['latency_p50_s']:.2f} s, "
                  f"p99 {row['latency_p99_s']:.2f} s, {errors} errors; in-process {t_in:.1f} s -> "
                  f"{row['vs_inproc']:.2f}x of in-process throughput")
            save(a.out, res)
        res["server_metrics"] = service.metrics.snapshot(service.live())
    save(a.out, res)
    print(f"wrote {a.out}" if a.out else "")


def save(path: str | None, res: dict) -> None:
    """Written after each part, so a long CPU run that is stopped keeps what it measured."""
    if path:
        Path(path).write_text(json.dumps(res, indent=2, default=float))


if __name__ == "__main__":
    main()
