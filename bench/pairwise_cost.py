"""Benchmark 5: judge calls and ranking agreement (Kendall τ) of cheaper pairwise schemes vs round robin.

The preference matrix comes from a real judge: the embedded SmolLM2 pairwise judge (direct mode)
judges every ordered pair of G answers to a prompt (G AlpacaEval models' outputs to the same
instruction; P(first preferred) from the verdict-token distribution, the two orders averaged).
The schemes are then scored against the round robin on the same outcomes
(training/rewards.scheme_agreement): `prob` uses the probabilities themselves (the default reward,
`aggregate: prob`; only the scheme's random design varies), `vote` draws 0/1 outcomes from them
(`aggregate: vote`). Calls are per group, one order per pair; pointwise costs G.

    python bench/pairwise_cost.py --prompts 4 --group 8 --out bench/pairwise_cost_cpu.json
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

SCHEMES = [("k_opponents", 2), ("anchor", None), ("bt_regular", 2), ("k_opponents", 4), ("bt_regular", 4),
           ("k_opponents", 6), ("bt_regular", 6)]


def preferences(judge, instr: str, answers: list[str]) -> list[list[float]]:
    g = len(answers)
    pairs = [(i, j) for i in range(g) for j in range(g) if i != j]
    vs = judge.judge([JudgeRequest(prompt=instr, responses=[answers[i], answers[j]]) for i, j in pairs])
    p1 = {pr: v.expected for pr, v in zip(pairs, vs)}
    return [[0.5 if i == j else 0.5 * ((p1[(i, j)] if p1[(i, j)] is not None else 0.5)
                                       + (1 - (p1[(j, i)] if p1[(j, i)] is not None else 0.5))) for j in range(g)]
            for i in range(g)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--prefs", default=None, help="re-score preference matrices saved by an earlier run (its --out)")
    ap.add_argument("--data", default=os.environ.get("JUDGERL_SHARED_DATA", str(Path(__file__).resolve().parents[2] / "shared/data")))
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.prefs:
        prefs = json.loads(Path(a.prefs).read_text())["prefs"]
    else:
        # G answers per prompt: AlpacaEval outputs of different models to the same instruction (real, varied quality)
        folder = Path(a.data) / "alpaca-eval/weighted_alpaca_eval_gpt4_turbo_annotations"
        files = sorted(folder.glob("*.jsonl.gz"))[: a.group]
        per_model = [{r["instruction"]: r["output_2"] for r in map(json.loads, gzip.open(f, "rt"))} for f in files]
        shared = [i for i in per_model[0] if all(i in m for m in per_model)][: a.prompts]
        judge = Judge(JudgeSpec(name="pairwise", format="pairwise", mode="direct", batch_size=8, cache=False))
        prefs = []
        for p, instr in enumerate(shared):
            prefs.append(preferences(judge, instr, [m[instr][:600] for m in per_model]))
            print(f"prompt {p}: {len(prefs[-1])} answers judged in both orders", flush=True)
            if a.out:  # the judged matrices survive an interrupted run (re-score them with --prefs)
                Path(a.out).write_text(json.dumps({"group": len(prefs[-1]), "prompts": len(prefs), "prefs": prefs}))
    rows = []
    for p, pref in enumerate(prefs):
        for scheme, k in SCHEMES:
            for mode in ("prob", "vote"):
                r = scheme_agreement(pref, scheme, k=k, trials=a.trials, sample=mode == "vote", seed=p)
                rows.append({**r, "mode": mode, "prompt": p, "k_arg": k})
    g = len(prefs[0])
    print(f"\nG = {g}, {len(prefs)} prompts; pointwise = {g} calls a group")
    print("scheme          k  calls/group  x pointwise  round-robin calls  tau (prob)  tau (vote)")
    summary = []
    for scheme, k in SCHEMES:
        sel = {m: [r for r in rows if (r["scheme"], r["k_arg"], r["mode"]) == (scheme, k, m)] for m in ("prob", "vote")}
        calls = sel["prob"][0]["calls"]
        tau = {m: sum(r["kendall_tau"] for r in sel[m]) / len(sel[m]) for m in sel}
        summary.append({"scheme": scheme, "k": sel["prob"][0]["k"], "calls": calls, "x_pointwise": calls / g,
                        "calls_round_robin": sel["prob"][0]["calls_round_robin"], "tau_prob": tau["prob"],
                        "tau_vote": tau["vote"]})
        print(f"{scheme:<15}{str(sel['prob'][0]['k']):>2}{calls:>12}{calls / g:>13.1f}{summary[-1]['calls_round_robin']:>19}"
              f"{tau['prob']:>12.3f}{tau['vote']:>12.3f}")
    if a.out:
        Path(a.out).write_text(json.dumps({"group": g, "prompts": len(prefs), "summary": summary, "rows": rows,
                                           "prefs": prefs}, indent=2))


if __name__ == "__main__":
    main()
