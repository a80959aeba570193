"""Sharded policy GRPO: FSDP2 (torch `fully_shard` through accelerate's FSDP plugin) on two CPU processes (gloo),
the real SmolLM2-135M as policy and as the embedded judge, 3 steps.

The sharded processes get exactly the environment `accelerate launch --config_file configs/accelerate/fsdp2_policy.yaml
--num_processes 2` exports (accelerate's own launcher code builds it), started by torchrun: `accelerate launch --cpu`
starts a single process unless MPI is installed. Rollouts are `grpo.rollout: seeded` (each completion from its own
generator, seeded by its row in the global batch), so one process and two processes sample the same completions and
the runs can be compared number for number.

Tolerances (measured: rewards agree to ~2e-6 relative, grad norms to ~1.4e-5, update difference ~4e-4 of the update):
- rewards and the judge's scores: relative 1e-5. The same completions are scored by the same judge, in batches of a
  different size (4 rows vs 2 per process): only float summation order differs.
- grad_norm (before clipping, the gradient the optimizer sees): relative 1e-3. FSDP reduce-scatters the two ranks'
  gradients and divides by 2; one process sums the same token terms in another order.
- loss: absolute 1e-5. With ratio 1 at the first iteration the GRPO loss is -Σ advantage·length / tokens, exactly 0
  when all completions have the same length (here every completion runs to 6 tokens), so only float noise is left.
- weights: the difference of the two runs' updates (final − base) relative to the update, 1e-2. Adam scales each
  coordinate's step to ~lr, so a weight whose gradient is float noise in both runs may step either way: per-element
  differences up to 2·lr say nothing, the norm of the difference does (a split group, a lost all-reduce or a
  double-counted sample changes the advantages or the gradient by O(1), and the grad_norm check catches Adam's
  insensitivity to a pure gradient scale).
- killed + resumed vs uninterrupted (same layout, same deterministic ops): 1e-6 absolute on every weight.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from test_policy_grpo import cfg_dict

REPO = Path(__file__).resolve().parents[2]
ACCELERATE = {"fsdp2": REPO / "configs" / "accelerate" / "fsdp2_policy.yaml",
              "zero3": REPO / "configs" / "accelerate" / "deepspeed_zero3.yaml"}
STEPS, G = 3, 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_env(config_file: Path, num_processes: int, port: int) -> dict:
    """The environment `accelerate launch --config_file ... --num_processes N` gives its processes."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(config_file), "--num_processes", str(num_processes),
                                               "--mixed_precision", "no", "--main_process_port", str(port),
                                               "-m", "judgerl.cli"])
    args, defaults, _ = _validate_launch_command(args)
    if not args.use_deepspeed:
        return {**prepare_multi_gpu_env(args), "ACCELERATE_USE_CPU": "true"}
    fields = list(defaults.deepspeed_config) if defaults else []  # as `accelerate launch` does before DeepSpeed
    args.deepspeed_fields_from_accelerate_config = ",".join(fields + ["mixed_precision"])
    # DeepSpeed's CPU accelerator; not ACCELERATE_USE_CPU, with which accelerate drops DeepSpeed
    return {**prepare_deepspeed_cmd_env(args)[1], "DS_ACCELERATOR": "cpu"}


def write_config(folder: Path, shared_data, smollm2_path, per_device: int) -> Path:
    """2 prompts × G=2 = 4 completions a step (global); group_mean makes every reward call check its groups."""
    d = cfg_dict(folder, shared_data, smollm2_path, reward={"on_failure": "group_mean"},
                 grpo={"per_device_train_batch_size": per_device, "max_steps": STEPS, "bf16": False, "save_steps": 1,
                       "rollout": "seeded", "save_final": True, "max_completion_length": 6},
                 monitor={"every_steps": STEPS, "max_new_tokens": 4})
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def start(config: Path, processes: int, resume: bool = False, sharding: str = "fsdp2") -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "judgerl.cli", "train-policy", "--config", str(config)] + (["--resume"] if resume else [])
    if processes > 1:
        port = free_port()
        env.update(accelerate_env(ACCELERATE[sharding], processes, port), OMP_NUM_THREADS="1")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port",
               str(port)] + cmd[1:]
    log = open(config.parent / ("resume.log" if resume else "train.log"), "w")
    # own session: the kill below reaches torchrun and both workers (one process group)
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def run_to_end(config: Path, processes: int, resume: bool = False, sharding: str = "fsdp2") -> Path:
    proc = start(config, processes, resume, sharding)
    rc = proc.wait(timeout=1200)
    assert rc == 0, failure(config.parent / ("resume.log" if resume else "train.log"))
    return config.parent / "run"


