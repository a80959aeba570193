"""Arena verdicts from an in-process (hf) judge, read the way the pointwise path reads a score.

Upstream arena-hard-auto lets the judge write free text and takes the `[[label]]` it ends on; a small
local judge rarely writes one, so most games had no verdict. Here, after the judge's reasoning
(`mode: reasoning`) or right after the prompt (`mode: direct`), the verdict prefix
`My final verdict is: [[` is forced and the judge's probability of each full continuation
`A>>B]]`, `A>B]]`, `A=B]]`, `B>A]]`, `B>>A]]` is computed (teacher forcing, summed token
log-probabilities), then renormalised over the five labels. The label is the most probable one, so
every in-process game has a verdict; `expected` is assistant A's expected battle score under that
distribution (a strong verdict counting 3 times, as in the score).
Results go through the run's verdict cache and ledger like every judge call.
"""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np

from judgerl.evaluation.arena_score import LABELS, game_battle

PREFIX = "My final verdict is: [["
_OWN_VERDICT = re.compile(r"\[\[[AB<>=]+\]\]|final verdict", re.IGNORECASE)


def uses_forced(judge) -> bool:
    """In-process causal-LM judges with `force_verdict` read the label distribution (a backend that
    exposes no model and tokenizer, e.g. an injected one, keeps free-text verdicts)."""
    if not (judge.spec.model_kind == "causal" and judge.spec.force_verdict):
        return False
    backend = judge.backend
    return all(hasattr(backend, a) for a in ("model", "tok", "_lock"))


def strip_own_verdict(text: str) -> str:
    """Reasoning without trailing lines where the judge started or wrote a verdict itself."""
    lines = (text or "").rstrip().splitlines()
    while lines and (not lines[-1].strip() or _OWN_VERDICT.search(lines[-1])):
        lines.pop()
    return "\n".join(lines).rstrip()


def expected_a(probs) -> float:
    """Assistant A's expected battle score: Σ p·w·s / Σ p·w over the labels (strong verdicts weigh 3)."""
    sw = [game_battle(lab, model_is_b=False) for lab in LABELS]
    num = sum(p * w * s for p, (s, w) in zip(probs, sw))
    return float(num / sum(p * w for p, (_, w) in zip(probs, sw)))


def label_sequences(tok, messages: list[dict], reasoning: str) -> tuple[list[int], list[list[int]]]:
    """(shared ids, one continuation per label): the common token prefix of the five full sequences."""
    from judgerl.judges.plain_chat import chat_ids

    head = (reasoning + "\n" if reasoning else "") + PREFIX
    full = [chat_ids(tok, messages, suffix=head + lab + "]]") for lab in LABELS]
    n = 0
    while all(len(f) > n + 1 for f in full) and len({f[n] for f in full}) == 1:
        n += 1
    return full[0][:n], [f[n:] for f in full]


