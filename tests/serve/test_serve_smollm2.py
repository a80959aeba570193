"""`judgerl serve` with the real SmolLM2 judge on 127.0.0.1: protocol, batching, cache, errors, groups."""

from __future__ import annotations

import asyncio
import sqlite3

import httpx
import pytest

from serve_helpers import served, smollm2_spec

pytestmark = pytest.mark.slow

PROMPTS = ["What is the capital of France?", "Give one tip for sleeping better.", "Name a prime number.",
           "Say hello in Spanish."]
RESPONSES = ["Paris is the capital of France.", "Keep a regular bedtime and avoid screens late.", "Seven.",
             "Bonjour!"]


def chat(p):
    return [{"role": "user", "content": p}]


def done(r):
    return [{"role": "assistant", "content": r}]


def trl_reward(twin, prompts, responses, num_generations=1, cfg=None):
    """train-policy's reward function on the same inputs, called the way TRL calls it."""
    from judgerl.training.rewards import JudgeRewardConfig, make_reward

    fn = make_reward(twin, cfg or JudgeRewardConfig(), num_generations)
    return asyncio.run(fn([chat(p) for p in prompts], [done(r) for r in responses]))


def ledger(service) -> list[tuple]:
    with sqlite3.connect(service.judge.ledger.path) as c:
        return list(c.execute("SELECT id, ts, cached, key FROM calls WHERE stage = 'serve' ORDER BY id"))


@pytest.fixture(scope="module")
def point_server(smollm2, short_templates, tmp_path_factory):
    from judgerl.serve.app import server_thread

    service, twin = served(smollm2_spec(short_templates["pointwise"]), tmp_path_factory.mktemp("point"), smollm2,
                           max_wait_ms=200, group_size=2, max_items_per_request=64)
    with server_thread(service) as url:
        yield url, service, twin


def test_openrlhf_requests_equal_train_policy_reward(point_server):
    url, service, twin = point_server
    # OpenRLHF 0.11: one sample per request, query = prompt + response decoded with special tokens
    single = []
    for p, r in zip(PROMPTS, RESPONSES):
        resp = httpx.post(url + "/get_reward", json={"query": [p + r + "<|im_end|>"], "prompts": [p], "labels": [None]},
                          timeout=300)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert set(body) == {"rewards", "scores", "extra_logs"} and body["rewards"] == body["scores"]
        assert body["extra_logs"]["judge_failed"] == [0.0] and body["extra_logs"]["judge_valid"] == [1.0]
        single.append(body["rewards"][0])
    expected = [trl_reward(twin, [p], [r])[0] for p, r in zip(PROMPTS, RESPONSES)]
    # the server batches requests, the twin scores one at a time: padding changes float32 summation order (up to
    # ~1e-5 on an Intel host without bf16; 1e-6 held on an AMD one)
    assert single == pytest.approx(expected, abs=1e-4)
    assert all(0.0 <= x <= 9.0 for x in single) and len(set(single)) > 1  # real, differing scores
    # older OpenRLHF sends a batch in one request: same numbers as the reward callable on that batch
    batch = httpx.post(url + "/get_reward", json={"query": [p + r for p, r in zip(PROMPTS, RESPONSES)],
                                                  "prompts": PROMPTS}, timeout=300).json()
    assert batch["rewards"] == pytest.approx(trl_reward(twin, PROMPTS, RESPONSES), abs=1e-4)


def test_sixteen_concurrent_clients_share_model_calls(point_server):
    url, service, twin = point_server
    before, batches_before = ledger(service), service.batcher.batches
    prompts = [f"Name colour number {i}." for i in range(16)]
    responses = [f"Colour {i} is a shade of blue." for i in range(16)]

    async def one(i):
        async with httpx.AsyncClient(base_url=url, timeout=300) as c:
            return await c.post("/v1/rewards", json={"items": [{"prompt": prompts[i], "response": responses[i]}]})

    async def all_clients():
        return await asyncio.gather(*[one(i) for i in range(16)])

    replies = asyncio.run(all_clients())
    assert [r.status_code for r in replies] == [200] * 16
    new = ledger(service)[len(before):]
    assert len(new) == 16 and not any(cached for _, _, cached, _ in new)
    model_calls = len({ts for _, ts, _, _ in new})  # the ledger writes one timestamp per backend batch
    assert model_calls < 16, f"{model_calls} model calls for 16 requests: not batched"
    assert service.batcher.batches - batches_before < 16
    got = [r.json()["rewards"][0] for r in replies]
    assert got == pytest.approx(trl_reward(twin, prompts, responses), abs=1e-4)  # batch padding differs slightly


