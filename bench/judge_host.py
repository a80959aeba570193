"""Host-side work of one in-loop judge call at bench 3's long shape, before / after issue 25's judge-path changes.

No model forward: only what the host does around it, with the real SmolLM2 tokenizer on 128 judge requests built as
the GRPO reward builds them (16 self-instruct prompts x 8 completions cut from AlpacaEval reference answers to
0-256 tokens; reasoning texts of 256 tokens). Each figure is the best of --reps runs, before and after in one run:
  render+prompt ids   render() then chat_ids per request (before) / chat_ids_many, one batched call (after), and
                      with --threads tokenizer calls on a thread pool (HFBackend.tokenize_threads)
  verdict ids         the forced "prompt + thinking + Score: " ids per request / batched / threaded
  batch               left-padded tensors from Python lists (before) / one masked fill (after)
  verdict stats       value masses read per element from full-vocabulary CPU rows (before) / gathered (after)
The per-row host syncs the old detokenise loop made on CUDA (three a row) cannot show on a CPU and are not timed.

    python bench/judge_host.py --out bench/judge_host_cpu.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def best(fn, reps: int) -> tuple[float, object]:
    out, t_best = None, float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        t_best = min(t_best, time.perf_counter() - t)
    return t_best, out


def requests(tok, n_prompts: int, g: int, seed: int = 0):
    from judgerl.judges import JudgeRequest
    from judgerl.paths import data_root
    from judgerl.training.prompts import load_prompts

    root = data_root(os.environ.get("JUDGERL_SHARED_DATA"))
    prompts = load_prompts(["pool:self-instruct"], root, max_chars=800)[:n_prompts]
    with gzip.open(root / "alpaca-eval" / "reference_outputs" / "text_davinci_003.json.gz", "rt") as f:
        answers = [r["output"] for r in json.load(f) if r.get("output")]
    rng = random.Random(seed)

    def cut(text: str, n: int) -> str:
        return tok.decode(tok(text, add_special_tokens=False)["input_ids"][:n])

    reqs = [JudgeRequest(prompt=[{"role": "user", "content": p}], responses=[cut(rng.choice(answers), rng.randint(0, 256))])
            for p in prompts for _ in range(g)]
    thinking = [cut(" ".join(rng.sample(answers, 3)), 256) for _ in reqs]
    return reqs, thinking


def main() -> None:
    import torch

    from judgerl.judges import JudgeSpec
    from judgerl.judges.hf import HFBackend
    from judgerl.judges.parse import strip_verdict_lines
    from judgerl.judges.plain_chat import chat_ids, chat_ids_many
    from judgerl.judges.prompts import render
    from judgerl.model_loader import shared_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    model, tok = shared_model(a.model, "causal", "cpu", "auto")
    spec = JudgeSpec(name="host", backend="hf", model=a.model, mode="reasoning", batch_size=a.prompts * a.generations,
                     cache=False)
    b = HFBackend(spec, model=model, tokenizer=tok)
    reqs, thinking = requests(tok, a.prompts, a.generations)
    key = "Score:"
    suffixes = [(strip_verdict_lines(t, key) + "\n") + b.prefix for t in thinking]
    res: dict = {"device": f"cpu x{os.cpu_count()}", "torch": torch.__version__, "requests": len(reqs),
                 "threads": a.threads, "reps": a.reps}

    def record(name: str, before, after, after_threads=None):
        res[name] = {"before_s": before, "after_s": after, **({"after_threads_s": after_threads} if after_threads else {})}
        print(f"{name:<20} before {before * 1e3:8.1f} ms  after {after * 1e3:8.1f} ms"
              + (f"  after, {a.threads} threads {after_threads * 1e3:8.1f} ms" if after_threads else ""), flush=True)

    t0, ids0 = best(lambda: [chat_ids(tok, render(spec, r)) for r in reqs], a.reps)
    t1, ids1 = best(lambda: chat_ids_many(tok, [render(spec, r) for r in reqs]), a.reps)
    t2, ids2 = best(lambda: chat_ids_many(tok, [render(spec, r) for r in reqs], threads=a.threads), a.reps)
    assert ids0 == ids1 == ids2
    record("render+prompt ids", t0, t1, t2)
    res["prompt_tokens_mean"] = sum(map(len, ids0)) / len(ids0)
    res["prompt_tokens_max"] = max(map(len, ids0))
    convs = [render(spec, r) for r in reqs]
    t0, f0 = best(lambda: [chat_ids(tok, m, suffix=s) for m, s in zip(convs, suffixes)], a.reps)
    t1, f1 = best(lambda: chat_ids_many(tok, convs, suffixes), a.reps)
    t2, f2 = best(lambda: chat_ids_many(tok, convs, suffixes, threads=a.threads), a.reps)
    assert f0 == f1 == f2
    record("verdict ids", t0, t1, t2)
    res["verdict_tokens_mean"] = sum(map(len, f0)) / len(f0)

    def old_batch(ids):
        width = max(len(x) for x in ids)
        pad = tok.pad_token_id
        return (torch.tensor([[pad] * (width - len(x)) + list(x) for x in ids]),
                torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids]))
    t0, (i0, m0) = best(lambda: old_batch(ids0), a.reps)
    t1, enc = best(lambda: b._batch(ids0), a.reps)
    assert torch.equal(i0, enc["input_ids"]) and torch.equal(m0, enc["attention_mask"])
    record("batch", t0, t1)
    logits = torch.randn(len(reqs), model.config.vocab_size, generator=torch.Generator().manual_seed(0)) * 4

    def old_stats():
        out = []
        for dist in torch.softmax(logits.float(), dim=-1):
            out.append(([float(sum(dist[i] for i in b.value_ids[v])) if b.value_ids[v] else 0.0 for v in b.values],
                        int(dist.argmax())))
        return out
    t0, s0 = best(old_stats, a.reps)
    t1, s1 = best(lambda: b._value_stats(logits), a.reps)
    assert [x[1] for x in s0] == [x[1] for x in s1]
    assert max(abs(p - q) for x, y in zip(s0, s1) for p, q in zip(x[0], y[0])) == 0.0
    record("verdict stats", t0, t1)
    res["total_before_s"] = sum(v["before_s"] for v in res.values() if isinstance(v, dict))
    res["total_after_s"] = sum(v["after_s"] for v in res.values() if isinstance(v, dict))
    res["total_after_threads_s"] = sum(v.get("after_threads_s", v["after_s"]) for v in res.values() if isinstance(v, dict))
    print(json.dumps({k: v for k, v in res.items() if not isinstance(v, dict)}, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
