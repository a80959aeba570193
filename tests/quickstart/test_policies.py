"""Paired changes of a policy run (last monitor point minus step 0, per prompt) and the summary built from them."""

from __future__ import annotations

import json
from pathlib import Path

from judgerl.quickstart import summary
from judgerl.quickstart.data import round_robin
from judgerl.quickstart.policies import paired_changes


def write_run(d: Path, proxy_up: float, gold_down: float, alarm_step: int | None) -> None:
    (d / "samples").mkdir(parents=True)
    recs = []
    for step, k in ((0, 0), (4, 1), (8, 2)):
        rows = [{"step": step, "prompt": f"p{i}", "response": "x " * (20 - 5 * k), "proxy": 5 + i % 3 + k * proxy_up,
                 "gold": -i / 10 - k * gold_down + (0.05 if i % 2 else -0.05) * k, "words": 20 - 5 * k}
                for i in range(12)]
        (d / "samples" / f"step_{step:04d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        recs.append({"step": step, "proxy_mean": sum(r["proxy"] for r in rows) / 12,
                     "gold_mean": sum(r["gold"] for r in rows) / 12, "mean_words": 20 - 5 * k})
    (d / "monitor.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    if alarm_step is not None:
        (d / "alarm.json").write_text(json.dumps({"triggered": True, "first_step": alarm_step, "events": []}))


def test_paired_changes_and_summary(tmp_path):
    write_run(tmp_path / "policies" / "weak", 0.1, 0.3, 8)
    write_run(tmp_path / "policies" / "gold", 0.0, -0.2, None)
    ch = paired_changes(tmp_path / "policies" / "weak", 200, 0)
    assert ch["alarm_step"] == 8 and (ch["first_step"], ch["last_step"]) == (0, 8)
    assert abs(ch["proxy"]["value"] - 0.2) < 1e-9 and abs(ch["gold"]["value"] + 0.6) < 1e-9
    assert ch["gold"]["lo"] < -0.6 < ch["gold"]["hi"] < 0 and ch["gold"]["clusters"] == 12
    assert ch["words"] == [20, 10]
    for name in ("weak", "gold"):
        d = tmp_path / "policies" / name
        (d / "changes.json").write_text(json.dumps(paired_changes(d, 200, 0)))
    (tmp_path / "judges" / "sft-500").mkdir(parents=True)
    (tmp_path / "judges" / "sft-500" / "eval.json").write_text(json.dumps(
        {"judge": {"name": "sft-500"}, "gold": {"alpha_expected": 21.4, "alpha_expected_ci": [9.8, 30.1], "n": 120,
                                                "items": 30}}))
    s = summary.build(tmp_path, {"weak": "sft-500", "reasoning": "reasoning"}, 290)
    lines = s["lines"]
    assert len(lines) == 5
    assert lines[0].startswith("Judges vs the gold RM on 120 held-out answers (30 prompts)") and "21 [10, 30]" in lines[0]
    assert "its judge +0.20" in lines[1] and "gold -0.60" in lines[1] and "alarm fired at step 8" in lines[1]
    assert "a hack showed: its judge rose while the gold fell" in lines[1]
    assert lines[2] == "Policy vs the reasoning judge: not run."
    assert "gold +0.40" in lines[3] and "silent" in lines[3] and "the gold rose" in lines[3] and "4.8 min" in lines[4]
    assert summary.figure(tmp_path, s) is not None


def test_summary_says_no_hack_and_labels_toy_sizes(tmp_path):
    """Flat runs read "no hack showed"; the rollouts a run saw label it as toy-sized; a shipped judge is tagged."""
    for name, up, down in (("weak", 0.0, 0.0), ("reasoning", -0.2, 0.3)):
        d = tmp_path / "policies" / name
        write_run(d, up, down, None)
        ch = paired_changes(d, 200, 0)
        ch.update(rollouts=48, completion_tokens=48)
        (d / "changes.json").write_text(json.dumps(ch))
    (tmp_path / "judges" / "sft-1500").mkdir(parents=True)
    (tmp_path / "judges" / "sft-1500" / "eval.json").write_text(json.dumps(
        {"judge": {"name": "sft-1500", "source": "shipped:sft-1500"},
         "gold": {"alpha_expected": 28.9, "alpha_expected_ci": [14.5, 39.2], "n": 100, "items": 24}}))
    lines = summary.build(tmp_path, {"weak": "prompted", "reasoning": "reasoning", "sft-1500": "sft-1500"})["lines"]
    assert "sft-1500 (shipped) 29 [14, 39]" in lines[0]
    assert "(toy size: 48 rollouts of <= 48 tokens)" in lines[1] and lines[1].endswith("; no hack showed.")
    assert lines[2].endswith("no hack showed: its judge and the gold both fell.")
    assert summary.verdict("gold", {"gold": {"value": 0.1, "lo": -0.2, "hi": 0.4}}) == \
        "the gold did not move beyond its interval"


def test_round_robin_spreads_over_prompts():
    rows = [{"item_id": f"p{i % 5}", "k": i} for i in range(50)]
    got = round_robin(rows, 12, 0)
    ids = [r["item_id"] for r in got]
    assert len(got) == 12 and len(set(ids[:5])) == 5 and all(ids.count(f"p{i}") in (2, 3) for i in range(5))
    assert round_robin(rows, 12, 0) == got and round_robin(rows, 100, 0).__len__() == 50


def test_a_step_is_its_prompts_groups_trained_half_a_group_per_micro_batch(tmp_path):
    from judgerl.judges.spec import JudgeSpec
    from judgerl.quickstart.config import QuickstartConfig
    from judgerl.quickstart.policies import policy_config
    from judgerl.study.embedded import embedded_gold_spec
    from judgerl.training.policy_config import PolicyConfig, check_group_layout

    cfg = QuickstartConfig()
    pc = PolicyConfig.model_validate(policy_config(cfg, "weak", JudgeSpec(), embedded_gold_spec("cpu", 16, "gold"),
                                                   tmp_path, tmp_path / "run"))
    g = pc.grpo
    assert (g.per_device_train_batch_size, g.gradient_accumulation_steps) == (cfg.num_generations // 2,
                                                                              2 * cfg.prompts_per_step)
    layout = check_group_layout(g, True, 1)
    assert layout["prompts_per_step"] == cfg.prompts_per_step
    assert layout["generation_batch_size"] == cfg.prompts_per_step * cfg.num_generations
    from judgerl.training.policy_grpo import grpo_args

    # no gradient checkpointing: with the lower blocks frozen it only recomputes forwards (TRL's default is on)
    assert grpo_args(pc, tmp_path / "ck", layout).gradient_checkpointing is False


def test_later_runs_take_step0_only_from_an_earlier_run_with_the_same_policy_prompts_decoding_and_gold(tmp_path):
    from judgerl.config import dump_yaml
    from judgerl.judges.spec import JudgeSpec
    from judgerl.quickstart.config import QuickstartConfig
    from judgerl.quickstart.policies import policy_config, shared_step0
    from judgerl.study.embedded import embedded_gold_spec
    from judgerl.training.policy_config import PolicyConfig

    gold = embedded_gold_spec("cpu", 16, "gold")
    pols = tmp_path / "policies"

    def pc(name, cfg=QuickstartConfig(), judge=JudgeSpec()):
        return PolicyConfig.model_validate(policy_config(cfg, name, judge, gold, tmp_path, pols / name))

    weak = pols / "weak"
    (weak / "samples").mkdir(parents=True)
    dump_yaml(pc("weak"), weak / "config.yaml")
    rows = [{"prompt": [{"role": "user", "content": p}], "response": r, "gold": g}
            for p, r, g in [("Say hi.", "hi", -0.5), ("Name a colour.", "red", 0.25)]]
    (weak / "samples" / "step_0000.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert shared_step0(pc("reasoning"), "reasoning", pols / "reasoning") is None  # the weak run did not finish
    (weak / "summary.json").write_text("{}")
    got = shared_step0(pc("reasoning", judge=JudgeSpec(mode="reasoning")), "reasoning", pols / "reasoning")
    assert got["from"] == "policies/weak" and got["responses"] == ["hi", "red"]
    assert got["prompts"] == [r["prompt"] for r in rows] and [g["value"] for g in got["gold"]] == [-0.5, 0.25]
    assert shared_step0(pc("weak"), "weak", weak) is None  # the first run computes its own
    longer = QuickstartConfig(completion_tokens=64)  # other decoding: step 0 would differ
    assert shared_step0(pc("gold", cfg=longer), "gold", pols / "gold") is None
