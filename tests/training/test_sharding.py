"""Sharding helpers without launching processes (the sharded runs themselves: test_policy_sharded.py)."""

from __future__ import annotations

import torch

from judgerl.training.rollout import _filter
from judgerl.training.sharding import ddp_backend, enable_cpu_fsdp, full_weights, last_checkpoint


def test_last_checkpoint_skips_a_partial_save(tmp_path):
    assert last_checkpoint(tmp_path / "missing") is None
    for n in (1, 2, 10):
        (tmp_path / f"checkpoint-{n}").mkdir()
    (tmp_path / "checkpoint-1" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text("{}")
    # checkpoint-10 was being written when the run was killed: no trainer_state.json (written last)
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    (tmp_path / "checkpoint-10" / "trainer_state.json").write_text("{}")
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")  # numeric, not lexical, order


def test_cpu_fsdp_and_backend_only_when_asked(monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert enable_cpu_fsdp() is False and ddp_backend() is None
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert enable_cpu_fsdp() is False  # one process: nothing to shard
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    assert ddp_backend() is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert ddp_backend() == ("gloo" if not torch.cuda.is_available() else None)


def test_full_weights_restores_the_loading_settings(monkeypatch):
    import os

    from transformers.integrations import deepspeed as hf_ds

    monkeypatch.setenv("FSDP_CPU_RAM_EFFICIENT_LOADING", "true")

    class Zero3:
        def is_zero3(self):
            return True

    cfg = Zero3()
    hf_ds.set_hf_deepspeed_config(cfg)
    try:
        with full_weights():
            assert os.environ["FSDP_CPU_RAM_EFFICIENT_LOADING"] == "false" and not hf_ds.is_deepspeed_zero3_enabled()
        assert os.environ["FSDP_CPU_RAM_EFFICIENT_LOADING"] == "true" and hf_ds.is_deepspeed_zero3_enabled()
    finally:
        hf_ds.unset_hf_deepspeed_config()


def test_top_k_top_p_filter():
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    assert torch.isinf(_filter(logits, 2, 1.0)[0, 2:]).all() and torch.isfinite(_filter(logits, 2, 1.0)[0, :2]).all()
    p = logits.softmax(-1)[0]  # 0.644, 0.237, 0.087, 0.032
    kept = torch.isfinite(_filter(logits, 0, 0.85)[0])
    assert kept.tolist() == [True, True, False, False] and p[:1].sum() < 0.85 <= p[:2].sum()
    assert torch.isfinite(_filter(logits, 0, 1.0)).all()
