"""Benchmark 2: the judge layer's overhead over a raw HTTP client, against a real llama.cpp server (CPU).

Same payloads (built by the openai backend itself), same concurrency, distinct requests (no cache
hits): judgments/s of `Judge` (openai backend, parse, expected score; cache+ledger off, then on) vs
a minimal raw `httpx` client that only posts and decodes JSON. Runs alternate A/B several times and
report medians. Then the cache/ledger cost per call and per cache hit, and throughput scaling when
the client spreads requests over several single-threaded server processes.

    python bench/client_overhead.py --n 24 --concurrency 4 --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from judgerl.judges import Judge, JudgeRequest, JudgeSpec  # noqa: E402
from judgerl.judges.prompts import render  # noqa: E402
from judgerl.llama_server import llama_server  # noqa: E402
from judgerl.models import fetch_gguf  # noqa: E402

MODEL = "smollm2-135m-instruct"


def requests_from_alpaca(data: Path, n: int, offset: int = 0) -> list[JudgeRequest]:
    rows = json.load(gzip.open(data / "alpaca-eval/reference_outputs/gpt4_1106_preview.json.gz", "rt"))
    rows = rows[offset: offset + n]
    return [JudgeRequest(prompt=r["instruction"][:400], responses=[r["output"][:400]]) for r in rows]


async def raw_client(url: str, payloads: list[dict], concurrency: int) -> float:
    import httpx

    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        async def one(p):
            async with sem:
                r = await client.post("/chat/completions", json=p)
                r.raise_for_status()
                return r.json()

        t = time.perf_counter()
        out = await asyncio.gather(*(one(p) for p in payloads))
        dt = time.perf_counter() - t
    assert all(o.get("choices") for o in out)
    return dt


def judge_time(spec: JudgeSpec, reqs, cache=None, ledger=None) -> tuple[float, Judge]:
    j = Judge(spec, cache=cache, ledger=ledger, stage="bench")
    t = time.perf_counter()
    vs = j.judge(reqs)
    dt = time.perf_counter() - t
    assert not any(v.failed for v in vs), [v.error for v in vs if v.failed][:3]
    return dt, j


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", default=os.environ.get("JUDGERL_SHARED_DATA", str(Path(__file__).resolve().parents[2] / "shared/data")))
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    gguf = fetch_gguf(MODEL, progress=lambda m: None)
    tmp = Path(tempfile.mkdtemp())
    atexit.register(shutil.rmtree, tmp, True)  # the bench's runs and caches go with the process
    res: dict = {"n": a.n, "concurrency": a.concurrency, "cpu_count": os.cpu_count()}
    with llama_server(gguf, MODEL, threads=2, log=tmp / "s.log") as url:
        spec = JudgeSpec(name="bench", backend="openai", model=MODEL, base_urls=[url], mode="direct",
                         concurrency=a.concurrency, logprobs=True, sampling={"max_new_tokens": 4}, cache=False)
        from judgerl.judges.openai_backend import OpenAIBackend

        be = OpenAIBackend(spec)
        raw_t, judge_t = [], []
        for rep in range(a.repeats):
            reqs = requests_from_alpaca(Path(a.data), a.n, offset=rep * a.n)
            payloads = []
            for r in reqs:
                p = be._params(render(spec, r), 4, 0.0, True, prefill=False)
                p.pop("extra_body", None)
                payloads.append(p)
            if rep == 0:
                asyncio.run(raw_client(url, payloads[:2], 1))  # warm-up
            raw_t.append(asyncio.run(raw_client(url, payloads, a.concurrency)))
            judge_t.append(judge_time(spec, reqs)[0])
            print(f"rep {rep}: raw {a.n / raw_t[-1]:.2f} judg/s  judge {a.n / judge_t[-1]:.2f} judg/s", flush=True)
        res["raw_judgments_per_s"] = a.n / statistics.median(raw_t)
        res["judge_judgments_per_s"] = a.n / statistics.median(judge_t)
        res["judge_over_raw"] = res["judge_judgments_per_s"] / res["raw_judgments_per_s"]
        # cache + ledger: first pass (misses, written), then a re-run (all hits)
        reqs = requests_from_alpaca(Path(a.data), a.n, offset=a.repeats * a.n)
        t_plain, _ = judge_time(spec, reqs)
        cspec = spec.model_copy(update={"cache": True})
        reqs2 = requests_from_alpaca(Path(a.data), a.n, offset=(a.repeats + 1) * a.n)
        t_cached, j = judge_time(cspec, reqs2, cache=tmp / "c.sqlite", ledger=tmp / "l.sqlite")
        t_hits, j2 = judge_time(cspec, reqs2, cache=tmp / "c.sqlite", ledger=tmp / "l.sqlite")
        res["cache_ledger_overhead_ms_per_call"] = 1000 * (t_cached - t_plain) / a.n
        res["cache_hit_ms_per_item"] = 1000 * t_hits / a.n
        res["rerun_backend_calls"] = j2.backend_calls
    # endpoint scaling: k single-threaded servers, the client spreading requests across them
    scale = []
    for k in (1, 2):
        with contextlib.ExitStack() as stack:
            urls = [stack.enter_context(llama_server(gguf, MODEL, threads=1, log=tmp / f"s{k}{i}.log"))
                    for i in range(k)]
            spec = JudgeSpec(name="scale", backend="openai", model=MODEL, base_urls=urls, concurrency=2 * k,
                             sampling={"max_new_tokens": 4}, cache=False)
            reqs = requests_from_alpaca(Path(a.data), a.n, offset=200)
            judge_time(spec, reqs[:2])
            dt, _ = judge_time(spec, reqs)
            scale.append({"endpoints": k, "judgments_per_s": a.n / dt})
            print(f"{k} endpoint(s): {a.n / dt:.2f} judg/s", flush=True)
    res["scaling"] = scale
    print(json.dumps(res, indent=2))
    print(f"\njudge layer / raw client = {res['judge_over_raw']:.3f}  (target >= 0.95)")
    print(f"cache+ledger overhead {res['cache_ledger_overhead_ms_per_call']:.1f} ms/call; cache hit "
          f"{res['cache_hit_ms_per_item']:.2f} ms/item; re-run backend calls {res['rerun_backend_calls']}")
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
