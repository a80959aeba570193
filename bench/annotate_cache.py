"""Benchmark 4: re-running an annotation is served by the verdict cache: zero judge calls.

Run 1 annotates N AlpacaEval items (pointwise + pairwise, embedded SmolLM2 judge, direct mode) into
folder A with a shared cache file. Run 2 annotates the same items into a fresh folder B with the same
cache: every verdict comes from SQLite. Reports backend calls of each run (from the ledger), wall time
per item, and the cache's per-item overhead (run 2 time / items).

    python bench/annotate_cache.py --items 12
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from judgerl.annotate import AnnotateConfig, run_annotate  # noqa: E402
from judgerl.judges.cache import Ledger  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=12)
    ap.add_argument("--data", default=os.environ.get("JUDGERL_SHARED_DATA"))
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.data:
        os.environ["JUDGERL_SHARED_DATA"] = a.data
    tmp = Path(tempfile.mkdtemp())
    atexit.register(shutil.rmtree, tmp, True)  # the bench's runs and caches go with the process
    cache = tmp / "shared-cache.sqlite"
    res = {"items": a.items}
    for run in ("first", "rerun"):
        cfg = AnnotateConfig(loader="alpaca_eval", loader_options={"models": ["alpaca-7b"], "limit_per_model": a.items},
                             output_dir=str(tmp / run), kinds=["pointwise", "pairwise"], cache=str(cache),
                             judge={"name": "gold", "backend": "hf", "model": "smollm2-135m-instruct", "mode": "direct",
                                    "batch_size": 8}, batch_size=8, invalid_retries=0)
        t = time.perf_counter()
        manifest = run_annotate(cfg, progress=False)
        dt = time.perf_counter() - t
        led = Ledger(tmp / run / "ledger.sqlite").summary()
        res[run] = {"seconds": dt, "seconds_per_item": dt / a.items, "backend_calls": led["backend_calls"],
                    "cache_hits": led["cache_hits"], "records": manifest.get("counts")}
        print(f"{run}: {dt:.1f} s, backend calls {led['backend_calls']}, cache hits {led['cache_hits']}", flush=True)
    res["rerun_overhead_ms_per_item"] = 1000 * res["rerun"]["seconds_per_item"]
    res["speedup"] = res["first"]["seconds"] / res["rerun"]["seconds"]
    print(json.dumps(res, indent=2, default=str))
    print(f"\nre-run: {res['rerun']['backend_calls']} judge calls, {res['rerun_overhead_ms_per_item']:.1f} ms/item "
          f"({res['speedup']:.1f}x faster than the first run)")
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
