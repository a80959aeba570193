"""`judgerl train-judge`: run a variant's stages and save a judge usable as `backend: hf, model: <out>/judge`.

    <out>/config.yaml   resolved TrainJudgeConfig
    <out>/judge/        final checkpoint, plain HF format (LoRA merged), plus the prompt template
    <out>/judge.yaml    the JudgeSpec to use it:  judgerl judge --judge <out>/judge.yaml ...
    <out>/sft/          reasoning variant only: the distilled checkpoint before GRPO (save_stages)
    <out>/train.json    stage statistics (examples used/dropped, steps, losses, rewards)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from judgerl import JudgerlError
from judgerl.config import dump_yaml
from judgerl.judges.spec import JudgeSpec
from judgerl.rundir import RunDir
from judgerl.training.checkpoints import load_causal, save_hf, unwrap
from judgerl.training.judge_config import TrainJudgeConfig


def output_dir(cfg: TrainJudgeConfig) -> Path:
    return Path(cfg.output_dir) if cfg.output_dir else Path("runs") / cfg.name


def judge_spec(cfg: TrainJudgeConfig, model: str, template: str | None = None) -> JudgeSpec:
    """The JudgeSpec the trained judge is trained for and saved with (the prompt it learns is rendered from it)."""
    if cfg.variant == "bt_rm":
        return JudgeSpec(name=cfg.name, backend="rm", model=model, format="pointwise", mode="direct",
                         score_min=cfg.score_min, score_max=cfg.score_max)
    return JudgeSpec(name=cfg.name, backend="hf", model=model, format=cfg.format, mode=cfg.mode,
                     rubric=cfg.variant == "rubric", template=template, score_min=cfg.score_min,
                     score_max=cfg.score_max, sampling=cfg.judge_sampling)


def check_data(cfg: TrainJudgeConfig) -> None:
    """Fail fast (before loading any model) on bad annotation data."""
    from judgerl.training.judge_data import load_examples

    fmt = "pairwise" if cfg.variant == "bt_rm" else cfg.format
    load_examples(cfg.annotations, fmt, cfg.train_split, cfg.score_min, cfg.score_max, cfg.limit,
                  need_reasoning=cfg.variant == "reasoning", need_rubric=cfg.variant == "rubric")
    selection = None
    if "sft" in cfg.stages and cfg.sft.select_by_validation:
        selection = "sft.select_by_validation"
    elif "grpo" in cfg.judged_selection:
        selection = "grpo.select_every"
    if selection:
        try:
            load_examples(cfg.annotations, fmt, cfg.validation_split, cfg.score_min, cfg.score_max, 1)
        except JudgerlError as e:
            raise JudgerlError(f"{selection} needs validation rows: {e}") from None
    if cfg.judged_selection:
        from judgerl.training.judge_selection import check_selection_supported

        check_selection_supported()  # before hours of SFT, not at the start of GRPO


def train_judge(cfg: TrainJudgeConfig) -> tuple[Path, JudgeSpec, dict]:
    """Train the configured variant; returns (judge folder, saved JudgeSpec, stats)."""
    check_data(cfg)
    out = output_dir(cfg)
    rd = RunDir(out)
    rd.save_config(cfg)
    final = (out / "judge").resolve()
    stats: dict = {"variant": cfg.variant, "stages": cfg.stages}
    template = str(final / "template.txt") if cfg.template and cfg.variant != "bt_rm" else None
    if cfg.variant == "bt_rm":
        from judgerl.training.reward_model import run_reward_model

        model, tok, st = run_reward_model(cfg, str(out / "checkpoints"))
        stats.update(st)
        save_hf(model, tok, final)
    else:
        train_spec = judge_spec(cfg, str(final), cfg.template)  # renders with the source template
        model, tok = load_causal(cfg.base_model, cfg.dtype)
        if "sft" in cfg.stages:
            from judgerl.training.judge_sft import run_sft

            model, st = run_sft(cfg, train_spec, model, tok, str(out / "checkpoints"), ledger=rd.ledger_path)
            stats.update(st)
            model = unwrap(model)
            if "grpo" in cfg.stages and cfg.save_stages:
                save_hf(model, tok, out / "sft")
        if "grpo" in cfg.stages:
            from judgerl.training.judge_grpo import run_grpo

            model, st = run_grpo(cfg, train_spec, model, tok, str(out / "checkpoints"), ledger=rd.ledger_path)
            stats.update(st)
        save_hf(model, tok, final)
        if template:
            shutil.copyfile(cfg.template, template)
    spec = judge_spec(cfg, str(final), template)
    dump_yaml(spec, out / "judge.yaml")
    ckpt = out / "checkpoints"
    if ckpt.is_dir() and not any(ckpt.iterdir()):
        ckpt.rmdir()
    (out / "train.json").write_text(json.dumps(stats, indent=2, default=str), encoding="utf-8")
    return final, spec, stats
