# Vendored from OpenRLHF (https://github.com/OpenRLHF/OpenRLHF), file openrlhf/utils/agent.py at commit
# 3c3be6234e0cb353e76bb8019947db9dfe99fca7 (2026-08-13): OpenRLHF's HTTP reward-model client, the code
# `--reward.remote_url` runs for every sample (SingleTurnAgentExecutor.execute -> _fetch_rewards_via_http).
#
# Copyright the OpenRLHF authors (upstream's LICENSE names no copyright holder).
# Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in
# compliance with the License. A copy of the License is in OPENRLHF_LICENSE next to this file (copied
# verbatim from upstream's LICENSE); you may also obtain a copy at http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software distributed under the License is
# distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and limitations under the License.
#
# Changes from upstream (the lines kept are verbatim):
# - kept only upstream lines 1, 5, 9 (imports, logger), 185-192 (SingleTurnAgentExecutor's docstring and
#   the reward-endpoint lines of __init__) and 322-356 (_fetch_rewards_via_http, whole);
# - `from openrlhf.utils.logging_utils import init_logger` (line 7) is replaced by the standard library's
#   logging.getLogger; the class does not derive from AgentExecutorBase; __init__ ends after
#   `self.reward_func = None` (the branch that loads a local reward_func .py file is dropped); execute(),
#   _fetch_rewards_via_func and the other classes are omitted.
# tests/serve/test_serve_openrlhf.py imports this module unless JUDGERL_OPENRLHF_SRC names a checkout's
# openrlhf/utils/agent.py, which is then used instead.

import asyncio

import aiohttp

from logging import getLogger as init_logger  # judgerl: upstream imports openrlhf.utils.logging_utils

logger = init_logger(__name__)


class SingleTurnAgentExecutor:  # judgerl: upstream derives from AgentExecutorBase
    """Single-turn agent executor with optional reward post-processing."""

    def __init__(self, remote_rm_url=None):
        reward_endpoints = [remote_rm_url] if isinstance(remote_rm_url, str) else remote_rm_url
        self.reward_endpoints = reward_endpoints or []

        # Optional user-provided reward_func from a Python file.
        self.reward_func = None

    async def _fetch_rewards_via_http(self, queries_list, prompts_list, labels_list):
        """HTTP fallback: shard requests across servers."""
        num_servers = len(self.reward_endpoints)
        batch_size = (len(queries_list) + num_servers - 1) // num_servers
        timeout = aiohttp.ClientTimeout(total=180)

        tasks = []
        for i, rm in enumerate(self.reward_endpoints):
            start_idx = i * batch_size
            end_idx = min((i + 1) * batch_size, len(queries_list))
            payload = {
                "query": queries_list[start_idx:end_idx],
                "prompts": prompts_list[start_idx:end_idx],
                "labels": labels_list[start_idx:end_idx],
            }

            async def _post_request(url, data, try_max_times=5):
                for _ in range(try_max_times):
                    try:
                        async with aiohttp.ClientSession(timeout=timeout) as session:
                            async with session.post(url, json=data) as response:
                                response.raise_for_status()
                                return await response.json()
                    except aiohttp.ClientError as e:
                        logger.info(f"Request error, please check: {e}")
                    except Exception as e:  # pragma: no cover - defensive
                        logger.info(f"Unexpected error, please check: {e}")
                    await asyncio.sleep(1)

                raise RuntimeError(
                    f"Request error for {try_max_times} times, returning None. Please check the API server."
                )

            tasks.append(asyncio.create_task(_post_request(rm, payload)))
        return await asyncio.gather(*tasks)