def failure(log: Path) -> str:
    """The error lines of a failed launch (each rank's traceback ends in one), then the log's tail."""
    lines = log.read_text(errors="replace").splitlines()
    errors = [x for x in lines if ("Error" in x or "error:" in x or "Killed" in x) and "Warning" not in x]
    return "\n".join(errors[-20:]) + "\n---\n" + "\n".join(lines[-40:])


def steps(run: Path) -> dict[int, dict]:
    """The last trainer record of each step (a resumed run appends after the killed one)."""
    out: dict[int, dict] = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "loss" in r:
            out[r["step"]] = r
    return out


def reward_keys(run: Path) -> list[str]:
    with sqlite3.connect(run / "ledger.sqlite") as c:
        return [k for (k,) in c.execute("SELECT key FROM calls WHERE stage = 'policy-reward'")]


def weights(run: Path) -> dict:
    from safetensors.torch import load_file

    return {k: v.double() for k, v in load_file(str(run / "final" / "model.safetensors")).items()}


def monitor_steps(run: Path) -> dict[int, dict]:
    return {r["step"]: r for r in map(json.loads, (run / "monitor.jsonl").read_text().splitlines())}


def checkpoint_shards(ck: Path, sharding: str) -> list[Path]:
    """The per-rank files of a sharded checkpoint: torch.distributed.checkpoint (FSDP2), ZeRO partitions (DeepSpeed)."""
    if sharding == "fsdp2":
        return sorted((ck / "pytorch_model_fsdp_0").glob("*.distcp"))
    return sorted(ck.glob("global_step*/*zero_pp_rank_*optim_states.pt"))


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, shared_data, smollm2_path) -> Path:
    """The one-process reference: 4 completions on one device a step (the sharded runs: 2 per device × 2)."""
    folder = tmp_path_factory.mktemp("one_process")
    return run_to_end(write_config(folder, shared_data, smollm2_path, 4), 1)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, shared_data, smollm2_path):
    """The uninterrupted two-process run of each sharding, started on first use."""
    done: dict[str, Path] = {}

    def get(sharding: str) -> Path:
        if sharding not in done:
            folder = tmp_path_factory.mktemp(sharding)
            done[sharding] = run_to_end(write_config(folder, shared_data, smollm2_path, 2), 2, sharding=sharding)
        return done[sharding]
    return get


def needs(sharding: str) -> None:
    if sharding == "zero3":
        pytest.importorskip("deepspeed", reason="DeepSpeed not installed (pip install -e .[test] pins it)")


# ZeRO-3's kill/resume passed 3 of 5 times on the shared 2-core machine (one OOM kill, one unexplained rank-0
# exception: docs/experiments/multigpu.md), and the pair adds ~9 minutes: CI runs FSDP2; JUDGERL_ZERO3_TESTS=1 adds it.
ZERO3 = pytest.param("zero3", marks=pytest.mark.skipif(
    os.environ.get("JUDGERL_ZERO3_TESTS") != "1", reason="ZeRO-3 CPU tests: set JUDGERL_ZERO3_TESTS=1 (flaky under "
    "memory pressure, see docs/experiments/multigpu.md)"))
SHARDINGS = ["fsdp2", ZERO3]


