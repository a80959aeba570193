"""The reward server under faults and bad input, with a fault-injecting judge backend (fake_judge.py).

The main path (real SmolLM2 judge) is in test_serve_smollm2.py / test_serve_hostile.py; here the
backend raises, hangs, talks garbage or is slow on cue, so each failure is shown to stay per item.
"""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import pytest

from fake_judge import cue_server


def post(url, path="/v1/rewards", timeout=60, **kw):
    return httpx.post(url + path, timeout=timeout, **kw)


def items(*responses, prompt="Say hi."):
    return {"items": [{"prompt": prompt, "response": r} for r in responses]}


async def concurrently(url, payloads, headers=None):
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as c:
        return await asyncio.gather(*(c.post("/v1/rewards", json=p) for p in payloads))


def test_a_raising_item_fails_alone_in_its_micro_batch(tmp_path):
    """Two clients' requests share one micro-batch; the backend raises on one item: only it fails."""
    with cue_server(tmp_path, max_wait_ms=300) as (url, service, backend):
        a, b = asyncio.run(concurrently(url, [items("Hi!", "BOOM"), items("Hello there.")]))
        assert service.batcher.batches == 1  # they were judged together
    assert a.status_code == b.status_code == 200
    assert a.json()["rewards"] == [7.0, None] and b.json()["rewards"] == [7.0]
    bad = a.json()["items"][1]
    assert bad["status"] == "failed" and bad["verdict"]["error"].startswith("judge call raised: RuntimeError")
    assert a.json()["failures"] == [{"index": 1, "group": None, "status": "failed", "imputed": False,
                                     "error": bad["verdict"]["error"]}]


def test_lone_surrogate_is_a_per_item_bad_input(tmp_path):
    raw = b'{"items": [{"prompt": "Say hi.", "response": "\\ud800"}, {"prompt": "Say hi.", "response": "Hi!"}]}'
    with cue_server(tmp_path) as (url, service, backend):
        r = post(url, content=raw, headers={"content-type": "application/json"})
        m = httpx.get(url + "/metrics", timeout=10).json()
    assert r.status_code == 200, r.text
    first, second = r.json()["items"]
    assert first["status"] == "bad_input" and first["reward"] is None and "lone surrogate" in first["verdict"]["error"]
    assert second["status"] == "ok" and second["reward"] == 7.0
    assert [q.responses[0] for q in backend.seen] == ["Hi!"]  # never sent to the backend
    assert m["judge_failures_total"] == 1


def test_too_long_item_is_refused_alone(tmp_path):
    from judgerl.judges import JudgeSpec

    assert JudgeSpec().max_response_chars == 32000
    with cue_server(tmp_path) as (url, service, backend):
        r = post(url, json=items("x" * 32001, "Hi!"))
    assert r.status_code == 200
    first, second = r.json()["items"]
    assert first["status"] == "too_long" and "32,001 characters; the limit is 32,000 (max_response_chars)" in \
        first["verdict"]["error"]
    assert second["status"] == "ok" and len(backend.seen) == 1


def test_garbage_verdicts_are_never_numbers(tmp_path):
    with cue_server(tmp_path) as (url, service, backend):
        r = post(url, json=items("GARBAGE one", "GARBAGE two", "fine"))
        o = post(url, "/get_reward", json={"query": ["p GARBAGE"], "prompts": ["p"], "labels": [None]})
        m = httpx.get(url + "/metrics", timeout=10).json()
    body = r.json()
    assert body["rewards"] == [None, None, 7.0]
    assert [it["status"] for it in body["items"]] == ["invalid", "invalid", "ok"]
    assert all(it["verdict"]["label"] is None and it["verdict"]["expected"] is None for it in body["items"][:2])
    assert o.json()["rewards"] == [0.0] and o.json()["extra_logs"]["judge_failed"] == [1.0]
    assert m["invalid_verdicts_total"] == 3


def test_hung_backend_fails_its_batch_per_item_and_the_server_goes_on(tmp_path):
    with cue_server(tmp_path, batch_timeout_s=0.5) as (url, service, backend):
        hung = post(url, json=items("HANG", "fine"))
        after = post(url, json=items("fine again"))
        m = httpx.get(url + "/metrics", timeout=10).json()
    assert hung.status_code == 200
    assert [it["status"] for it in hung.json()["items"]] == ["failed", "failed"]
    assert "judge timed out" in hung.json()["items"][0]["verdict"]["error"]
    assert after.json()["rewards"] == [7.0]
    assert m["judge_failures_total"] == 2 and m["unscored_items_total"] == 2


def test_request_timeout_answers_504(tmp_path):
    with cue_server(tmp_path, request_timeout_s=0.3) as (url, service, backend):
        backend.slow_s = 1.5
        r = post(url, json=items("SLOW"))
    assert r.status_code == 504 and r.headers["retry-after"] and "request_timeout_s" in r.json()["error"]


def test_queue_bound_answers_429_with_retry_after(tmp_path):
    with cue_server(tmp_path, max_queued_items=2, max_wait_ms=0) as (url, service, backend):
        backend.slow_s = 1.0
        replies = asyncio.run(concurrently(url, [items("SLOW a", "b"), items("c"), items("d")]))
    codes = sorted(r.status_code for r in replies)
    assert codes.count(200) >= 1 and 429 in codes, codes
    busy = [r for r in replies if r.status_code == 429]
    assert all(r.headers["retry-after"] and "max_queued_items" in r.json()["error"] for r in busy)


