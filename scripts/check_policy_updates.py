"""Why the bf16 policy barely moves (issue 15): how many weights does an AdamW step actually change?

Takes one real gradient of the embedded SmolLM2-135M-Instruct policy (LM loss on a few chat answers,
clipped to norm 1.0 as TRL does), then runs `--steps` AdamW steps with it on weights stored the way
`policy_dtype: bfloat16` stores them (bf16, no fp32 master copy: the Trainer's optimizer updates the bf16
tensors in place) and the way `policy_dtype: float32` does, and reports the share of weight elements that
changed and the update's relative size. CPU is enough (no device time).

    python scripts/check_policy_updates.py --lrs 5e-6 1e-5 5e-5 2e-4 --steps 3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

TEXTS = [("Give three tips for staying healthy.", "Eat a balanced diet, exercise regularly and sleep well."),
         ("Write a haiku about autumn.", "Crisp leaves drift and fall / amber light on quiet paths / the year exhales slow"),
         ("What is the capital of France?", "The capital of France is Paris.")]


def gradients() -> tuple[dict, float]:
    """One real gradient of the fp32 policy (LM loss on chat answers), clipped to norm 1.0 as TRL does."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from judgerl.models import resolve

    path = resolve("smollm2-135m-instruct")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    texts = [tok.apply_chat_template([{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                                     tokenize=False) for q, a in TEXTS]
    enc = tok(texts, return_tensors="pt", padding=True)
    model(**enc, labels=enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)).loss.backward()
    gn = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
    return {n: (p.detach().clone(), p.grad.detach().clone()) for n, p in model.named_parameters()}, gn


def run(weights: dict, dtype: str, lr: float, steps: int) -> dict:
    """`steps` AdamW steps with that gradient on weights stored in `dtype` (the Trainer's in-place update)."""
    import torch

    params = {n: torch.nn.Parameter(w.to(getattr(torch, dtype)).clone()) for n, (w, _) in weights.items()}
    opt = torch.optim.AdamW(params.values(), lr=lr, weight_decay=0.0)
    for _ in range(steps):
        for n, p in params.items():
            p.grad = weights[n][1].to(p.dtype)
        opt.step()
    changed = total = 0
    num = den = 0.0
    for n, p in params.items():
        w0 = weights[n][0].to(p.dtype).float()
        d = p.detach().float() - w0
        changed += int((d != 0).sum())
        total += d.numel()
        num += float((d ** 2).sum())
        den += float((w0 ** 2).sum())
    return {"dtype": dtype, "lr": lr, "steps": steps, "changed_frac": round(changed / total, 4),
            "rel_update": float(f"{(num / den) ** 0.5:.3g}")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lrs", type=float, nargs="+", default=[5e-6, 1e-5, 5e-5, 2e-4])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    weights, gn = gradients()
    print(json.dumps({"grad_norm_before_clip": round(gn, 3)}))
    rows = [run(weights, d, lr, a.steps) for lr in a.lrs for d in ("bfloat16", "float32")]
    for r in rows:
        print(json.dumps(r))
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
