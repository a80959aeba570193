"""train-judge on the real SmolLM2 (CPU): real TRL steps for every variant; parameters change; the saved
checkpoint loads as a judge (JudgeSpec backend hf / rm pointing at the folder) and scores.

Kept tiny: 2-4 training rows, a short prompt template, 1-3 optimizer steps, one group of G = 4
12-token rollouts per GRPO step.
GRPO needs reward variance within a group to move any parameter, and the untrained 135M model never
writes a `Score: N` line (every rollout scores -1, advantage 0). So the GRPO tests start from the
module's small SFT judge (`format_judge`), which already answers in the verdict format.
"""

import math
import shutil

import pytest
from safetensors import safe_open

from judge_testdata import tiny_annotation_set
from judgerl import JudgerlError
from judgerl.config import load_judge_spec
from judgerl.judges import Judge, JudgeRequest, JudgeSpec, parse_verdict
from judgerl.judges.cache import Ledger
from judgerl.judges.hf import chat_text
from judgerl.judges.prompts import render
from judgerl.training.judge_config import TrainJudgeConfig
from judgerl.training.train_judge import train_judge

pytestmark = pytest.mark.slow
Q = "model.layers.0.self_attn.q_proj.weight"


def tensor(folder, name=Q):
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return f.get_tensor(name)


@pytest.fixture(scope="module")
def setup(shared_data, tmp_path_factory):
    d = tmp_path_factory.mktemp("judgetrain")
    yield tiny_annotation_set(shared_data, d)
    shutil.rmtree(d, ignore_errors=True)  # five 0.5 GB judges: free the disk before the next module


