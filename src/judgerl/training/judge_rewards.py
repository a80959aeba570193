"""Verifiable rewards for judge GRPO (paper Eq. 1 and Eq. 3), checked with the strict verdict parser.

- Pointwise (Eq. 1): r = -1 if the predicted score is invalid (no final `Score: N` line, or N outside
  [l, u]); else r = (M_max - (s_hat - s)^2) / M_max with M_max = (u - l)^2, so valid rewards lie in [0, 1].
- Pairwise (Eq. 3): r = -1 if invalid; else 1 if the predicted label equals the gold label, else 0.

`JudgeGRPOReward` is the TRL reward callable: it reads the gold label from the dataset column `gold`
and logs the invalid rate through the `log_metric` hook TRL passes to reward functions.
"""

from __future__ import annotations

from judgerl.judges.parse import parse_verdict
from judgerl.judges.values import completion_text


def pointwise_reward(text: str, gold: int, lo: int = 0, hi: int = 9) -> float:
    """Eq. 1."""
    p = parse_verdict(text, "pointwise", lo, hi)
    if not p.valid:
        return -1.0
    m_max = (hi - lo) ** 2
    return (m_max - (p.label - gold) ** 2) / m_max


def pairwise_reward(text: str, gold: int) -> float:
    """Eq. 3."""
    p = parse_verdict(text, "pairwise")
    if not p.valid:
        return -1.0
    return float(p.label == gold)


class JudgeGRPOReward:
    """TRL reward function: Eq. 1 (pointwise) or Eq. 3 (pairwise) against the `gold` column."""

    def __init__(self, fmt: str, lo: int = 0, hi: int = 9):
        self.fmt, self.lo, self.hi = fmt, lo, hi
        self.__name__ = f"judge_{fmt}_reward"

    def __call__(self, prompts=None, completions=None, gold=None, log_metric=None, **_) -> list[float]:
        texts = [completion_text(c) for c in completions]
        if self.fmt == "pointwise":
            rewards = [pointwise_reward(t, int(g), self.lo, self.hi) for t, g in zip(texts, gold)]
        else:
            rewards = [pairwise_reward(t, int(g)) for t, g in zip(texts, gold)]
        if log_metric is not None and rewards:
            log_metric("judge/invalid_rate", sum(r == -1.0 for r in rewards) / len(rewards))
        return rewards
