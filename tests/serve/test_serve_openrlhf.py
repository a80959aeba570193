"""OpenRLHF against `judgerl serve` (real SmolLM2 judge): chat-templated prompts, one and several reward URLs,
the API key through the URL, and OpenRLHF's own client code.

OpenRLHF's remote-RM client is `SingleTurnAgentExecutor._fetch_rewards_via_http` in openrlhf/utils/agent.py
(checked at OpenRLHF commit 3c3be62, 2026-08-13): it shards the batch over the URLs with
ceil(n / urls) samples each (so with one sample per call every URL but the first gets an empty shard),
POSTs {"query", "prompts", "labels"} with aiohttp (no headers of its own; a URL's user:password@ becomes
HTTP Basic auth), raise_for_status, retries 5 times, and reads the first answer. `openrlhf_post` below
does the same with aiohttp (written here; OpenRLHF's code is not copied into this repository).
`test_openrlhf_own_client_code` runs OpenRLHF's real agent.py when JUDGERL_OPENRLHF_SRC names it (a
checkout's openrlhf/utils/agent.py); without it the test is skipped.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import types

import httpx
import pytest

from serve_helpers import served, smollm2_spec

pytestmark = pytest.mark.slow
KEY = "openrlhf-test-key-0123456789"


async def openrlhf_post(urls: list[str], queries, prompts, labels):
    import aiohttp

    size = (len(queries) + len(urls) - 1) // len(urls)

    async def one(url, s):
        payload = {"query": queries[s:s + size], "prompts": prompts[s:s + size], "labels": labels[s:s + size]}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=180)) as session:
            async with session.post(url, json=payload) as response:
                response.raise_for_status()
                return await response.json()

    return await asyncio.gather(*(one(u, i * size) for i, u in enumerate(urls)))


@pytest.fixture(scope="module")
def rm_server(smollm2, short_templates, tmp_path_factory):
    from judgerl.serve.app import server_thread

    service, _ = served(smollm2_spec(short_templates["pointwise"]), tmp_path_factory.mktemp("orlhf"), smollm2)
    with server_thread(service, api_key=KEY) as url:
        yield url, service, smollm2[1]


def with_key(url: str) -> str:
    return url.replace("http://", f"http://openrlhf:{KEY}@") + "/get_reward"


def templated(tok, instruction: str) -> str:
    """What OpenRLHF sends as `prompts` with --apply_chat_template (SmolLM2's template adds a system prompt)."""
    return tok.apply_chat_template([{"role": "user", "content": instruction}], tokenize=False,
                                   add_generation_prompt=True)


def test_chat_templated_prompt_is_judged_like_the_plain_instruction(rm_server):
    url, service, tok = rm_server
    instruction, answer = "Name a prime number.", "Seven is a prime number."
    prompt = templated(tok, instruction)
    assert "<|im_start|>system" in prompt  # the policy's system prompt is in what OpenRLHF sends
    [body] = asyncio.run(openrlhf_post([with_key(url)], [prompt + answer + "<|im_end|>"], [prompt], [None]))
    plain = httpx.post(url + "/v1/rewards", json={"items": [{"prompt": instruction, "response": answer}]},
                       headers={"Authorization": f"Bearer {KEY}"}, timeout=300).json()
    assert body["rewards"] == pytest.approx(plain["rewards"], abs=1e-6)
    assert plain["items"][0]["verdict"]["cached"]  # the very same judge request: served from the cache


@pytest.mark.parametrize("n_urls", [1, 3])
def test_one_and_several_reward_urls(rm_server, n_urls):
    url, service, tok = rm_server
    prompts = [templated(tok, "Say hello in Spanish.")]
    queries = [prompts[0] + "¡Hola!<|im_end|>"]
    answers = asyncio.run(openrlhf_post([with_key(url)] * n_urls, queries, prompts, [None]))
    assert len(answers) == n_urls
    assert len(answers[0]["rewards"]) == 1 and 0.0 <= answers[0]["rewards"][0] <= 9.0
    assert answers[0]["extra_logs"]["judge_failed"] == [0.0]
    assert all(a["rewards"] == [] and a["extra_logs"]["judge_failed"] == [] for a in answers[1:])


def test_without_the_key_openrlhf_gets_401(rm_server):
    import aiohttp

    url, _, tok = rm_server
    with pytest.raises(aiohttp.ClientResponseError) as e:
        asyncio.run(openrlhf_post([url + "/get_reward"], ["q"], ["p"], [None]))
    assert e.value.status == 401


def load_openrlhf_agent(path: str):
    """OpenRLHF's agent.py as a module (its one in-package import, the logger, is stubbed)."""
    import logging

    for name in ("openrlhf", "openrlhf.utils"):
        sys.modules.setdefault(name, types.ModuleType(name))
    logs = types.ModuleType("openrlhf.utils.logging_utils")
    logs.init_logger = logging.getLogger
    sys.modules["openrlhf.utils.logging_utils"] = logs
    spec = importlib.util.spec_from_file_location("openrlhf_agent", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(not os.environ.get("JUDGERL_OPENRLHF_SRC"), reason="JUDGERL_OPENRLHF_SRC (OpenRLHF's "
                    "openrlhf/utils/agent.py) not set")
def test_openrlhf_own_client_code(rm_server):
    url, service, tok = rm_server
    agent = load_openrlhf_agent(os.environ["JUDGERL_OPENRLHF_SRC"])
    prompt = templated(tok, "Give one tip for sleeping better.")
    query = prompt + "Keep a regular bedtime.<|im_end|>"
    for n in (1, 2):
        ex = agent.SingleTurnAgentExecutor([with_key(url)] * n)
        infos = asyncio.run(ex._fetch_rewards_via_http([query], [prompt], [None]))
        assert len(infos) == n and len(infos[0]["rewards"]) == 1 and 0.0 <= infos[0]["rewards"][0] <= 9.0
        assert infos[0]["scores"] == infos[0]["rewards"] and infos[0]["extra_logs"]["judge_failed"] == [0.0]
        assert all(i["rewards"] == [] for i in infos[1:])