def label_logprobs(model, shared: list[list[int]], conts: list[list[list[int]]], pad_id: int) -> np.ndarray:
    """[games, 5] log P(continuation | shared) in one pass over the shared part (KV cache reused)."""
    import torch
    from transformers import DynamicCache

    dev, k = model.device, len(LABELS)
    width = max(len(s) for s in shared)
    ids = torch.full((len(shared), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(shared), width), dtype=torch.long)
    for i, s in enumerate(shared):
        ids[i, width - len(s):], mask[i, width - len(s):] = torch.tensor(s), 1
    ids, mask = ids.to(dev), mask.to(dev)
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                    past_key_values=DynamicCache(config=model.config), use_cache=True, logits_to_keep=1)
        first = torch.log_softmax(out.logits[:, -1, :].float(), -1)
        total = torch.stack([first[g, [c[0] for c in conts[g]]] for g in range(len(shared))])  # [G, 5]
        longest = max(len(c) for cs in conts for c in cs)
        if longest > 1:
            cache = out.past_key_values
            cache.batch_repeat_interleave(k)
            rows = [c for cs in conts for c in cs]
            inp = torch.full((len(rows), longest - 1), pad_id, dtype=torch.long)
            for r, c in enumerate(rows):
                inp[r, :len(c) - 1] = torch.tensor(c[:-1])
            inp = inp.to(dev)
            m = mask.repeat_interleave(k, 0)
            pos = m.sum(-1, keepdim=True) + torch.arange(longest - 1, device=dev)[None]
            logits = model(input_ids=inp, attention_mask=torch.cat([m, torch.ones_like(inp)], 1), position_ids=pos,
                           past_key_values=cache).logits.float()
            lp = torch.log_softmax(logits, -1)
            for r, c in enumerate(rows):
                if len(c) > 1:
                    tgt = torch.tensor(c[1:], device=dev)
                    total[r // k, r % k] += lp[r, torch.arange(len(c) - 1, device=dev), tgt].sum()
    return total.cpu().double().numpy()


def _key(judge, messages: list[dict], reasoning: str) -> str:
    blob = json.dumps([judge.fingerprint, "arena-v2-forced", PREFIX, messages, reasoning], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def forced_games(judge, convs: list[list[dict]], max_new_tokens: int | None = None, generate=None) -> list[dict]:
    """One game dict per conversation, each with a label, its five probabilities and `expected`.
    `generate(judge, convs, max_new_tokens)` writes the reasoning in `mode: reasoning` (arena's cached one)."""
    from judgerl.judges.hf import _on_model_thread
    from judgerl.judges.judge import run_sync
    from judgerl.judges.spec import Verdict

    games = [{"score": None, "judgment": "", "attempts": 1, "error": None, "verdict": "forced"} for _ in convs]
    reasonings = [""] * len(convs)
    if judge.spec.mode == "reasoning":
        for i, v in enumerate(generate(judge, convs, max_new_tokens)):
            if v.failed:
                games[i]["error"] = f"backend failure: {v.error}"
            else:
                reasonings[i] = strip_own_verdict(v.raw)
    keys = [_key(judge, m, r) for m, r in zip(convs, reasonings)]
    hits = judge.cache.get_many(keys) if judge.cache is not None else {}
    todo = [i for i, k in enumerate(keys) if k not in hits and games[i]["error"] is None]
    backend = judge.backend
    got: dict[int, Verdict] = {}
    bs = judge.spec.batch_size
    for s in range(0, len(todo), bs):
        idx = todo[s:s + bs]

        def work(idx=idx):
            with backend._lock:
                seqs = [label_sequences(backend.tok, convs[i], reasonings[i]) for i in idx]
                return seqs, label_logprobs(backend.model, [a for a, _ in seqs], [b for _, b in seqs],
                                            backend.tok.pad_token_id)

        async def call(work=work):
            return await _on_model_thread(work)

        seqs, lps = run_sync(call())
        for i, (shared, _), lp in zip(idx, seqs, lps):
            p = np.exp(lp - lp.max())
            probs = (p / p.sum()).tolist()
            best = int(np.argmax(lp))
            got[i] = Verdict(label=best, probs=probs, expected=expected_a(probs), reasoning=reasonings[i],
                             raw=(reasonings[i] + "\n" if reasonings[i] else "") + PREFIX + LABELS[best] + "]]",
                             valid=True, tokens_in=len(shared), tokens_out=1 + (len(reasonings[i]) > 0),
                             retries=0, seconds=0.0, error=None)
        if judge.cache is not None:
            judge.cache.put_many([(keys[i], judge.spec.name, got[i]) for i in idx])
    if judge.ledger is not None:
        rows = [(keys[i], hits[keys[i]].model_copy(update={"cached": True})) for i in range(len(convs)) if keys[i] in hits]
        rows += [(keys[i], got[i]) for i in todo]
        if rows:
            judge.ledger.record(judge.spec.name, judge.stage + ":arena-forced", rows)
    for i, g in enumerate(games):
        v = got.get(i) or hits.get(keys[i])
        if v is None:
            continue
        g.update({"score": LABELS[v.label], "judgment": v.raw, "probs": dict(zip(LABELS, v.probs)),
                  "expected": v.expected})
    return games
