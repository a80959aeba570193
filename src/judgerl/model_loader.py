"""Loading model weights: one loader for every stage, and a per-process registry that loads each model once.

`load_model(name, kind)` returns (model, tokenizer) for a causal LM (`kind="causal"`: hf judges,
policies, judge training) or a one-output sequence classifier (`kind="reward"`: rm judges, BT reward
models). Names go through `judgerl.models.resolve` (embedded name, local folder or hub id).
`device=None` leaves the weights on the CPU for a trainer to place; `"auto"` picks this process's GPU.

On CUDA, loading a model also takes cuDNN out of SDPA's backend choice (`avoid_cudnn_attention`).

`shared_model(...)` is the registry: judges, the gold judge and the quickstart's generation ask it,
and the same (name, kind, device, dtype) is loaded once per process and shared. Weights that will be
trained are never taken from it (a trainer owns and changes them).
"""

from __future__ import annotations

import threading

from judgerl import JudgerlError

KINDS = ("causal", "reward")
_REGISTRY: dict[tuple, tuple] = {}
_REGISTRY_LOCK = threading.RLock()
_LOAD_LOCK = threading.Lock()


def local_cuda_index() -> int:
    """This process's GPU: LOCAL_RANK under torchrun/accelerate, else the current CUDA device."""
    import os

    import torch

    if os.environ.get("LOCAL_RANK"):
        return int(os.environ["LOCAL_RANK"])
    return torch.cuda.current_device() if torch.cuda.is_available() else 0


def pick_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    return f"cuda:{local_cuda_index()}" if torch.cuda.is_available() else "cpu"


def torch_dtype(dtype: str, device: str | None = None):
    """'auto' is bfloat16 on a GPU (or when no device is given and CUDA exists), float32 on the CPU."""
    import torch

    if dtype != "auto":
        return getattr(torch, dtype)
    on_gpu = device.startswith("cuda") if device else torch.cuda.is_available()
    return torch.bfloat16 if on_gpu else torch.float32


def avoid_cudnn_attention() -> bool:
    """Turn off cuDNN's SDPA backend on CUDA (flash / memory-efficient SDPA remain); True when it did.

    Where SDPA picks cuDNN (masked attention on Hopper, torch 2.11), cuDNN builds an execution graph on the host
    for every new (batch, length) shape: 20-30 ms a layer call. GRPO and judge batches change length every step,
    so a 135M policy's update took ~2 s instead of ~0.3 s (bench 3 `--profile`, H200: `_cudnn_attention_forward`
    / `_backward` were 69% of a step's host time). `JUDGERL_CUDNN_SDPA=1` leaves the choice to torch."""
    import os

    import torch

    if not torch.cuda.is_available() or os.environ.get("JUDGERL_CUDNN_SDPA") == "1":
        return False
    torch.backends.cuda.enable_cudnn_sdp(False)
    return True


def load_tokenizer(name: str, padding_side: str | None = None):
    from transformers import AutoTokenizer

    from judgerl.models import resolve

    tok = AutoTokenizer.from_pretrained(resolve(name))
    if padding_side:
        tok.padding_side = padding_side
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(name: str, kind: str = "causal", device: str | None = "auto", dtype: str = "auto",
               padding_side: str | None = "left"):
    """(model, tokenizer); a one-line JudgerlError when the model cannot be found or read. One load at a time in a
    process: transformers builds a model under process-wide init contexts (meta device, skipped init), so two
    threads loading at once (the quickstart's lanes) could get each other's meta tensors."""
    with _LOAD_LOCK:
        return _load_model(name, kind, device, dtype, padding_side)


def _load_model(name: str, kind: str, device: str | None, dtype: str, padding_side: str | None):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from judgerl.models import resolve

    if kind not in KINDS:
        raise JudgerlError(f"unknown model kind {kind!r} (one of {', '.join(KINDS)})")
    dev = pick_device(device) if device else None
    avoid_cudnn_attention()
    try:
        path = resolve(name)
        if kind == "causal":
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(dtype, dev))
        else:
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1,
                                                                       dtype=torch_dtype(dtype, dev))
    except (OSError, ValueError) as e:
        raise JudgerlError(f"cannot load model {name!r}: {str(e).splitlines()[0]}") from None
    tok = load_tokenizer(name, padding_side)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    if dev:
        model = model.to(dev)
        model.eval()
    if grouped_cpu_attention and (dev == "cpu" or (dev is None and not _cuda())):  # dev None: the caller places it
        from judgerl.judges.attention import use_grouped_attention

        use_grouped_attention(model)
    return model, tok


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _key(name: str, kind: str, device: str, dtype: str) -> tuple:
    dev = pick_device(device)
    return name, kind, dev, str(torch_dtype(dtype, dev))


def shared_model(name: str, kind: str = "causal", device: str = "auto", dtype: str = "auto"):
    """The process-wide (model, tokenizer) for inference, loaded on first use (left padding)."""
    key = _key(name, kind, device, dtype)
    with _REGISTRY_LOCK:  # two threads asking at once (the quickstart's lanes) get one copy
        if key not in _REGISTRY:
            _REGISTRY[key] = load_model(name, kind, device, dtype, padding_side="left")
        return _REGISTRY[key]


