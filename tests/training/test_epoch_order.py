"""A resumed GRPO run sees the prompts the uninterrupted run saw, also past its first epoch (training/epoch_order)."""

from __future__ import annotations

import json
import sqlite3

import pytest
from trl.trainer.grpo_trainer import RepeatSampler

from judgerl.training.epoch_order import EpochRepeatSampler
from test_policy_grpo import cfg_dict


def order(sampler) -> list[int]:
    return list(iter(sampler))


def test_epoch_order_is_trls_and_depends_on_the_epoch_only():
    data = list(range(10))
    trl = RepeatSampler(data, mini_repeat_count=2, batch_size=2, seed=7)
    ours = EpochRepeatSampler(data, mini_repeat_count=2, batch_size=2, seed=7)
    uninterrupted = []
    for epoch in range(3):
        ours.set_epoch(epoch)
        uninterrupted.append(order(ours))
        assert uninterrupted[-1] == order(trl)  # TRL's order, draw for draw
    assert len({tuple(x) for x in uninterrupted}) == 3
    resumed = EpochRepeatSampler(data, mini_repeat_count=2, batch_size=2, seed=7)
    resumed.set_epoch(2)  # what a run resumed in epoch 2 gets
    assert order(resumed) == uninterrupted[2]
    fresh_trl = RepeatSampler(data, mini_repeat_count=2, batch_size=2, seed=7)
    assert order(fresh_trl) == uninterrupted[0] != uninterrupted[2]  # TRL's own sampler replays epoch 0


def trainer_steps(run) -> dict[int, dict]:
    return {r["step"]: r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r}


def scored(run) -> list[str]:
    """The reward calls' keys (prompt + completion) in the order they were made: 4 a step."""
    with sqlite3.connect(run / "ledger.sqlite") as c:
        return [k for (k,) in c.execute("SELECT key FROM calls WHERE stage = 'policy-reward' ORDER BY id")]


@pytest.mark.slow
def test_run_resumed_at_an_epoch_boundary_equals_uninterrupted(tmp_path, shared_data, smollm2_path, smollm2):
    """4 prompts, 2 a step: steps 1-2 are epoch 0, step 3 starts epoch 1 (seed 0: its first two prompts are not
    epoch 0's, which TRL's sampler would replay). The resumed run stops after step 2 (constant lr, so stopping early
    changes no schedule) and resumes from checkpoint-2."""
    from judgerl.training.policy_grpo import train_policy
    from judgerl.training.policy_config import PolicyConfig

    def cfg(folder, steps, save_steps):  # one checkpoint kept at a time (each is ~1.6 GB with Adam's state)
        return PolicyConfig.model_validate(cfg_dict(
            folder, shared_data, smollm2_path, grpo={"max_steps": steps, "save_steps": save_steps, "seed": 0,
                                                     "save_total_limit": 1, "trl": {"lr_scheduler_type": "constant"}},
            monitor={"every_steps": 3}))
    models = {"judge": smollm2, "gold": smollm2}
    train_policy(cfg(tmp_path / "a", 3, 100), models=models)  # uninterrupted, no checkpoint
    train_policy(cfg(tmp_path / "b", 2, 2), models=models)  # stops at checkpoint-2
    assert [p.name for p in (tmp_path / "b" / "run" / "checkpoints").glob("checkpoint-*")] == ["checkpoint-2"]
    train_policy(cfg(tmp_path / "b", 3, 2), resume=True, models=models)
    ref, got = trainer_steps(tmp_path / "a" / "run"), trainer_steps(tmp_path / "b" / "run")
    assert sorted(ref) == sorted(got) == [1, 2, 3]
    a, b = scored(tmp_path / "a" / "run"), scored(tmp_path / "b" / "run")
    assert len(a) == len(b) == 12
    assert sorted(b[8:]) == sorted(a[8:])  # step 3 scored the same prompts and completions
    for step in ref:  # float noise only (one process vs two in a row)
        assert got[step]["reward"] == pytest.approx(ref[step]["reward"], rel=1e-4), step
        assert got[step]["grad_norm"] == pytest.approx(ref[step]["grad_norm"], rel=1e-3), step
