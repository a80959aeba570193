"""Benchmark: `judgerl serve` overhead vs the same reward callable in-process, and throughput under clients.

Same SmolLM2 judge weights (hf backend, default pointwise template, batch_size 16), cache off, ledger on,
AlpacaEval prompts/outputs cut to 400 characters, distinct items.

A. Overhead: one batch of --n items scored by train-policy's reward callable in-process (`await reward(
   prompts, completions)`) vs the same batch sent as one POST /v1/rewards to a server on 127.0.0.1
   (HTTP + JSON + batcher + response). Alternating A/B --repeats times; medians; target <= 10%.
B. Throughput: 1, 4 and 16 concurrent clients, each sending its share of --n items as requests of
   --per-request items (1 = how verl's reward loop and OpenRLHF call); items/s, and the judge batches the
   server formed, next to the in-process batch figure from A.

    python bench/reward_server.py --n 16 --repeats 3 --out bench/reward_server_cpu.json
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gzip
import json
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


def alpaca(data: Path, n: int) -> tuple[list[str], list[str]]:
    rows = json.load(gzip.open(data / "alpaca-eval/reference_outputs/gpt4_1106_preview.json.gz", "rt"))[:n]
    return [r["instruction"][:400] for r in rows], [r["output"][:400] for r in rows]


async def post_all(url: str, items: list[dict], clients: int, per_request: int) -> tuple[float, list]:
    import httpx

    chunks = [items[i:i + per_request] for i in range(0, len(items), per_request)]
    shares = [chunks[c::clients] for c in range(clients)]
    rewards: list = []

    async def client(share):
        async with httpx.AsyncClient(base_url=url, timeout=600) as c:
            for chunk in share:
                r = await c.post("/v1/rewards", json={"items": chunk})
                r.raise_for_status()
                rewards.extend(r.json()["rewards"])

    t = time.perf_counter()
    await asyncio.gather(*(client(s) for s in shares))
    return time.perf_counter() - t, rewards


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
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--data", default=os.environ.get("JUDGERL_SHARED_DATA", str(Path(__file__).resolve().parents[2] / "shared/data")))
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    model, tok = load_model(str(fetch(MODEL, progress=lambda m: None)), "causal", device="cpu", dtype="float32")
    spec = JudgeSpec(name="bench", backend="hf", model=MODEL, device="cpu", dtype="float32", batch_size=16, cache=False)
    prompts, outputs = alpaca(Path(a.data), a.n)
    items = [{"prompt": p, "response": o} for p, o in zip(prompts, outputs)]
    inproc_judge = Judge(spec, ledger=tmp / "inproc.sqlite", stage="bench", model=model, tokenizer=tok)
    reward = make_reward(inproc_judge, JudgeRewardConfig(), 1)
    cfg = ServeConfig(judge=spec, run_dir=str(tmp / "serve"), port=0, max_batch_items=64, max_wait_ms=5)
    service = RewardService(cfg, model=model, tokenizer=tok)
    res: dict = {"n": a.n, "repeats": a.repeats, "repeats_b": a.repeats_b, "per_request": a.per_request, "judge_batch_size": spec.batch_size,
                 "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared), no GPU",
                 "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                              "python": platform.python_version()},
                 "command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d")}
    with server_thread(service) as url:
        asyncio.run(post_all(url, items[:4], 1, 4))  # warm-up: first-call allocations on both paths
        asyncio.run(reward(prompts[:4], outputs[:4]))
        inproc, served = [], []
        for _ in range(a.repeats):
            t = time.perf_counter()
            ref = asyncio.run(reward(prompts, outputs))
            inproc.append(time.perf_counter() - t)
            dt, got = asyncio.run(post_all(url, items, 1, len(items)))
            served.append(dt)
            assert got == ref, "server rewards differ from the in-process reward callable"
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
                dt, got = asyncio.run(post_all(url, items, c, a.per_request))
                assert len(got) == a.n and None not in got
                runs.append((dt, service.batcher.batches - b0))
            dt, batches = sorted(runs)[len(runs) // 2]
            row = {"clients": c, "seconds": dt, "items_per_s": a.n / dt, "batches": batches,
                   "items_per_batch": a.n / batches, "vs_inproc_batch": (a.n / dt) / (a.n / ti)}
            res["throughput"].append(row)
            print(f"B. {c:2d} clients x {a.per_request}-item requests: {row['items_per_s']:.1f} items/s, "
                  f"{batches} batches ({row['items_per_batch']:.1f} items each), {row['vs_inproc_batch']:.2f}x of "
                  f"the in-process batch rate")
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
