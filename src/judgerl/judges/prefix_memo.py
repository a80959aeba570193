"""A memo of the last judge-prompt head's KV cache, reused by later batches (the reward server's micro-batches).

Prefix reuse (decode.py) computes the head that the rows of one batch share once per batch. A reward server
judges the same template head in every micro-batch, and a batch of one (one client sending one item at a
time) has no batch-mate to share it with, so it pays for its whole prompt: with the default pointwise
template and short items the head is ~3/4 of every prompt. `PrefixMemo` keeps the batch-1 KV of the last
head it computed (a lone row's: its whole prompt); a later batch whose rows all
start with the first k >= PREFIX_MIN of those tokens computes only the rest (a lone row in one forward). Rows are laid out
[head][padding][suffix] as in decode.py and positions come from the mask, so every token keeps its position
and the logits are the plain ones up to float rounding.

The memo is only valid for the weights it was computed with: it is keyed on the model object and the
in-place version counters of its parameters (an optimizer step bumps them), and it is not used for models
with sliding/chunked attention. It is opt-in (`HFBackend.prefix_memo`); the reward server turns it on for
its own judge (`prefix_memo` in the serve config). Direct-mode (one forward) judges only.
"""

from __future__ import annotations

from judgerl.judges.attention import local_attention_window
from judgerl.judges.decode import PREFIX_MIN, _prefix_layout, last_token_logits, shared_prefix
from judgerl.judges.kv_reuse import common_prefix


def _weights_key(model) -> tuple | None:
    try:
        return id(model), sum(p._version for p in model.parameters())
    except RuntimeError:  # inference tensors have no version counter: never reuse
        return None


class PrefixMemo:
    """The KV (batch 1) of the last head computed, and how many prompt tokens it saved so far."""

    def __init__(self):
        self.ids: list[int] = []
        self.layers: list[tuple] = []  # per layer (keys, values), [1, kv_heads, len(ids), head_dim]
        self.key: tuple | None = None
        self.tokens_reused = 0

    def _extend(self, model, head: list[int]):
        """Make the memo hold `head`, computing what it does not already cover (at least the last token);
        returns the logits at the last token of `head`."""
        import torch
        from transformers import DynamicCache

        key = _weights_key(model)
        k = common_prefix(self.ids, head) if key is not None and key == self.key else 0
        k = k if k >= PREFIX_MIN else 0
        k = min(k, len(head) - 1)  # at least the last token runs when its logits are wanted
        self.tokens_reused += k
        cache = DynamicCache(config=model.config)
        for i, (keys, values) in enumerate(self.layers if k else []):
            cache.update(keys[:, :, :k], values[:, :, :k], i)
        ids = torch.tensor([head[k:]], dtype=torch.long, device=model.device)
        out = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        self.ids, self.key = list(head), key
        self.layers = [(layer.keys, layer.values) for layer in cache.layers]
        return out.logits[:, -1, :]

    def logits(self, model, input_ids, attention_mask):
        """Logits at the last position of each left-padded row [batch, vocab]; the rows' shared head (a lone
        row's: its whole prompt) is read from the memo where it can be, and stored in it."""
        import torch
        from transformers import DynamicCache

        p = shared_prefix(input_ids, attention_mask)  # one row: all but its last token (>= PREFIX_MIN: reuse)
        if p < PREFIX_MIN or local_attention_window(model) is not None:
            return last_token_logits(model, input_ids, attention_mask, reuse_prefix=True)
        row = [t for t, m in zip(input_ids[0].tolist(), attention_mask[0].tolist()) if m]
        b = input_ids.shape[0]
        with torch.inference_mode():
            if b == 1:  # a lone row: one forward over what the memo lacks, and it becomes the memo
                return self._extend(model, row)
            k = common_prefix(self.ids, row[:p]) if _weights_key(model) == self.key else 0
            if k >= PREFIX_MIN:  # the memo's part of the head; the rest goes with the suffixes (no extra forward)
                p, self.tokens_reused = k, self.tokens_reused + k
            else:
                self._extend(model, row[:p])
            cache = DynamicCache(config=model.config)
            for i, (keys, values) in enumerate(self.layers):
                cache.update(keys[:, :, :p].expand(b, -1, -1, -1), values[:, :, :p].expand(b, -1, -1, -1), i)
            ids, mask = _prefix_layout(input_ids, attention_mask, p, 0)
            pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
            out = model(input_ids=ids[:, p:], attention_mask=mask, position_ids=pos[:, p:], past_key_values=cache,
                        logits_to_keep=1)
            return out.logits[:, -1, :]
