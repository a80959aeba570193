"""Benchmark 1: judge decode throughput of the hf backend's fast path vs plain HF `generate` (GPU).

Models with random weights (fine for speed): SmolLM2-135M-, Qwen3-4B- and Llama-3.1-8B-shaped.
Batch B, prompt P random tokens, N new tokens forced (no EOS). Both paths generate the same shapes.
Roofline: per decode step the fewest bytes are all weights once plus the KV cache read so far;
bytes / measured copy bandwidth = floor time; roofline tok/s = B / floor. Prints ratios against
plain `generate` measured in the same run.

    python bench/judge_decode.py --models smollm2-135m,qwen3-4b,llama3.1-8b --batch 64 --new 256
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


def main() -> None:
    import torch

    from judgerl.judges.decode import generate_ids

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="smollm2-135m,qwen3-4b,llama3.1-8b")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    a = ap.parse_args()
    bw = copy_bandwidth(torch)
    print(f"device {torch.cuda.get_device_name()}  torch {torch.__version__}  copy bandwidth {bw / 1e12:.2f} TB/s",
          flush=True)
    rows = []
    for name in a.models.split(","):
        model, cfg = build(torch, name)
        g = torch.Generator(device="cuda").manual_seed(0)
        ids = torch.randint(10, cfg.vocab_size - 10, (a.batch, a.prompt), device="cuda", generator=g)
        mask = torch.ones_like(ids)

        def run(fast: bool, new: int):
            return generate_ids(model, ids, mask, max_new_tokens=new, pad_token_id=0, eos_token_id=None,
                                fast=fast, pad_rows_to=a.batch)

        run(False, 8)  # warm-up (kernels, allocator)
        t_plain = timed(torch, lambda: run(False, a.new))
        t0 = time.perf_counter()
        run(True, a.new)  # first fast call compiles (CUDA graphs captured)
        compile_s = time.perf_counter() - t0
        t_fast = min(timed(torch, lambda: run(True, a.new)) for _ in range(2))
        out = run(True, a.new)
        assert out.shape == (a.batch, a.new), out.shape
        n_params = sum(p.numel() for p in model.parameters())
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        kv_per_tok = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * 2
        avg_ctx = a.prompt + a.new / 2
        step_bytes = n_params * 2 + a.batch * avg_ctx * kv_per_tok
        roof_tps = a.batch / (step_bytes / bw)
        tps_plain = a.batch * a.new / t_plain
        tps_fast = a.batch * a.new / t_fast
        rows.append(dict(model=name, params_M=round(n_params / 1e6), batch=a.batch, prompt=a.prompt, new=a.new,
                         plain_tok_s=round(tps_plain), fast_tok_s=round(tps_fast), speedup=round(tps_fast / tps_plain, 2),
                         roofline_tok_s=round(roof_tps), fast_roofline_frac=round(tps_fast / roof_tps, 3),
                         plain_roofline_frac=round(tps_plain / roof_tps, 4), compile_s=round(compile_s, 1)))
        print(json.dumps(rows[-1]), flush=True)
        del model
        torch.cuda.empty_cache()
    print("\nmodel          params  plain tok/s  fast tok/s  speedup  roofline tok/s  fast/roofline")
    for r in rows:
        print(f"{r['model']:<14}{r['params_M']:>6}M {r['plain_tok_s']:>11} {r['fast_tok_s']:>11} {r['speedup']:>7}x "
              f"{r['roofline_tok_s']:>14} {r['fast_roofline_frac']:>13.1%}")
    with open(os.path.join(a.out, "judge_decode.json"), "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "copy_bw": bw, "rows": rows}, f,
                  indent=2)


if __name__ == "__main__":
    main()
