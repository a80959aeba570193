"""The judge layer: one abstraction (backend + format + mode + template + sampling) for every stage."""

from judgerl.judges.judge import Judge, run_sync
from judgerl.judges.parse import parse_verdict
from judgerl.judges.spec import JudgeRequest, JudgeSpec, Sampling, Verdict

__all__ = ["Judge", "JudgeRequest", "JudgeSpec", "Sampling", "Verdict", "parse_verdict", "run_sync"]
