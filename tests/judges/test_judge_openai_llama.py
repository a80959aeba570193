"""openai backend against a real llama.cpp server (llama-cpp-python) serving the SmolLM2 GGUF.

The 135M model rarely writes a `Score: N` line on its own, so the verdict line is enforced with a
llama.cpp GBNF grammar passed through `extra_body` (the digit itself is still the model's choice);
the expected score comes from the server's top logprobs at the digit. A short template keeps the
prompt small: the server is single-threaded and the CPU is shared.
"""

from __future__ import annotations

import asyncio

import pytest

from judgerl.judges import Judge, JudgeRequest, JudgeSpec
from judge_testdata import SHORT_POINTWISE

pytestmark = [pytest.mark.server, pytest.mark.slow]

DIRECT_GRAMMAR = 'root ::= "Score: " [0-9]'
REASONING_GRAMMAR = 'root ::= [a-z ]{1,30} "\\nScore: " [0-9]'
REQ = JudgeRequest(prompt="Capital of France?", responses=["Paris."])


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    p = tmp_path_factory.mktemp("tpl") / "short.txt"
    p.write_text(SHORT_POINTWISE)
    return str(p)


def spec(url, template, **kw) -> JudgeSpec:
    base = dict(backend="openai", model="smollm2-135m-instruct", base_urls=[url], template=template,
                timeout_s=180, max_retries=1, concurrency=2, sampling={"max_new_tokens": 6},
                extra_body={"grammar": DIRECT_GRAMMAR})
    base.update(kw)
    return JudgeSpec(**base)


def test_direct_with_logprobs(llama_server, template, tmp_path):
    j = Judge(spec(llama_server, template), cache=tmp_path / "c.sqlite", ledger=tmp_path / "l.sqlite")
    v = j.judge([REQ])[0]
    assert v.error is None and v.valid, v
    assert v.raw.startswith("Score: ") and 0 <= v.label <= 9
    assert v.probs is not None and sum(v.probs) == pytest.approx(1.0)
    assert 0.0 <= v.expected <= 9.0
    assert v.tokens_in > 20 and v.tokens_out >= 1
    # the label is the sampled (greedy) digit, so it is the most likely score token
    assert v.probs[v.label] == pytest.approx(max(v.probs))
    # second run: served from the cache, zero backend calls
    j.judge([REQ])
    s = j.ledger.summary()
    assert s["backend_calls"] == 1 and s["cache_hits"] == 1


def test_reasoning_mode(llama_server, template):
    s = spec(llama_server, template, mode="reasoning", sampling={"max_new_tokens": 24},
             extra_body={"grammar": REASONING_GRAMMAR})
    v = Judge(s).judge([REQ])[0]
    assert v.error is None, v
    if v.valid:  # the grammar allows up to 30 chars of thought; the token budget may cut the verdict
        assert 0 <= v.label <= 9 and 0.0 <= v.expected <= 9.0 and v.reasoning.strip()
    else:
        assert v.label is None and v.expected is None and v.raw


def test_generate(llama_server, template):
    j = Judge(spec(llama_server, template, extra_body={}))
    g = asyncio.run(j.agenerate([[{"role": "user", "content": "Say hello."}]], max_new_tokens=8))[0]
    assert g.error is None and g.valid and g.raw.strip() and 0 < g.tokens_out <= 8


def test_two_base_urls(llama_server, template):
    """Requests spread round-robin over two endpoints (both the same server here)."""
    s = spec(llama_server, template, base_urls=[llama_server, llama_server.replace("127.0.0.1", "localhost")],
             sampling={"max_new_tokens": 6})
    reqs = [REQ, JudgeRequest(prompt="2+2?", responses=["4"])]
    vs = Judge(s).judge(reqs)
    assert all(v.error is None and v.valid and 0.0 <= v.expected <= 9.0 for v in vs), vs
