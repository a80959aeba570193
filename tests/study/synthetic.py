"""A synthetic policy run folder in the layout the study writes (monitor.jsonl, samples/step_NNNN.jsonl[.gz],
alarm.json, summary.json, config.yaml): planted proxy and gold curves over held-out prompts."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path


def write_run(run: Path, gold: list[float], proxy: list[float], every: int = 5, n: int = 24, gz: bool = True,
              judge: str = "sft-500", kl: list[float] | None = None, seed: int = 0, keep: set[int] | None = None) -> Path:
    """Points at steps 0, every, 2*every ...; per prompt gold = mean + a prompt effect + noise; samples kept at
    the point indices in `keep` (default all), gzipped when `gz`."""
    r = random.Random(seed)
    eff = [r.gauss(0, 0.8) for _ in range(n)]
    (run / "samples").mkdir(parents=True, exist_ok=True)
    recs = []
    for t, (g, p) in enumerate(zip(gold, proxy)):
        step = t * every
        rows = [{"step": step, "prompt": [{"role": "user", "content": f"question {i}"}],
                 "response": " ".join(["word"] * (60 - t) + [f"w{i}"]), "proxy": p + r.gauss(0, 0.05),
                 "gold": g + eff[i] + r.gauss(0, 0.1), "words": 61 - t, "patterns": []} for i in range(n)]
        rec = {"step": step, "n": n, "proxy_mean": sum(x["proxy"] for x in rows) / n,
               "gold_mean": sum(x["gold"] for x in rows) / n, "mean_words": 61 - t, "pattern/any": 0.0}
        if kl is not None:
            rec["kl"] = kl[t]
        recs.append(rec)
        if keep is None or t in keep:
            text = "".join(json.dumps(x) + "\n" for x in rows)
            if gz:
                with gzip.open(run / "samples" / f"step_{step:04d}.jsonl.gz", "wt", encoding="utf-8") as f:
                    f.write(text)
            else:
                (run / "samples" / f"step_{step:04d}.jsonl").write_text(text)
    (run / "monitor.jsonl").write_text("".join(json.dumps(x) + "\n" for x in recs))
    (run / "summary.json").write_text(json.dumps({"steps": (len(gold) - 1) * every}))
    (run / "config.yaml").write_text(f"judge:\n  name: {judge}\n")
    return run
