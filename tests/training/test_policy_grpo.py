"""Policy GRPO on the real SmolLM2 with real judges: hf (pointwise + resume, pairwise), openai
against the real llama.cpp server, and config errors raised before any training starts."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from judgerl import JudgerlError
from judgerl.evaluation.monitor import read_monitor
from judgerl.training.policy_config import GRPOSettings, PolicyConfig, check_group_layout
from judgerl.training.policy_grpo import train_policy, validate
from judge_testdata import SHORT_POINTWISE

HF_JUDGE = {"name": "smol", "backend": "hf", "model": "smollm2-135m-instruct", "format": "pointwise",
            "mode": "direct", "cache": False}


def cfg_dict(tmp_path, shared_data, smollm2_path, **over) -> dict:
    d = {"name": "t", "run_dir": str(tmp_path / "run"), "policy": str(smollm2_path), "judge": dict(HF_JUDGE),
         "gold": dict(HF_JUDGE, name="gold"),
         "grpo": {"num_generations": 2, "per_device_train_batch_size": 4, "max_steps": 2, "max_completion_length": 8,
                  "learning_rate": 1e-5, "save_steps": 100, "save_final": False, "logging_steps": 1},
         "data": {"sources": ["pool:self-instruct"], "data_root": str(shared_data), "max_prompt_chars": 120,
                  "max_prompts": 4},
         "monitor": {"every_steps": 2, "n_prompts": 1, "max_new_tokens": 8},
         "alarm": {"window": 2}}
    for k, v in over.items():
        d[k] = {**d[k], **v} if isinstance(v, dict) and isinstance(d.get(k), dict) else v
    return d


def metrics(run_dir) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def changed(ckpt_file, model) -> bool:
    from safetensors.torch import load_file

    trained = load_file(str(ckpt_file))
    base = model.state_dict()
    return any(not base[k].equal(trained[k]) for k in trained if k in base)


@pytest.mark.slow
def test_pointwise_hf_run_then_resume(tmp_path, shared_data, smollm2_path, smollm2):
    model, tok = smollm2
    before = {k: v.clone() for k, v in list(model.state_dict().items())[:3]}
    first = PolicyConfig.model_validate(cfg_dict(tmp_path, shared_data, smollm2_path, grpo={"max_steps": 1, "save_steps": 1,
                                                 "save_total_limit": 1}, monitor={"every_steps": 1}))
    s1 = train_policy(first, models={"judge": smollm2, "gold": smollm2})
    run = tmp_path / "run"
    assert s1["steps"] == 1 and (run / "checkpoints" / "checkpoint-1" / "model.safetensors").is_file()
    assert [r["step"] for r in read_monitor(run / "monitor.jsonl")] == [0, 1]
    with pytest.raises(JudgerlError, match="already holds a run"):
        train_policy(first, models={"judge": smollm2, "gold": smollm2})
    second = PolicyConfig.model_validate(cfg_dict(tmp_path, shared_data, smollm2_path, monitor={"every_steps": 1}))
    s2 = train_policy(second, resume=True, models={"judge": smollm2, "gold": smollm2})
    assert s2["steps"] == 2
    # monitor history intact: steps 0, 1 from the first run, 2 after resuming; alarm replayed over all
    lines = (run / "monitor.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [0, 1, 2]
    assert [h["step"] for h in s2["alarm"]["history"]] == [0, 1, 2]
    assert all(0 <= r["gold_mean"] <= 9 and 0 <= r["proxy_mean"] <= 9 for r in read_monitor(run / "monitor.jsonl"))
    logs = metrics(run)
    rewards = [r for r in logs if "rewards/judge_expected/mean" in r]
    assert {r["step"] for r in rewards} == {1, 2} and all(0 <= r["reward"] <= 9 for r in rewards)
    assert any(r.get("judge/calls") == 4 for r in logs)  # 2 prompts x 2 generations per step
    assert any("monitor/gold_mean" in r for r in logs)
    for f in ("config.yaml", "ledger.sqlite", "summary.json", "samples/step_0000.jsonl", "samples/step_0002.jsonl"):
        assert (run / f).exists(), f
    assert s2["judge_calls"]  # the ledger saw the reward and monitor calls
    assert changed(run / "checkpoints" / "checkpoint-1" / "model.safetensors", model)  # the policy trained ...
    assert all(model.state_dict()[k].equal(v) for k, v in before.items())  # ... the judge copy did not


@pytest.mark.slow
def test_pairwise_hf_run(tmp_path, shared_data, smollm2_path, smollm2):
    pair = dict(HF_JUDGE, name="smol-pair", format="pairwise")
    cfg = PolicyConfig.model_validate(cfg_dict(tmp_path, shared_data, smollm2_path, judge=pair,
                                               reward={"both_orders": True}, grpo={"save_final": True}))
    s = train_policy(cfg, models={"judge": smollm2, "gold": smollm2})
    run = tmp_path / "run"
    assert s["steps"] == 2 and s["reward"]["calls"] == 8  # 2 steps x 2 groups x 1 pair x 2 orders
    rewards = [r for r in metrics(run) if "rewards/judge_winrate/mean" in r]
    assert len(rewards) == 2 and all(r["reward"] == pytest.approx(0.5, abs=1e-5) for r in rewards)  # Eq. 4
    recs = read_monitor(run / "monitor.jsonl")
    assert [r["step"] for r in recs] == [0, 2] and 0 <= recs[-1]["proxy_mean"] <= 1  # P(beats base policy)
    assert changed(run / "final" / "model.safetensors", smollm2[0])


@pytest.mark.slow
@pytest.mark.server
def test_pointwise_openai_judge_on_llama_server(tmp_path, shared_data, smollm2_path, smollm2, llama_server):
    tpl = tmp_path / "short.txt"
    tpl.write_text(SHORT_POINTWISE)
    judge = {"name": "smol-server", "backend": "openai", "model": "smollm2-135m-instruct",
             "base_urls": [llama_server], "template": str(tpl), "timeout_s": 180, "max_retries": 1, "concurrency": 2,
             "sampling": {"max_new_tokens": 6, "temperature": 0.7, "top_k": 20, "top_p": 0.95},
             "extra_body": {"grammar": 'root ::= "Score: " [0-9]'}}
    cfg = PolicyConfig.model_validate(cfg_dict(tmp_path, shared_data, smollm2_path, judge=judge,  # 1 prompt per step
                                               grpo={"save_final": True, "per_device_train_batch_size": 2}))
    s = train_policy(cfg, models={"gold": smollm2})
    run = tmp_path / "run"
    assert s["steps"] == 2 and s["reward"]["calls"] == 4 and s["reward"]["failed"] == 0
    rewards = [r for r in metrics(run) if "rewards/judge_expected/mean" in r]
    assert len(rewards) == 2 and all(0 <= r["reward"] <= 9 for r in rewards)
    assert [r["step"] for r in read_monitor(run / "monitor.jsonl")] == [0, 2]
    assert changed(run / "final" / "model.safetensors", smollm2[0])


def test_group_layout_rules():
    g = GRPOSettings(num_generations=4, per_device_train_batch_size=2, gradient_accumulation_steps=2)
    assert check_group_layout(g, True, 2)["local_generation_batch"] == 4
    with pytest.raises(JudgerlError, match="split across processes"):
        check_group_layout(GRPOSettings(num_generations=4, per_device_train_batch_size=2), True, 2)
    assert check_group_layout(GRPOSettings(num_generations=4, per_device_train_batch_size=2), False, 2)
    with pytest.raises(JudgerlError, match="multiple of num_generations"):
        check_group_layout(GRPOSettings(num_generations=3, per_device_train_batch_size=2), False, 1)


def test_bad_configs_fail_before_training(tmp_path, shared_data, smollm2_path):
    pair = dict(HF_JUDGE, format="pairwise")
    split = cfg_dict(tmp_path, shared_data, smollm2_path, judge=pair,
                     grpo={"per_device_train_batch_size": 3, "num_processes": 2})
    with pytest.raises(JudgerlError, match="split across processes"):
        validate(PolicyConfig.model_validate(split))
    with pytest.raises(JudgerlError, match="training judge: unknown model"):
        validate(PolicyConfig.model_validate(cfg_dict(tmp_path, shared_data, smollm2_path, judge="no-such-judge")))
    with pytest.raises(JudgerlError, match="not found"):
        validate(PolicyConfig.model_validate(cfg_dict(tmp_path, shared_data, smollm2_path, judge="missing.yaml")))
    with pytest.raises(JudgerlError, match="needs a gold judge"):
        validate(PolicyConfig.model_validate(cfg_dict(tmp_path, shared_data, smollm2_path, gold=None)))
    # through the CLI: one-line error, nothing written
    from judgerl.cli import app
    from judgerl.config import dump_yaml

    dump_yaml(PolicyConfig.model_validate(split), tmp_path / "split.yaml")
    res = CliRunner().invoke(app, ["train-policy", "--config", str(tmp_path / "split.yaml")])
    assert isinstance(res.exception, JudgerlError) and "num_generations (2)" in str(res.exception)
    res = CliRunner().invoke(app, ["train-policy", "--config", str(tmp_path / "split.yaml"), "--resume",
                                   "--set", "grpo.num_processes=1", "--set", "grpo.per_device_train_batch_size=4"])
    assert isinstance(res.exception, JudgerlError) and "no checkpoint" in str(res.exception)
    res = CliRunner().invoke(app, ["train-policy", "--config", str(tmp_path / "split.yaml"), "--set", "grpo.bogus=1"])
    assert isinstance(res.exception, JudgerlError) and "grpo.bogus" in str(res.exception)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_trainable_layers_freezes_everything_below_the_top_blocks():
    """grpo.trainable_layers: only the top N blocks keep gradients; the backward pass stops below them."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from judgerl.training.policy_grpo import freeze_below

    m = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=4,
                                     num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True))
    assert freeze_below(m, None)["trainable"] == sum(p.numel() for p in m.parameters())
    rec = freeze_below(m, 1)
    names = {n for n, p in m.named_parameters() if p.requires_grad}
    assert names and all(n.startswith("model.layers.3.") for n in names) and rec["layers"] == 1
    m(torch.randint(0, 64, (2, 5)), labels=torch.randint(0, 64, (2, 5))).loss.backward()
    assert all((p.grad is not None) == p.requires_grad for p in m.parameters())
    with pytest.raises(JudgerlError, match="has 4 blocks"):
        freeze_below(m, 5)