def release_unused() -> None:
    """Forget the shared models that nothing else holds; those still in use (by another thread's stage) stay
    shared, so that a later caller gets the same weights instead of a second copy."""
    import gc
    import weakref

    with _REGISTRY_LOCK:
        held = {}
        for key, pair in _REGISTRY.items():
            try:
                held[key] = (weakref.ref(pair[0]), pair[1])
            except TypeError:  # not weak-referenceable: forgotten
                pass
        _REGISTRY.clear()
        pair = None
        gc.collect()
        for key, (ref, tok) in held.items():
            if ref() is not None:
                _REGISTRY[key] = (ref(), tok)


def share_frozen(model, other) -> int:
    """Make `model`'s frozen parameters use `other`'s tensors where both come from the same checkpoint (the caller
    says so; names, shapes and dtypes must match, and the two final norms are compared): a policy whose lower blocks
    are frozen and a judge of the same base model then hold those weights once. Returns the bytes shared."""
    import torch

    theirs = dict(other.named_parameters())
    n = 0
    with torch.no_grad():
        pairs = [(p, theirs.get(name)) for name, p in model.named_parameters() if not p.requires_grad]
        if any(q is None or q.shape != p.shape or q.dtype != p.dtype or q.device != p.device for p, q in pairs):
            return 0
        norm = [(p, theirs.get(name)) for name, p in model.named_parameters() if name.endswith("norm.weight")]
        if not norm or not all(q is not None and torch.equal(p, q) for p, q in (norm[0], norm[-1])):
            return 0
        for p, q in pairs:
            p.data = q.data
            n += p.numel() * p.element_size()
    return n


_FROZEN_DONORS: dict[tuple, object] = {}  # key -> weakref of a live policy whose frozen weights others may read


def share_frozen_with_peers(model, key: tuple) -> int:
    """Policies trained at the same time from the same checkpoint, dtype and frozen layout (`key`, the caller's)
    hold their frozen weights once: the first becomes the donor (weakly held: its run may end and free it) and a later
    one reads its tensors (share_frozen). The quickstart's lanes train two such policies at a time. Returns the
    bytes shared."""
    import weakref

    with _REGISTRY_LOCK:
        ref = _FROZEN_DONORS.get(key)
        donor = ref() if ref is not None else None
        if donor is None:
            _FROZEN_DONORS[key] = weakref.ref(model)
            return 0
        return share_frozen(model, donor)


def register(name: str, kind: str, device: str, dtype: str, model, tokenizer) -> None:
    """Make already-loaded weights the shared ones (e.g. a policy's base weights reused as a judge)."""
    _REGISTRY[_key(name, kind, device, dtype)] = (model, tokenizer)


def clear() -> None:
    """Forget every shared model (tests; freeing memory between stages)."""
    with _REGISTRY_LOCK:
        _REGISTRY.clear()


def trim_heap() -> bool:
    """Give the C allocator's free pages back to the OS (glibc `malloc_trim`); False where there is no glibc.

    A CPU forward's activations are freed into the malloc arena of the thread that ran it (hf and rm judges run on
    their own threads), and glibc keeps them there: in a GRPO run on CPU the judges' freed activations stayed in
    the RSS beside the policy's training step (0.4-0.6 GB of a 135M run's 4.2-4.6 GB peak, bench/RESULTS.md 7).
    Costs milliseconds; the hf and rm backends call it after each call on the CPU while `trim_cpu_judges` is on."""
    global _LIBC
    if _LIBC is None:
        import ctypes

        try:
            _LIBC = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC is False:
        return False
    _LIBC(0)
    return True


def trim_after_judge_call(model) -> None:
    """What a judge backend calls after each call: trim the heap on the CPU while `trim_cpu_judges` is on (its
    thread's freed activations back to the OS)."""
    if trim_cpu_judges and model.device.type == "cpu":
        trim_heap()


_LIBC = None
# On: CPU judge backends trim the heap after each call (the quickstart turns it on for its run: one long CPU process
# whose judges' freed activations would sit beside the policy's training step). Off by default: under a steady load
# (the reward server's batches of one) the freed pages are reused, and a trim would only make them fault in again.
trim_cpu_judges = False
# Set by the quickstart while it runs: each hf judge keeps its last prompt head's KV across calls (judges/prefix_memo.py;
# the reward server turns it on for its own judge): the template head is computed once per judge, not once a batch.
memo_judge_heads = False
# Models loaded onto the CPU (device "cpu", or no device on a machine without CUDA) use grouped-query SDPA
# (judges.attention.grouped_sdpa: K/V read once per KV head) instead of transformers' SDPA, which copies K and V n_rep
# times whenever a mask is present (left-padded batches, every decode step of `generate`). The same numbers up to
# float rounding; on 2 CPU cores the quickstart's reasoning judge took 16-30% fewer CPU-seconds (bench/RESULTS.md
# 7i). Training backpropagates through it as through SDPA. Off: transformers' SDPA as loaded.
grouped_cpu_attention = True
