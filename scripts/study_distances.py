"""Base-model NLL (the study's distance from the base policy) for chosen monitor points of committed study runs,
coarse to fine, each point saved at once into <run>/base_nll.json (the cache `analyze --cached-distance` reads).

    python scripts/study_distances.py docs/experiments/reward_hacking/contrast prompted,gold_control [--every 50]

For a CPU where every point of a 200-step run (41 points x 96 prompts) would take hours: stop it at any time, the
points done so far are kept; then `python scripts/study_tables.py <folder> --cached-distance` draws them.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from judgerl.study.analyze import cached_base_nll, nll_items  # noqa: E402
from judgerl.study.run import load_config  # noqa: E402
from judgerl.evaluation.monitor import read_monitor  # noqa: E402
from judgerl.study.samples import read_samples, sample_file  # noqa: E402


def coarse_to_fine(steps: list[int], every: int) -> list[int]:
    """Step 0, the last step, then every `every` steps' worth of points, then half, and so on down to every point."""
    if not steps:
        return []
    gap = max(1, round(every / max(1, min(b - a for a, b in zip(steps, steps[1:])) if len(steps) > 1 else 1)))
    out = [0, len(steps) - 1]
    while True:
        out += list(range(0, len(steps), gap))
        if gap == 1:
            break
        gap = max(1, gap // 2)
    return [steps[i] for i in dict.fromkeys(out)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("runs", help="comma-separated run names under <folder>/policies")
    ap.add_argument("--every", type=int, default=50, help="the first pass's spacing in steps (then halved)")
    a = ap.parse_args()
    cfg = load_config(str(a.folder / "config.yaml"), [f"run_dir={a.folder}", "device=cpu", "distance_prompts=null"])
    runs = [a.folder / "policies" / r for r in a.runs.split(",")]
    steps = sorted({rec["step"] for r in runs for rec in read_monitor(r / "monitor.jsonl")  # as analyze.run_points
                    if sample_file(r, rec["step"]) is not None})
    if not steps:
        print(f"error: no monitor samples (samples/step_*.jsonl[.gz]) under {', '.join(map(str, runs))}", file=sys.stderr)
        return 1
    for st in coarse_to_fine(steps, a.every):
        for run in runs:
            rows = read_samples(run, st)
            if not rows:
                continue
            items = nll_items(rows)  # as analyze.run_points reads them (distance_prompts = all)
            t = time.time()
            done = cached_base_nll(cfg, run, st, items, compute=False) is not None
            if not done:
                cached_base_nll(cfg, run, st, items)
            print(f"{run.name} step {st}: {'cached' if done else 'computed'} in {time.time() - t:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
