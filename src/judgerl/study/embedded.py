"""The embedded gold judge: the study's Bradley-Terry RM shipped inside the package as a LoRA adapter.

`src/judgerl/study/gold_rm/` holds the adapter (bf16 safetensors, a few MB: LoRA on every linear layer of
SmolLM2-135M-Instruct plus the one-output score head), `adapter.json` (sha256, size), `gold.json` (how it
was made and what it scored) and README.md. `embedded_gold_path()` checks the sha256, rebuilds the base
from the embedded SmolLM2 (no network beyond the model fetch the package already does), merges the
adapter once into the user cache and returns that folder: a `backend: rm` JudgeSpec model path.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Callable

from judgerl import JudgerlError

NAME = "gold-rm-alpacaeval"
BASE = "smollm2-135m-instruct"


def adapter_dir() -> Path:
    return Path(str(files("judgerl.study") / "gold_rm"))


def gold_record() -> dict:
    """How the embedded gold was trained and its held-out figures (gold.json beside the adapter)."""
    p = adapter_dir() / "gold.json"
    if not p.is_file():
        raise JudgerlError(f"the embedded gold RM is missing from this install ({p})")
    return json.loads(p.read_text(encoding="utf-8"))


def embedded_gold_path() -> Path:
    """The merged gold RM folder in the user cache (built on first use from base + shipped adapter)."""
    from judgerl.models import cache_root
    from judgerl.study.adapters import merged_model

    if not (adapter_dir() / "adapter.json").is_file():
        raise JudgerlError(f"the embedded gold RM is missing from this install ({adapter_dir()})")
    return merged_model(BASE, adapter_dir(), "reward", cache_root() / "models" / NAME)


def embedded_gold_spec(device: str = "cpu", batch_size: int = 8, name: str = "gold"):
    """A pointwise `rm` JudgeSpec for the embedded gold (raw BT reward; its 0-9 cuts are in gold.json)."""
    from judgerl.judges.spec import JudgeSpec

    return JudgeSpec(name=name, backend="rm", model=str(embedded_gold_path()), format="pointwise", mode="direct",
                     device=device, batch_size=batch_size)


def score_0_9(reward: float, cuts: list[float] | None = None) -> int:
    """The embedded gold's 0-9 label of a reward: the number of its calibration cuts at or below it."""
    cuts = cuts if cuts is not None else gold_record()["score_0_9"]["decile_cuts"]
    return sum(reward >= c for c in cuts)


def annotate_items(items: list[dict], out_dir: Path, split_seed: int, fractions: tuple[float, float, float],
                   cache: Path | None = None, batch_size: int = 8, cuts: str = "items",
                   ledger: Path | None = None, thinking=None) -> dict:
    """Pointwise gold annotations of items ({id, prompt, responses}) by the embedded gold RM, written as an
    annotation dataset folder (manifest + pointwise.jsonl). The 0-9 label is the number of decile cuts at or
    below the reward; `cuts`: "items" = the deciles of these items' own rewards (a rank label, spread over
    0-9 whatever the answers' length), "shipped" = the cuts calibrated on SmolLM2 answers (gold.json).
    The RM prefers long answers, so short answers (e.g. the quickstart's) all fall under the shipped cuts.
    `thinking`: a reasoning-mode Judge whose thinking becomes each row's `reasoning` (the RM writes none; the
    reasoning judge's distillation needs some): a stand-in for the gold's reasoning, not the gold's own."""
    from judgerl.annotate.dataset import split_of
    from judgerl.judges.judge import Judge
    from judgerl.judges.spec import JudgeRequest
    from judgerl.study.gold import write_annotations

    spec = embedded_gold_spec("cpu", batch_size)
    units = [(it, k, r) for it in items for k, r in enumerate(it["responses"])]
    vs = Judge(spec, cache=cache, ledger=ledger, stage="annotate").judge(
        [JudgeRequest(prompt=it["prompt"], responses=[r]) for it, _, r in units], progress=True, desc="gold RM")
    reasons = [""] * len(units)
    if thinking is not None:
        tv = thinking.judge([JudgeRequest(prompt=it["prompt"], responses=[r]) for it, _, r in units], progress=True,
                            desc="thinking (stand-in)")
        reasons = [(v.reasoning or "").strip() for v in tv]
    rewards = [v.expected for v in vs if v.valid and v.expected is not None]
    if cuts == "items":
        from judgerl.study.labels import decile_cuts

        cut_values = decile_cuts(rewards) if rewards else []
    else:
        cut_values = gold_record()["score_0_9"]["decile_cuts"]
    rows = [{"item_id": it["id"], "prompt": it["prompt"], "response_idx": k, "response": r,
             "score": score_0_9(v.expected, cut_values) if v.valid else None, "expected": v.expected if v.valid else None,
             "reasoning": why, "valid": v.valid, "split": split_of(it["id"], split_seed, fractions), "rubric": None,
             "effort": "high"} for (it, k, r), v, why in zip(units, vs, reasons)]
    write_annotations(Path(out_dir), "pointwise", rows,
                      {"judge": {**spec.model_dump(mode="json", include={"name", "backend", "format"}),
                                 "model": NAME, "score_min": 0, "score_max": 9},
                       "label_rule": f"embedded gold RM reward -> number of decile cuts ({cuts}) at or below it",
                       "decile_cuts": cut_values})
    scores = [r["score"] for r in rows if r["score"] is not None]
    return {"rows": len(rows), "valid": len(scores), "histogram": [scores.count(k) for k in range(10)],
            "reward_range": [min(rewards), max(rewards)] if rewards else None}


def use_embedded_gold(cfg, folder: Path, log: Callable[[str], None]) -> dict:
    """gold.source = embedded: the shipped adapter (src/judgerl/study/gold_rm/) merged into gold/merged; its
    record (how it was trained, its held-out checks) copied to gold/gold.json. No training, no shared data."""
    import shutil

    from judgerl.study.adapters import check_adapter, merged_model

    src = adapter_dir()
    check_adapter(src)  # sha256 of the shipped weights
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "adapter").exists():
        shutil.rmtree(folder / "adapter")
    shutil.copytree(src, folder / "adapter")
    merged_model(cfg.base, folder / "adapter", "reward", folder / "merged")
    rec = {**gold_record(), "source": "embedded (src/judgerl/study/gold_rm)"}
    (folder / "gold.json").write_text(json.dumps(rec, indent=2, default=float), encoding="utf-8")
    log(f"gold: the embedded gold RM ({rec.get('name')}) merged into {folder / 'merged'}")
    return rec
