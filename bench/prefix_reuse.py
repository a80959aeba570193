"""Benchmark 1b: prefix reuse for the judge prompt shared by a batch (GPU).

A judge batch shares a long head: the judge template, and in policy GRPO the question of a group.
Rows = shared head (--shared tokens) + a distinct response (--suffix tokens, random lengths down to half).
Times, with and without `reuse_prefix` (same function, same outputs):
  direct   one forward for the verdict distribution (non-reasoning judge): `last_token_logits`
  reasoning  fast-path generation of --new tokens (reasoning judge): `generate_ids(fast=True)`
Random weights (fine for speed), bf16, Qwen3-4B- and Llama-3.1-8B-shaped models.

    python bench/prefix_reuse.py --models qwen3-4b,llama3.1-8b --batch 64 --shared 1536 --suffix 512 --new 256
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(0, os.path.dirname(__file__))

from judge_decode import build, timed  # noqa: E402


def main() -> None:
    import torch

    from judgerl.judges.decode import generate_ids, last_token_logits

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="qwen3-4b,llama3.1-8b")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--shared", type=int, default=1536)
    ap.add_argument("--suffix", type=int, default=512)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--dtype", default="bfloat16", help="float32 separates rounding noise from real differences")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    a = ap.parse_args()
    print(f"device {torch.cuda.get_device_name()}  torch {torch.__version__}", flush=True)
    rows = []
    for name in a.models.split(","):
        model, cfg = build(torch, name, getattr(torch, a.dtype))
        g = torch.Generator(device="cuda").manual_seed(0)
        head = torch.randint(10, cfg.vocab_size - 10, (a.shared,), device="cuda", generator=g)
        lens = torch.randint(a.suffix // 2, a.suffix + 1, (a.batch,), generator=torch.Generator().manual_seed(0))
        width = a.shared + a.suffix
        ids = torch.zeros((a.batch, width), dtype=torch.long, device="cuda")
        mask = torch.zeros_like(ids)
        for i, n in enumerate(lens.tolist()):  # left padded, as the tokenizer gives them
            tail = torch.randint(10, cfg.vocab_size - 10, (n,), device="cuda", generator=g)
            ids[i, width - a.shared - n:] = torch.cat([head, tail])
            mask[i, width - a.shared - n:] = 1

        def direct(reuse: bool):
            return last_token_logits(model, ids, mask, reuse_prefix=reuse)

        def reason(reuse: bool):
            return generate_ids(model, ids, mask, max_new_tokens=a.new, pad_token_id=0, eos_token_id=None, fast=True,
                                pad_rows_to=a.batch, reuse_prefix=reuse)

        r = {"model": name, "dtype": a.dtype, "batch": a.batch, "shared": a.shared, "suffix_max": a.suffix, "new": a.new}
        for label, fn in (("direct", direct), ("reasoning", reason)):
            for reuse in (False, True):
                fn(reuse)  # warm-up / compile
                r[f"{label}_{'reuse' if reuse else 'plain'}_s"] = round(min(timed(torch, lambda: fn(reuse)) for _ in range(2)), 4)
            r[f"{label}_speedup"] = round(r[f"{label}_plain_s"] / r[f"{label}_reuse_s"], 2)
        ref, got = direct(False).float(), direct(True).float()
        r["direct_max_rel_diff"] = float((got - ref).abs().max() / ref.abs().max())
        r["reasoning_same_token_frac"] = float((reason(False) == reason(True)).float().mean())  # bf16: argmax ties may flip
        rows.append(r)
        print(json.dumps(r), flush=True)
        del model
        torch.cuda.empty_cache()
    print("\nmodel          direct plain/reuse (s)   speedup   reasoning plain/reuse (s)   speedup")
    for r in rows:
        print(f"{r['model']:<14} {r['direct_plain_s']:>8.3f} / {r['direct_reuse_s']:<8.3f} {r['direct_speedup']:>8}x "
              f"{r['reasoning_plain_s']:>12.3f} / {r['reasoning_reuse_s']:<8.3f} {r['reasoning_speedup']:>8}x")
    with open(os.path.join(a.out, f"prefix_reuse_{a.dtype}.json"), "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
