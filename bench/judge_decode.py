"""Benchmark 1: decode throughput of the graph engine (policy rollouts, judge reasoning) vs plain HF `generate` (GPU).

Models with random weights (fine for speed): SmolLM2-135M-, Qwen3-4B- and Llama-3.1-8B-shaped.
Batch B, prompt P random tokens, N new tokens forced (no EOS). Every path generates the same shapes:
  plain   HF `generate` with its dynamic cache (what TRL's rollouts and a hand-written judge call)
  hf      the graph engine capturing transformers' own forward (`JUDGERL_FUSED_STEP=0`, the issue-14 engine)
  fused   the graph engine with `fused_step.FusedStep` (the default for Llama-family models)
  compiled  the graph engine with `compiled_step.CompiledStep`: the fused step through torch.compile (inductor, its
          element-wise work fused into few kernels; `JUDGERL_COMPILED_STEP=1`, SDPA attention). Not in the default
          --variants (its compile takes tens of seconds a model); `first_call_s` includes it, `compile_s` is the first
          compiled step alone, `compiled: false` says the compile failed and the eager step ran.
  compiled_math  `compiled` with the attention as plain matmuls in the compiled graph (`JUDGERL_COMPILED_ATTN=math`)
          instead of SDPA's memory-efficient kernel.
  compiled_flex  `compiled` with flex attention (inductor's flex-decoding template; `JUDGERL_COMPILED_ATTN=flex`)
  compiled_math_at, compiled_flex_at  the same compiled with `JUDGERL_COMPILED_MODE=max-autotune-no-cudagraphs`
                 (Triton GEMM templates autotuned against cuBLAS at the step's shapes; a longer compile)
  compiled_math_def, compiled_flex_def, compiled_flex_def_at  with `JUDGERL_COMPILED_RESIDUAL=deferred` (the residual
                 adds in the next RMSNorm kernel instead of addmm, which copies the residual on CUDA)
Roofline (the decode floor): per step the fewest bytes are all weights once plus the KV cache read so far,
  bytes/step = n_params * 2 + B * (P + N/2) * kv_bytes_per_token,  kv_bytes_per_token = 2 * layers * kv_heads * head_dim * 2
(bf16), floor = bytes/step / HBM bandwidth (measured device-to-device copy), roofline tok/s = B / floor.
Prints ratios against plain `generate` measured in the same run; `--profile` writes a kernel table of
the fused (and compiled) engine's decode steps (torch.profiler, CUDA activity) to OUT/decode_profile.txt.
`--device cpu` runs the same code eagerly on the CPU (no graphs; the roofline from a host copy): a smoke test of the
paths, e.g. `--device cpu --models tiny --batch 2 --prompt 8 --new 4 --variants fused,compiled`.

    python bench/judge_decode.py --models smollm2-135m --batch 64 --prompt 128 --new 256 --profile
    python bench/judge_decode.py --models smollm2-135m --batch 64 --prompt 128 --new 256 --profile \
        --variants plain,fused,compiled
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

SHAPES = {
    "smollm2-135m": dict(model_type="llama", hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, intermediate_size=1536, vocab_size=49152, tie_word_embeddings=True),
    "qwen3-4b": dict(model_type="qwen3", hidden_size=2560, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, intermediate_size=9728, vocab_size=151936,
                     tie_word_embeddings=True),
    "llama3.1-8b": dict(model_type="llama", hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                        num_key_value_heads=8, intermediate_size=14336, vocab_size=128256, tie_word_embeddings=False),
    "tiny": dict(model_type="llama", hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=96, vocab_size=512, tie_word_embeddings=True),  # smoke runs (--device cpu)
}
# What each engine variant sets (the compiled step is read at every generate: kept set while a variant runs)
def _compiled(attention: str, mode: str | None = None, residual: str = "addmm") -> dict:
    """The environment of a compiled variant: its attention, residual form, and torch.compile's mode when not the
    default."""
    env = {"JUDGERL_FUSED_STEP": "1", "JUDGERL_COMPILED_STEP": "1", "JUDGERL_COMPILED_ATTN": attention,
           "JUDGERL_COMPILED_RESIDUAL": residual}
    return {**env, "JUDGERL_COMPILED_MODE": mode} if mode else env


AUTOTUNE = "max-autotune-no-cudagraphs"
FLAGS = {"hf": {"JUDGERL_FUSED_STEP": "0", "JUDGERL_COMPILED_STEP": "0"},
         "fused": {"JUDGERL_FUSED_STEP": "1", "JUDGERL_COMPILED_STEP": "0"},
         "compiled": _compiled("sdpa"), "compiled_math": _compiled("math"), "compiled_flex": _compiled("flex"),
         "compiled_math_at": _compiled("math", AUTOTUNE), "compiled_flex_at": _compiled("flex", AUTOTUNE),
         "compiled_math_def": _compiled("math", residual="deferred"),
         "compiled_flex_def": _compiled("flex", residual="deferred"),
         "compiled_flex_def_at": _compiled("flex", AUTOTUNE, "deferred")}


def copy_bandwidth(torch, device: str = "cuda") -> float:
    """Bytes read + written per second by a 2 GiB device-to-device copy (256 MiB on the CPU)."""
    n = 2 * 1024**3 if device == "cuda" else 256 * 1024**2
    x = torch.empty(n // 2, dtype=torch.bfloat16, device=device).normal_()
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    sync(torch)
    t = time.perf_counter()
    for _ in range(10):
        y.copy_(x)
    sync(torch)
    dt = (time.perf_counter() - t) / 10
    del x, y
    return 2 * n / dt


def sync(torch) -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def build(torch, name: str, dtype=None, device: str = "cuda"):
    from transformers import AutoConfig, AutoModelForCausalLM

    shape = dict(SHAPES[name])
    cfg = AutoConfig.for_model(shape.pop("model_type"), **shape, max_position_embeddings=8192)
    cfg.eos_token_id = None
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype or torch.bfloat16)
    model.eval()
    model.generation_config.eos_token_id = None
    return model, cfg


def timed(torch, fn) -> float:
    sync(torch)
    t = time.perf_counter()
    fn()
    sync(torch)
    return time.perf_counter() - t


@contextlib.contextmanager
def flags(variant: str):
    """The environment of an engine variant (FLAGS) while it is built and runs; restored after."""
    want = FLAGS.get(variant, {})
    old = {k: os.environ.get(k) for k in want}
    os.environ.update(want)
    try:
        yield
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def engine(model, variant: str):
    """A StaticDecoder with the fused step (fused), compiled (compiled) or neither (hf), built for this bench only;
    call it and the engine's generate inside `flags(variant)`."""
    from judgerl.judges.compiled_step import CompiledStep
    from judgerl.judges.static_decode import StaticDecoder

    dec = StaticDecoder(model)
    assert (dec.fused is not None) == (variant != "hf"), variant
    assert isinstance(dec.fused, CompiledStep) == variant.startswith("compiled"), variant
    assert dec.fused is None or dec.fused.attention == FLAGS[variant].get("JUDGERL_COMPILED_ATTN", "sdpa"), variant
    return dec


