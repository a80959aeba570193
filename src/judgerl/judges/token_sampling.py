"""What a decode returns (`Generated`) and how a token is drawn from logits (`pick_tokens`), for the graph engine
(static_decode.py): an exact draw from softmax(logits / T) under top-k / top-p using host-written Exponential(1)
noise (so a captured graph needs no RNG state), and greedy at T <= 0."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Generated:
    tokens: object       # LongTensor [rows, n]: pad after each row's first EOS
    logprobs: object     # FloatTensor [rows, n]: 0 after each row's first EOS
    lengths: list[int]   # new tokens per row, its EOS included
    cache: object = None  # generate(keep_cache=True): DynamicCache of each output row's prompt layout + fed tokens


def pick_tokens(logits, temperature: float, top_k: int, top_p: float, noise=None):
    """(token, logprob) per row from float32 logits [B, V]: greedy when temperature <= 0, else an exact
    draw from softmax(logits / T) restricted to the top-k, then top-p set (transformers' order and
    tie rule for top-p; top-k keeps exactly k). `noise` holds Exponential(1) draws, [B, V] or [B, k]."""

    if temperature <= 0:
        tok = logits.argmax(-1)
        return tok, logits.gather(1, tok[:, None])[:, 0] - logits.logsumexp(-1)
    z = logits / temperature
    lse = z.logsumexp(-1)
    gumbel = -noise.clamp_min(1e-30).log()
    if top_k and top_k < z.shape[-1]:
        vals, idx = z.topk(top_k, dim=-1)                          # sorted, largest first
        if top_p < 1.0:
            asc = vals.flip(-1)
            remove = asc.softmax(-1).cumsum(-1) <= 1 - top_p
            remove[:, -1] = False                                  # the most likely token always stays
            vals = vals.masked_fill(remove.flip(-1), float("-inf"))
        choice = (vals + gumbel[:, :top_k]).argmax(-1, keepdim=True)
        tok = idx.gather(1, choice)[:, 0]
    else:
        if top_p < 1.0:
            srt, order = z.sort(-1)                                # ascending, as transformers' TopPLogitsWarper
            remove = srt.softmax(-1).cumsum(-1) <= 1 - top_p
            remove[:, -1] = False
            z_f = z.masked_fill(remove.scatter(1, order, remove), float("-inf"))
        else:
            z_f = z
        tok = (z_f + gumbel).argmax(-1)
    return tok, z.gather(1, tok[:, None])[:, 0] - lse


def trim_after_eos(tokens, logprobs, n: int, eos, pad_token_id: int) -> Generated:
    """Lengths up to each row's first EOS; pad (and log-prob 0) after it; no column after the last row's EOS."""
    import torch

    n_out = tokens.shape[0]
    lengths = [n] * n_out
    if eos is not None and n_out:
        hit = torch.isin(tokens, eos)
        first = torch.where(hit.any(1), hit.int().argmax(1) + 1, torch.full_like(hit[:, 0], n, dtype=torch.long))
        lengths = first.tolist()
        width = max(lengths)  # as generate(): no column after the last row's EOS
        tokens, logprobs = tokens[:, :width], logprobs[:, :width]
    return Generated(tokens, logprobs, lengths)