def test_repeat_request_is_served_from_cache(point_server):
    url, service, _ = point_server
    payload = {"items": [{"prompt": p, "response": r + " (cache test)"} for p, r in zip(PROMPTS, RESPONSES)]}
    first = httpx.post(url + "/v1/rewards", json=payload, timeout=300).json()
    n_before = len(ledger(service))
    second = httpx.post(url + "/v1/rewards", json=payload, timeout=300).json()
    assert [it["verdict"]["cached"] for it in first["items"]] == [False] * 4
    assert [it["verdict"]["cached"] for it in second["items"]] == [True] * 4
    assert second["rewards"] == first["rewards"]
    rows = ledger(service)[n_before:]
    assert len(rows) == 4 and all(cached for _, _, cached, _ in rows)


@pytest.mark.parametrize("path,payload,status,needle", [
    ("/v1/rewards", b"{not json", 422, "JSON"),
    ("/v1/rewards", {}, 422, "items"),
    ("/v1/rewards", {"items": []}, 422, "items"),
    ("/v1/rewards", {"items": [{"prompt": "hi"}]}, 422, "exactly one of `response` or `responses`"),
    ("/v1/rewards", {"items": [{"prompt": "hi", "response": 3}]}, 422, "response"),
    ("/v1/rewards", {"items": [{"prompt": "  ", "response": "x"}]}, 422, "empty prompt"),
    ("/v1/rewards", {"items": [{"prompt": "hi", "response": "x", "bogus": 1}]}, 422, "bogus"),
    ("/v1/rewards", {"items": [{"prompt": "hi", "response": "x"}] * 65}, 413, "max_items_per_request"),
    ("/v1/rewards", {"items": [{"prompt": "hi", "responses": ["a", "b", "c"]}]}, 422, "group_size is 2"),
    ("/get_reward", {"query": ["hi there"]}, 422, "prompts"),
    ("/get_reward", {"query": "hi", "prompts": ["hi"]}, 422, "query"),
    ("/nope", {}, 404, "Not Found"),
])
def test_bad_payloads_get_4xx_with_a_message(point_server, path, payload, status, needle):
    url, service, _ = point_server
    kw = {"content": payload, "headers": {"content-type": "application/json"}} if isinstance(payload, bytes) \
        else {"json": payload}
    r = httpx.post(url + path, timeout=60, **kw)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and needle in body["error"] and "\n" not in body["error"]


def test_wrong_method_is_a_json_405(point_server):
    r = httpx.get(point_server[0] + "/v1/rewards", timeout=60)
    assert r.status_code == 405 and "error" in r.json()


def test_group_split_across_requests_is_refused(point_server):
    url, service, _ = point_server
    first = [{"prompt": "Name a fruit.", "response": "Apple.", "group": "split-g1"},
             {"prompt": "Name a fruit.", "response": "Banana, a yellow fruit.", "group": "split-g1"}]
    r1 = httpx.post(url + "/v1/rewards", json={"items": first}, timeout=300)
    assert r1.status_code == 200 and len(r1.json()["rewards"]) == 2
    n = len(ledger(service))
    r2 = httpx.post(url + "/v1/rewards", json={"items": [{"prompt": "Name a fruit.", "response": "Cherry.",
                                                          "group": "split-g1"}]}, timeout=300)
    assert r2.status_code == 409 and "split-g1" in r2.json()["error"] and "whole" in r2.json()["error"]
    assert len(ledger(service)) == n  # refused before any judging
    mixed = [{"prompt": "A", "response": "x", "group": "mixed"}, {"prompt": "B", "response": "y", "group": "mixed"}]
    r3 = httpx.post(url + "/v1/rewards", json={"items": mixed}, timeout=60)
    assert r3.status_code == 422 and "different prompts" in r3.json()["error"]


