"""Human-label loaders on the shared data (conventions as each set defines them)."""

import pytest

from judgerl import JudgerlError
from judgerl.evaluation.human_sets import load_human_set, pandalm_majority, parse_set_names


def test_each_set_loads_a_slice(shared_data):
    for name in ("llmbar-natural", "llmbar-adversarial", "pandalm", "mtbench", "llmbar-manual"):
        pairs = load_human_set(name, shared_data, limit=4)
        assert len(pairs) == 4
        assert all(p.prompt and len(p.responses) == 2 and p.label in (0, 1, 2) for p in pairs)
    adv = load_human_set("llmbar-adversarial", shared_data, limit=4)
    assert {p.set for p in adv} == {"llmbar-neighbor", "llmbar-gptinst", "llmbar-gptout", "llmbar-manual"}
    assert len(load_human_set("mtbench", shared_data)) == 200


def test_pandalm_majority_and_ties(shared_data):
    assert pandalm_majority([2, 2, 1]) == 2
    assert pandalm_majority([0, 0, 1]) == 0          # a majority tie stays a tie
    assert pandalm_majority([0, 1, 2]) is None        # no majority: dropped
    pairs = load_human_set("pandalm", shared_data)
    assert len(pairs) == 999 and sum(p.label == 0 for p in pairs) == 105
    assert "\n\n" in pairs[0].prompt                  # instruction + input


def test_unknown_set_names():
    assert parse_set_names("all") == ["llmbar-natural", "llmbar-adversarial", "pandalm", "mtbench"]
    with pytest.raises(JudgerlError, match="unknown human set"):
        parse_set_names("llmbar-natural,foo")
