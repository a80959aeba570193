"""LoRA adapters as the study's portable artefacts: saved small (bf16 safetensors + sha256), merged on demand.

A trained judge or gold RM is kept as its LoRA adapter (plus, for a reward model, the score head that
peft saves beside it), a few MB, so that it can leave a lent GPU machine and be carried in again. The
base weights are rebuilt from the embedded model (deterministic de-quantisation of its GGUF), the
adapter applied and merged, and the result saved once as a plain HF folder the `hf`/`rm` backends load.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from judgerl import JudgerlError
from judgerl.models import sha256_file

ADAPTER_FILE = "adapter_model.safetensors"




def save_adapter(peft_model, out: str | Path, meta: dict | None = None) -> dict:
    """Save a peft model's adapter (and modules_to_save, e.g. a score head) as bf16; returns its record."""
    import torch
    from safetensors.torch import load_file, save_file

    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    peft_model.save_pretrained(str(tmp))
    f = tmp / ADAPTER_FILE
    if not f.is_file():
        raise JudgerlError(f"peft wrote no {ADAPTER_FILE} in {tmp}")
    tensors = {k: v.to(torch.bfloat16).contiguous() for k, v in load_file(str(f)).items()}
    save_file(tensors, str(f), metadata={"format": "pt"})
    rec = {"file": ADAPTER_FILE, "sha256": sha256_file(f), "bytes": f.stat().st_size,
           "tensors": len(tensors), "params": int(sum(t.numel() for t in tensors.values())), **(meta or {})}
    (tmp / "adapter.json").write_text(json.dumps(rec, indent=2), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return rec


def check_adapter(folder: str | Path) -> dict:
    """The adapter's record, after checking the weights' sha256 against it."""
    folder = Path(folder)
    meta_p = folder / "adapter.json"
    if not meta_p.is_file() or not (folder / ADAPTER_FILE).is_file():
        raise JudgerlError(f"{folder} is not a saved adapter (adapter.json / {ADAPTER_FILE} missing)")
    rec = json.loads(meta_p.read_text(encoding="utf-8"))
    got = sha256_file(folder / ADAPTER_FILE)
    if got != rec["sha256"]:
        raise JudgerlError(f"{folder / ADAPTER_FILE}: sha256 {got[:12]}... does not match adapter.json "
                           f"({rec['sha256'][:12]}...)")
    return rec


def merged_model(base: str, adapter: str | Path, kind: str, out: str | Path) -> Path:
    """`out` holding base + adapter merged (plain HF folder); built once, reused while the adapter is the same.

    kind: "causal" (an hf judge) or "reward" (a one-output sequence classifier, the rm backend).
    """
    from peft import PeftModel

    from judgerl.model_loader import load_model
    from judgerl.training.checkpoints import save_hf

    rec = check_adapter(adapter)
    out = Path(out)
    stamp = out / "merged_from.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("sha256") == rec["sha256"]:
        return out
    if kind not in ("causal", "reward"):
        raise JudgerlError(f"unknown adapter kind {kind!r} (causal, reward)")
    model, tok = load_model(base, kind, device=None, dtype="float32", padding_side=None)
    model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    if kind == "reward":
        model.config.pad_token_id = tok.pad_token_id
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")  # parallel stage processes may merge the same adapter:
    save_hf(model, tok, tmp)                                # a reader sees the old folder or the whole new one
    (tmp / "merged_from.json").write_text(json.dumps({"adapter": str(adapter), "sha256": rec["sha256"], "base": base}),
                                          encoding="utf-8")
    if out.exists():
        shutil.rmtree(out, ignore_errors=True)
    try:
        tmp.rename(out)
    except OSError:  # another process renamed its copy first: theirs stands
        shutil.rmtree(tmp, ignore_errors=True)
    return out
