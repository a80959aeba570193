"""Judge-GRPO rewards (paper Eq. 1 and Eq. 3) against hand-computed values."""

import pytest

from judgerl.training.judge_rewards import JudgeGRPOReward, pairwise_reward, pointwise_reward


@pytest.mark.parametrize("text,gold,want", [
    ("Good answer.\nScore: 7", 7, 1.0),             # perfect
    ("Score: 4", 7, (81 - 9) / 81),                 # off by 3: (81 - 9) / 81
    ("Score: 8", 7, 80 / 81),                       # off by 1
    ("Score: 0", 9, 0.0),                           # boundary: maximal error gives 0, not negative
    ("Score: 9", 0, 0.0),
    ("Score: 9", 9, 1.0),                           # upper boundary is valid
    ("Score: 10", 9, -1.0),                         # out of range -> invalid
    ("I think it deserves a 7", 7, -1.0),           # no verdict line -> invalid
    ("Score: 7\nActually it is fine.", 7, -1.0),    # verdict not on the last line -> invalid
    ("", 3, -1.0),
])
def test_pointwise_reward_eq1(text, gold, want):
    assert pointwise_reward(text, gold, 0, 9) == pytest.approx(want)


def test_pointwise_reward_other_range():
    # scale 1-5: M_max = 16; off by 2 -> (16 - 4) / 16 = 0.75; 0 is out of range -> -1
    assert pointwise_reward("Score: 3", 5, 1, 5) == pytest.approx(0.75)
    assert pointwise_reward("Score: 0", 1, 1, 5) == -1.0


@pytest.mark.parametrize("text,gold,want", [
    ("Response 2 follows the instruction.\nPreferred: 2", 2, 1.0),
    ("Preferred: 1", 2, 0.0),
    ("Preferred: 3", 2, -1.0),
    ("Score: 2", 2, -1.0),
    ("**Preferred: 1**", 1, 1.0),
])
def test_pairwise_reward_eq3(text, gold, want):
    assert pairwise_reward(text, gold) == want


def test_trl_reward_callable_reads_gold_and_chat_completions():
    logged = {}
    r = JudgeGRPOReward("pointwise", 0, 9)
    comps = [[{"role": "assistant", "content": "ok\nScore: 5"}], [{"role": "assistant", "content": "nope"}]]
    out = r(prompts=[None, None], completions=comps, gold=[5, 5], log_metric=lambda k, v: logged.update({k: v}))
    assert out == [1.0, -1.0]
    assert logged == {"judge/invalid_rate": 0.5}
    assert JudgeGRPOReward("pairwise")(completions=["Preferred: 1", "Preferred: 2"], gold=[1, 1]) == [1.0, 0.0]
