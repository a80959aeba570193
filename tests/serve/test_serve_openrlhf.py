"""OpenRLHF against `judgerl serve` (real SmolLM2 judge), through OpenRLHF's own HTTP reward client.

The client is `SingleTurnAgentExecutor._fetch_rewards_via_http` from openrlhf/utils/agent.py, vendored
verbatim with its Apache-2.0 licence in openrlhf_remote_rm.py (OpenRLHF commit 3c3be62, 2026-08-13): it
shards a batch over the comma-separated `--reward.remote_url`s with ceil(n / urls) samples each (so a URL
can get an empty shard), POSTs {"query", "prompts", "labels"} with aiohttp (no headers of its own; a URL's
user:password@ becomes HTTP Basic auth), raise_for_status, 5 tries, and returns every shard's answer.
JUDGERL_OPENRLHF_SRC=<checkout>/openrlhf/utils/agent.py runs a checkout's own file instead (a newer one).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import sys
import types

import httpx
import pytest

from serve_helpers import served, smollm2_spec

pytestmark = pytest.mark.slow
KEY = "openrlhf-test-key-0123456789"


def load_openrlhf_agent(path: str):
    """OpenRLHF's agent.py as a module (its one in-package import, the logger, is stubbed)."""
    for name in ("openrlhf", "openrlhf.utils"):
        sys.modules.setdefault(name, types.ModuleType(name))
    logs = types.ModuleType("openrlhf.utils.logging_utils")
    logs.init_logger = logging.getLogger
    sys.modules["openrlhf.utils.logging_utils"] = logs
    spec = importlib.util.spec_from_file_location("openrlhf_agent", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def openrlhf_client():
    """The module holding SingleTurnAgentExecutor: the vendored lines, or JUDGERL_OPENRLHF_SRC's agent.py."""
    if os.environ.get("JUDGERL_OPENRLHF_SRC"):
        return load_openrlhf_agent(os.environ["JUDGERL_OPENRLHF_SRC"])
    import openrlhf_remote_rm

    return openrlhf_remote_rm


def fetch_rewards(urls: list[str], queries, prompts, labels) -> list[dict]:
    """What OpenRLHF's executor does after each generation: one answer per URL (its shard, maybe empty)."""
    executor = openrlhf_client().SingleTurnAgentExecutor(urls)
    return asyncio.run(executor._fetch_rewards_via_http(queries, prompts, labels))


def openrlhf_query(tok, prompt: str, answer: str) -> str:
    """The `query` SingleTurnAgentExecutor.execute sends: the prompt's tokens (add_special_tokens=False) and
    the generated tokens (here: the answer and the end-of-turn token), decoded with skip_special_tokens=False."""
    ids = tok(text=prompt, add_special_tokens=False)["input_ids"]
    ids += tok(text=answer + tok.eos_token, add_special_tokens=False)["input_ids"]
    return tok.decode(ids, skip_special_tokens=False)


@pytest.fixture(scope="module")
def rm_server(smollm2, short_templates, tmp_path_factory):
    from judgerl.serve.app import server_thread

    service, twin = served(smollm2_spec(short_templates["pointwise"]), tmp_path_factory.mktemp("orlhf"), smollm2)
    with server_thread(service, api_key=KEY) as url:
        yield url, service, twin, smollm2[1]


def with_key(url: str) -> str:
    return url.replace("http://", f"http://openrlhf:{KEY}@") + "/get_reward"


def templated(tok, instruction: str) -> str:
    """What OpenRLHF sends as `prompts` with --data.apply_chat_template (SmolLM2's template adds a system prompt)."""
    return tok.apply_chat_template([{"role": "user", "content": instruction}], tokenize=False,
                                   add_generation_prompt=True)


def in_process(service, twin, instructions, answers) -> list[float]:
    """train-policy's reward callable (the server's reward settings) on the plain instructions, in-process."""
    from judgerl.training.rewards import make_reward

    fn = make_reward(twin, service.cfg.reward, 1)
    return asyncio.run(fn([[{"role": "user", "content": i}] for i in instructions],
                          [[{"role": "assistant", "content": a}] for a in answers]))


def test_chat_templated_prompt_is_judged_like_the_plain_instruction(rm_server):
    url, service, _, tok = rm_server
    instruction, answer = "Name a prime number.", "Seven is a prime number."
    prompt = templated(tok, instruction)
    assert "<|im_start|>system" in prompt  # the policy's system prompt is in what OpenRLHF sends
    [body] = fetch_rewards([with_key(url)], [openrlhf_query(tok, prompt, answer)], [prompt], [None])
    plain = httpx.post(url + "/v1/rewards", json={"items": [{"prompt": instruction, "response": answer}]},
                       headers={"Authorization": f"Bearer {KEY}"}, timeout=300).json()
    assert body["rewards"] == pytest.approx(plain["rewards"], abs=1e-6)
    assert plain["items"][0]["verdict"]["cached"]  # the very same judge request: served from the cache


CASES = [  # (instruction, answer): distinct per test, so every shard is judged, not served from the cache
    ("Say hello in Spanish.", "¡Hola!"),
    ("Give one tip for sleeping better.", "Keep a regular bedtime."),
    ("What is the capital of France?", "Paris."),
    ("Name a colour of the sky.", "Blue."),
    ("What is 2 + 2?", "4"),
    ("Name a fruit that is yellow.", "A banana."),
    ("Name a planet.", "Mars."),
    ("What do bees make?", "Honey."),
]


@pytest.mark.parametrize("n_urls, cases, shards", [
    (1, CASES[0:2], [2]),            # one URL: the whole batch
    (2, CASES[2:5], [2, 1]),         # two URLs: ceil(3 / 2) = 2 samples, then the rest
    (3, CASES[5:6], [1, 0, 0]),      # one sample per call (OpenRLHF's executor): empty shards
    (3, CASES[6:8], [1, 1, 0]),      # ceil(2 / 3) = 1: the last URL gets an empty shard
])
def test_openrlhf_client_rewards_equal_in_process_judging(rm_server, n_urls, cases, shards):
    url, service, twin, tok = rm_server
    instructions, answers = [c[0] for c in cases], [c[1] for c in cases]
    prompts = [templated(tok, i) for i in instructions]
    queries = [openrlhf_query(tok, p, a) for p, a in zip(prompts, answers)]
    infos = fetch_rewards([with_key(url)] * n_urls, queries, prompts, [None] * len(cases))
    assert [len(i["rewards"]) for i in infos] == shards
    assert all(i["scores"] == i["rewards"] and i["extra_logs"]["judge_failed"] == [0.0] * len(i["rewards"])
               for i in infos)
    got = [r for i in infos for r in i["rewards"]]
    assert all(c == 0.0 for i in infos for c in i["extra_logs"]["judge_cached"])  # judged now, not from the cache
    assert got == pytest.approx(in_process(service, twin, instructions, answers), abs=1e-4)  # padding differs
    assert service.live()["prefix_memo_tokens_reused"] > 0  # the server read the judge template's head from its memo


def test_without_the_key_openrlhf_gets_401_and_no_rewards(rm_server, caplog):
    url, _, _, tok = rm_server
    caplog.set_level(logging.INFO)
    with pytest.raises(RuntimeError, match="Request error for 5 times"):
        fetch_rewards([url + "/get_reward"], ["q"], ["p"], [None])
    assert "401" in caplog.text and "Unauthorized" in caplog.text
