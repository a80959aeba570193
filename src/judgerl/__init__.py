"""judgerl: LLM judges as rewards for non-verifiable post-training, and the tools to catch reward hacking.

The pipeline (see README): annotate (gold judge) -> train-judge -> train-policy (GRPO, judge reward,
gold monitor) -> eval / arena / probe -> report. One judge abstraction (`judgerl.judges`) serves all.
"""

__version__ = "0.1.0"


class JudgerlError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits non-zero."""
