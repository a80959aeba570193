"""Annotation rows -> judge training examples, rendered exactly as the Judge class will see them.

The prompt is `plain_chat.chat_ids(tokenizer, prompts.render(spec, request))` with the JudgeSpec the
trained checkpoint is saved with, i.e. the very ids the hf backend feeds the model (candidate text is
plain text: a `<|im_end|>` inside it is spelled out, never the control token). The target is what the
strict parser accepts and what the hf backend's forced verdict expects: `Score: N` (or `Preferred: N`)
alone for direct judges, the gold reasoning then a final verdict line for reasoning judges, followed by
the tokenizer's end-of-turn token.
"""

from __future__ import annotations

from dataclasses import dataclass

from judgerl import JudgerlError
from judgerl.annotate.dataset import check_score_range, gold_of, load_annotations, request_of
from judgerl.judges.parse import strip_verdict_lines
from judgerl.judges.prompts import render, verdict_prefix
from judgerl.judges.spec import JudgeRequest, JudgeSpec


@dataclass
class JudgeExample:
    request: JudgeRequest
    gold: int            # score (pointwise) or preferred response 1|2 (pairwise)
    reasoning: str       # gold thinking text ("" when absent)
    item_id: str = ""


def load_examples(path: str, fmt: str, split: str, lo: int = 0, hi: int = 9, limit: int | None = None,
                  need_reasoning: bool = False, need_rubric: bool = False) -> list[JudgeExample]:
    """Valid annotation rows of one split as examples, with the checks the training variants need."""
    rows = load_annotations(path, fmt, split)
    if fmt == "pointwise":
        check_score_range(path, rows, lo, hi)
    else:
        bad = [r for r in rows if r.get("label") not in (1, 2) or len(r.get("responses") or []) != 2]
        if bad:
            raise JudgerlError(f"{path}: {len(bad)} pairwise row(s) lack a label 1|2 or two responses "
                               f"(first: item {bad[0].get('item_id')!r})")
    if limit:
        rows = rows[:limit]
    if need_reasoning:
        empty = sum(not (r.get("reasoning") or "").strip() for r in rows)
        if empty:
            raise JudgerlError(f"{path}: {empty} of {len(rows)} {split} rows have no reasoning trace; reasoning "
                               f"distillation needs the gold judge's thinking (use variant non_reasoning or rl_only)")
    if need_rubric:
        missing = sum(not (r.get("rubric") or "").strip() for r in rows)
        if missing:
            raise JudgerlError(f"{path}: {missing} of {len(rows)} {split} rows have no rubric; the rubric variant "
                               f"needs annotations made with rubrics")
    return [JudgeExample(request_of(r, fmt), int(gold_of(r, fmt)), (r.get("reasoning") or "").strip(),
                         str(r.get("item_id", ""))) for r in rows]


def prompt_ids(tok, spec: JudgeSpec, req: JudgeRequest, suffix: str = "") -> list[int]:
    """The judge prompt's token ids as the hf judge builds them: candidate and prompt text are plain
    text (a `<|im_end|>` inside a candidate is spelled out, never the control token)."""
    from judgerl.judges.plain_chat import chat_ids

    return chat_ids(tok, render(spec, req), suffix=suffix)


def grpo_messages(spec: JudgeSpec, req: JudgeRequest) -> list[dict]:
    """The judge prompt as chat messages for TRL's GRPO, which applies the template and tokenises control
    strings as control tokens: so control-token spellings in the contents are broken with a space first."""
    from judgerl.judges.plain_chat import neutralise_control_tokens

    return [{**m, "content": neutralise_control_tokens(m["content"])} if isinstance(m.get("content"), str) else m
            for m in render(spec, req)]


def target_text(tok, spec: JudgeSpec, ex: JudgeExample, think_tags: bool = False) -> str:
    """The assistant turn to learn: [reasoning + newline] + verdict line + end-of-turn token."""
    return target_body(spec, ex, think_tags) + (tok.eos_token or "")


def target_body(spec: JudgeSpec, ex: JudgeExample, think_tags: bool = False) -> str:
    """The assistant turn without its end-of-turn token."""
    verdict = f"{verdict_prefix(spec.format)}{ex.gold}"
    body = verdict
    if spec.mode == "reasoning":
        key = verdict_prefix(spec.format).strip()
        thinking = strip_verdict_lines(ex.reasoning, key).strip()
        if think_tags:
            body = f"<think>\n{thinking}\n</think>\n{verdict}"  # one newline, as the hf judge joins them
        elif thinking:
            body = f"{thinking}\n{verdict}"
    return body


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def tokenize_sft(tok, spec: JudgeSpec, examples: list[JudgeExample], max_length: int,
                 think_tags: bool = False) -> tuple[list[dict], int]:
    """Pre-tokenized SFT rows {input_ids, completion_mask}: prompt+target tokenised together (as the hf
    backend does at inference, contents as plain text: `prompt_ids`) then the end-of-turn id; loss only on
    the target. Returns (rows, number dropped as too long)."""
    rows, dropped = [], 0
    eos = [tok.eos_token_id] if tok.eos_token and tok.eos_token_id is not None else []
    for ex in examples:
        full = prompt_ids(tok, spec, ex.request, suffix=target_body(spec, ex, think_tags)) + eos
        p_ids = prompt_ids(tok, spec, ex.request)
        n_prompt = common_prefix(p_ids, full)
        if len(full) > max_length:
            dropped += 1
            continue
        rows.append({"input_ids": full, "completion_mask": [0] * n_prompt + [1] * (len(full) - n_prompt)})
    return rows, dropped


def require_rows(rows: list, dropped: int, what: str, limit_name: str) -> None:
    if not rows:
        raise JudgerlError(f"no {what} examples left: all {dropped} exceed {limit_name}; raise it")