def profile_table(torch, fn, steps: int) -> str:
    """Kernel table of `fn` (one generate call of `steps` decode steps) sorted by GPU time, per-step figures."""
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.cuda.is_available()
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        fn()
        sync(torch)
    ev = prof.key_averages()
    if not cuda:
        table = ev.table(sort_by="self_cpu_time_total", row_limit=30, max_name_column_width=70)
        return "(CPU: no kernel summary)\n" + table
    try:
        from torch.autograd import DeviceType

        kern = [e for e in ev if e.device_type == DeviceType.CUDA and e.self_device_time_total > 0]
        total_us = sum(e.self_device_time_total for e in kern)
        calls = sum(e.count for e in kern)
        head = (f"GPU kernel time {total_us / 1e3:.1f} ms in {calls} kernel calls over {steps} steps: "
                f"{total_us / steps:.0f} us and {calls / steps:.0f} kernels a step\n")
    except Exception as e:  # noqa: BLE001 - a profiler field this torch names differently
        head = f"(kernel summary unavailable: {e})\n"
    return head + ev.table(sort_by="self_cuda_time_total", row_limit=30, max_name_column_width=70)


def measure(torch, a, model, ids, mask, name: str, v: str, row: dict) -> dict:
    """Tokens per second of one variant at the bench's shape (best of 3 timed calls after a first call that builds
    the engine's graphs, and compiles the step for `compiled`); --profile: its kernel table for fused / compiled."""
    from judgerl.judges.decode import generate_ids

    if v == "plain":
        def run(new):
            return generate_ids(model, ids, mask, max_new_tokens=new, pad_token_id=0, eos_token_id=None, fast=False)
        run(8)  # warm-up (kernels, allocator)
        first, dec = 0.0, None
    else:
        dec = engine(model, v)

        def run(new, dec=dec):
            return dec.generate(ids, mask, max_new_tokens=new, temperature=0.7, top_k=20, top_p=0.95,
                                generator=torch.Generator(device=ids.device).manual_seed(0)).tokens
        t0 = time.perf_counter()
        run(a.new)  # first call captures the graphs (and compiles the step)
        first = time.perf_counter() - t0
    t = min(timed(torch, lambda: run(a.new)) for _ in range(1 if v == "plain" else 3))
    assert run(a.new).shape == (a.batch, a.new)
    tps = a.batch * a.new / t
    out = dict(tok_s=round(tps), roofline_frac=round(tps / row["roofline_tok_s"], 4), s=round(t, 4),
               ms_per_step=round(1e3 * t / a.new, 3), first_call_s=round(first, 2))
    if v.startswith("compiled"):  # False: the compile failed and the eager fused step ran (a warning said why)
        out.update(compiled=dec.fused.compiled, compile_s=round(dec.fused.first_call_s or 0.0, 2))
    if v != "plain" and "plain" in row:
        out["over_plain"] = round(tps / row["plain"]["tok_s"], 2)
    print(json.dumps({name: {v: out}}), flush=True)
    if a.profile and v not in ("plain", "hf"):
        text = profile_table(torch, lambda: run(64), 64)
        print(text.splitlines()[0], flush=True)
        with open(os.path.join(a.out, f"decode_profile{a.tag}.txt"), "a") as f:
            f.write(f"== {name} batch {a.batch} prompt {a.prompt}: {v} engine, 64 new tokens ==\n{text}\n")
    return out


