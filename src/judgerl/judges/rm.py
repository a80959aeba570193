"""Scalar reward model backend (sequence-classification head, num_labels=1, Bradley–Terry style).

A pointwise judge whose score is its reward: the input is the (prompt, response) conversation in
the tokenizer's chat template (a plain transcript for tokenizers without one); no judge prompt
template and no rubric are used. The Verdict carries `expected` = the raw reward (an unbounded
float, not a 0–9 score), `label` None, `probs` None, `valid` True (False with `error` only for a
non-finite reward). Rewards are comparable within one model only.

Batched (sorted by length) with right padding; the reward is read at the last real token (the classification head
pools there via `config.pad_token_id`, which is set from the tokenizer when the checkpoint lacks it).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time

from judgerl import model_loader
from judgerl.judges.plain_chat import chat_ids
from judgerl.judges.spec import JudgeRequest, JudgeSpec, Verdict
from judgerl.model_loader import shared_model


def conversation(req: JudgeRequest) -> list[dict]:
    msgs = [{"role": "user", "content": req.prompt}] if isinstance(req.prompt, str) else list(req.prompt)
    return msgs + [{"role": "assistant", "content": req.responses[0]}]


class RewardModelBackend:
    def __init__(self, spec: JudgeSpec, model=None, tokenizer=None):
        self.spec = spec
        if model is None:
            model, tokenizer = shared_model(spec.model, "reward", spec.device, spec.dtype)
        self.model, self.tok = model, tokenizer
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        if getattr(self.model.config, "num_labels", 1) != 1:
            from judgerl import JudgerlError

            raise JudgerlError(f"reward model {spec.model!r} has {self.model.config.num_labels} labels; "
                               "a scalar reward model needs num_labels=1")
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tok.pad_token_id
        self._lock = threading.Lock()

    def _rewards(self, requests: list[JudgeRequest]) -> list[Verdict]:
        """Batches cut from the conversations sorted by length (on a CPU the padded positions cost as much as real
        ones), right-padded here (the shared tokenizer is not touched: other threads may be using it)."""
        import torch

        t0 = time.perf_counter()
        # contents as plain text: a control-token string inside a prompt or response stays text
        texts = [chat_ids(self.tok, conversation(r), add_generation_prompt=False) for r in requests]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        pad = self.tok.pad_token_id
        rewards: list[float] = [0.0] * len(texts)
        lengths = [len(t) for t in texts]
        for s in range(0, len(order), self.spec.batch_size):
            idx = order[s:s + self.spec.batch_size]
            width = max(lengths[i] for i in idx)
            ids = torch.tensor([texts[i] + [pad] * (width - lengths[i]) for i in idx], dtype=torch.long)
            mask = torch.tensor([[1] * lengths[i] + [0] * (width - lengths[i]) for i in idx], dtype=torch.long)
            with torch.no_grad():
                logits = self.model(input_ids=ids.to(self.model.device), attention_mask=mask.to(self.model.device)).logits
            for i, r in zip(idx, logits.float()[:, 0].cpu().tolist()):
                rewards[i] = r
        dt = (time.perf_counter() - t0) / max(1, len(requests))
        out = []
        for r, n in zip(rewards, lengths):
            ok = math.isfinite(r)
            out.append(Verdict(expected=r if ok else None, valid=ok, error=None if ok else f"non-finite reward {r}",
                               raw=f"reward: {r:.6g}", tokens_in=int(n), tokens_out=0, seconds=dt))
        return out

    async def run(self, requests: list[JudgeRequest]) -> list[Verdict]:
        def work():
            with self._lock:
                try:
                    return self._rewards(requests)
                finally:
                    model_loader.trim_after_judge_call(self.model)
        from judgerl.judges.hf import MODEL_EXECUTOR

        executor = MODEL_EXECUTOR.get()  # a caller's own model thread (the quickstart's side lane), else a worker
        if executor is not None:
            return await asyncio.get_running_loop().run_in_executor(executor, work)
        return await asyncio.to_thread(work)

    async def generate(self, messages: list[list[dict]], max_new_tokens: int | None = None,
                       temperature: float | None = None) -> list[Verdict]:
        return [Verdict(valid=False, error="the rm backend scores text; it cannot generate") for _ in messages]
