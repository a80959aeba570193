"""Agreement metrics against hand-computed examples."""

import pytest

from judgerl.evaluation import judge_metrics as jm


def test_alpha_hand_computed():
    # gold 1,2,3 vs judge 1,2,4. Pooled values 1,1,2,2,3,4 (n = 6).
    # D_o = (1/n) * sum over units of ordered-pair squared differences / (m_u - 1) = 2 * 1 / 6 = 1/3
    # D_e = sum over ordered pairs of pooled values of squared differences / (n (n - 1)) = 82 / 30
    # alpha = 1 - D_o / D_e = 1 - 30 / 246 = 0.878049 -> 87.80
    assert jm.krippendorff_alpha([1, 2, 3], [1, 2, 4]) == pytest.approx(100 * (1 - 30 / 246), abs=1e-6)


def test_alpha_perfect_missing_and_degenerate():
    assert jm.krippendorff_alpha([0, 4, 9], [0, 4, 9]) == pytest.approx(100.0)
    # an invalid judge output is a missing value: the remaining units agree perfectly
    assert jm.krippendorff_alpha([0, 4, 9], [0, None, 9]) == pytest.approx(100.0)
    assert jm.krippendorff_alpha([5, 5], [5, 5]) is None       # no variation: undefined
    assert jm.krippendorff_alpha([5], [5]) is None


def test_pairwise_accuracy_ties_and_invalid():
    assert jm.pairwise_accuracy([1, 2, 2, 1], [1, 2, 1, None]) == pytest.approx(0.5)   # invalid counts as wrong
    assert jm.pairwise_accuracy([1, 2], [0, 2]) == pytest.approx(0.75)              # predicted tie: half
    assert jm.pairwise_accuracy([0, 1], [0, 2]) == pytest.approx(0.5)               # human tie matched by a tie
    assert jm.pairwise_accuracy([], []) is None


def test_position_consistency():
    # original-order verdicts 1, 2, 1, None ; swapped-order verdicts (in swapped order) 2, 2, 1, 1
    # mapped back: 1, 1, 2, 2 -> consistent: yes, no, no, no (invalid)
    assert jm.position_consistency([1, 2, 1, None], [2, 2, 1, 1]) == pytest.approx(0.25)


def test_prefer_from_scores_and_invalid_rate():
    assert jm.prefer_from_scores(7.5, 3) == 1
    assert jm.prefer_from_scores(2, 3) == 2
    assert jm.prefer_from_scores(4, 4) == 0
    assert jm.prefer_from_scores(None, 4) is None
    assert jm.invalid_rate([True, False, True, True]) == 0.25
