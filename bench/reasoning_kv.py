"""Benchmark: the quickstart's reasoning judge on the held-out agreement answers, its verdict read from the decode's
KV cache (judges/kv_reuse.py) vs a prefill of prompt + thinking again, and its thinking budget (CPU).

For each setting: wall and CPU seconds, the verdicts' largest |p - p'| against the first setting's (same thinking
budget), and alpha x100 vs the gold with its 95% bootstrap interval when all `--items` are scored (alpha from
quickstart.judges.agreement's statistics). The answers are the quickstart's (quickstart.data.heldout, seed 0).

    python bench/reasoning_kv.py [--items 100] [--settings reuse:32,reprefill:32,reuse:16] [--out bench/reasoning_kv_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100)
    ap.add_argument("--settings", default="reuse:32,reprefill:32,reuse:16")
    ap.add_argument("--out", default="bench/reasoning_kv_cpu.json")
    a = ap.parse_args()
    from judgerl.data import read_jsonl
    from judgerl.judges.judge import Judge
    from judgerl.judges.spec import JudgeRequest
    from judgerl.model_loader import shared_model
    from judgerl.paths import data_root
    from judgerl.quickstart.config import QuickstartConfig
    from judgerl.quickstart.data import heldout, prompt_sets
    from judgerl.quickstart.judges import spec_for
    from judgerl.study.stats import cluster_bootstrap, interval_alpha

    tmp = Path(tempfile.mkdtemp(prefix="rkv-"))
    cfg = QuickstartConfig(scale="full", run_dir=str(tmp), agreement_items=max(a.items, 2), gold_check=0)
    heldout(cfg, prompt_sets(data_root(None), cfg.max_prompt_chars), tmp / "labels")
    rows = read_jsonl(tmp / "labels" / "heldout.jsonl")[:a.items]
    reqs = [JudgeRequest(prompt=r["prompt"], responses=[r["response"]]) for r in rows]
    results, first = [], {}
    for setting in a.settings.split(","):
        how, tokens = setting.split(":")
        spec = spec_for("shipped:reasoning", cfg.model_copy(update={"reasoning_tokens": int(tokens)}), tmp)
        spec = spec.model_copy(update={"cache": False})
        m, t = shared_model(spec.model, spec.model_kind, "cpu", "float32")
        judge = Judge(spec, model=m, tokenizer=t)
        judge.backend.reuse_reasoning_kv = how == "reuse"
        t0, c0 = time.perf_counter(), cpu_s()
        vs = judge.judge(reqs)
        rec = {"setting": setting, "items": len(rows), "wall_s": round(time.perf_counter() - t0, 1),
               "cpu_s": round(cpu_s() - c0, 1), "load_1min": os.getloadavg()[0],
               "mean_thinking_tokens": sum(v.tokens_out for v in vs) / len(vs),
               "invalid": sum(not v.valid for v in vs)}
        if tokens in first:
            rec["max_abs_prob_diff_vs_" + first[tokens][0]] = max(
                abs(x - y) for v, w in zip(vs, first[tokens][1]) for x, y in zip(v.probs, w.probs))
        else:
            first[tokens] = (setting, vs)
        if len(rows) >= 100:
            pairs = [(r["item_id"], r["score"], v.expected if v.valid else None) for r, v in zip(rows, vs)]
            ci = cluster_bootstrap(pairs, lambda x: x[0],
                                   lambda rs: interval_alpha([g for _, g, _ in rs], [p for _, _, p in rs]), 1000, 0)
            rec["alpha_x100"] = [ci["value"], ci["lo"], ci["hi"]]
        results.append(rec)
        print(json.dumps(rec), flush=True)
    out = {"bench": "reasoning_kv", "date": time.strftime("%Y-%m-%d %H:%M"), "judge": "shipped:reasoning",
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "results": results}
    Path(a.out).write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
