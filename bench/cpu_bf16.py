"""Benchmark: the quickstart's judges and the embedded gold RM on a CPU, fp32 weights vs bf16 weights (CPU).

On a CPU with native bf16 dot products (AVX512-BF16, AMX) a bf16 matmul reads half the bytes and runs about twice
the multiply rate of fp32. The study's judges already run in bf16 on the GPU (JudgeSpec.dtype auto); this measures
what bf16 gives the quickstart's CPU judges, and what it changes: for each judge and dtype, CPU and wall seconds at
one torch thread (the quickstart's lanes run one thread each; template heads memoised as there), alpha x100 vs the gold labels with its 95% bootstrap
interval over prompts (quickstart.judges.agreement's statistics), the verdicts' largest |expected - expected'| and
|p - p'| against fp32; for the gold RM, its reward on the same answers, largest |r - r'| and the 0-9 labels that
change. The answers are the quickstart's held-out set (quickstart.data.heldout, seed 0).

    python bench/cpu_bf16.py [--items 100] [--judges prompted,shipped:reasoning,shipped:sft-1500] [--out bench/cpu_bf16.json]
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


def timed(fn):
    t0, c0 = time.perf_counter(), cpu_s()
    out = fn()
    return out, {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(cpu_s() - c0, 1),
                 "load_1min": round(os.getloadavg()[0], 2)}


def alpha(rows, expected, n_boot=1000):
    from judgerl.study.stats import cluster_bootstrap, interval_alpha

    pairs = [(r["item_id"], r["score"], e) for r, e in zip(rows, expected)]
    ci = cluster_bootstrap(pairs, lambda x: x[0], lambda rs: interval_alpha([g for _, g, _ in rs],
                                                                             [p for _, _, p in rs]), n_boot, 0)
    return [round(ci["value"], 1), round(ci["lo"], 1), round(ci["hi"], 1)]


def judge_runs(source, cfg, tmp, reqs, rows):
    from judgerl.judges.judge import Judge
    from judgerl.model_loader import shared_model
    from judgerl.quickstart.judges import spec_for

    out, ref = [], None
    for dtype in ("float32", "bfloat16"):
        spec = spec_for(source, cfg, tmp).model_copy(update={"cache": False, "dtype": dtype})
        m, t = shared_model(spec.model, spec.model_kind, "cpu", dtype)
        judge = Judge(spec, model=m, tokenizer=t)
        vs, rec = timed(lambda: judge.judge(reqs))
        exp = [v.expected if v.valid else None for v in vs]
        rec.update(judge=source, dtype=dtype, items=len(vs), invalid=sum(not v.valid for v in vs),
                   alpha_x100=alpha(rows, exp) if len(rows) >= 20 else None)
        if ref is None:
            ref = vs
        else:
            both = [(v, w) for v, w in zip(vs, ref) if v.valid and w.valid]
            rec["max_abs_expected_diff_vs_fp32"] = round(max(abs(v.expected - w.expected) for v, w in both), 4)
            rec["max_abs_prob_diff_vs_fp32"] = round(max(abs(x - y) for v, w in both for x, y in zip(v.probs, w.probs)), 4)
            rec["ratio_cpu_fp32_over_bf16"] = round(out[0]["cpu_s"] / max(rec["cpu_s"], 1e-9), 2)
        out.append(rec)
        print(json.dumps(rec), flush=True)
    return out


def gold_runs(reqs, rows):
    from judgerl.judges.judge import Judge
    from judgerl.study.embedded import embedded_gold_spec, score_0_9

    out, ref = [], None
    for dtype in ("float32", "bfloat16"):
        spec = embedded_gold_spec("cpu", 4, "gold").model_copy(update={"cache": False, "dtype": dtype})
        judge = Judge(spec)
        vs, rec = timed(lambda: judge.judge(reqs))
        r = [v.expected for v in vs]
        rec.update(judge="gold-rm", dtype=dtype, items=len(vs))
        # the shipped labels: the same gold RM on the GPU (bf16 there, JudgeSpec.dtype auto)
        rec["max_abs_diff_vs_shipped_label_reward"] = round(max(abs(a - b["gold_reward"]) for a, b in zip(r, rows)), 4)
        rec["mean_abs_diff_vs_shipped_label_reward"] = round(sum(abs(a - b["gold_reward"]) for a, b in zip(r, rows)) / len(r), 4)
        if ref is None:
            ref = r
        else:
            rec["max_abs_reward_diff_vs_fp32"] = round(max(abs(a - b) for a, b in zip(r, ref)), 4)
            rec["labels_0_9_changed"] = sum(score_0_9(a) != score_0_9(b) for a, b in zip(r, ref))
            rec["ratio_cpu_fp32_over_bf16"] = round(out[0]["cpu_s"] / max(rec["cpu_s"], 1e-9), 2)
        out.append(rec)
        print(json.dumps(rec), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100)
    ap.add_argument("--judges", default="prompted,shipped:reasoning,shipped:sft-1500")
    ap.add_argument("--out", default="bench/cpu_bf16.json")
    a = ap.parse_args()
    import torch

    from judgerl.data import read_jsonl
    from judgerl.judges.spec import JudgeRequest
    from judgerl.paths import data_root
    from judgerl.quickstart.config import QuickstartConfig
    from judgerl.quickstart.data import heldout, prompt_sets

    from judgerl import model_loader

    torch.set_num_threads(1)
    model_loader.memo_judge_heads = True  # as in the quickstart: a judge's template head is computed once
    tmp = Path(tempfile.mkdtemp(prefix="bf16-"))
    cfg = QuickstartConfig(scale="full", run_dir=str(tmp), agreement_items=max(a.items, 2), gold_check=0)
    heldout(cfg, prompt_sets(data_root(None), cfg.max_prompt_chars), tmp / "labels")
    rows = read_jsonl(tmp / "labels" / "heldout.jsonl")[:a.items]
    reqs = [JudgeRequest(prompt=r["prompt"], responses=[r["response"]]) for r in rows]
    results = gold_runs(reqs, rows)
    for source in a.judges.split(","):
        results += judge_runs(source, cfg, tmp, reqs, rows)
    out = {"bench": "cpu_bf16", "date": time.strftime("%Y-%m-%d %H:%M"), "threads": 1,
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                       "avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
                       "amx": torch.cpu._is_amx_tile_supported()}, "results": results}
    Path(a.out).write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