@pytest.mark.slow
@pytest.mark.parametrize("sharding", SHARDINGS)
def test_sharded_matches_one_process(sharding, one_process, uninterrupted, smollm2_path):
    needs(sharding)
    one, two = one_process, uninterrupted(sharding)
    s1, s2 = (json.loads((r / "summary.json").read_text()) for r in (one, two))
    rank1 = json.loads((two / "summary.rank1.json").read_text())
    assert (s1["processes"], s1["sharding"]) == (1, None)
    assert (s2["processes"], s2["sharding"], s2["rollout"]) == (2, sharding, "seeded") and s2["steps"] == STEPS
    # the checkpoints are sharded: one file per rank
    assert len(checkpoint_shards(two / "checkpoints" / "checkpoint-1", sharding)) == 2
    # groups never split: every reward call on each rank checked its block of G (group_mean), one whole group a step
    for s in (s2, rank1):
        assert s["reward"]["whole_groups"] == STEPS and s["reward"]["calls"] == STEPS * G and s["reward"]["failed"] == 0
    assert s1["reward"]["whole_groups"] == STEPS * 2 and s1["reward"]["calls"] == STEPS * 2 * G
    # each completion scored once: ledger rows == completions, and the same completions as the one-process run
    k1, k2 = reward_keys(one), reward_keys(two)
    assert len(k1) == len(k2) == STEPS * 2 * G and Counter(k1) == Counter(k2)
    m1, m2 = steps(one), steps(two)
    assert sorted(m1) == sorted(m2) == list(range(1, STEPS + 1))
    for step in m1:
        a, b = m1[step], m2[step]
        assert b["reward"] == pytest.approx(a["reward"], rel=1e-5)
        # the same completions, scored in other batch compositions (one rank's block vs both): float rounding moves each
        # reward by ~1e-6 and a std of rewards by as much in absolute terms (0.035251 vs 0.035256 on an AVX2-only host)
        assert b["reward_std"] == pytest.approx(a["reward_std"], abs=2e-5)
        assert b["completions/mean_length"] == a["completions/mean_length"]
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-3) and a["grad_norm"] > 0
        # the loss is ~1e-5 (advantages average to 0) and the advantages divide that rounding by reward_std (~0.035):
        # on an AVX2-only host 9.8e-6 vs -9.1e-6; a different update would move it by far more (grad_norm, weights)
        assert b["loss"] == pytest.approx(a["loss"], abs=5e-5)
    # updated weights: the same update (see the module doc for the measure)
    from safetensors.torch import load_file

    base = {k: v.double() for k, v in load_file(str(Path(smollm2_path) / "model.safetensors")).items()}
    w1, w2 = weights(one), weights(two)
    assert set(w1) == set(w2)
    diff = sum((w2[k] - w1[k]).pow(2).sum().item() for k in w1) ** 0.5
    update = sum((w1[k] - base[k]).pow(2).sum().item() for k in w1) ** 0.5
    print(f"{sharding}: grad_norm rel diff {[abs(m2[s]['grad_norm'] / m1[s]['grad_norm'] - 1) for s in m1]}, "
          f"update {update:.4g}, update difference {diff / update:.3g} of it")
    assert update > 1e-2, update  # the policy trained (3 Adam steps of lr 1e-5 over 135M weights)
    assert diff <= 1e-2 * update, (diff, update)
    # the gold monitor ran on the sharded policy (all ranks generate, rank 0 scores) and saw the same answers
    g1, g2 = monitor_steps(one), monitor_steps(two)
    assert sorted(g1) == sorted(g2) == [0, STEPS]
    assert g2[STEPS]["gold_mean"] == pytest.approx(g1[STEPS]["gold_mean"], rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("sharding", SHARDINGS)
def test_sharded_killed_and_resumed_equals_uninterrupted(sharding, uninterrupted, tmp_path, shared_data, smollm2_path):
    needs(sharding)
    config = write_config(tmp_path, shared_data, smollm2_path, 2)
    run = tmp_path / "run"
    proc = start(config, 2, sharding=sharding)
    first = run / "checkpoints" / "checkpoint-1" / "trainer_state.json"
    deadline = time.monotonic() + 900
    while not first.is_file():
        assert proc.poll() is None, failure(tmp_path / "train.log")
        assert time.monotonic() < deadline, "no checkpoint-1 after 900 s"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers, mid-run
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert not (run / "summary.json").exists() and not (run / "final").exists()
    assert not (run / "checkpoints" / f"checkpoint-{STEPS}" / "trainer_state.json").exists()
    assert len(checkpoint_shards(run / "checkpoints" / "checkpoint-1", sharding)) == 2

    run_to_end(config, 2, resume=True, sharding=sharding)
    s = json.loads((run / "summary.json").read_text())
    assert s["steps"] == STEPS and s["sharding"] == sharding
    ref, got = steps(uninterrupted(sharding)), steps(run)
    assert sorted(got) == list(range(1, STEPS + 1))
    for step in ref:
        assert got[step]["grad_norm"] == pytest.approx(ref[step]["grad_norm"], rel=1e-6)
        assert got[step]["loss"] == pytest.approx(ref[step]["loss"], abs=1e-7)
        assert got[step]["reward"] == pytest.approx(ref[step]["reward"], rel=1e-6)
    w_ref, w = weights(uninterrupted(sharding)), weights(run)
    assert set(w) == set(w_ref)
    worst = max((w[k] - w_ref[k]).abs().max().item() for k in w)
    print(f"{sharding}: killed + resumed vs uninterrupted, largest weight difference {worst:.3g}")
    assert worst <= 1e-6, worst
    assert sorted(monitor_steps(run)) == [0, STEPS]  # history kept across the kill, step 3 added once
