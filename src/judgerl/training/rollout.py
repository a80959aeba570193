"""Policy rollouts for TRL's GRPOTrainer from judgerl's static-cache engine (a `rollout_func`).

TRL 1.16 calls `rollout_func(prompts, trainer)` with this process's slice of the generation batch
(RepeatSampler order: each prompt's G copies in a row) and expects `prompt_ids`, `completion_ids`
and `logprobs`, one entry per prompt copy. `FastRollout` serves it from
`judgerl.judges.static_decode`:

- Prompts are tokenized by the trainer itself (`trainer._tokenize_prompts`, TRL's chat template and
  kwargs), so prompt ids are exactly those TRL's own path would train on.
- Sampling is the trainer's: temperature, top_k, top_p, max_completion_length, and every EOS id the
  trainer stops on (`trainer.eos_token_ids`); a completion keeps its first EOS and nothing after it,
  as in TRL. Settings the engine does not implement (min_p, repetition_penalty != 1, extra
  generation_kwargs), vLLM, PEFT, DeepSpeed ZeRO-3 and FSDP are refused by `unsupported()`; the
  caller then keeps TRL's own generation.
- Prefix reuse: consecutive identical prompts (the G rollouts of a group) are prefilled once.
- Weights in place: the engine reads the live parameters (the optimizer updates them in place), so
  every rollout uses the current policy; graphs are re-captured if a parameter moves.
- Randomness: a private `torch.Generator` per call, seeded from (seed, rank, global step, call), so a
  resumed run draws the same stream and processes draw different ones; the global RNG is untouched.
- `logprobs` are log softmax(logits / T) of each sampled token (before top-k/top-p), the quantity
  TRL's loss computes. TRL uses them only for vLLM importance sampling; it recomputes the policy's
  log-probabilities itself, so they are returned for checks and diagnostics.
- DDP: each process decodes its own slice with its unwrapped module on its own GPU.

`SeededRollout` (`grpo.rollout: seeded`) trades the engine's speed for layout invariance: each completion
draws from its own generator, seeded from (seed, global step, call, its row in the *global* generation
batch), so the same run on 1, 2 or 8 processes samples the same completions (up to float ties). It calls
the model's own forward with a KV cache, so it serves FSDP and ZeRO-3: sharded ranks decode in lock step
(an all-reduce of "still decoding" per token), and FSDP2 parameters are gathered once per rollout
(sharding.gathered) instead of once per layer per token. The sharded equivalence tests use it.
"""

from __future__ import annotations

import os
import time


def unsupported(trainer) -> str | None:
    """Why the fast rollout cannot serve this trainer, or None when it can."""
    from judgerl.judges.static_decode import supported

    a = trainer.args
    if getattr(trainer, "use_vllm", False):
        return "vLLM generation is configured"
    if getattr(trainer, "is_fsdp_enabled", False):
        return "FSDP shards the parameters"
    ds = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    if ds is not None and getattr(ds, "zero_stage", 0) == 3:
        return "DeepSpeed ZeRO-3 shards the parameters"
    if getattr(trainer, "tools", None) or getattr(trainer, "environment_factories", None):
        return "tool calling / environments"
    if getattr(trainer, "_is_vlm", False):
        return "vision-language model"
    if a.min_p is not None or (a.repetition_penalty or 1.0) != 1.0 or a.generation_kwargs:
        return "min_p / repetition_penalty / generation_kwargs are not implemented by the engine"
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "peft_config"):
        return "PEFT model"
    if not supported(model):
        return "model with local (sliding-window) attention or a non-SDPA attention implementation"
    return None


def _seed(seed: int, rank: int, step: int, call: int) -> int:
    return (seed * 1_000_003 + rank * 7_919 + step * 104_729 + call * 15_485_863) % (2**63 - 1)


