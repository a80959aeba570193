"""Policy GRPO with two processes (torchrun on CPU, gloo; `accelerate launch` on GPUs): a pairwise judge keeps every
group whole on each process, rank 0 writes the run files, every rank reports what it scored."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from test_policy_grpo import HF_JUDGE, cfg_dict


def launch(tmp_path, cfg: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    # torchrun: `accelerate launch --cpu` runs a single process; accelerate picks up torchrun's env (gloo)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "judgerl.cli", "train-policy", "--config", str(path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "ACCELERATE_USE_CPU": "true"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)


@pytest.mark.slow
def test_pairwise_two_processes_keep_groups_whole(tmp_path, shared_data, smollm2_path):
    pair = dict(HF_JUDGE, name="smol-pair", format="pairwise")
    # 2 per device x 2 processes, G = 2: each process scores one whole group per step
    cfg = cfg_dict(tmp_path, shared_data, smollm2_path, judge=pair,
                   grpo={"per_device_train_batch_size": 2, "max_steps": 2, "bf16": False})
    done = launch(tmp_path, cfg)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "run"
    main = json.loads((run / "summary.json").read_text())
    other = json.loads((run / "summary.rank1.json").read_text())
    assert main["processes"] == 2 and (main["rank"], other["rank"]) == (0, 1)
    assert main["steps"] == other["steps"] == 2
    for s in (main, other):  # 2 steps x 1 group of 2 on each process: one judge call per group, none split
        assert s["reward"]["whole_groups"] == 2 and s["reward"]["calls"] == 2
    assert (run / "config.yaml").is_file() and (run / "monitor.jsonl").is_file()
    steps = [json.loads(x)["step"] for x in (run / "monitor.jsonl").read_text().splitlines()]
    assert steps == [0, 2]  # written once, by rank 0


@pytest.mark.slow
def test_split_groups_refused_before_launching_work(tmp_path, shared_data, smollm2_path):
    pair = dict(HF_JUDGE, name="smol-pair", format="pairwise")
    # 3 per device x 2 processes = 6 = 3 groups of 2, but each process would hold one and a half groups
    cfg = cfg_dict(tmp_path, shared_data, smollm2_path, judge=pair, grpo={"per_device_train_batch_size": 3})
    done = launch(tmp_path, cfg)
    assert done.returncode != 0
    assert "need whole groups on each process" in done.stderr
    assert not (tmp_path / "run" / "summary.json").exists()
