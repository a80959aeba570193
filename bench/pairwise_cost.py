"""Benchmark 5: judge calls and ranking agreement (Kendall τ) of cheaper pairwise schemes vs round robin.

The preference matrix comes from a real judge: the embedded SmolLM2 pairwise judge (direct mode)
judges every ordered pair of G answers to a prompt (both orders, P(first preferred) from the
verdict-token distribution, averaged over the two orders). Cheap schemes (k opponents, anchor) are
then scored on outcomes drawn from that matrix (training/rewards.scheme_agreement).

    python bench/pairwise_cost.py --prompts 2 --group 6
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from judgerl.judges import Judge, JudgeRequest, JudgeSpec  # noqa: E402
from judgerl.training.rewards import scheme_agreement  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--group", type=int, default=6)
    ap.add_argument("--data", default=os.environ.get("JUDGERL_SHARED_DATA", str(Path(__file__).resolve().parents[2] / "shared/data")))
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    # G answers per prompt: AlpacaEval outputs of different models to the same instruction (real, varied quality)
    folder = Path(a.data) / "alpaca-eval/weighted_alpaca_eval_gpt4_turbo_annotations"
    files = sorted(folder.glob("*.jsonl.gz"))[: a.group]
    per_model = [[json.loads(x) for x in gzip.open(f, "rt")] for f in files]
    judge = Judge(JudgeSpec(name="pairwise", format="pairwise", mode="direct", batch_size=8, cache=False))
    rows = []
    for p in range(a.prompts):
        instr = per_model[0][p]["instruction"]
        answers = [next(r["output_2"] for r in m if r["instruction"] == instr)[:600] for m in per_model]
        g = len(answers)
        pairs = [(i, j) for i in range(g) for j in range(g) if i != j]
        vs = judge.judge([JudgeRequest(prompt=instr, responses=[answers[i], answers[j]]) for i, j in pairs])
        p1 = {pr: v.expected for pr, v in zip(pairs, vs)}
        pref = [[0.5 if i == j else 0.5 * ((p1[(i, j)] or 0.5) + (1 - (p1[(j, i)] or 0.5))) for j in range(g)]
                for i in range(g)]
        for scheme, k in (("k_opponents", 2), ("k_opponents", 3), ("anchor", 1)):
            r = scheme_agreement(pref, scheme, k=k, trials=300, seed=p)
            r["prompt"] = p
            rows.append(r)
            print(json.dumps(r), flush=True)
    print("\nscheme          k  calls/group  round-robin calls  mean Kendall tau")
    for scheme, k in (("k_opponents", 2), ("k_opponents", 3), ("anchor", 1)):
        sel = [r for r in rows if r["scheme"] == scheme and r["k"] == k]
        tau = sum(r["kendall_tau"] for r in sel) / len(sel)
        print(f"{scheme:<15}{k:>2}{sel[0]['calls']:>12}{sel[0]['calls_round_robin']:>19}{tau:>18.3f}")
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