class FastRollout:
    """`rollout_func` for GRPOTrainer; `history` keeps (seconds, rows, new tokens) per call."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.history: list[dict] = []
        self._calls: dict[int, int] = {}

    def __call__(self, prompts: list, trainer) -> dict:
        import torch

        from judgerl.judges.static_decode import decoder_for

        t0 = time.perf_counter()
        model = trainer.accelerator.unwrap_model(trainer.model)
        tok = trainer._tokenizer
        prompt_ids, _, _ = trainer._tokenize_prompts(prompts)
        prompt_ids = [list(p) for p in prompt_ids]
        uniq: list[list[int]] = []
        rows: list[int] = []
        for ids in prompt_ids:  # the G copies of a prompt are consecutive: one prefill each group
            if not uniq or uniq[-1] != ids:
                uniq.append(ids)
            rows.append(len(uniq) - 1)
        dev = model.device
        width = max(len(p) for p in uniq)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        ids = torch.full((len(uniq), width), pad, dtype=torch.long)
        mask = torch.zeros((len(uniq), width), dtype=torch.long)
        for i, p in enumerate(uniq):
            ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[i, width - len(p):] = 1
        step = trainer.state.global_step
        call = self._calls.get(step, 0)
        self._calls = {step: call + 1}
        rank = int(os.environ.get("RANK", trainer.accelerator.process_index))
        gen = torch.Generator(device=dev).manual_seed(_seed(self.seed, rank, step, call))
        out = decoder_for(model).generate(
            ids.to(dev), mask.to(dev), max_new_tokens=trainer.max_completion_length, temperature=trainer.temperature,
            top_p=trainer.top_p if trainer.top_p is not None else 1.0, top_k=trainer.top_k or 0,
            eos_token_ids=trainer.eos_token_ids, pad_token_id=pad, generator=gen,
            rows=torch.tensor(rows, dtype=torch.long))
        tokens, lps = out.tokens.tolist(), out.logprobs.tolist()
        completion_ids = [t[:n] for t, n in zip(tokens, out.lengths)]
        logprobs = [lp[:n] for lp, n in zip(lps, out.lengths)]
        self.history.append({"seconds": time.perf_counter() - t0, "rows": len(prompt_ids), "prefills": len(uniq),
                             "new_tokens": sum(out.lengths)})
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": logprobs}


def _filter(logits, top_k: int, top_p: float):
    """Top-k then top-p (nucleus) filtering of [rows, vocab] logits, as transformers' warpers do."""
    import torch

    if top_k and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        srt, idx = torch.sort(logits, descending=True, dim=-1)
        cum = srt.softmax(-1).cumsum(-1)
        drop = cum - srt.softmax(-1) >= top_p  # keep the smallest prefix whose mass reaches top_p
        logits = logits.masked_fill(drop.scatter(-1, idx, drop), float("-inf"))
    return logits


class SeededRollout:
    """`rollout_func` whose samples do not depend on the number of processes (see the module doc)."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self._calls: dict[int, int] = {}

    def __call__(self, prompts: list, trainer) -> dict:
        import torch

        from judgerl.training.sharding import gathered, sharding

        model = trainer.accelerator.unwrap_model(trainer.model_wrapped)
        prompt_ids = [list(p) for p in trainer._tokenize_prompts(prompts)[0]]
        step = trainer.state.global_step
        call = self._calls.get(step, 0)
        self._calls = {step: call + 1}
        first_row = trainer.accelerator.process_index * len(prompt_ids)  # rank r holds rows [r·n, (r+1)·n)
        seeds = [_seed(self.seed, 0, step, call) ^ ((first_row + i) * 0x9E3779B97F4A7C15 % 2**62)
                 for i in range(len(prompt_ids))]
        lockstep = sharding(trainer) is not None and trainer.accelerator.num_processes > 1
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), gathered(model):
                completion_ids, logprobs = self._decode(model, trainer, prompt_ids, seeds, lockstep)
        finally:
            model.train(was_training)
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": logprobs}

    @staticmethod
    def _decode(model, trainer, prompt_ids: list[list[int]], seeds: list[int], lockstep: bool):
        import torch
        from transformers import DynamicCache

        dev = next(model.parameters()).device
        pad = trainer._tokenizer.pad_token_id if trainer._tokenizer.pad_token_id is not None else 0
        width = max(len(p) for p in prompt_ids)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompt_ids], device=dev)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids], device=dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        gens = [torch.Generator(device=dev).manual_seed(s) for s in seeds]
        eos = torch.tensor(trainer.eos_token_ids, device=dev)
        temp, top_k, top_p = trainer.temperature, trainer.top_k or 0, trainer.top_p if trainer.top_p is not None else 1.0
        cache = DynamicCache(config=model.config)
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True)
        done = torch.zeros(len(prompt_ids), dtype=torch.bool, device=dev)
        tokens: list[list[int]] = [[] for _ in prompt_ids]
        lps: list[list[float]] = [[] for _ in prompt_ids]
        for _ in range(trainer.max_completion_length):
            logits = out.logits[:, -1].float() / temp
            logp = logits.log_softmax(-1)
            probs = _filter(logits, top_k, top_p).softmax(-1)
            nxt = torch.cat([torch.multinomial(probs[i], 1, generator=gens[i]) for i in range(len(gens))])
            for i in (~done).nonzero().flatten().tolist():
                tokens[i].append(int(nxt[i]))
                lps[i].append(float(logp[i, nxt[i]]))
            done |= torch.isin(nxt, eos)
            left = (~done).any().to(torch.int32)
            if lockstep:  # sharded parameters: every rank runs the same number of forwards
                torch.distributed.all_reduce(left, op=torch.distributed.ReduceOp.MAX)
            if not left:
                break
            nxt = nxt.masked_fill(done, pad)
            mask = torch.cat([mask, (~done).long()[:, None]], dim=1)
            pos = pos[:, -1:] + 1
            out = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos, past_key_values=cache,
                        use_cache=True)
        return tokens, lps