def test_body_cap_refuses_before_parsing(tmp_path):
    big = json.dumps(items("y" * 40000)).encode()
    with cue_server(tmp_path, max_body_mb=0.02) as (url, service, backend):
        sized = post(url, content=big, headers={"content-type": "application/json"})
        chunked = post(url, content=iter([big[:20000], big[20000:]]), headers={"content-type": "application/json"})
        ok = post(url, json=items("small"))
        m = httpx.get(url + "/metrics", timeout=10).json()
    for r in (sized, chunked):
        assert r.status_code == 413 and "max_body_mb" in r.json()["error"]
    assert ok.status_code == 200 and backend.calls == 1
    assert m["requests"]["/v1/rewards"]["413"] == 2


@pytest.mark.parametrize("payload,needle", [
    ({"items": [{"prompt": [{"foo": "bar"}], "response": "x"}]}, "role"),
    ({"items": [{"prompt": [{"role": "user", "content": None}], "response": "x"}]}, "content"),
    ({"items": [{"prompt": [{"role": "wizard", "content": "hi"}], "response": "x"}]}, "role"),
    ({"items": [{"prompt": [{"role": "system", "content": "be nice"}], "response": "x"}]}, "user message"),
    ({"items": [{"prompt": [], "response": "x"}]}, "empty message list"),
    ({"items": [{"prompt": "hi", "response": [{"role": "assistant"}]}]}, "content"),
])
def test_malformed_messages_are_refused(tmp_path, payload, needle):
    with cue_server(tmp_path) as (url, service, backend):
        r = post(url, json=payload)
    assert r.status_code == 422 and needle in r.json()["error"] and backend.calls == 0


def test_empty_openrlhf_shard_gets_empty_lists(tmp_path):
    with cue_server(tmp_path) as (url, service, backend):
        r = post(url, "/get_reward", json={"query": [], "prompts": [], "labels": []})
    assert r.status_code == 200
    assert r.json() == {"rewards": [], "scores": [], "extra_logs": {"judge_failed": [], "judge_valid": [],
                                                                   "judge_cached": [], "judge_too_long": []}}
    assert backend.calls == 0


def test_api_key_on_every_route_but_health(tmp_path):
    key = "k-" + "s3cret" * 4
    with cue_server(tmp_path, api_key=key) as (url, service, backend):
        none = post(url, json=items("Hi!"))
        wrong = post(url, json=items("Hi!"), headers={"Authorization": "Bearer " + key[:-1] + "X"})
        bearer = post(url, json=items("Hi!"), headers={"Authorization": "Bearer " + key})
        basic = post(url, "/get_reward", json={"query": ["p Hi"], "prompts": ["p"]}, auth=("judgerl", key))
        health = httpx.get(url + "/health", timeout=10)
        metrics = httpx.get(url + "/metrics", timeout=10)
        judge = httpx.get(url + "/v1/judge", timeout=10, headers={"Authorization": "Bearer " + key})
    assert none.status_code == wrong.status_code == metrics.status_code == 401
    assert none.headers["www-authenticate"] == "Bearer" and "API key" in none.json()["error"]
    assert bearer.status_code == 200 and bearer.json()["rewards"] == [7.0]
    assert basic.status_code == 200 and basic.json()["rewards"] == [7.0]
    assert health.status_code == 200 and health.json() == {"status": "ok"}  # nothing about the judge
    assert judge.status_code == 200 and backend.calls == 2
    assert key not in none.text + wrong.text


def test_presented_key_forms():
    from judgerl.serve.guard import Guard, presented_key

    assert presented_key(b"Bearer abc") == b"abc"
    assert presented_key(b"Basic " + base64.b64encode(b"user:abc")) == b"abc"
    assert presented_key(b"Basic !!!") is None and presented_key(b"Token abc") is None
    g = Guard(None, "abc", 10)
    assert g.authorized({b"authorization": b"Bearer abc"})
    assert not g.authorized({b"authorization": b"Bearer abcd"}) and not g.authorized({})


def test_non_loopback_bind_needs_a_key_or_an_explicit_flag():
    from judgerl import JudgerlError
    from judgerl.serve.guard import api_key_from, check_bind

    with pytest.raises(JudgerlError, match="JUDGERL_API_KEY"):
        check_bind("0.0.0.0", None, False)
    check_bind("0.0.0.0", "k", False)
    check_bind("0.0.0.0", None, True)
    check_bind("127.0.0.1", None, False)
    with pytest.raises(JudgerlError, match="empty"):
        api_key_from("  ")


def test_metrics_percentiles_with_few_samples():
    from judgerl.serve.metrics import Metrics

    m = Metrics()
    for s in (1.0, 3.0):
        m.request("/v1/rewards", 200, s, 1)
    lat = m.snapshot({})["latency_s"]
    assert (lat["p50"], lat["p95"], lat["p99"], lat["max"]) == (1.0, 3.0, 3.0, 3.0)
    for s in range(3, 101):
        m.request("/v1/rewards", 200, float(s), 1)
    lat = m.snapshot({})["latency_s"]
    assert lat["n"] == 100 and lat["p50"] == 50.0 and lat["p99"] == 99.0
