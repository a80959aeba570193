"""OpenAI-compatible backend: vLLM, SGLang, llama.cpp server, OpenAI, through the `openai` async client.

- Endpoints: `spec.base_urls`; requests are spread round-robin and a retry moves to the next one.
- Key: read at call time from the env var `spec.api_key_env` (a dummy key when unset); never stored:
  errors are redacted (judges/redact.py) before they reach a verdict, the ledger or the console.
- Control-token strings (`<|im_end|>`, `[INST]`, ...) in message text are sent broken with a space, so
  the server's chat template cannot be closed from inside a candidate (plain_chat.neutralise_control_tokens).
- Robustness: at most `spec.concurrency` calls in flight, each bounded by `spec.timeout_s`, retried
  up to `spec.max_retries` times with exponential backoff + jitter on 429, 5xx, timeouts,
  connection errors and JSON bodies cut short (never on other 4xx). After the last attempt the request comes back as an
  invalid Verdict with `error` set; nothing raises into the caller.
- Verdict: the strict parser reads the returned text (reasoning from the `reasoning_content` /
  `reasoning` message fields or `<think>` tags). With `spec.logprobs` the expected score is read
  from the top logprobs of the token holding the value right after the final `Score:` /
  `Preferred:` (whether the server split it as ' ', '7' or ' 7'); it is None when the verdict is
  invalid or the server sent no logprobs.
- `spec.prefill`: the verdict prefix is sent as a final assistant message with vLLM's
  `continue_final_message` (direct mode: right away; reasoning mode: after the reasoning, in a
  second short call when the free output did not end on a verdict).
- `spec.extra_body`: passed through (e.g. llama.cpp `grammar`, vLLM `chat_template_kwargs`).

An AsyncOpenAI client and semaphore are made per event loop: TRL runs async reward functions on its
own loop and `run_sync` may use a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import re
import time
import weakref

from judgerl.judges.parse import (digit_distribution, expected_value, parse_verdict, split_think, strip_verdict_lines,
                                  verdict_values)
from judgerl.judges.plain_chat import neutralise_control_tokens
from judgerl.judges.prompts import render, verdict_prefix
from judgerl.judges.redact import redact
from judgerl.judges.spec import JudgeRequest, JudgeSpec, Verdict

DUMMY_KEY = "sk-no-key"  # llama.cpp / vLLM accept any key
TOP_LOGPROBS = 20        # OpenAI's maximum
_MAX_BACKOFF_S = 20.0


class _Failure(Exception):
    """A call that failed for good (after retries, or not retryable)."""

    def __init__(self, reason: str, retries: int):
        super().__init__(reason)
        self.reason, self.retries = reason, retries


def _classify(exc: BaseException) -> tuple[bool, str, float | None]:
    """(retryable, reason, server-requested delay) for an exception raised by a call."""
    import openai

    if isinstance(exc, (asyncio.TimeoutError, openai.APITimeoutError)):
        return True, "timeout", None
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return True, f"connection error ({type(cause).__name__}: {str(cause)[:120]})", None
    if isinstance(exc, json.JSONDecodeError):  # a JSON body cut short in transit: worth another try
        return True, f"truncated JSON body ({exc.msg})", None
    if isinstance(exc, openai.APIStatusError):
        code = exc.status_code
        msg = re.sub(r"\s+", " ", str(exc.message or ""))[:200]
        delay = None
        if code == 429:
            try:
                delay = float(exc.response.headers.get("retry-after", ""))
            except (TypeError, ValueError):
                delay = None
        return (code == 429 or code >= 500), f"http {code}: {msg}", delay
    return False, _bad_response(exc), None


def _bad_response(exc: BaseException) -> str:
    detail = re.sub(r"\s+", " ", str(exc))[:200]
    return f"bad response ({type(exc).__name__}: {detail})"


def backoff_seconds(attempt: int, base: float = 0.5) -> float:
    """Exponential backoff with full jitter: uniform in [0.5, 1.5] × base·2^attempt, capped."""
    return min(_MAX_BACKOFF_S, base * 2 ** attempt) * (0.5 + random.random())


def verdict_distribution(tokens: list, fmt: str, values: list[int], prefix_text: str = "") -> list[float] | None:
    """Probabilities of `values` at the verdict position of a logprobs `content` list.

    The verdict position is the token holding the first digit after the LAST `Score:`/`Preferred:`
    in `prefix_text + tokens` (prefix_text = a prefilled assistant start the server did not echo).
    Works whether the space is its own token ('Score', ':', ' ', '7'), rides on the digit (' 7') or
    the tokenizer merged more (': 7'): alternatives are compared after removing the same lead text.
    """
    if not tokens:
        return None
    key = "Score" if fmt == "pointwise" else "Preferred"
    texts = [getattr(t, "token", None) or "" for t in tokens]
    starts, pos = [], len(prefix_text)
    for s in texts:
        starts.append(pos)
        pos += len(s)
    joined = prefix_text + "".join(texts)
    found = list(re.finditer(rf"{key}\s*:[\s*_`]*(?=\d)", joined, flags=re.IGNORECASE))
    if not found:
        return None
    digit_at = found[-1].end()
    idx = next((i for i in range(len(texts)) if starts[i] <= digit_at < starts[i] + len(texts[i])), None)
    if idx is None:
        return None
    lead = joined[starts[idx]:digit_at]
    alts: dict[str, float] = {}
    for alt in getattr(tokens[idx], "top_logprobs", None) or []:
        text, lp = alt.token or "", alt.logprob
        if lead.strip():
            if not text.startswith(lead):
                continue
            text = text[len(lead):]
        if lp is None or (isinstance(lp, float) and math.isnan(lp)):
            continue
        alts[text] = max(alts.get(text, -math.inf), lp)
    return digit_distribution(alts, values)


def _message_reasoning(message) -> str:
    extra = getattr(message, "model_extra", None) or {}
    for name in ("reasoning_content", "reasoning"):
        val = getattr(message, name, None) or extra.get(name)
        if isinstance(val, str) and val.strip():
            return val.strip()
    return ""


class OpenAIBackend:
    def __init__(self, spec: JudgeSpec, model=None, tokenizer=None):  # model/tokenizer: unused (remote)
        self.spec = spec
        self.values = verdict_values(spec.format, spec.score_min, spec.score_max)
        self.key = verdict_prefix(spec.format).strip()  # "Score:" / "Preferred:"
        self._rr = itertools.count()
        self._per_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    # ---- per-loop state --------------------------------------------------------------------
    def _state(self):
        loop = asyncio.get_running_loop()
        st = self._per_loop.get(loop)
        if st is None:
            from openai import AsyncOpenAI

            key = os.environ.get(self.spec.api_key_env) or DUMMY_KEY
            clients = [AsyncOpenAI(base_url=u, api_key=key, timeout=self.spec.timeout_s, max_retries=0)
                       for u in self.spec.base_urls]
            st = {"clients": clients, "sem": asyncio.Semaphore(self.spec.concurrency), "active": 0}
            self._per_loop[loop] = st
        return st

    @contextlib.asynccontextmanager
    async def _session(self):
        """Clients live while at least one run()/generate() is active on this loop, then are closed
        on that loop: no client outlives its event loop (asyncio.run per call, TRL's own loop)."""
        loop = asyncio.get_running_loop()
        st = self._state()
        st["active"] += 1
        try:
            yield st
        finally:
            st["active"] -= 1
            if st["active"] == 0 and self._per_loop.get(loop) is st:
                del self._per_loop[loop]
                for c in st["clients"]:
                    try:
                        await c.close()
                    except BaseException:  # noqa: BLE001 - closing is best effort (e.g. on cancellation)
                        pass

    # ---- one call with retries -------------------------------------------------------------
    def _params(self, messages: list[dict], max_tokens: int, temperature: float, logprobs: bool,
                prefill: bool) -> dict:
        s, spec = self.spec.sampling, self.spec
        # the server applies its chat template to our text: control-token strings are sent broken (plain text)
        messages = [{**m, "content": neutralise_control_tokens(m["content"])} if isinstance(m.get("content"), str)
                    else m for m in messages]
        kw: dict = dict(model=spec.model, messages=messages, max_tokens=max_tokens, temperature=temperature)
        if s.top_p < 1.0:
            kw["top_p"] = s.top_p
        if temperature > 0:
            kw["seed"] = s.seed
        if spec.reasoning_effort:
            kw["reasoning_effort"] = spec.reasoning_effort
        if logprobs:
            kw.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        extra = dict(spec.extra_body)
        if s.top_k > 0:
            extra.setdefault("top_k", s.top_k)
        if prefill:
            extra.update(continue_final_message=True, add_generation_prompt=False)
        if extra:
            kw["extra_body"] = extra
        return kw

    async def _call(self, params: dict) -> tuple[object, int]:
        """(completion, retries). Raises _Failure after the last attempt."""
        st = self._state()
        clients = st["clients"]
        start = next(self._rr)
        retries = 0
        reason = "no attempt"
        for attempt in range(self.spec.max_retries + 1):
            client = clients[(start + attempt) % len(clients)]
            delay = None
            try:
                async with st["sem"]:
                    resp = await asyncio.wait_for(client.chat.completions.create(**params),
                                                  timeout=self.spec.timeout_s)
                if not getattr(resp, "choices", None):
                    raise ValueError("response has no choices")
                return resp, retries
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - every failure becomes a counted invalid verdict
                retryable, reason, delay = _classify(e)
                if reason == "timeout":
                    reason = f"timeout after {self.spec.timeout_s:g}s"
            if not retryable or attempt == self.spec.max_retries:
                break
            retries += 1
            await asyncio.sleep(min(_MAX_BACKOFF_S, delay) if delay else backoff_seconds(attempt))
        tries = retries + 1
        raise _Failure(f"{reason} ({tries} attempt{'s' if tries > 1 else ''})", retries)

    # ---- one judgment ----------------------------------------------------------------------
    async def _judge_one(self, messages: list[dict]) -> Verdict:
        spec, s = self.spec, self.spec.sampling
        t0 = time.perf_counter()
        tok_in = tok_out = retries = 0
        prefix_text = ""
        try:
            if spec.prefill and spec.mode == "direct":
                prefix_text = self.key
                params = self._params(messages + [{"role": "assistant", "content": prefix_text}],
                                      s.max_new_tokens, s.temperature, spec.logprobs, prefill=True)
            else:
                params = self._params(messages, s.max_new_tokens, s.temperature, spec.logprobs, prefill=False)
            resp, retries = await self._call(params)
            tok_in, tok_out = self._usage(resp)
            choice = resp.choices[0]
            content = choice.message.content or ""
            field_reasoning = _message_reasoning(choice.message)
            text = prefix_text + content
            parsed = parse_verdict(text, spec.format, spec.score_min, spec.score_max)
            lp_tokens = getattr(getattr(choice, "logprobs", None), "content", None) or []
            probs = verdict_distribution(lp_tokens, spec.format, self.values, prefix_text) if parsed.valid else None

            if spec.prefill and spec.mode == "reasoning" and (not parsed.valid or (spec.logprobs and probs is None)):
                # force the verdict after the reasoning: second, short call continuing the answer
                thoughts, answer = split_think(content)
                body = strip_verdict_lines(answer, self.key.rstrip(":"))
                prefix_text = (body + "\n" if body else "") + self.key
                p2 = self._params(messages + [{"role": "assistant", "content": prefix_text}], 4, 0.0,
                                  spec.logprobs, prefill=True)
                resp2, r2 = await self._call(p2)
                retries += r2
                i2, o2 = self._usage(resp2)
                tok_in, tok_out = tok_in + i2, tok_out + o2
                c2 = resp2.choices[0]
                text = prefix_text + (c2.message.content or "")
                parsed = parse_verdict(text, spec.format, spec.score_min, spec.score_max)
                lp2 = getattr(getattr(c2, "logprobs", None), "content", None) or []
                probs = verdict_distribution(lp2, spec.format, self.values, prefix_text) if parsed.valid else None
                field_reasoning = "\n".join(filter(None, [field_reasoning, thoughts]))
        except _Failure as f:
            return Verdict(valid=False, error=f.reason, retries=retries + f.retries, tokens_in=tok_in,
                           tokens_out=tok_out, seconds=time.perf_counter() - t0)
        except Exception as e:  # noqa: BLE001 - a malformed response must not crash the caller
            return Verdict(valid=False, error=_bad_response(e), retries=retries, tokens_in=tok_in,
                           tokens_out=tok_out, seconds=time.perf_counter() - t0)
        reasoning = "\n".join(filter(None, [field_reasoning, parsed.reasoning]))
        expected = None
        if probs is not None:
            expected = expected_value(probs, self.values) if spec.format == "pointwise" else probs[0]
        return Verdict(label=parsed.label, expected=expected, probs=probs, reasoning=reasoning, raw=text,
                       valid=parsed.valid, tokens_in=tok_in, tokens_out=tok_out, retries=retries,
                       seconds=time.perf_counter() - t0)

    @staticmethod
    def _usage(resp) -> tuple[int, int]:
        u = getattr(resp, "usage", None)
        return (int(getattr(u, "prompt_tokens", 0) or 0), int(getattr(u, "completion_tokens", 0) or 0))

    # ---- backend interface -----------------------------------------------------------------
    async def run(self, requests: list[JudgeRequest]) -> list[Verdict]:
        msgs = [render(self.spec, r) for r in requests]  # template errors raise before any network call
        async with self._session():
            return self._redacted(await asyncio.gather(*(self._judge_one(m) for m in msgs)))

    async def generate(self, messages: list[list[dict]], max_new_tokens: int | None = None,
                       temperature: float | None = None) -> list[Verdict]:
        s = self.spec.sampling
        temp = s.temperature if temperature is None else temperature

        async def one(m: list[dict]) -> Verdict:
            t0 = time.perf_counter()
            try:
                resp, retries = await self._call(self._params(m, max_new_tokens or s.max_new_tokens, temp,
                                                              logprobs=False, prefill=False))
            except _Failure as f:
                return Verdict(valid=False, error=f.reason, retries=f.retries, seconds=time.perf_counter() - t0)
            try:
                content = resp.choices[0].message.content or ""
                thoughts, answer = split_think(content)
                reasoning = "\n".join(filter(None, [_message_reasoning(resp.choices[0].message), thoughts]))
                tin, tout = self._usage(resp)
            except Exception as e:  # noqa: BLE001
                return Verdict(valid=False, error=_bad_response(e), retries=retries, seconds=time.perf_counter() - t0)
            return Verdict(raw=answer, reasoning=reasoning, valid=bool(answer.strip()), tokens_in=tin,
                           tokens_out=tout, retries=retries, seconds=time.perf_counter() - t0)

        async with self._session():
            return self._redacted(await asyncio.gather(*(one(m) for m in messages)))

    def _redacted(self, verdicts) -> list[Verdict]:
        """Errors without credentials: a server may echo the key or the Authorization header."""
        return [v.model_copy(update={"error": redact(v.error, [self.spec.api_key_env])}) if v.error else v
                for v in verdicts]