def test_health_and_metrics(point_server):
    url, service, _ = point_server
    httpx.post(url + "/v1/rewards", json={"items": [{"prompt": "Count to three.", "response": "1 2 3"}]}, timeout=300)
    h = httpx.get(url + "/health", timeout=60)
    assert h.status_code == 200 and h.json()["status"] == "ok"
    assert h.json()["judge"]["fingerprint"] == service.judge.fingerprint
    m = httpx.get(url + "/metrics", timeout=60).json()
    assert m["requests"]["/v1/rewards"]["200"] >= 1 and m["verdicts_total"] >= 1 and m["tokens_in_total"] > 0
    assert m["latency_s"]["p50"] > 0 and m["batches_total"] >= 1
    text = httpx.get(url + "/metrics?format=prometheus", timeout=60).text
    assert 'judgerl_serve_requests_total{endpoint="/v1/rewards",status="200"}' in text


@pytest.fixture(scope="module")
def pair_server(smollm2, short_templates, tmp_path_factory):
    from judgerl.serve.app import server_thread

    spec = smollm2_spec(short_templates["pairwise"], "pairwise")
    service, twin = served(spec, tmp_path_factory.mktemp("pair"), smollm2, group_size=3,
                           reward={"both_orders": True})
    with server_thread(service) as url:
        yield url, service, twin


def test_pairwise_win_rates_equal_train_policy_reward(pair_server):
    from judgerl.training.rewards import JudgeRewardConfig

    url, service, twin = pair_server
    g1 = ["Paris.", "The capital of France is Paris.", "London."]
    g2 = ["Water boils at 100 C at sea level.", "Cold.", "It depends on pressure; 100 C at 1 atm."]
    items = [{"prompt": PROMPTS[0], "responses": g1}] + \
        [{"prompt": "When does water boil?", "response": r, "group": "boil"} for r in g2]
    r = httpx.post(url + "/v1/rewards", json={"items": items}, timeout=600)
    assert r.status_code == 200, r.text
    body = r.json()
    expected = trl_reward(twin, [PROMPTS[0]] * 3 + ["When does water boil?"] * 3, g1 + g2, 3,
                          JudgeRewardConfig(both_orders=True))
    assert body["rewards"] == pytest.approx(expected, abs=1e-6)
    assert sum(body["rewards"][:3]) == pytest.approx(1.5, abs=1e-6)  # win rates of a group sum to G/2
    assert [len(g["comparisons"]) for g in body["groups"]] == [6, 6]  # 3 pairs x both orders
    assert {(c["first"], c["second"]) for c in body["groups"][0]["comparisons"]} == \
        {(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)}
    lone = httpx.post(url + "/v1/rewards", json={"items": [{"prompt": "x", "response": "y"}]}, timeout=60)
    assert lone.status_code == 422 and "at least 2" in lone.json()["error"]


def test_requests_over_max_in_flight_get_503(smollm2, short_templates, tmp_path):
    from judgerl.serve.app import server_thread

    service, _ = served(smollm2_spec(short_templates["pointwise"]), tmp_path, smollm2, max_in_flight=1,
                        max_wait_ms=300)

    async def three(url):
        async def one(i):
            async with httpx.AsyncClient(base_url=url, timeout=300) as c:
                return await c.post("/v1/rewards", json={"items": [{"prompt": f"Count to {i}.", "response": "1 2"}]})
        return await asyncio.gather(*[one(i) for i in range(3)])

    with server_thread(service) as url:
        replies = asyncio.run(three(url))
        metrics = httpx.get(url + "/metrics", timeout=60).json()
    codes = sorted(r.status_code for r in replies)
    assert codes[0] == 200 and 503 in codes, codes
    busy = [r for r in replies if r.status_code == 503]
    assert all("max_in_flight" in r.json()["error"] and r.headers["retry-after"] for r in busy)
    assert metrics["requests"]["/v1/rewards"]["503"] == len(busy)