def main() -> None:
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="smollm2-135m,qwen3-4b,llama3.1-8b", help=f"of {', '.join(SHAPES)}")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--variants", default="plain,hf,fused", help="of plain, hf, " + ", ".join(k for k in FLAGS if k != "hf"))
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: a smoke run (eager, no graphs)")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    from judgerl.model_loader import avoid_cudnn_attention

    avoid_cudnn_attention()  # as every judgerl model load does (cuDNN SDPA builds a graph per shape)
    dev = a.device
    bw = copy_bandwidth(torch, dev)
    name_dev = torch.cuda.get_device_name() if dev == "cuda" else f"cpu x{os.cpu_count()}"
    print(f"device {name_dev}  torch {torch.__version__}  copy bandwidth {bw / 1e12:.2f} TB/s", flush=True)
    rows = []
    for name in a.models.split(","):
        model, cfg = build(torch, name, torch.float32 if dev == "cpu" else None, dev)
        g = torch.Generator(device=dev).manual_seed(0)
        ids = torch.randint(10, cfg.vocab_size - 10, (a.batch, a.prompt), device=dev, generator=g)
        mask = torch.ones_like(ids)
        n_params = sum(p.numel() for p in model.parameters())
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        kv_per_tok = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * 2
        step_bytes = n_params * 2 + a.batch * (a.prompt + a.new / 2) * kv_per_tok
        roof_tps = a.batch / (step_bytes / bw)
        row = dict(model=name, params_M=round(n_params / 1e6), batch=a.batch, prompt=a.prompt, new=a.new,
                   step_bytes=int(step_bytes), roofline_tok_s=round(roof_tps))
        for v in a.variants.split(","):
            with flags(v):
                row[v] = measure(torch, a, model, ids, mask, name, v, row)
        rows.append(row)
        del model
        if dev == "cuda":
            torch.cuda.empty_cache()
    print("\nmodel          params  " + "  ".join(f"{v:>12}" for v in a.variants.split(",")) + "  roofline tok/s")
    for r in rows:
        cells = "  ".join(f"{r[v]['tok_s']:>7} {r[v]['roofline_frac']:>4.1%}" for v in a.variants.split(",") if v in r)
        print(f"{r['model']:<14}{r['params_M']:>6}M  {cells}  {r['roofline_tok_s']:>14}")
    with open(os.path.join(a.out, f"judge_decode{a.tag}.json"), "w") as f:
        json.dump({"device": name_dev, "torch": torch.__version__, "copy_bw": bw, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
