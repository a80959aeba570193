"""A policy run's kept monitor samples: samples/step_NNNN.jsonl (or .jsonl.gz), one row per held-out prompt
(prompt, response, proxy, gold, words, patterns), paired across points by the prompt."""

from __future__ import annotations

import json
from pathlib import Path


def sample_file(run: Path, step: int, folder: str = "samples") -> Path | None:
    """samples/step_NNNN.jsonl, or its .jsonl.gz form (either may be kept); None when neither exists."""
    for suffix in (".jsonl", ".jsonl.gz"):
        p = Path(run) / folder / f"step_{step:04d}{suffix}"
        if p.is_file():
            return p
    return None


def read_samples(run: Path, step: int) -> list[dict]:
    """The held-out monitor samples of one point (plain or gzipped JSONL); [] when the point kept none."""
    from judgerl.data import read_jsonl

    p = sample_file(run, step)
    return read_jsonl(p) if p is not None else []


def prompt_key(row: dict) -> str:
    """The key that pairs a held-out prompt across monitor points (its text or its chat messages)."""
    return row["prompt"] if isinstance(row["prompt"], str) else json.dumps(row["prompt"])
