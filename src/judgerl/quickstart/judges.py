"""The quickstart's judges: where each comes from, the CPU-trained judge, and agreement with the gold.

Sources (QuickstartConfig.weak_judge / reasoning_judge / extra_judges; switching is one line):
- `prompted`: the base model with the default pointwise template, expected score over the `Score: ` tokens.
- `prompted-reasoning`: the base model in reasoning mode (think, then `Score: N`), greedy.
- `shipped:<name>`: a judge of the contrast study shipped as LoRA adapter(s) under judgerl/study/judges/<name>/
  (adapter/, and sft_adapter/ under it for the reasoning judge), merged once onto the embedded base into the
  user cache; its judge.yaml gives template, mode and sampling.
- `trained`: the train-judge stage's judge (LoRA SFT on gold labels of the base policy's answers, on CPU).
- a judge .yaml path.
A reasoning judge thinks for at most `reasoning_tokens` on CPU; its verdict is forced after that.

Agreement: every judge scores the same held-out answers (data.heldout); Krippendorff's interval alpha x100 of
its expected score against the gold label, with a 95% bootstrap interval over prompts (study.stats).
"""

from __future__ import annotations

import hashlib
import json
from importlib.resources import files
from pathlib import Path

from judgerl import JudgerlError
from judgerl.quickstart.config import judge_dtype


def shipped_dir(name: str) -> Path:
    return Path(str(files("judgerl.study") / "judges" / name))


def shipped_names() -> list[str]:
    root = Path(str(files("judgerl.study") / "judges"))
    return sorted(p.name for p in root.iterdir() if any((p / a).is_dir() for a in ("adapter", "sft_adapter"))) \
        if root.is_dir() else []


def shipped_record(name: str) -> dict:
    """judge.json beside the adapter (the study's alpha for it), {} when absent."""
    p = shipped_dir(name) / "judge.json"
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}


def merged_shipped(name: str, base: str) -> Path:
    """base + the shipped adapter(s) merged, in the user cache (built once per adapter content): adapter/, or
    sft_adapter/ then adapter/ for the reasoning judge (sft_adapter/ alone when its GRPO stage did not ship)."""
    from judgerl.models import cache_root
    from judgerl.study.adapters import check_adapter, merged_model

    d = shipped_dir(name)
    chain = [a for a in (d / "sft_adapter", d / "adapter") if a.is_dir()]
    if not chain:
        have = ", ".join(shipped_names()) or "none"
        raise JudgerlError(f"no shipped judge {name!r} (judgerl/study/judges/{name}/adapter missing; shipped: {have})")
    key = hashlib.sha256("".join(check_adapter(a)["sha256"] for a in chain).encode()).hexdigest()[:12]
    out = cache_root() / "models" / f"judge-{name}-{key}"
    model = base
    for i, a in enumerate(chain):
        model = str(merged_model(model, a, "causal", out if i == len(chain) - 1 else Path(f"{out}-stage{i}")))
    return Path(model)


def shipped_spec(name: str, base: str):
    """The shipped judge's spec (its judge.yaml; for an SFT-only reasoning judge, the study's reasoning spec)."""
    from judgerl.config import load_judge_spec

    d = shipped_dir(name)
    if (d / "judge.yaml").is_file():
        spec = load_judge_spec(d / "judge.yaml")
    elif (d / "sft_adapter").is_dir():
        from judgerl.study.config import StudyConfig
        from judgerl.study.reasoning import reasoning_spec

        spec = reasoning_spec(StudyConfig(), d)
    else:
        raise JudgerlError(f"shipped judge {name!r} has no judge.yaml")
    return spec.model_copy(update={"model": str(merged_shipped(name, base))})


# CPU batch sizes. A direct judge is one forward over each prompt, one prompt per call: the Judge sends answers to the
# same question one after another (judges/judge.py), so that the judge's prefix memo (judges/prefix_memo.py) serves
# each its template head and, after the first, the question; nothing is padding. On the quickstart's 100 held-out
# answers (24 questions) that computes 14,804 prompt tokens after the head instead of 19,160 in batches of 4 cut from
# the prompts sorted by length: 76.5 / 80.8 CPU-s against 104.2 / 98.5 (the prompted judge at one thread, alternating
# runs, bench/RESULTS.md 7i). The gold RM has no memo: batches of 4 by length (GOLD_BATCH). A reasoning judge decodes
# token by token, and a CPU decode step costs about the same at any batch up to 16 (it reads the weights once a
# step), but its KV cache of 16 prompts of ~500 tokens is ~0.37 GB beside the policy run of the other lane: batches
# of 8.
DIRECT_BATCH, REASONING_BATCH, GOLD_BATCH = 1, 8, 4


