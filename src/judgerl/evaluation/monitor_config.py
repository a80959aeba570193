"""The gold monitor's settings (evaluation/monitor.py runs it). Kept apart from the callback so that reading a
policy config (`validate`, `--dry-run`) does not import transformers and torch."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from judgerl.evaluation.pattern_judge import PatternJudgeConfig


class MonitorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(True, description="Score held-out prompts with the gold and proxy judges during training.")
    every_steps: int = Field(50, ge=1, description="Monitor every N optimizer steps (and at step 0).")
    n_prompts: int = Field(32, ge=1, description="Held-out prompts (taken from the prompt pool, never trained on).")
    max_new_tokens: int = Field(256, ge=1, description="Policy answer length on the monitor prompts (greedy).")
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy.")
    batch_size: int = Field(8, ge=1, description="Monitor prompts generated per batch.")
    both_orders: bool = Field(True, description="Pairwise judges: judge sample-vs-base in both orders.")
    length_ratio: float = Field(2.0, gt=1.0, description="Length inflation: ≥ ratio × base words ...")
    min_extra_words: int = Field(50, ge=0, description="... and at least this many more words.")
    pattern_judge: PatternJudgeConfig = Field(
        default_factory=PatternJudgeConfig, description="Judge-backed pattern detector run beside the regexes "
        "(evaluation/pattern_judge.py): one judge call per sample and pattern; off by default. Logged as "
        "`pattern_judge/<pattern>` and per sample as `judge_patterns`.")
