"""Plot a policy run: training reward per step, and the gold monitor's proxy and gold means.

    python scripts/plot_monitor.py METRICS.jsonl MONITOR.jsonl OUT.png [--title T]
"""

from __future__ import annotations

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("metrics")
    ap.add_argument("monitor")
    ap.add_argument("out")
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    steps = [json.loads(x) for x in open(a.metrics) if '"loss"' in x and '"reward"' in x]
    mon = [json.loads(x) for x in open(a.monitor)]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot([r["step"] for r in steps], [r["reward"] for r in steps], lw=1, label="training reward (proxy, train prompts)")
    ax1.plot([m["step"] for m in mon], [m["proxy_mean"] for m in mon], "o-", label="proxy, held-out prompts")
    ax1.set_xlabel("GRPO step")
    ax1.set_ylabel("proxy reward")
    ax1.legend(fontsize=8)
    ax2.plot([m["step"] for m in mon], [m["gold_mean"] for m in mon], "o-", color="tab:red", label="gold, held-out prompts")
    for m in mon:
        if m.get("alarm"):
            ax2.axvline(m["step"], color="k", ls="--", lw=0.8)
    ax2.set_xlabel("GRPO step")
    ax2.set_ylabel("gold reward")
    ax2.legend(fontsize=8)
    fig.suptitle(a.title)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)


if __name__ == "__main__":
    main()
