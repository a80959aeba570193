"""`judgerl serve` in front of a llama.cpp-served judge (openai backend): OpenRLHF request == train-policy reward."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from judge_testdata import SHORT_POINTWISE

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_openrlhf_request_through_llama_judge(llama_server, tmp_path):
    from judgerl.judges import Judge, JudgeSpec
    from judgerl.serve import RewardService, ServeConfig
    from judgerl.serve.app import server_thread
    from judgerl.training.rewards import JudgeRewardConfig, make_reward

    (tmp_path / "t.txt").write_text(SHORT_POINTWISE)
    spec = JudgeSpec(name="llama", backend="openai", model="smollm2-135m-instruct", base_urls=[llama_server],
                     template=str(tmp_path / "t.txt"), timeout_s=180, max_retries=1, concurrency=2,
                     sampling={"max_new_tokens": 6}, extra_body={"grammar": 'root ::= "Score: " [0-9]'})
    prompts = ["Capital of France?", "Name a prime number."]
    responses = ["Paris.", "Nine, which is prime."]
    service = RewardService(ServeConfig(judge=spec, run_dir=str(tmp_path / "serve"), port=0))
    with server_thread(service) as url:
        r = httpx.post(url + "/get_reward", json={"query": [p + c for p, c in zip(prompts, responses)],
                                                  "prompts": prompts, "labels": [None, None]}, timeout=600)
    assert r.status_code == 200, r.text
    body = r.json()
    twin = Judge(spec, cache=tmp_path / "twin.sqlite", ledger=tmp_path / "twin-ledger.sqlite")
    reward = make_reward(twin, JudgeRewardConfig(), 1)
    expected = asyncio.run(reward([[{"role": "user", "content": p}] for p in prompts],
                                  [[{"role": "assistant", "content": c}] for c in responses]))
    assert None not in expected
    # llama-cpp-python re-evaluates only the tokens after the longest prefix shared with the request before, so the
    # same request's digit logprobs depend on what came before it (another batch split of the quantised matmuls):
    # the serve call and its twin differed by 0.032 on the 0-9 scale in one CI run (other tests' requests first).
    # A wrong route (another prompt, a lost group, a failure score) is off by far more.
    assert body["rewards"] == pytest.approx(expected, abs=0.1)
    assert body["extra_logs"]["judge_failed"] == [0.0, 0.0]
    assert service.judge.ledger.summary("serve")["backend_calls"] == 2
