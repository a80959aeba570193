"""scripts/study_distances.py: the order in which a CPU fills in a long run's distances (coarse to fine)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from study_distances import coarse_to_fine  # noqa: E402


def test_coarse_to_fine_visits_every_point_once_ends_first_then_halving():
    steps = list(range(0, 201, 5))
    order = coarse_to_fine(steps, 50)
    assert sorted(order) == steps and len(order) == len(steps)
    assert order[:9] == [0, 200, 50, 100, 150, 25, 75, 125, 175]
    assert order.index(10) < order.index(5)  # every 10 steps before every 5
    assert coarse_to_fine([0, 14], 50) == [0, 14] and coarse_to_fine([], 50) == [] and coarse_to_fine([0], 5) == [0]