def spec_for(source: str, cfg, run_root: Path, batch_size: int | None = None):
    """The JudgeSpec of a judge source (see the module docstring), set up for the CPU (batches: DIRECT_BATCH,
    REASONING_BATCH unless `batch_size` is given)."""
    from judgerl.config import load_judge_spec
    from judgerl.judges.spec import JudgeSpec, Sampling
    from judgerl.quickstart.config import source_name

    name = source_name(source)
    if source in ("prompted", "prompted-reasoning"):
        mode = "reasoning" if source == "prompted-reasoning" else "direct"
        tokens = cfg.reasoning_tokens if mode == "reasoning" else 8
        bs = batch_size or (REASONING_BATCH if mode == "reasoning" else DIRECT_BATCH)
        return JudgeSpec(name=name, backend="hf", model=cfg.model, format="pointwise", mode=mode, device="cpu",
                         dtype=judge_dtype(cfg), batch_size=bs, sampling=Sampling(temperature=0.0, max_new_tokens=tokens))
    if source == "trained":
        spec = load_judge_spec(run_root / "judges" / "trained" / "judge.yaml")
    elif source.startswith("shipped:"):
        spec = shipped_spec(name, cfg.model)
    else:
        spec = load_judge_spec(source)
    upd = {"name": name, "device": "cpu", "dtype": judge_dtype(cfg),
           "batch_size": batch_size or (REASONING_BATCH if spec.mode == "reasoning" else DIRECT_BATCH)}
    if spec.mode == "reasoning":
        upd["sampling"] = spec.sampling.model_copy(update={"max_new_tokens": cfg.reasoning_tokens, "temperature": 0.0})
    return spec.model_copy(update=upd)


def train(cfg, sets: dict, folder: Path) -> str:
    """The train-judge stage: gold labels of base answers, LoRA SFT (non-reasoning) on CPU."""
    from judgerl.quickstart.data import train_annotations
    from judgerl.training.judge_config import TrainJudgeConfig
    from judgerl.training.train_judge import train_judge

    ann = train_annotations(cfg, sets, folder)
    tcfg = TrainJudgeConfig.model_validate({
        "name": "trained", "output_dir": str(folder), "variant": "non_reasoning", "format": "pointwise",
        "base_model": cfg.model, "annotations": str(ann), "finetune": "lora", "lora": {"r": 8, "alpha": 16},
        "seed": cfg.seed, "save_stages": False,
        "sft": {"learning_rate": 5e-4, "max_steps": cfg.train_steps, "warmup_ratio": 0.0,
                "per_device_train_batch_size": 4, "max_length": 1024, "logging_steps": 1},
        "judge_sampling": {"temperature": 0.0, "max_new_tokens": 8}})
    _, _, st = train_judge(tcfg)
    return (f"{cfg.train_labels} gold labels, {st.get('sft_steps', 0)} SFT steps (LoRA r8), train loss "
            f"{st.get('sft_train_loss', float('nan')):.3f}")


def agreement(spec, rows: list[dict], folder: Path, n_boot: int, seed: int, cache: Path,
              source: str | None = None) -> dict:
    """Score the held-out rows, write folder/eval.json (the report's agreement table reads it)."""
    from judgerl.judges.judge import Judge
    from judgerl.judges.spec import JudgeRequest
    from judgerl.model_loader import shared_model
    from judgerl.study.stats import cluster_bootstrap, interval_alpha

    folder.mkdir(parents=True, exist_ok=True)
    m, t = shared_model(spec.model, spec.model_kind, "cpu", spec.dtype) if spec.model_kind else (None, None)
    judge = Judge(spec, cache=cache, ledger=folder / "ledger.sqlite", stage="agreement", model=m, tokenizer=t)
    vs = judge.judge([JudgeRequest(prompt=r["prompt"], responses=[r["response"]]) for r in rows])
    pairs = [(r["item_id"], r["score"], v.expected if v.valid else None) for r, v in zip(rows, vs)]
    ci = cluster_bootstrap(pairs, lambda x: x[0], lambda rs: interval_alpha([g for _, g, _ in rs], [p for _, _, p in rs]),
                           n_boot, seed)
    valid = [v for v in vs if v.valid]
    exact = [round(v.expected) == r["score"] for r, v in zip(rows, vs) if v.valid]
    res = {"judge": {"name": spec.name, "model": spec.model, "mode": spec.mode, "source": source,
                     "dtype": spec.dtype},
           "gold": {"alpha_expected": ci["value"], "alpha_expected_ci": [ci["lo"], ci["hi"]], "n": ci["n"],
                    "items": ci["clusters"], "small_n": ci["small_n"],
                    "exact_match": sum(exact) / len(exact) if exact else None,
                    "invalid_rate": 1 - len(valid) / len(vs) if vs else None,
                    "mean_thinking_tokens": (sum(v.tokens_out for v in vs) / len(vs)) if spec.mode == "reasoning" and vs
                    else None},
           "scores": [p for _, _, p in pairs]}
    (folder / "eval.json").write_text(json.dumps(res, indent=2), encoding="utf-8")
    return res
