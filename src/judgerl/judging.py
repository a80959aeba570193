"""`judgerl judge`: score one prompt/response(s), or a JSONL file of them, with any judge config."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import ValidationError

from judgerl import JudgerlError
from judgerl.config import format_validation_error, load_judge_spec
from judgerl.data import check_output_dir, check_output_file, iter_jsonl, write_jsonl_atomic
from judgerl.judges.limits import BAD_INPUT, SKIPPED, TOO_LONG
from judgerl.judges.redact import redact
from judgerl.judges.spec import JudgeRequest
from judgerl.rundir import RunDir


def request_from_record(rec: dict, where: str, fmt: str) -> JudgeRequest:
    """{prompt, response} | {prompt, responses} | {prompt, chosen, rejected} -> JudgeRequest."""
    if "prompt" not in rec:
        raise JudgerlError(f"{where}: missing field 'prompt'")
    if isinstance(rec["prompt"], str) and not rec["prompt"].strip():
        raise JudgerlError(f"{where}: empty prompt text")
    if "responses" in rec:
        responses = rec["responses"]
    elif "response" in rec:
        responses = [rec["response"]]
    elif "chosen" in rec and "rejected" in rec:
        responses = [rec["chosen"], rec["rejected"]]
    else:
        raise JudgerlError(f"{where}: missing field 'response' (or 'responses', or 'chosen'/'rejected')")
    if not isinstance(responses, list) or not all(isinstance(r, str) for r in responses):
        raise JudgerlError(f"{where}: responses must be strings")
    if any(not r.strip() for r in responses):
        raise JudgerlError(f"{where}: empty response text")
    want = 1 if fmt == "pointwise" else 2
    if len(responses) != want:
        raise JudgerlError(f"{where}: a {fmt} judge needs {want} response(s), got {len(responses)}")
    try:
        return JudgeRequest(prompt=rec["prompt"], responses=responses, rubric=rec.get("rubric"))
    except ValidationError as e:
        raise JudgerlError(format_validation_error(e, where)) from None


def check_model(spec) -> None:
    """Fail fast on an unknown model name for in-process backends (before reading inputs or loading)."""
    if spec.in_process:
        from judgerl.models import resolve

        resolve(spec.model)


def judge_one(judge: str, prompt: str, responses: list[str], run_dir: Path, overrides: list[str]) -> str:
    spec = load_judge_spec(judge, overrides)
    check_model(spec)
    req = request_from_record({"prompt": prompt, "responses": responses}, "command line", spec.format)
    v = RunDir(run_dir).judge(spec, "judge").judge([req])[0]
    print(json.dumps(v.model_dump(), indent=2))
    if not v.valid:
        raise JudgerlError(f"no usable verdict: {no_verdict_reason([v])}")
    return ""


def judge_file(judge: str, input: Path, output: Path, run_dir: Path, overrides: list[str]) -> str:
    spec = load_judge_spec(judge, overrides)
    check_model(spec)
    check_output_file(output, "--output")
    check_output_dir(run_dir, "--run-dir")
    rows = [(n, rec) for n, rec in iter_jsonl(input)]
    if not rows:
        raise JudgerlError(f"{input} holds no records; give a JSONL file with one {{prompt, response}} per line")
    reqs = [request_from_record(rec, f"{input}:{n}", spec.format) for n, rec in rows]
    rd = RunDir(run_dir)
    rd.save_config(spec, "judge.yaml")
    j = rd.judge(spec, "judge")
    verdicts = j.judge(reqs, progress=True, desc=f"judging {input.name}")
    write_jsonl_atomic(output, [{**rec, "verdict": v.model_dump()} for (_, rec), v in zip(rows, verdicts)])
    refused = [n for (n, _), v in zip(rows, verdicts) if (v.error or "").startswith((TOO_LONG, BAD_INPUT))]
    if refused:
        print(f"warning: {len(refused)} record(s) not judged (too long or invalid text; see their verdict.error; "
              f"limits: judge max_prompt_chars, max_response_chars, max_input_tokens), first at {input}:{refused[0]}",
              file=sys.stderr)
    valid = sum(v.valid for v in verdicts)
    if not valid:
        raise JudgerlError(f"no usable verdict in {len(verdicts)} record(s) ({no_verdict_reason(verdicts)}); "
                           f"verdicts written to {output}")
    return (f"{len(verdicts)} judged ({valid} valid, {sum(v.failed for v in verdicts)} failed, "
            f"{len(refused)} refused, {j.backend_calls} backend calls) -> {output}")


def no_verdict_reason(verdicts) -> str:
    """Counts by reason, most common first, e.g. '3 judge call failed (connection error), 1 invalid verdict'."""
    from collections import Counter

    def why(v):
        if v.error:
            return v.error.split(":")[0] if v.error.startswith((TOO_LONG, BAD_INPUT, SKIPPED)) else \
                "judge call failed: " + redact(v.error)[:120]
        return "invalid verdict"

    return ", ".join(f"{n} {r}" for r, n in Counter(why(v) for v in verdicts).most_common(3))
