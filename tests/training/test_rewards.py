"""Reward functions with controlled judge outputs (a stub backend: fault injection only)."""

from __future__ import annotations

import asyncio
import math

import pytest

from judgerl import JudgerlError
from judgerl.judges import Judge, JudgeSpec, Verdict
from judgerl.training.rewards import (PairwiseReward, PointwiseReward, JudgeRewardConfig, make_reward, pairs_for,
                                      scheme_agreement, scheme_calls)


class StubBackend:
    """Verdicts from a function of the request; `fail` texts give failed calls; `boom` raises."""

    def __init__(self, fn, boom: int = 0):
        self.fn, self.boom, self.calls = fn, boom, 0

    async def run(self, requests):
        self.calls += 1
        if self.boom:
            self.boom -= 1
            raise RuntimeError("server down")
        return [self.fn(r) for r in requests]


def quality(text: str) -> int:
    return int(text.split("q")[-1]) if "q" in text else 0


def point(r):
    t = r.responses[0]
    if t.startswith("fail"):
        return Verdict(valid=False, error="timeout")
    if t.startswith("labelonly"):
        return Verdict(label=quality(t), valid=True)
    if t.startswith("garbage"):
        return Verdict(valid=False, raw="???")
    if t.startswith("invalid"):  # top token not a digit, but the digit distribution exists: still no number
        return Verdict(valid=False, expected=quality(t) + 0.5, label=None).model_copy(update={"expected": 3.5})
    return Verdict(label=quality(t), expected=quality(t) + 0.25, valid=True)


def judge_for(fn, fmt="pointwise", boom=0):
    return Judge(JudgeSpec(format=fmt, cache=False), backend=StubBackend(fn, boom))


def call(rf, prompts, completions, **kw):
    return asyncio.run(rf(prompts=prompts, completions=completions, **kw))


def test_pointwise_expected_invalid_and_failures():
    metrics = {}
    rf = PointwiseReward(judge_for(point), JudgeRewardConfig(on_failure="drop"), num_generations=2)
    prompts = ["p1", "p1", "p2", "p2", "p3", "p3"]
    comps = ["a q7", "invalid q3", "labelonly q5", "fail", "garbage", "b q1"]
    out = call(rf, prompts, comps, log_metric=lambda k, v: metrics.setdefault(k, v))
    assert out == [7.25, None, 5.0, None, None, 1.25]  # an invalid verdict is never a reward (issue 13)
    assert metrics["judge/failed"] == 1 and metrics["judge/dropped"] == 3 and metrics["judge/calls"] == 6
    assert metrics["judge/invalid"] == 2
    gm = PointwiseReward(judge_for(point), JudgeRewardConfig(on_failure="group_mean"), num_generations=2)
    out = call(gm, prompts, comps)
    assert out == [7.25, 7.25, 5.0, 5.0, 1.25, 1.25]
    # a group where every member failed stays None (nothing to take the mean of)
    assert call(gm, ["p", "p"], ["fail", "fail"]) == [None, None]


def test_chat_completions_and_judge_that_raises_are_handled():
    rf = PointwiseReward(judge_for(point, boom=1), JudgeRewardConfig(retries=1), num_generations=1)
    prompts = [[{"role": "user", "content": "hi"}]]
    out = call(rf, prompts, [[{"role": "assistant", "content": "x q4"}]])
    assert out == [4.25]  # first call raised, the retry succeeded
    rf = PointwiseReward(judge_for(point, boom=5), JudgeRewardConfig(retries=1, on_failure="drop"), num_generations=1)
    assert call(rf, ["p"], ["x q4"]) == [None]
    assert rf.totals["batch_errors"] == 1 and rf.totals["failed"] == 1


def pair_p(bias=0.0):
    """P(response 1 preferred) = logistic of the quality gap, plus a position bias toward response 1."""
    def fn(r):
        a, b = (quality(x) for x in r.responses)
        if "fail" in r.responses[0] or "fail" in r.responses[1]:
            return Verdict(valid=False, error="HTTP 500")
        p = 1 / (1 + math.exp(-(a - b))) + bias
        p = min(max(p, 0.0), 1.0)
        return Verdict(label=1 if p >= 0.5 else 2, expected=p, valid=True)
    return fn


def test_pairwise_round_robin_win_rates_eq4():
    rf = PairwiseReward(judge_for(pair_p(), "pairwise"), JudgeRewardConfig(), num_generations=3)
    out = call(rf, ["p"] * 3 + ["q"] * 3, ["q1", "q2", "q3", "q5", "q5", "q5"])
    s = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert out[0] == pytest.approx((s(-1) + s(-2)) / 2)
    assert out[2] == pytest.approx((s(2) + s(1)) / 2)
    assert out[3:] == pytest.approx([0.5, 0.5, 0.5])
    assert sum(out[:3]) / 3 == pytest.approx(0.5)  # win rates of a group average to 1/2
    assert rf.totals["calls"] == 6  # 3 pairs per group of 3
    votes = PairwiseReward(judge_for(pair_p(), "pairwise"), JudgeRewardConfig(aggregate="vote"), num_generations=3)
    assert call(votes, ["p"] * 3, ["q1", "q2", "q3"]) == [0.0, 0.5, 1.0]


