"""vLLM rollout settings of policy GRPO: typed fields -> TRL 1.16 GRPOConfig, and the checks before any weights.

vLLM itself does not install on this CPU-only machine, so the path is tested up to TRL's GRPOConfig (the
trainer would start vLLM from it) and the refusal train-policy gives when vLLM is missing.
"""

from __future__ import annotations

import importlib.util

import pytest

from judgerl import JudgerlError
from judgerl.training.policy_config import PolicyConfig, check_policy

JUDGE = {"name": "j", "backend": "openai", "model": "judge-8b", "base_urls": ["http://127.0.0.1:8001/v1"]}


def config(**grpo) -> PolicyConfig:
    base = {"num_generations": 4, "per_device_train_batch_size": 4, "num_processes": 4, "bf16": False}
    return PolicyConfig(judge=JUDGE, monitor={"enabled": False}, grpo={**base, **grpo})


def test_server_mode_reaches_trl_grpo_config(tmp_path):
    from judgerl.training.policy_grpo import grpo_args

    cfg = config(use_vllm=True, vllm_mode="server", vllm_server_host="10.0.0.5", vllm_server_port=8010)
    args = grpo_args(cfg, tmp_path, check_policy(cfg)["layout"])
    assert (args.use_vllm, args.vllm_mode, args.vllm_server_host, args.vllm_server_port) == \
        (True, "server", "10.0.0.5", 8010)


def test_colocate_mode_reaches_trl_grpo_config(tmp_path):
    from judgerl.training.policy_grpo import grpo_args

    cfg = config(use_vllm=True, vllm_mode="colocate", vllm_gpu_memory_utilization=0.45, vllm_tensor_parallel_size=2)
    args = grpo_args(cfg, tmp_path, check_policy(cfg)["layout"])
    assert (args.use_vllm, args.vllm_mode, args.vllm_gpu_memory_utilization, args.vllm_tensor_parallel_size) == \
        (True, "colocate", 0.45, 2)
    off = grpo_args(config(), tmp_path, check_policy(config())["layout"])
    assert off.use_vllm is False


def test_colocate_tensor_parallel_must_divide_world_size():
    with pytest.raises(JudgerlError, match=r"vllm_tensor_parallel_size \(3\) must divide the world size \(4"):
        check_policy(config(use_vllm=True, vllm_mode="colocate", vllm_tensor_parallel_size=3))
    check_policy(config(use_vllm=False, vllm_mode="colocate", vllm_tensor_parallel_size=3))  # off: not checked


def test_rollout_server_must_not_be_a_judge_endpoint():
    with pytest.raises(JudgerlError, match="also the endpoint of judge 'j'"):
        check_policy(config(use_vllm=True, vllm_mode="server", vllm_server_port=8001))
    check_policy(config(use_vllm=True, vllm_mode="server", vllm_server_port=8000))


def test_vllm_fields_are_not_taken_from_the_trl_passthrough():
    with pytest.raises(JudgerlError, match="set grpo.use_vllm directly"):
        check_policy(config(trl={"use_vllm": True}))


def test_bad_values_are_refused_by_the_schema():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        config(vllm_mode="remote")
    with pytest.raises(ValidationError):
        config(vllm_gpu_memory_utilization=1.5)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_train_policy_refuses_use_vllm_without_vllm_before_loading_anything():
    from judgerl.training.policy_grpo import validate

    with pytest.raises(JudgerlError, match="needs vLLM in this environment"):
        validate(config(use_vllm=True, vllm_mode="server"))
