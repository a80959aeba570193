"""Check the embedded gold RM on this machine's CPU (issue 15, item 7): held-out pairwise accuracy against
GPT-4-Turbo on AlpacaEval instructions the gold never saw, on the first --n held-out pairs (same split and
order as the study's gold check), with a 95% bootstrap interval over instructions.

    python scripts/check_embedded_gold.py --n 300 --out docs/experiments/reward_hacking/embedded_gold_cpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    from judgerl.judges.judge import Judge
    from judgerl.paths import data_root
    from judgerl.study.config import StudyConfig
    from judgerl.study.embedded import embedded_gold_spec, gold_record
    from judgerl.study.gold import alpaca_pairs, pair_accuracy

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    t0 = time.time()
    held = [r for r in alpaca_pairs(data_root(), StudyConfig()) if r["split"] == "test"][:a.n]
    judge = Judge(embedded_gold_spec("cpu", 8))
    res = {"n_requested": a.n, "accuracy": pair_accuracy(judge, [(r["prompt"], *r["responses"], r["label"]) for r in held], 1000),
           "gpu_figure": gold_record()["checks"]["alpaca_heldout_vs_gpt4_turbo"], "seconds": round(time.time() - t0, 1)}
    print(json.dumps(res, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