def config(setup, name, **kw) -> TrainJudgeConfig:
    ann, d = setup
    base = {"name": name, "output_dir": str(d / name), "annotations": str(ann), "template": str(d / "tiny.txt"),
            "limit": 4, "seed": 0, "save_stages": True, "judge_sampling": {"max_new_tokens": 16},
            "sft": {"learning_rate": 1e-4, "max_steps": 1, "warmup_ratio": 0.0, "per_device_train_batch_size": 2,
                    "max_length": 160, "logging_steps": 1},
            "grpo": {"learning_rate": 1e-4, "max_steps": 1, "num_generations": 4, "per_device_train_batch_size": 4,
                     "max_completion_length": 12, "max_prompt_length": 160, "logging_steps": 1}}
    for k, v in kw.items():
        base[k] = {**base[k], **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return TrainJudgeConfig.model_validate(base)


def score_one(spec_path, **req):
    spec = load_judge_spec(str(spec_path))
    v = Judge(spec).judge([JudgeRequest(prompt="How do I boil an egg?", responses=["Boil it for 8 minutes."], **req)])[0]
    return spec, v


def test_sft_prompt_and_target_are_the_judges(setup, smollm2):
    """The SFT prompt tokens are the hf judge's rendered prompt; the target is what the parser accepts."""
    from judgerl.training.judge_data import load_examples, target_text, tokenize_sft

    tok = smollm2[1]
    for mode in ("direct", "reasoning"):
        spec = JudgeSpec(model="x", mode=mode, template=str(setup[1] / "tiny.txt"))
        exs = load_examples(str(setup[0]), "pointwise", "train", limit=2)
        rows, dropped = tokenize_sft(tok, spec, exs, 512)
        assert dropped == 0
        for ex, row in zip(exs, rows):
            n_prompt = row["completion_mask"].index(1)
            assert tok.decode(row["input_ids"][:n_prompt]) == chat_text(tok, render(spec, ex.request))
            target = tok.decode(row["input_ids"][n_prompt:])
            assert target == target_text(tok, spec, ex) and target.endswith(tok.eos_token)
            parsed = parse_verdict(target[: -len(tok.eos_token)], "pointwise")
            assert parsed.valid and parsed.label == ex.gold
            assert (parsed.reasoning == ex.reasoning) == (mode == "reasoning")
    think = target_text(tok, spec, exs[0], think_tags=True)                 # Qwen3-style thinking block
    assert think.startswith("<think>\n") and parse_verdict(think[: -len(tok.eos_token)]).reasoning == exs[0].reasoning


@pytest.fixture(scope="module")
def format_judge(setup, smollm2_path):
    """Non-reasoning pointwise judge, LoRA, a few steps at a high lr so it answers `Score: N`."""
    cfg = config(setup, "nonreason", variant="non_reasoning", finetune="lora", lora={"r": 16, "alpha": 32},
                 sft={"learning_rate": 2e-3, "max_steps": 3, "per_device_train_batch_size": 4})
    folder, spec, stats = train_judge(cfg)
    return folder, spec, stats


def test_non_reasoning_lora_sft_saves_a_working_judge(format_judge, smollm2_path):
    folder, spec, stats = format_judge
    assert stats["sft_steps"] == 3 and stats["sft_train_examples"] == 4
    assert not tensor(folder).equal(tensor(smollm2_path))            # LoRA merged into the saved weights
    assert spec.backend == "hf" and spec.mode == "direct" and spec.model == str(folder)
    assert (folder / "template.txt").is_file() and not (folder / "adapter_config.json").exists()
    spec2, v = score_one(folder.parent / "judge.yaml")
    assert spec2 == spec and v.valid and 0 <= v.label <= 9


def test_sft_stopped_and_run_again_resumes_from_its_last_checkpoint(setup, smollm2_path):
    """save_steps: 2 steps, then the same training to 4 steps in a new process's place (fresh model) picks up
    checkpoint-2 and ends where 4 uninterrupted steps end (constant lr, so the schedule does not depend on the
    step count)."""
    import torch

    from judgerl.training.checkpoints import load_causal
    from judgerl.training.judge_sft import run_sft
    from judgerl.training.train_judge import judge_spec

    def train(name, steps, out):
        cfg = config(setup, name, variant="non_reasoning", finetune="lora",
                     sft={"max_steps": steps, "save_steps": 1, "lr_scheduler_type": "constant",
                          "learning_rate": 1e-3, "per_device_train_batch_size": 1})
        model, tok = load_causal(str(smollm2_path), "float32")
        model, stats = run_sft(cfg, judge_spec(cfg, "x", cfg.template), model, tok, str(out))
        return {k: v.detach().clone() for k, v in model.named_parameters() if "lora_" in k}, stats

    d = setup[1]
    _, first = train("resume", 2, d / "ckpt_resume")
    assert first["sft_steps"] == 2 and "sft_resumed_from_step" not in first
    assert [p.name for p in (d / "ckpt_resume").glob("checkpoint-*")] == ["checkpoint-2"]  # only the last kept
    resumed, second = train("resume", 4, d / "ckpt_resume")
    assert second["sft_resumed_from_step"] == 2 and second["sft_steps"] == 4
    straight, _ = train("straight", 4, d / "ckpt_straight")
    assert resumed.keys() == straight.keys() and resumed
    assert all(torch.allclose(resumed[k], straight[k], atol=1e-5) for k in resumed)
    assert not all(torch.equal(resumed[k], torch.zeros_like(resumed[k])) for k in resumed if "lora_B" in k)


def test_rl_only_grpo_changes_parameters(setup, format_judge):
    base = format_judge[0]
    cfg = config(setup, "rlonly", variant="rl_only", base_model=str(base), finetune="lora", limit=2,
                 lora={"r": 8, "alpha": 16})
    folder, spec, stats = train_judge(cfg)
    assert stats["grpo_steps"] == 1 and stats["grpo_train_prompts"] == 2
    assert not tensor(folder).equal(tensor(base))
    assert spec.mode == "reasoning"
    _, v = score_one(folder.parent / "judge.yaml")
    assert v.label is None or 0 <= v.label <= 9


def test_reasoning_distillation_then_grpo(setup, format_judge):
    base = format_judge[0]
    cfg = config(setup, "reason", variant="reasoning", base_model=str(base), finetune="lora", limit=2,
                 lora={"r": 8, "alpha": 16})
    folder, spec, stats = train_judge(cfg)
    assert stats["sft_steps"] == 1 and stats["grpo_steps"] == 1
    sft = folder.parent / "sft"
    assert not tensor(sft).equal(tensor(base))                       # distillation moved the weights
    assert not tensor(folder).equal(tensor(sft))                     # and so did GRPO
    assert spec.mode == "reasoning"
    _, v = score_one(folder.parent / "judge.yaml")
    assert v.tokens_out >= 1


def test_rubric_pairwise_full_finetune(setup, smollm2_path):
    cfg = config(setup, "rubric", variant="rubric", format="pairwise", finetune="full",
                 template=str(setup[1] / "tinypair.txt"))
    folder, spec, stats = train_judge(cfg)
    assert stats["sft_steps"] == 1
    assert not tensor(folder).equal(tensor(smollm2_path))
    assert spec.rubric and spec.format == "pairwise"
    spec = load_judge_spec(str(folder.parent / "judge.yaml"))
    v = Judge(spec).judge([JudgeRequest(prompt="Say hi.", responses=["Hi!", "No."], rubric="- greets")])[0]
    assert v.valid and v.label in (1, 2)


def test_bt_reward_model(setup, smollm2_path):
    cfg = config(setup, "btrm", variant="bt_rm", finetune="lora", lora={"r": 8, "alpha": 16},
                 rm={"learning_rate": 1e-3, "max_steps": 1, "per_device_train_batch_size": 2, "max_length": 160,
                     "warmup_ratio": 0.0, "logging_steps": 1})
    folder, spec, stats = train_judge(cfg)
    assert stats["rm_steps"] == 1 and stats["rm_train_pairs"] == 4
    assert not tensor(folder).equal(tensor(smollm2_path))
    assert spec.backend == "rm"
    _, v = score_one(folder.parent / "judge.yaml")
    assert v.valid and v.expected is not None


def test_grpo_selection_restores_the_best_validation_step(setup, format_judge, monkeypatch):
    """select_every: 1 scores the validation split (real judge decoding of the model in training) before
    step 1 and after steps 1 and 2. The metric is then scripted so that step 0 wins: the saved judge must
    be the pre-GRPO weights although both GRPO steps moved the adapters."""
    from judgerl.training import judge_selection

    base = format_judge[0]
    real_score, seen = judge_selection.ValidationSelector.score, {}

    def scripted(self, model, step):
        res = real_score(self, model, step)
        assert res["n"] == 4 and 0.0 <= res["invalid_rate"] <= 1.0
        # alpha x 100 is at most 100 but has no lower bound on 4 rows (CI saw -28.9: near-constant gold)
        assert res["metric"] is None or (math.isfinite(res["metric"]) and res["metric"] <= 100.0)
        seen[step] = sum(float(p.detach().abs().sum()) for n, p in model.named_parameters() if "lora_B" in n)
        return {**res, "metric": {0: 0.5, 1: 0.1, 2: 0.2}[step]}

    monkeypatch.setattr(judge_selection.ValidationSelector, "score", scripted)
    cfg = config(setup, "selected", variant="rl_only", base_model=str(base), finetune="lora", limit=2,
                 lora={"r": 8, "alpha": 16}, validation_split="test", validation_limit=4,
                 grpo={"max_steps": 2, "select_every": 1})
    folder, spec, stats = train_judge(cfg)
    assert [h["step"] for h in stats["grpo_validation"]] == [0, 1, 2] and stats["grpo_steps"] == 2
    assert stats["grpo_best_step"] == 0 and stats["grpo_best_metric"] == 0.5
    assert seen[0] == 0.0 and seen[1] > 0.0                          # GRPO moved the adapters (B starts at 0)
    assert tensor(folder).equal(tensor(base))                        # ... and the step-0 weights were restored
    calls = Ledger(folder.parent / "ledger.sqlite").summary("grpo-validation")
    assert calls["backend_calls"] == 3 * 4 and calls["cache_hits"] == 0  # 3 points x 4 rows, never cached


def test_grpo_selection_needs_a_validation_split(setup):
    cfg = config(setup, "noval", variant="rl_only", validation_split="nosuch", grpo={"select_every": 1})
    with pytest.raises(JudgerlError, match="grpo.select_every needs validation rows.*'nosuch'"):
        train_judge(cfg)


def test_sft_alpha_selection_restores_the_best_epoch(setup, monkeypatch):
    """sft.select_metric alpha: the validation split is judged (direct verdicts, real decoding) after each
    of 2 epochs; the metric is scripted so that epoch 1 wins, and its adapters are the ones restored."""
    from judgerl.training import judge_selection

    sel = judge_selection.ValidationSelector
    real_score, real_end, lora = sel.score, sel.on_train_end, {}

    def snapshot(model):
        return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}

    def scripted(self, model, step):
        res = real_score(self, model, step)
        assert res["n"] == 4 and 0.0 <= res["invalid_rate"] <= 1.0
        lora[step] = snapshot(model)
        return {**res, "metric": {1: 0.4, 2: 0.3}[step]}

    def end(self, args, state, control, model=None, **kw):
        real_end(self, args, state, control, model=model, **kw)
        lora["restored"] = snapshot(model)

    monkeypatch.setattr(sel, "score", scripted)
    monkeypatch.setattr(sel, "on_train_end", end)
    cfg = config(setup, "sftsel", variant="non_reasoning", finetune="lora", lora={"r": 8, "alpha": 16},
                 validation_split="test", validation_limit=4,
                 sft={"learning_rate": 2e-3, "max_steps": -1, "num_train_epochs": 2, "per_device_train_batch_size": 4,
                      "select_by_validation": True, "select_metric": "alpha"})
    folder, spec, stats = train_judge(cfg)
    assert [(h["step"], h["epoch"]) for h in stats["sft_validation"]] == [(1, 1.0), (2, 2.0)]
    assert stats["sft_best_step"] == 1 and stats["sft_best_metric"] == 0.4
    assert any(not lora[2][n].equal(lora[1][n]) for n in lora[1])     # epoch 2 moved the adapters
    assert all(lora["restored"][n].equal(lora[1][n]) for n in lora[1])  # epoch 1's were put back


def test_selection_is_refused_with_sharded_parameters(setup, monkeypatch):
    from judgerl.training.judge_selection import check_selection_supported

    check_selection_supported()                                      # one process / DDP: fine
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")
    check_selection_supported()                                      # ZeRO-2 keeps whole parameters
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    with pytest.raises(JudgerlError, match="not supported under DeepSpeed ZeRO-3 or FSDP"):
        check_selection_supported()
    cfg = config(setup, "zero3", variant="reasoning", validation_split="test", grpo={"select_every": 1})
    with pytest.raises(JudgerlError, match="not supported"):
        train_judge(cfg)                                             # refused before SFT starts
    assert not (setup[1] / "zero3" / "sft").exists()
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(JudgerlError, match="not supported"):
        check_selection_supported()
