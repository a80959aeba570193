"""Strict verdict parsing and the expected score.

Rule: the verdict is the LAST non-empty line of the judge's output and must read exactly
`Score: N` (pointwise, N an integer in [score_min, score_max]) or `Preferred: 1|2` (pairwise),
optionally wrapped in markdown bold/backticks. Anything else is Invalid; we never guess (no
searching the tail for a number, no "last digit wins"). Text the judge quoted from a candidate
cannot set the score unless the judge itself ends on a verdict line.

Expected score (paper §6): Σ x·p(x) over the score tokens at the verdict position, with p
renormalised over the valid scores.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_DECOR = re.compile(r"^[\s*_`#>]+|[\s*_`.]+$")


@dataclass
class Parsed:
    label: int | None
    reasoning: str
    valid: bool
    reason: str = ""


def split_think(text: str) -> tuple[str, str]:
    """Separate `<think>...</think>` reasoning from the answer text."""
    thoughts = "\n".join(m.strip() for m in _THINK.findall(text))
    answer = _THINK.sub("", text)
    if "<think>" in answer:  # unterminated think block: everything is reasoning, no answer
        head, tail = answer.split("<think>", 1)
        return (thoughts + "\n" + tail).strip(), head.strip()
    return thoughts, answer.strip()


def parse_verdict(text: str, fmt: str = "pointwise", lo: int = 0, hi: int = 9) -> Parsed:
    """Parse a judge output strictly; see the module docstring for the rule."""
    thoughts, answer = split_think(text or "")
    lines = [ln for ln in answer.splitlines() if ln.strip()]
    if not lines:
        return Parsed(None, thoughts, False, "empty output")
    last = _DECOR.sub("", lines[-1])
    reasoning = "\n".join(filter(None, [thoughts, "\n".join(lines[:-1]).strip()]))
    key = "Score" if fmt == "pointwise" else "Preferred"
    m = re.fullmatch(rf"{key}\s*:\s*[*_`]*\s*(-?[0-9]+)", last, flags=re.IGNORECASE)
    if not m:
        return Parsed(None, reasoning, False, f"last line is not a '{key}: N' verdict")
    value = int(m.group(1))
    allowed = range(lo, hi + 1) if fmt == "pointwise" else (1, 2)
    if value not in allowed:
        return Parsed(None, reasoning, False, f"{key.lower()} {value} out of range")
    return Parsed(value, reasoning, True)


def digit_distribution(token_logprobs: dict[str, float], values: list[int]) -> list[float] | None:
    """Renormalised probabilities of `values` from {token text: logprob}; None if no value token appears.

    Token texts are stripped, so ' 7' and '7' both count for 7 (their probabilities add)."""
    mass = {v: 0.0 for v in values}
    by_text = {str(v): v for v in values}
    seen = False
    for tok, lp in token_logprobs.items():
        v = by_text.get(tok.strip())  # exact ASCII value text: no int() on '²' or '٣'
        if v is not None and lp is not None and not math.isnan(lp) and lp > -math.inf:
            mass[v] += math.exp(lp)
            seen = True
    total = sum(mass.values())
    if not seen or total <= 0:
        return None
    return [mass[v] / total for v in values]


def expected_value(probs: list[float], values: list[int]) -> float:
    return float(sum(p * v for p, v in zip(probs, values)))


def strip_verdict_lines(text: str, key: str) -> str:
    """Reasoning without the verdict line(s) the model wrote at its end (a forced verdict follows it)."""
    lines = text.rstrip().splitlines()
    while lines and (not lines[-1].strip() or lines[-1].strip().lstrip("*#`_ ").lower().startswith(key.lower())):
        lines.pop()
    return "\n".join(lines).rstrip()


def verdict_values(fmt: str, lo: int = 0, hi: int = 9) -> list[int]:
    return list(range(lo, hi + 1)) if fmt == "pointwise" else [1, 2]
