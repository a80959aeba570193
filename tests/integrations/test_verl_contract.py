"""judgerl.integrations.verl.compute_score, called exactly as verl 0.9.1's reward loop calls it.

verl does not install into judgerl's environment (verl 0.9.1 needs transformers < 5.11; judgerl pins 5.17),
so the contract is replayed here from verl's source: `get_custom_reward_fn` (verl/trainer/ppo/reward.py:
load_extern_object + partial(_call_with_kwargs_async, raw_fn, reward_kwargs)) and `NaiveRewardManager.run_single`
(verl/experimental/reward_loop/reward_manager/naive.py), all samples awaited concurrently as
`RewardLoopWorker.compute_score_batch` does. test_verl_real.py runs verl's own classes when a verl Python exists.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from functools import partial

import pytest
import yaml

from judgerl import JudgerlError

from serve_helpers import served, smollm2_spec  # tests/serve, on the path via conftest.py

pytestmark = pytest.mark.slow
PROMPTS = [f"Give tip number {i} for learning a language." for i in range(8)]
RESPONSES = ["Practice every day.", "Read children's books.", "Watch films with subtitles.", "Talk to natives.",
             "Use flashcards.", "Keep a diary.", "Sing songs.", "Banana."]


async def _call_with_kwargs_async(raw_fn, extra_kwargs, *args, **kwargs):  # verl/trainer/ppo/reward.py (0.9.1)
    merged_kwargs = {**kwargs, **extra_kwargs}
    return await raw_fn(*args, **merged_kwargs)


def verl_reward_fn(reward_kwargs: dict):
    """get_custom_reward_fn for path=pkg://judgerl.integrations.verl, name=compute_score."""
    raw_fn = getattr(importlib.import_module("judgerl.integrations.verl"), "compute_score")
    assert inspect.iscoroutinefunction(raw_fn)  # verl picks the async wrapper
    return partial(_call_with_kwargs_async, raw_fn, dict(reward_kwargs))


async def run_single(compute_score, prompt: str, response: str) -> dict:
    """NaiveRewardManager.run_single after decoding (0.9.1)."""
    extra_info = {"question": prompt, "split": "train", "index": 0}
    extra_info["num_turns"] = None
    extra_info["rollout_reward_scores"] = {}
    assert inspect.iscoroutinefunction(compute_score)
    result = await compute_score(data_source="judgerl/test", solution_str=response, ground_truth=None,
                                 extra_info=extra_info)
    reward_extra_info = {}
    if isinstance(result, dict):
        score = result["score"]
        for key, value in result.items():
            reward_extra_info[key] = value
    else:
        score = result
        reward_extra_info["acc"] = score
    return {"reward_score": score, "reward_extra_info": reward_extra_info}


def compute_score_batch(reward_kwargs, prompts, responses) -> list[dict]:
    fn = verl_reward_fn(reward_kwargs)

    async def go():
        return await asyncio.gather(*[run_single(fn, p, r) for p, r in zip(prompts, responses)])

    return asyncio.run(go())


def reference(twin) -> list[float]:
    from judgerl.training.rewards import JudgeRewardConfig, make_reward

    fn = make_reward(twin, JudgeRewardConfig(), 1)
    return asyncio.run(fn([[{"role": "user", "content": p}] for p in PROMPTS],
                          [[{"role": "assistant", "content": r}] for r in RESPONSES]))


def check_outputs(outs: list[dict], expected: list[float]) -> None:
    assert [o["reward_score"] for o in outs] == pytest.approx(expected, abs=1e-4)
    keys = {frozenset(o["reward_extra_info"]) for o in outs}
    assert keys == {frozenset({"score", "judge_failed", "judge_valid", "judge_label", "judge_cached"})}
    assert all(isinstance(v, float) for o in outs for v in o["reward_extra_info"].values())
    assert all(o["reward_extra_info"]["judge_failed"] == 0.0 for o in outs)


def test_verl_calls_a_judgerl_server(smollm2, short_templates, tmp_path, monkeypatch):
    """verl's reward loop -> a `judgerl serve` behind an API key (JUDGERL_API_KEY in the workers' env)."""
    from judgerl.serve.app import server_thread

    monkeypatch.setenv("JUDGERL_API_KEY", "verl-key-0123456789")
    service, twin = served(smollm2_spec(short_templates["pointwise"]), tmp_path, smollm2, max_wait_ms=100)
    with server_thread(service, api_key="verl-key-0123456789") as url:
        outs = compute_score_batch({"judgerl_url": url}, PROMPTS, RESPONSES)
    check_outputs(outs, reference(twin))
    assert service.batcher.batches < len(PROMPTS)  # verl's concurrent per-sample calls were batched


def test_verl_judges_in_process(smollm2, short_templates, tmp_path):
    from judgerl.integrations import verl as integration

    spec = smollm2_spec(short_templates["pointwise"])
    cfg = {"kind": "serve", "judge": spec.model_dump(mode="json"), "run_dir": str(tmp_path / "run"), "max_wait_ms": 100}
    (tmp_path / "serve.yaml").write_text(yaml.safe_dump(cfg))
    outs = compute_score_batch({"judge_config": str(tmp_path / "serve.yaml")}, PROMPTS, RESPONSES)
    _, twin = served(spec, tmp_path / "twin", smollm2)
    check_outputs(outs, reference(twin))
    (task,) = [t for (_, key), t in integration._services.items() if key == str(tmp_path / "serve.yaml")]
    service = task.result()
    assert service.batcher.batches < len(PROMPTS)
    assert service.judge.ledger.summary("serve")["backend_calls"] == len(PROMPTS)


def test_unreachable_server_gives_failure_score_not_a_crash():
    from judgerl.llama_server import free_port

    outs = compute_score_batch({"judgerl_url": f"http://127.0.0.1:{free_port()}", "retries": 0, "failure_score": -1.0},
                               PROMPTS[:2], RESPONSES[:2])
    assert [o["reward_score"] for o in outs] == [-1.0, -1.0]
    assert all(o["reward_extra_info"]["judge_failed"] == 1.0 for o in outs)


def test_misconfiguration_is_a_clear_error(short_templates, tmp_path):
    fn = verl_reward_fn({"judgerl_url": "http://127.0.0.1:9"})
    with pytest.raises(JudgerlError, match="extra_info has no 'question'"):
        asyncio.run(fn(data_source="d", solution_str="x", ground_truth=None, extra_info={"index": 0}))
    with pytest.raises(JudgerlError, match="exactly one of"):
        asyncio.run(verl_reward_fn({})(data_source="d", solution_str="x", ground_truth=None,
                                       extra_info={"question": "q"}))
    pair = smollm2_spec(short_templates["pairwise"], "pairwise")
    (tmp_path / "pair.yaml").write_text(yaml.safe_dump({"kind": "serve", "judge": pair.model_dump(mode="json"),
                                                        "run_dir": str(tmp_path / "run")}))
    with pytest.raises(JudgerlError, match="pairwise judge needs whole groups"):
        asyncio.run(verl_reward_fn({"judge_config": str(tmp_path / "pair.yaml")})(
            data_source="d", solution_str="x", ground_truth=None, extra_info={"question": "q"}))
