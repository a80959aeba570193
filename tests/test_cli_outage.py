"""Issue 26, CLI: a run without a usable verdict exits non-zero with one line; a judge that is down costs a
bounded number of calls per stage (fake OpenAI-compatible servers from test_bad_inputs: fault injection)."""

from __future__ import annotations

import json

from test_bad_inputs import FakeJudgeServer, completion, run_cli, served_annotate, ws  # noqa: F401 (fixture)


def judge_file_args(ws, url, rows):
    return ["judge", "--judge", ws.text("j.yaml", f"backend: openai\nmodel: m\nbase_urls: ['{url}']\nmax_retries: 0\n"
                                                  "logprobs: false\ntimeout_s: 5\nconcurrency: 2\n"),
            "--input", ws.jsonl("in.jsonl", rows), "--output", ws.root / "out.jsonl", "--run-dir", ws.root / "run"]


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_judge_file_with_every_call_failing_exits_2_after_a_bounded_number_of_calls(ws):
    server = FakeJudgeServer(lambda body: (401, b'{"error": {"message": "bad key"}}'))
    rows = [{"prompt": f"Say hi {k}.", "response": "Hi!"} for k in range(40)]
    try:
        code, out, err = run_cli(judge_file_args(ws, server.url, rows))
    finally:
        server.close()
    line = one_error_line(err)
    assert code == 2 and line.startswith("error: no usable verdict in 40 record(s)") and "401" in line
    assert server.calls == 16  # 2 chunks of concurrency x 4, then the outage breaker skips the other 24
    written = [json.loads(x) for x in (ws.root / "out.jsonl").read_text().splitlines()]
    assert len(written) == 40 and sum(r["verdict"]["error"].startswith("skipped") for r in written) == 24


def test_judge_file_with_only_garbage_exits_2(ws):
    server = FakeJudgeServer(lambda body: (200, completion("I like both.")))
    try:
        code, out, err = run_cli(judge_file_args(ws, server.url, [{"prompt": "Say hi.", "response": "Hi!"}] * 2))
    finally:
        server.close()
    assert code == 2 and "2 invalid verdict" in one_error_line(err)


def test_judge_one_invalid_exits_2_and_too_long_is_refused_with_a_warning(ws):
    server = FakeJudgeServer(lambda body: (200, completion("Score: 7")))
    try:
        args = judge_file_args(ws, server.url, [{"prompt": "Say hi.", "response": "Hi!"},
                                                {"prompt": "Say hi.", "response": "x" * 40_000}])
        code, out, err = run_cli(args)
        one = run_cli(["judge", "--judge", args[2], "--prompt", "hi", "--response", "y" * 40_000, "--run-dir",
                       ws.root / "run1"])
    finally:
        server.close()
    assert code == 0 and "1 refused" in out and "not judged (too long or invalid text" in err
    assert server.calls == 1
    assert one[0] == 2 and "too_long" in one_error_line(one[2])


def test_annotate_outage_stops_the_run_after_outage_batches(ws):
    server = FakeJudgeServer(lambda body: (503, b'{"error": {"message": "down"}}'))
    items = [{"id": f"i{k}", "prompt": f"Say hi {k}.", "responses": ["Hi!", "Hello."]} for k in range(20)]
    try:
        args = served_annotate(ws, server.url, "kinds: [pointwise, pairwise]\nretries: 3\nbatch_size: 8\n", items)
        code, out, err = run_cli(args)
    finally:
        server.close()
    line = one_error_line(err)
    assert code == 2 and "annotate stage pointwise stopped: every judge call of 2 batches in a row failed" in line
    assert "http 503" in line and "re-run" in line
    assert server.calls == 16  # 2 batches of 8, not 40 units x 4 attempts, and pairwise never started
