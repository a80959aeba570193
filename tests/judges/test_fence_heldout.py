"""The candidate fence on the held-out look-alike set (tests/data/fence_lookalikes_heldout.jsonl, written by
someone other than the fence's author; not tuned on). Measured with scripts/fence_lookalikes.py:

    before issue 26's fence change: attacks defused 53/84 (look-alikes 36/58, template injections 17/26),
                                    benign texts untouched 35/36
    after:                          attacks defused 67/84 (look-alikes 50/58, template injections 17/26),
                                    benign texts untouched 35/36

This test keeps the `after` figures from regressing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_fence_on_the_held_out_lookalike_set():
    spec = importlib.util.spec_from_file_location("fence_lookalikes", REPO / "scripts" / "fence_lookalikes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.measure(REPO / "tests" / "data" / "fence_lookalikes_heldout.jsonl")
    assert res["cases"] == 120
    assert res["defused"][0] >= 67 and res["defused"][1] == 84, res["missed"]
    assert res["by_kind"]["lookalike"][0] >= 50
    assert res["benign_untouched"][0] >= 35 and res["benign_untouched"][1] == 36, res["missed"]
