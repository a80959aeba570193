"""How a verdict becomes a number: one rule for rewards, the gold monitor, evaluation and the arena.

The rule: an invalid verdict (`valid` False: unparseable, or a failed call) is never a number; every
reader returns None for it, whatever the backend put in `expected` or `label`.

- `point_value`: a pointwise verdict's expected score Σ x·p(x) (the backend renormalises p over the
  valid score tokens), else its integer label; None when invalid.
- `first_wins`: a pairwise verdict's P(response 1 preferred) (or the 0/1 vote); None when invalid.
- `completion_text` / `judge_prompt`: TRL's completion and prompt shapes as judge inputs.
"""

from __future__ import annotations

import math

from judgerl.judges.spec import Verdict


def completion_text(c) -> str:
    """TRL completions are strings, or [{'role': 'assistant', 'content': ...}] for chat prompts."""
    if isinstance(c, str):
        return c
    if isinstance(c, list):
        return "".join(str(m.get("content", "")) for m in c if isinstance(m, dict))
    return str(c)


def judge_prompt(p):
    """A TRL prompt (string or chat messages) as a JudgeRequest prompt."""
    return p if isinstance(p, str) else [dict(m) for m in p]


def usable(v: Verdict | None) -> bool:
    """A verdict that may become a number: valid and not a failed call."""
    return v is not None and v.valid and not v.failed


def point_value(v: Verdict) -> float | None:
    if not usable(v):
        return None
    if v.expected is not None and math.isfinite(v.expected):
        return float(v.expected)
    return float(v.label) if v.label is not None else None


def first_wins(v: Verdict, aggregate: str) -> float | None:
    """P(response 1 preferred) from a pairwise verdict (or the 0/1 vote); None if unusable."""
    if not usable(v):
        return None
    if aggregate == "vote":
        if v.label in (1, 2):
            return 1.0 if v.label == 1 else 0.0
        return None if v.expected is None else float(v.expected > 0.5)
    if v.expected is not None and math.isfinite(v.expected):
        return float(v.expected)
    return None if v.label not in (1, 2) else (1.0 if v.label == 1 else 0.0)