def test_pairwise_both_orders_cancels_position_bias():
    biased = judge_for(pair_p(bias=0.3), "pairwise")
    rf = PairwiseReward(biased, JudgeRewardConfig(), 2)
    one = call(rf, ["p", "p"], ["q2", "q2"])
    first, second = (0, 1) if rf.last_orders[0][3] else (1, 0)
    assert one[first] > 0.7 and one[second] < 0.3  # first-shown wins on a tie
    both = PairwiseReward(biased, JudgeRewardConfig(both_orders=True), 2)
    assert call(both, ["p", "p"], ["q2", "q2"]) == pytest.approx([0.5, 0.5])
    assert both.totals["calls"] == 2


def test_pairwise_failures_drop_or_group_mean():
    rf = PairwiseReward(judge_for(pair_p(), "pairwise"), JudgeRewardConfig(on_failure="drop"), num_generations=3)
    out = call(rf, ["p"] * 3, ["q1", "q3", "fail"])
    s = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert out[0] == pytest.approx(s(-2)) and out[1] == pytest.approx(s(2)) and out[2] is None
    gm = PairwiseReward(judge_for(pair_p(), "pairwise"), JudgeRewardConfig(on_failure="group_mean"), num_generations=3)
    assert call(gm, ["p"] * 3, ["q1", "q3", "fail"])[2] == pytest.approx(0.5)


def test_split_group_is_an_error():
    rf = PairwiseReward(judge_for(pair_p(), "pairwise"), JudgeRewardConfig(), num_generations=2)
    with pytest.raises(JudgerlError, match="split"):
        call(rf, ["p", "p", "q"], ["q1", "q2", "q3"])
    with pytest.raises(JudgerlError, match="share one prompt"):
        call(rf, ["p", "q"], ["q1", "q2"])
    assert isinstance(make_reward(judge_for(pair_p(), "pairwise"), None, 2), PairwiseReward)


def test_cheap_schemes_calls_and_ranking_agreement():
    g = 8
    assert scheme_calls(g, "round_robin") == 28
    assert scheme_calls(g, "anchor") == 7
    assert scheme_calls(g, "k_opponents", k=2) == 8 and scheme_calls(g, "k_opponents", k=4) == 16
    assert scheme_calls(g, "round_robin", both_orders=True) == 56
    for k in (2, 3, 4):  # every rollout meets at least k opponents
        pairs = pairs_for(g, "k_opponents", k)
        assert all(sum(i in p for p in pairs) >= k for i in range(g))
    quality_ = [0.0, 0.4, 0.8, 1.2, 1.6, 2.0, 2.4, 2.8]  # Bradley-Terry judge preferences
    pref = [[1 / (1 + math.exp(-(a - b))) for b in quality_] for a in quality_]
    rows = [scheme_agreement(pref, s, k, trials=100) for s, k in
            [("round_robin", 0), ("k_opponents", 2), ("k_opponents", 4), ("anchor", 0)]]
    for r in rows:
        print(f"{r['scheme']:<12} k={r['k']} calls={r['calls']}/{r['calls_round_robin']} tau={r['kendall_tau']:.3f}")
    assert rows[0]["kendall_tau"] == pytest.approx(1.0)
    assert 0.3 < rows[1]["kendall_tau"] < rows[2]["kendall_tau"] < 1.0
    assert rows[3]["kendall_tau"] > 0.2


@pytest.mark.parametrize("scheme", ["round_robin", "k_opponents", "anchor"])
def test_one_order_is_random_per_pair_so_position_bias_favours_no_index(scheme):
    """Issue 13 item 2: a judge that always prefers whichever response it sees first must give every index
    of a group of 8 the same expected reward (before: [1.0, .857, ..., 0] for any seed)."""
    always_first = judge_for(lambda r: Verdict(label=1, expected=1.0, valid=True), "pairwise")
    rf = PairwiseReward(always_first, JudgeRewardConfig(scheme=scheme, seed=3), num_generations=8)
    n = 300
    totals = [0.0] * 8
    for _ in range(n):
        out = call(rf, ["p"] * 8, [f"q{i}" for i in range(8)])
        totals = [t + o for t, o in zip(totals, out)]
        # recorded: (group, i, j, i shown first), one entry per judge call; the biased judge's verdict follows it
        assert len(rf.last_orders) == scheme_calls(8, scheme, 2)
    means = [t / n for t in totals]
    assert max(means) - min(means) < 0.12 and all(abs(m - 0.5) < 0.08 for m in means), means


def test_pair_order_is_seeded_and_recorded():
    def run(seed):
        rf = PairwiseReward(judge_for(pair_p(bias=0.3), "pairwise"), JudgeRewardConfig(seed=seed), num_generations=4)
        out = call(rf, ["p"] * 4, ["q2"] * 4)
        return out, list(rf.last_orders)

    a, b, c = run(1), run(1), run(2)
    assert a == b and a[1] != c[1]
    out, orders = a
    assert {(i, j) for _, i, j, _ in orders} == {(i, j) for i in range(4) for j in range(i + 1, 4)}
    # equal qualities: the first-shown wins with p = 0.8, so a rollout's reward is set by how often it was first
    for k in range(4):
        shown_first = sum((i == k and first) or (j == k and not first) for _, i, j, first in orders)
        assert out[k] == pytest.approx((shown_first * 0.8 + (3 - shown_first) * 0.2) / 3)
