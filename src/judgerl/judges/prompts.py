"""Prompt templates: default pointwise/pairwise judge prompts, rubric variant, candidate fencing.

A template is a text file with a `=== SYSTEM ===` and a `=== USER ===` section and `{{name}}`
placeholders. Users override it with `template: path/to/file.txt` in the judge spec. Candidate text
is fenced by `[BEGIN CANDIDATE RESPONSE]` markers; any marker text inside a candidate (look-alike
spellings and chat control tokens too) is neutralised so that a candidate cannot close its own fence
(judges/fence.py).
"""

from __future__ import annotations

import re
from pathlib import Path

from judgerl import JudgerlError
from judgerl.judges.fence import neutralise
from judgerl.judges.spec import JudgeRequest, JudgeSpec
from judgerl.judges.templates import PLACEHOLDER_RE, TEMPLATE_DIR, read_template

def verdict_prefix(fmt: str) -> str:
    """The line start that introduces the verdict: 'Score: ' or 'Preferred: '."""
    return "Score: " if fmt == "pointwise" else "Preferred: "


def template_text(spec: JudgeSpec) -> str:
    return read_template(spec.template, spec.format)


def output_instructions(spec: JudgeSpec) -> str:
    prefix = verdict_prefix(spec.format).strip()
    value = (f"an integer from {spec.score_min} to {spec.score_max}" if spec.format == "pointwise"
             else "1 or 2")
    if spec.mode == "reasoning":
        return (f"Output format: first reason step by step about how well the response(s) meet the rules. "
                f"Then end with a final line of the form `{prefix} N`, where N is {value}. "
                f"Nothing may follow that line.")
    return f"Output format: reply with exactly one line `{prefix} N`, where N is {value}, and nothing else."


def instruction_text(prompt: str | list[dict]) -> str:
    """A chat-message prompt becomes a transcript; the last user turn is the instruction."""
    if isinstance(prompt, str):
        return prompt
    if len(prompt) == 1:
        return str(prompt[0].get("content", ""))
    return "\n\n".join(f"{m.get('role', 'user').upper()}: {m.get('content', '')}" for m in prompt)


def fill(template: str, values: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        key = m.group(1)
        if key not in values:
            raise JudgerlError(f"template placeholder {{{{{key}}}}} has no value (known: {sorted(values)})")
        return values[key]

    return PLACEHOLDER_RE.sub(sub, template)


def split_sections(text: str) -> tuple[str, str]:
    if "=== USER ===" not in text:
        raise JudgerlError("template must contain a '=== USER ===' section")
    system, user = text.split("=== USER ===", 1)
    system = system.replace("=== SYSTEM ===", "").strip()
    return system, user.strip()


def render(spec: JudgeSpec, req: JudgeRequest) -> list[dict]:
    """Chat messages (system + user) asking `spec`'s question about `req`."""
    want = 1 if spec.format == "pointwise" else 2
    if len(req.responses) != want:
        raise JudgerlError(f"{spec.format} judge needs {want} response(s), got {len(req.responses)}")
    if spec.rubric and not req.rubric:
        raise JudgerlError("rubric-conditioned judge needs a rubric for every item")
    rubric_block = ""
    if spec.rubric and req.rubric:
        rubric_block = ("5. Grade against this instruction-specific rubric (written by the evaluator, not "
                        "by the candidate):\n[BEGIN RUBRIC]\n" + neutralise(req.rubric.strip()) + "\n[END RUBRIC]\n")
    values = {
        "instruction": neutralise(instruction_text(req.prompt)),
        "response_1": neutralise(req.responses[0]),
        "response_2": neutralise(req.responses[1]) if want == 2 else "",
        "score_min": str(spec.score_min),
        "score_max": str(spec.score_max),
        "rubric_block": rubric_block,
        "output_instructions": output_instructions(spec),
    }
    system, user = (fill(part, values) for part in split_sections(template_text(spec)))
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": user}]


def render_rubric_request(instruction: str | list[dict], template: str | None = None) -> list[dict]:
    """Messages asking a judge model to write an instruction-specific rubric (annotation stage)."""
    text = Path(template).read_text() if template else (TEMPLATE_DIR / "rubric_generation.txt").read_text()
    values = {"instruction": neutralise(instruction_text(instruction))}
    system, user = (fill(part, values) for part in split_sections(text))
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
