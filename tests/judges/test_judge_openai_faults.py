"""openai backend under faults, against a small fake OpenAI-compatible server on 127.0.0.1.

The behaviour is chosen by the first path segment of the base URL (http://127.0.0.1:PORT/<mode>/v1):
500s, hangs past the timeout, garbage text, dropped connections, 400, 429, fail-once-then-succeed.
The fake also records request bodies and headers, so the request shape (prefill, reasoning_effort,
API key from the env var) is checked where no real server can show it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from judgerl.judges import Judge, JudgeRequest, JudgeSpec
from judgerl.judges.cache import Ledger


def completion(content: str, logprob_tokens: list[tuple[str, dict[str, float]]] | None = None, **msg_extra):
    choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content, **msg_extra}}
    if logprob_tokens is not None:
        choice["logprobs"] = {"content": [
            {"token": tok, "logprob": alts.get(tok, -0.1), "bytes": None,
             "top_logprobs": [{"token": t, "logprob": lp, "bytes": None} for t, lp in alts.items()]}
            for tok, alts in logprob_tokens]}
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "fake", "choices": [choice],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}}


SCORE_7 = completion("Score: 7", [("Score", {"Score": -0.01}), (":", {":": -0.01}), (" ", {" ": -0.01}),
                                  ("7", {"7": -0.2231435513, "3": -1.6094379124, "x": -3.0})])  # p7 .8, p3 .2


class FakeServer:
    def __init__(self):
        self.hits: dict[str, int] = {}
        self.requests: list[tuple[str, dict, dict]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def send_json(self, code: int, obj, headers: dict | None = None):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(n) or b"{}")
                mode = self.path.strip("/").split("/")[0]
                with outer.lock:
                    outer.hits[mode] = outer.hits.get(mode, 0) + 1
                    hit = outer.hits[mode]
                    outer.requests.append((mode, body, {k.lower(): v for k, v in self.headers.items()}))
                kind = mode.split("-")[0]
                if kind == "e500":
                    self.send_json(500, {"error": {"message": "boom", "type": "server_error"}})
                elif kind == "e400":
                    self.send_json(400, {"error": {"message": "bad model", "type": "invalid_request_error"}})
                elif kind == "e429":
                    self.send_json(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
                elif kind == "hang":
                    time.sleep(3)
                    self.close_connection = True
                elif kind == "drop":
                    self.close_connection = True  # no response at all
                elif kind == "garbage":
                    self.send_json(200, completion("I like turtles. The candidate said Score: 9 though."))
                elif kind == "notjson":
                    body = b"<html>oops</html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif kind == "nomsg":  # 200 with a JSON body of the wrong shape
                    self.send_json(200, {"id": "x", "object": "chat.completion", "choices": [{"index": 0}]})
                elif kind == "flaky":
                    if hit == 1:
                        self.send_json(503, {"error": {"message": "warming up"}})
                    else:
                        self.send_json(200, SCORE_7)
                elif kind == "prefill":  # a vLLM-like server honouring continue_final_message
                    last = body["messages"][-1]
                    ok = (body.get("continue_final_message") and last["role"] == "assistant"
                          and last["content"].endswith("Score:"))
                    self.send_json(200, completion(" 4", [(" 4", {" 4": -0.5, " 5": -1.0, "4": -2.0})]) if ok
                                   else completion("no prefill seen"))
                elif kind == "think":
                    self.send_json(200, completion("<think>short check</think>\nScore: 5",
                                                   reasoning_content="field reasoning"))
                else:
                    self.send_json(200, SCORE_7)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}/v1"


@pytest.fixture(scope="module")
def fake():
    srv = FakeServer()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def spec_for(fake, path: str, **kw) -> JudgeSpec:
    base = dict(backend="openai", model="fake", timeout_s=1.0, max_retries=1, concurrency=4,
                sampling={"max_new_tokens": 8}, cache=False)
    base.update(kw)
    return JudgeSpec(base_urls=[fake.url(path)], **base)


REQS = [JudgeRequest(prompt="Capital of France?", responses=["Paris."]),
        JudgeRequest(prompt="2+2?", responses=["4"])]


def test_ok_reads_expected_score_from_logprobs(fake):
    v = Judge(spec_for(fake, "ok")).judge(REQS[:1])[0]
    assert v.valid and v.label == 7 and v.error is None and v.retries == 0
    assert v.probs[7] == pytest.approx(0.8) and v.probs[3] == pytest.approx(0.2)
    assert v.expected == pytest.approx(0.8 * 7 + 0.2 * 3)
    assert (v.tokens_in, v.tokens_out) == (11, 3)


def test_500s_become_invalid_after_retries(fake, tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    vs = Judge(spec_for(fake, "e500-a", max_retries=2), ledger=ledger).judge(REQS)
    assert len(vs) == 2
    for v in vs:
        assert not v.valid and v.label is None and v.retries == 2
        assert "http 500" in v.error and "3 attempts" in v.error
    assert fake.hits["e500-a"] == 6
    s = ledger.summary()
    assert s["failures"] == 2 and s["retries"] == 4 and s["invalid"] == 2


def test_timeout_becomes_invalid(fake):
    v = Judge(spec_for(fake, "hang-a")).judge(REQS[:1])[0]
    assert not v.valid and v.retries == 1 and v.error.startswith("timeout after 1s")
    assert fake.hits["hang-a"] == 2


def test_dropped_connection_becomes_invalid(fake):
    v = Judge(spec_for(fake, "drop-a")).judge(REQS[:1])[0]
    assert not v.valid and v.retries == 1 and v.error.startswith("connection error")


def test_garbage_text_is_invalid_not_failed_and_quoted_score_ignored(fake):
    v = Judge(spec_for(fake, "garbage-a")).judge(REQS[:1])[0]
    assert not v.valid and v.label is None and v.expected is None
    assert v.error is None and v.retries == 0 and "turtles" in v.raw


def test_non_json_body_is_invalid_without_retry(fake):
    v = Judge(spec_for(fake, "notjson-a")).judge(REQS[:1])[0]
    assert not v.valid and v.error and v.retries == 0


def test_400_is_not_retried_429_is(fake):
    v = Judge(spec_for(fake, "e400-a", max_retries=2)).judge(REQS[:1])[0]
    assert not v.valid and v.retries == 0 and "http 400" in v.error and fake.hits["e400-a"] == 1
    w = Judge(spec_for(fake, "e429-a", max_retries=1)).judge(REQS[:1])[0]
    assert not w.valid and w.retries == 1 and "http 429" in w.error and fake.hits["e429-a"] == 2


def test_fail_once_then_succeed(fake):
    v = Judge(spec_for(fake, "flaky-a", max_retries=2)).judge(REQS[:1])[0]
    assert v.valid and v.label == 7 and v.retries == 1 and v.error is None


def test_failures_are_not_cached_and_are_retried_next_run(fake, tmp_path):
    spec = spec_for(fake, "e500-b", max_retries=0, cache=True)
    j = Judge(spec, cache=tmp_path / "c.sqlite", ledger=tmp_path / "l.sqlite")
    j.judge(REQS[:1])
    j.judge(REQS[:1])
    assert fake.hits["e500-b"] == 2 and len(j.cache) == 0


def test_retry_moves_to_next_base_url(fake):
    spec = JudgeSpec(backend="openai", model="fake", timeout_s=1.0, max_retries=1, cache=False,
                     base_urls=[fake.url("e500-c"), fake.url("ok-c")])
    vs = Judge(spec).judge(REQS)
    assert all(v.valid and v.label == 7 for v in vs)
    assert fake.hits["e500-c"] == 1 and fake.hits["ok-c"] == 2 and sum(v.retries for v in vs) == 1


def test_request_shape_key_effort_prefill(fake, monkeypatch):
    monkeypatch.setenv("JUDGERL_TEST_KEY", "sk-test-123")
    spec = spec_for(fake, "prefill-a", api_key_env="JUDGERL_TEST_KEY", reasoning_effort="low", prefill=True,
                    extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    v = Judge(spec).judge(REQS[:1])[0]
    mode, body, headers = [r for r in fake.requests if r[0] == "prefill-a"][-1]
    assert headers.get("authorization") == "Bearer sk-test-123"
    assert body["reasoning_effort"] == "low" and body["logprobs"] is True and body["top_logprobs"] == 20
    assert body["chat_template_kwargs"] == {"enable_thinking": False} and body["add_generation_prompt"] is False
    assert body["messages"][-1] == {"role": "assistant", "content": "Score:"}
    assert v.valid and v.label == 4 and v.raw == "Score: 4"
    # ' 4' and '4' add up: p4 = e^-.5 + e^-2, p5 = e^-1
    import math
    p4, p5 = math.exp(-0.5) + math.exp(-2.0), math.exp(-1.0)
    assert v.expected == pytest.approx((4 * p4 + 5 * p5) / (p4 + p5))


def test_key_env_unset_uses_dummy_and_reasoning_fields(fake, monkeypatch):
    monkeypatch.delenv("JUDGERL_NO_SUCH_KEY", raising=False)
    v = Judge(spec_for(fake, "think-a", api_key_env="JUDGERL_NO_SUCH_KEY", mode="reasoning")).judge(REQS[:1])[0]
    headers = [r for r in fake.requests if r[0] == "think-a"][-1][2]
    assert headers["authorization"].startswith("Bearer ") and "JUDGERL" not in headers["authorization"]
    assert v.valid and v.label == 5 and "field reasoning" in v.reasoning and "short check" in v.reasoning
    assert v.expected is None  # no logprobs sent by this server


def test_generate_failure_and_success(fake):
    j = Judge(spec_for(fake, "e500-d", max_retries=0))
    assert asyncio.run(j.agenerate([[{"role": "user", "content": "hi"}]]))[0].error.startswith("http 500")
    g = asyncio.run(Judge(spec_for(fake, "think-b")).agenerate([[{"role": "user", "content": "hi"}]]))[0]
    assert g.valid and g.raw == "Score: 5" and "short check" in g.reasoning


def test_client_per_event_loop(fake):
    """The same Judge used from several loops (fresh asyncio.run, and run_sync inside a running loop)."""
    j = Judge(spec_for(fake, "ok-loops"))
    assert asyncio.run(j.ajudge(REQS[:1]))[0].valid
    assert asyncio.run(j.ajudge(REQS[1:]))[0].valid

    async def inside_loop():
        return j.judge(REQS[:1])  # run_sync runs it on a new loop in a thread

    assert asyncio.run(inside_loop())[0].valid


def test_reasoning_prefill_second_call(fake):
    v = Judge(spec_for(fake, "prefill-b", mode="reasoning", prefill=True)).judge(REQS[:1])[0]
    bodies = [r[1] for r in fake.requests if r[0] == "prefill-b"]
    assert len(bodies) == 2 and not bodies[0].get("continue_final_message")
    assert bodies[1]["messages"][-1]["content"] == "no prefill seen\nScore:"
    assert v.valid and v.label == 4 and v.raw == "no prefill seen\nScore: 4" and v.tokens_in == 22


class Tok:
    def __init__(self, token, top):
        self.token, self.logprob = token, top.get(token, -0.1)
        self.top_logprobs = [type("Alt", (), {"token": t, "logprob": lp})() for t, lp in top.items()]


def test_verdict_position_tokenisations():
    from judgerl.judges.openai_backend import verdict_distribution

    digits = {"7": -0.5, "3": -1.5, "\n": -2.0}
    vals = list(range(10))
    # SmolLM2: 'Score', ':', ' ', '7'
    a = verdict_distribution([Tok("Score", {}), Tok(":", {}), Tok(" ", {}), Tok("7", digits)], "pointwise", vals)
    # the digit carries the space: ' 7'
    b = verdict_distribution([Tok("Score", {}), Tok(":", {}), Tok(" 7", {" 7": -0.5, " 3": -1.5, "7": -9})],
                             "pointwise", vals)
    # merged ': 7' token; alternatives share the lead ': '
    c = verdict_distribution([Tok("Score", {}), Tok(": 7", {": 7": -0.5, ": 3": -1.5, ":": -0.2})], "pointwise", vals)
    # grammar-forced odd split seen on llama.cpp: 'Sc', 're', ':', ' ', '1'
    d = verdict_distribution([Tok("Sco", {}), Tok("re", {}), Tok(":", {}), Tok(" ", {}), Tok("7", digits)],
                             "pointwise", vals)
    import math
    p7 = math.exp(-0.5) / (math.exp(-0.5) + math.exp(-1.5))
    for probs in (a, c, d):
        assert probs[7] == pytest.approx(p7) and probs[3] == pytest.approx(1 - p7)
    assert b[7] == pytest.approx((math.exp(-0.5) + math.exp(-9)) / (math.exp(-0.5) + math.exp(-9) + math.exp(-1.5)))
    # only the LAST 'Score:' counts (a quoted 'Score: 9' earlier is ignored)
    e = verdict_distribution([Tok("Score: 9", {}), Tok("\n", {}), Tok("Score", {}), Tok(":", {}), Tok(" ", {}),
                              Tok("7", digits)], "pointwise", vals)
    assert e == pytest.approx(a)
    # prefilled prefix not echoed by the server
    f = verdict_distribution([Tok(" ", {}), Tok("7", digits)], "pointwise", vals, prefix_text="Score:")
    assert f == pytest.approx(a)
    # pairwise
    g = verdict_distribution([Tok("Preferred", {}), Tok(":", {}), Tok(" 2", {" 2": -0.1, " 1": -2.4})],
                             "pairwise", [1, 2])
    assert g[1] == pytest.approx(math.exp(-0.1) / (math.exp(-0.1) + math.exp(-2.4)))
    assert verdict_distribution([], "pointwise", vals) is None
    assert verdict_distribution([Tok("no verdict", {})], "pointwise", vals) is None


def test_round_robin_over_base_urls(fake):
    spec = JudgeSpec(backend="openai", model="fake", timeout_s=1.0, max_retries=0, cache=False,
                     base_urls=[fake.url("ok-r1"), fake.url("ok-r2")])
    vs = Judge(spec).judge(REQS * 2)
    assert all(v.valid for v in vs) and fake.hits["ok-r1"] == 2 and fake.hits["ok-r2"] == 2


def test_wrong_shape_response_is_invalid_not_a_crash(fake):
    v = Judge(spec_for(fake, "nomsg-a")).judge(REQS[:1])[0]
    assert not v.valid and v.error.startswith("bad response")
    g = asyncio.run(Judge(spec_for(fake, "nomsg-b")).agenerate([[{"role": "user", "content": "hi"}]]))[0]
    assert not g.valid and g.error.startswith("bad response")
