"""Loading a base model for training and saving a trained one in plain HF format (LoRA merged).

A saved checkpoint is a folder `from_pretrained` can load with no peft installed: LoRA adapters are
merged into the weights first, the tokenizer (with its chat template) is saved alongside.
"""

from __future__ import annotations

import logging
from pathlib import Path

from judgerl.model_loader import load_model

log = logging.getLogger(__name__)


def use_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def load_causal(name: str, dtype: str = "auto"):
    """(model, tokenizer) of a causal LM to train (left on the CPU; the trainer places it)."""
    return load_model(name, "causal", device=None, dtype=dtype, padding_side=None)


def peft_config(cfg, task_type: str = "CAUSAL_LM"):
    """A peft LoraConfig from the judge config, or None for full fine-tuning."""
    if cfg.finetune != "lora":
        return None
    from peft import LoraConfig

    lc = cfg.lora
    return LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, target_modules=lc.target_modules,
                      task_type=task_type)


def unwrap(model):
    """Merge LoRA adapters (if any) and return the plain transformers model."""
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a pinned dependency
        return model
    if isinstance(model, PeftModel):
        return model.merge_and_unload()
    return model


def save_hf(model, tok, out: str | Path) -> Path:
    """Save merged weights + tokenizer as a plain HF folder (written to a temp name, then renamed)."""
    import shutil

    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model = unwrap(model)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def training_precision() -> dict:
    """TrainingArguments precision flags: bf16 on GPU, plain fp32 on CPU (TRL defaults bf16 on)."""
    return {"bf16": use_cuda(), "fp16": False}
