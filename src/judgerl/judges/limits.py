"""Input caps and per-item failure isolation for judge calls.

An item a judge cannot or should not take gets an invalid Verdict of its own, with a one-line error
whose first word says why, and never reaches the backend; the rest of its batch is judged:

    too_long: ...    over the spec's max_prompt_chars / max_response_chars / max_input_tokens
    bad_input: ...   text that is not valid Unicode (a lone surrogate such as "\\ud800")
    judge call raised: ...   the backend raised on this item alone (found by splitting the batch)

`status_of` maps a verdict to the per-item status the reward server returns.
"""

from __future__ import annotations

from judgerl.judges.spec import JudgeRequest, JudgeSpec, Verdict

TOO_LONG = "too_long"
BAD_INPUT = "bad_input"
RAISED = "judge call raised"
SKIPPED = "skipped"
TERMINAL = (TOO_LONG, BAD_INPUT)  # retrying these cannot help


def _texts(prompt) -> list[str]:
    if isinstance(prompt, str):
        return [prompt]
    out = []
    for m in prompt:
        c = m.get("content") if isinstance(m, dict) else m
        out.append(c if isinstance(c, str) else str(c))
    return out


def _bad_text(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"character {e.start} is {text[e.start]!r} (a lone surrogate; not valid Unicode text)"
    return None


def request_problem(req: JudgeRequest, spec: JudgeSpec) -> str | None:
    """Why this request must not reach the backend (a one-line error), or None."""
    prompt = _texts(req.prompt)
    n = sum(len(t) for t in prompt)
    if n > spec.max_prompt_chars:
        return f"{TOO_LONG}: the prompt has {n:,} characters; the limit is {spec.max_prompt_chars:,} (max_prompt_chars)"
    for k, r in enumerate(req.responses):
        if len(r) > spec.max_response_chars:
            return (f"{TOO_LONG}: response {k + 1} has {len(r):,} characters; the limit is "
                    f"{spec.max_response_chars:,} (max_response_chars)")
    for what, text in [("the prompt", t) for t in prompt] + [(f"response {k + 1}", r) for k, r in
                                                            enumerate(req.responses)] + [("the rubric", req.rubric or "")]:
        bad = _bad_text(text)
        if bad:
            return f"{BAD_INPUT}: {what}: {bad}"
    return None


def refused(error: str) -> Verdict:
    return Verdict(valid=False, error=error)


def is_terminal(v: Verdict) -> bool:
    """A failure that the same request would hit again (no point retrying it)."""
    return v.error is not None and v.error.startswith(TERMINAL)


def status_of(error: str | None, valid: bool, reward) -> str:
    """ok | invalid | too_long | bad_input | failed | skipped | unscored: one item's status (reward server)."""
    if error:
        for s in (TOO_LONG, BAD_INPUT, SKIPPED):
            if error.startswith(s):
                return s
        return "failed"
    if not valid:
        return "invalid"
    return "ok" if reward is not None else "unscored"
