"""Issue 13 item 4: a sampled judge call draws from its own generator and leaves the caller's RNG alone
(inside policy GRPO the caller's RNG drives the policy's own rollout sampling)."""

from __future__ import annotations

import pytest
import torch

from judgerl.judges import Judge, JudgeRequest, JudgeSpec

REQS = [JudgeRequest(prompt="What is the capital of France?", responses=["Paris."]),
        JudgeRequest(prompt="Name a prime number.", responses=["Nine."])]


@pytest.mark.slow
@pytest.mark.parametrize("fast", [False, True])  # plain generate(); the static-cache engine where supported
def test_sampled_judge_call_leaves_the_global_rng_alone(smollm2, fast):
    model, tok = smollm2
    spec = JudgeSpec(name="sampled", mode="reasoning", device="cpu", dtype="float32", cache=False,
                     sampling={"temperature": 1.0, "max_new_tokens": 6, "seed": 5})
    judge = Judge(spec, model=model, tokenizer=tok)
    judge.backend.fast = fast
    outs = []
    for caller_seed in (123, 456):
        torch.manual_seed(caller_seed)
        before = torch.random.get_rng_state()
        expected_next = torch.rand(3)  # what the caller's next draw would be without the judge call
        torch.random.set_rng_state(before)
        outs.append([v.raw for v in judge.judge(REQS)])
        assert torch.equal(torch.random.get_rng_state(), before), "the judge call moved the caller's RNG"
        assert torch.equal(torch.rand(3), expected_next)
    assert outs[0] == outs[1]  # the judge's draws depend on its own seed only, not on the caller's RNG
