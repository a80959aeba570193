"""judgerl judges as verl's `custom_reward_function` (matched: verl 0.9.1, the reward loop).

verl 0.9.1 computes rewards in `verl/experimental/reward_loop`: each RewardLoopWorker splits its chunk
into single samples and awaits `NaiveRewardManager.run_single` for all of them concurrently
(asyncio.gather). `run_single` awaits an async custom function as

    compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=..., **reward_kwargs)

(`reward_kwargs` from `reward.custom_reward_function.reward_kwargs`, merged last by
`verl/trainer/ppo/reward.py:_call_with_kwargs_async`), and reads `result["score"]`, logging every key
of a dict result as reward extra info. The prompt is not passed: put the instruction in the dataset's
`extra_info` (verl's data_preprocess scripts store it as `question`; `prompt_key` picks another key).

    reward.custom_reward_function.path=pkg://judgerl.integrations.verl
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.judgerl_url=http://127.0.0.1:8100     # a `judgerl serve`
    # or, in-process: +reward.custom_reward_function.reward_kwargs.judge_config=/path/serve.yaml
    # a server behind an API key: export JUDGERL_API_KEY in the reward workers' environment (sent as Bearer)

Samples arrive one per call, so only pointwise judges work here (a pairwise win rate needs its whole
group); concurrent calls are batched by the server (or by the in-process micro-batcher). A judge failure
never raises: the score is `failure_score` and `judge_failed` is 1 in the extra info.
"""

from __future__ import annotations

import asyncio
import logging
import os

from judgerl import JudgerlError

VERL_VERSION = "0.9.1"
log = logging.getLogger(__name__)
_clients: dict = {}  # (event loop id, url) -> (loop, httpx.AsyncClient)
_services: dict = {}  # (event loop id, config) -> task building the RewardService


def _instruction(extra_info, prompt_key: str):
    prompt = (extra_info or {}).get(prompt_key)
    if isinstance(prompt, str) and prompt.strip():
        return prompt
    if isinstance(prompt, (list, tuple)) and prompt:
        return [dict(m) for m in prompt]
    raise JudgerlError(f"verl extra_info has no {prompt_key!r} (the instruction the judge needs): store it in the "
                       f"dataset's extra_info (verl's data_preprocess scripts call it 'question'), or set "
                       f"reward_kwargs.prompt_key to the key that holds it")


def _result(reward: float | None, verdict: dict | None, failure_score: float) -> dict:
    v = verdict or {}
    return {"score": failure_score if reward is None else float(reward),
            "judge_failed": float(reward is None),
            "judge_valid": float(bool(v.get("valid", reward is not None))),
            "judge_label": float(v["label"]) if v.get("label") is not None else -1.0,
            "judge_cached": float(bool(v.get("cached", False)))}


async def _post(url: str, payload: dict, timeout_s: float, retries: int) -> dict:
    import httpx

    loop = asyncio.get_running_loop()
    key = (id(loop), url)
    if key not in _clients or _clients[key][0] is not loop:  # ids of closed loops can be reused
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        api_key = os.environ.get("JUDGERL_API_KEY")  # a server behind a key (judgerl serve, guard.py)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        _clients[key] = (loop, httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout_s, limits=limits,
                                                 headers=headers))
    client = _clients[key][1]
    err = None
    for attempt in range(retries + 1):
        try:
            r = await client.post("/v1/rewards", json=payload)
        except httpx.HTTPError as e:
            err = f"{type(e).__name__}: {e}"
        else:
            if r.status_code == 200:
                return r.json()
            msg = r.json().get("error", r.text) if r.headers.get("content-type", "").startswith("application/json") else r.text
            if r.status_code != 503 and 400 <= r.status_code < 500:
                raise JudgerlError(f"judgerl server {url} refused the request (HTTP {r.status_code}): {msg}")
            err = f"HTTP {r.status_code}: {msg}"
        await asyncio.sleep(min(2.0 ** attempt, 30.0))
    raise ConnectionError(f"judgerl server {url}: {err} (after {retries + 1} attempts)")


async def compute_score(data_source=None, solution_str: str = "", ground_truth=None, extra_info=None, *,
                        judgerl_url: str | None = None, judge_config: str | None = None,
                        prompt_key: str = "question", failure_score: float = 0.0, timeout_s: float = 600.0,
                        retries: int = 5, **_verl_kwargs) -> dict:
    """verl custom reward function: the judge's reward for one rollout, plus judge_* extra info for logging.

    `judgerl_url`: base URL of a `judgerl serve` (pointwise judge). `judge_config`: run the judge in this
    worker instead (a serve YAML, judge YAML or model name). `ground_truth` and `data_source` are unused
    (non-verifiable tasks); verl's router kwargs (reward_router_address, ...) are ignored.
    """
    if (judgerl_url is None) == (judge_config is None):
        raise JudgerlError("judgerl verl reward: set exactly one of reward_kwargs.judgerl_url (a `judgerl serve` "
                           "URL) or reward_kwargs.judge_config (judge in-process)")
    item = {"prompt": _instruction(extra_info, prompt_key), "response": solution_str}
    if judgerl_url is not None:
        try:
            body = await _post(judgerl_url, {"items": [item]}, timeout_s, retries)
        except ConnectionError as e:
            log.warning("%s", e)
            return _result(None, {"error": str(e), "valid": False}, failure_score)
        if body.get("judge", {}).get("format") == "pairwise":
            raise JudgerlError("verl's reward loop sends one rollout per call; a pairwise judge needs whole groups")
        return _result(body["rewards"][0], body["items"][0].get("verdict"), failure_score)
    return await _score_local(judge_config, item, failure_score)


async def _score_local(judge_config: str, item: dict, failure_score: float) -> dict:
    from judgerl.serve.protocol import Item, groups_from_items
    from judgerl.serve.service import local_service

    async def build():
        service = local_service(judge_config)
        if service.pairwise:
            raise JudgerlError("verl's reward loop sends one rollout per call; a pairwise judge needs whole groups")
        await service.warm_up()
        return service

    loop = asyncio.get_running_loop()
    key = (id(loop), str(judge_config))
    if key not in _services or _services[key].get_loop() is not loop:  # first concurrent call builds it
        _services[key] = loop.create_task(build())
    try:
        service = await asyncio.shield(_services[key])
    except Exception:
        _services.pop(key, None)  # a broken config is retried (and reported) on the next call
        raise
    groups, _ = groups_from_items([Item(**item)])
    await service.score(groups)
    res = groups[0].results[0]
    return _result(res["reward"], res.get("verdict"), failure_score)
