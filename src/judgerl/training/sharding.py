"""Sharded policy training: which sharding a trainer uses, and FSDP2 on CPU processes.

- `sharding(trainer)`: "fsdp2", "fsdp1", "zero3" or None. Under sharding the policy's parameters are split over the
  processes, so every forward (rollouts, the gold monitor's generations) must run on *all* ranks in lock step.
- `gathered(model)`: FSDP2 parameters gathered once for a whole generation (rollouts, monitor answers).
- `save_final(...)`: final/ as a plain HF folder also from sharded weights; `last_checkpoint(...)`: the newest
  complete checkpoint (a kill mid-save leaves a partial one).
- `full_weights()`: the judges load whole on every rank (accelerate's RAM-efficient FSDP loading would not).
- `enable_cpu_fsdp()`: accelerate 1.15 builds its FSDP plugin only for GPU-like process groups; on CPU processes
  (gloo, `ACCELERATE_USE_CPU=true`) it silently falls back to plain DDP even when `ACCELERATE_USE_FSDP=true`
  (accelerate/state.py: the FSDP branch lists MULTI_GPU, MULTI_XPU, ... but not MULTI_CPU). torch's FSDP2
  (`fully_shard`) itself runs on CPU with gloo, so when the launcher asked for FSDP on CPU processes this sets up
  accelerate's shared state with the FSDP plugin (read from the same FSDP_* variables `accelerate launch` exports)
  before the trainer builds its Accelerator. It is what lets the FSDP2 path run in the CPU test suite
  (tests/training/test_policy_sharded.py); on GPUs it does nothing.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path


def _flag(name: str) -> bool:
    return os.environ.get(name, "false").lower() in ("1", "true", "yes")


def enable_cpu_fsdp() -> bool:
    """On CPU processes launched with ACCELERATE_USE_FSDP=true, make accelerate use its FSDP plugin (see module doc).
    Returns True when it switched the state to FSDP."""
    if not _flag("ACCELERATE_USE_FSDP") or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return False
    import torch

    if torch.cuda.is_available() and not _flag("ACCELERATE_USE_CPU"):
        return False
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin, TorchDynamoPlugin

    plugin = FullyShardedDataParallelPlugin()  # FSDP_VERSION, FSDP_AUTO_WRAP_POLICY, FSDP_STATE_DICT_TYPE, ...
    state = AcceleratorState(cpu=True, fsdp_plugin=plugin, dynamo_plugin=TorchDynamoPlugin(),
                             _from_accelerator=True)
    if state.distributed_type == DistributedType.FSDP:
        return False
    if state.distributed_type != DistributedType.MULTI_CPU:
        return False
    # both shared states: every later AcceleratorState() (the trainer's Accelerator) re-reads PartialState's fields
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = plugin
    return True


def ddp_backend() -> str | None:
    """DeepSpeed on CPU processes: accelerate starts the process group only with an explicit backend (with
    none, a host without CUDA counts as one process, and DeepSpeed then fails its batch-size check
    "train_batch_size is not equal to micro_batch_per_gpu * gradient_acc_step * world_size 2 != 2 * 1 * 2"), and it
    ignores DeepSpeed when ACCELERATE_USE_CPU is set. gloo on a CPU-only host under DeepSpeed, else None."""
    import torch

    if _flag("ACCELERATE_USE_DEEPSPEED") and not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return "gloo"
    return None


def sharding(trainer) -> str | None:
    """The parameter sharding the trainer's accelerator applies, or None (one process, DDP)."""
    state = trainer.accelerator.state
    fsdp = getattr(state, "fsdp_plugin", None)
    if fsdp is not None:
        return f"fsdp{getattr(fsdp, 'fsdp_version', 1)}"
    ds = getattr(state, "deepspeed_plugin", None)
    if ds is not None and getattr(ds, "zero_stage", 0) == 3:
        return "zero3"
    return None


@contextmanager
def gathered(model):
    """FSDP2: all-gather the parameters once and keep them whole through a no-grad generation, instead of one
    all-gather per layer per decoded token (torch's documented use of `set_reshard_after_forward(False)` for
    evaluation); each module's own reshard setting is restored and its parameters resharded after. Other
    models (one process, DDP, ZeRO-3) pass through unchanged."""
    from torch.distributed.fsdp import FSDPModule

    mods = [m for m in model.modules() if isinstance(m, FSDPModule)]
    if not mods:
        yield model
        return
    states = [m._get_fsdp_state() for m in mods]  # torch 2.13 FSDP2 state: the per-module setting to restore
    saved = [(st, st._auto_reshard_after_forward, [(g, g.post_forward_mesh_info) for g in st._fsdp_param_groups])
             for st in states]
    for m in mods:
        m.set_reshard_after_forward(False, recurse=False)
    try:
        yield model
    finally:
        for st, auto, groups in saved:
            st._auto_reshard_after_forward = auto
            for g, info in groups:
                g.post_forward_mesh_info = info
        for m in mods:
            m.reshard()


def save_final(trainer, tok, out: Path, main: bool) -> None:
    """final/: a plain HF folder (safetensors + tokenizer) also when the policy is sharded. Every rank must call:
    under FSDP / ZeRO-3 the full state dict is gathered (accelerate's get_state_dict) and rank 0 writes it,
    where the trainer alone would leave FSDP's sharded state-dict files there."""
    if sharding(trainer) is None:
        trainer.save_model(str(out))  # rank 0 writes; every rank must call it
    else:
        state = trainer.accelerator.get_state_dict(trainer.model_wrapped)
        if main:
            model = trainer.accelerator.unwrap_model(trainer.model_wrapped)
            for target, source in getattr(model, "all_tied_weights_keys", {}).items():
                if target in state and source in state:  # tied (lm_head = embeddings): saved once, as HF does
                    state.pop(target)
            model.save_pretrained(str(out), state_dict=state, safe_serialization=True)
        trainer.accelerator.wait_for_everyone()
    if main:
        tok.save_pretrained(str(out))


@contextmanager
def full_weights():
    """Load models that are *not* sharded (the in-process judges) whole on every rank. With accelerate's
    `fsdp_cpu_ram_efficient_loading`, transformers loads every from_pretrained on ranks > 0 to the meta device
    (only the policy is then filled from rank 0 when FSDP shards it), and under ZeRO-3 with `zero3_init_flag` it
    partitions every model it loads: a judge loaded either way has no usable weights (seen on CPU: "Padding_idx
    must be within num_embeddings" from every judge call, so every reward was dropped)."""
    from transformers.integrations import deepspeed as hf_ds

    key = "FSDP_CPU_RAM_EFFICIENT_LOADING"
    old = os.environ.get(key)
    os.environ[key] = "false"
    ref = hf_ds._hf_deepspeed_config_weak_ref  # ZeRO-3: from_pretrained would partition the judge (zero.Init)
    ds_config = ref() if ref is not None else None
    hf_ds.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old
        if ds_config is not None:
            hf_ds.set_hf_deepspeed_config(ds_config)


def last_checkpoint(folder: Path) -> str | None:
    """The newest *complete* checkpoint-N (its trainer_state.json, written last, is there). A run killed while
    saving leaves a partial folder that transformers' get_last_checkpoint would pick and fail to load."""
    if not folder.is_dir():
        return None
    done = [p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    return str(max(done, key=lambda p: int(p.name.split("-")[-1]))) if done else None
