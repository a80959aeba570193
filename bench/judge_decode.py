"""Benchmark 1: decode throughput of the graph engine (policy rollouts, judge reasoning) vs plain HF `generate` (GPU).

Models with random weights (fine for speed): SmolLM2-135M-, Qwen3-4B- and Llama-3.1-8B-shaped.
Batch B, prompt P random tokens, N new tokens forced (no EOS). Every path generates the same shapes:
  plain   HF `generate` with its dynamic cache (what TRL's rollouts and a hand-written judge call)
  hf      the graph engine capturing transformers' own forward (`JUDGERL_FUSED_STEP=0`, the issue-14 engine)
  fused   the graph engine with `fused_step.FusedStep` (the default for Llama-family models)
Roofline (the decode floor): per step the fewest bytes are all weights once plus the KV cache read so far,
  bytes/step = n_params * 2 + B * (P + N/2) * kv_bytes_per_token,  kv_bytes_per_token = 2 * layers * kv_heads * head_dim * 2
(bf16), floor = bytes/step / HBM bandwidth (measured device-to-device copy), roofline tok/s = B / floor.
Prints ratios against plain `generate` measured in the same run; `--profile` writes a kernel table of
the fused engine's decode steps (torch.profiler, CUDA activity) to OUT/decode_profile.txt.

    python bench/judge_decode.py --models smollm2-135m --batch 64 --prompt 128 --new 256 --profile
"""

from __future__ import annotations

import argparse
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
}


def copy_bandwidth(torch) -> float:
    x = torch.empty(2 * 1024**3 // 2, dtype=torch.bfloat16, device="cuda").normal_()
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(10):
        y.copy_(x)
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t) / 10
    del x, y
    return 2 * 2 * 1024**3 / dt  # bytes read + written per second


def build(torch, name: str, dtype=None):
    from transformers import AutoConfig, AutoModelForCausalLM

    shape = dict(SHAPES[name])
    cfg = AutoConfig.for_model(shape.pop("model_type"), **shape, max_position_embeddings=8192)
    cfg.eos_token_id = None
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype or torch.bfloat16)
    model.eval()
    model.generation_config.eos_token_id = None
    return model, cfg


def timed(torch, fn) -> float:
    torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t


def engine(model, variant: str):
    """A StaticDecoder with (fused) or without (hf) the fused step, built for this bench only."""
    from judgerl.judges.static_decode import StaticDecoder

    old = os.environ.get("JUDGERL_FUSED_STEP")
    os.environ["JUDGERL_FUSED_STEP"] = "1" if variant == "fused" else "0"
    try:
        dec = StaticDecoder(model)
    finally:
        os.environ.pop("JUDGERL_FUSED_STEP") if old is None else os.environ.__setitem__("JUDGERL_FUSED_STEP", old)
    assert (dec.fused is not None) == (variant == "fused"), variant
    return dec


def profile_table(torch, fn, steps: int) -> str:
    """Kernel table of `fn` (one generate call of `steps` decode steps) sorted by GPU time, per-step figures."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    ev = prof.key_averages()
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


def main() -> None:
    import torch

    from judgerl.judges.decode import generate_ids

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="smollm2-135m,qwen3-4b,llama3.1-8b")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--variants", default="plain,hf,fused")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    from judgerl.model_loader import avoid_cudnn_attention

    avoid_cudnn_attention()  # as every judgerl model load does (cuDNN SDPA builds a graph per shape)
    bw = copy_bandwidth(torch)
    print(f"device {torch.cuda.get_device_name()}  torch {torch.__version__}  copy bandwidth {bw / 1e12:.2f} TB/s",
          flush=True)
    rows = []
    for name in a.models.split(","):
        model, cfg = build(torch, name)
        g = torch.Generator(device="cuda").manual_seed(0)
        ids = torch.randint(10, cfg.vocab_size - 10, (a.batch, a.prompt), device="cuda", generator=g)
        mask = torch.ones_like(ids)
        n_params = sum(p.numel() for p in model.parameters())
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        kv_per_tok = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * 2
        step_bytes = n_params * 2 + a.batch * (a.prompt + a.new / 2) * kv_per_tok
        roof_tps = a.batch / (step_bytes / bw)
        row = dict(model=name, params_M=round(n_params / 1e6), batch=a.batch, prompt=a.prompt, new=a.new,
                   step_bytes=int(step_bytes), roofline_tok_s=round(roof_tps))
        for v in a.variants.split(","):
            if v == "plain":
                def run(new, v=v):
                    return generate_ids(model, ids, mask, max_new_tokens=new, pad_token_id=0, eos_token_id=None,
                                        fast=False)
                run(8)  # warm-up (kernels, allocator)
                first = 0.0
            else:
                dec = engine(model, v)

                def run(new, dec=dec):
                    return dec.generate(ids, mask, max_new_tokens=new, temperature=0.7, top_k=20, top_p=0.95,
                                        generator=torch.Generator(device="cuda").manual_seed(0)).tokens
                t0 = time.perf_counter()
                run(a.new)  # first call captures the graphs
                first = time.perf_counter() - t0
            t = min(timed(torch, lambda: run(a.new)) for _ in range(1 if v == "plain" else 3))
            assert run(a.new).shape == (a.batch, a.new)
            tps = a.batch * a.new / t
            row[v] = dict(tok_s=round(tps), roofline_frac=round(tps / roof_tps, 4), s=round(t, 4),
                          ms_per_step=round(1e3 * t / a.new, 3), first_call_s=round(first, 2))
            if v != "plain" and "plain" in row:
                row[v]["over_plain"] = round(tps / row["plain"]["tok_s"], 2)
            print(json.dumps({name: {v: row[v]}}), flush=True)
            if a.profile and v == "fused":
                text = profile_table(torch, lambda: run(64), 64)
                print(text.splitlines()[0], flush=True)
                with open(os.path.join(a.out, f"decode_profile{a.tag}.txt"), "a") as f:
                    f.write(f"== {name} batch {a.batch} prompt {a.prompt}: fused engine, 64 new tokens ==\n{text}\n")
        rows.append(row)
        del model
        torch.cuda.empty_cache()
    print("\nmodel          params  " + "  ".join(f"{v:>12}" for v in a.variants.split(",")) + "  roofline tok/s")
    for r in rows:
        cells = "  ".join(f"{r[v]['tok_s']:>7} {r[v]['roofline_frac']:>4.1%}" for v in a.variants.split(",") if v in r)
        print(f"{r['model']:<14}{r['params_M']:>6}M  {cells}  {r['roofline_tok_s']:>14}")
    with open(os.path.join(a.out, f"judge_decode{a.tag}.json"), "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "copy_bw": bw, "rows": rows}, f,
                  indent=2)


if __name__ == "__main__":
    main()
