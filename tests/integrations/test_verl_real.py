"""verl's own reward-loop manager (verl 0.9.1) scoring rollouts through a `judgerl serve` SmolLM2 judge.

verl cannot share judgerl's environment (it needs transformers < 5.11), so it runs in its own Python, named
by JUDGERL_VERL_PYTHON (build one with scripts/verl_env.sh); the test is skipped when that is unset.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from serve_helpers import served, smollm2_spec  # tests/serve, on the path via conftest.py

pytestmark = [pytest.mark.slow, pytest.mark.verl]
VERL_PYTHON = os.environ.get("JUDGERL_VERL_PYTHON")


@pytest.mark.skipif(not VERL_PYTHON, reason="set JUDGERL_VERL_PYTHON to a Python with verl 0.9.1 (scripts/verl_env.sh)")
def test_verl_naive_reward_manager_scores_through_judgerl_serve(smollm2, smollm2_path, short_templates, tmp_path):
    from judgerl.serve.app import server_thread
    from judgerl.training.rewards import JudgeRewardConfig, make_reward

    prompts = ["Name a prime number.", "What colour is the sky?", "Give one tip for sleeping better.", "Say hi."]
    responses = ["Seven.", "Usually blue on a clear day.", "Eat a large meal right before bed.", "Hello there!"]
    (tmp_path / "in.json").write_text(json.dumps({"prompts": prompts, "responses": responses}))
    service, twin = served(smollm2_spec(short_templates["pointwise"]), tmp_path, smollm2, max_wait_ms=200)
    script = Path(__file__).with_name("verl_manager_check.py")
    with server_thread(service) as url:
        run = subprocess.run([VERL_PYTHON, str(script), str(smollm2_path), url, str(tmp_path / "in.json")],
                             capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["verl"] == "0.9.1"
    outs = result["outputs"]
    # verl decodes the response tokens itself (skip_special_tokens=True): the judge saw the same text
    fn = make_reward(twin, JudgeRewardConfig(), 1)
    expected = asyncio.run(fn([[{"role": "user", "content": p}] for p in prompts],
                              [[{"role": "assistant", "content": r}] for r in responses]))
    assert [o["reward_score"] for o in outs] == pytest.approx(expected, abs=1e-4)
    assert all(o["reward_extra_info"]["judge_failed"] == 0.0 for o in outs)
    assert service.batcher.batches < len(prompts)
