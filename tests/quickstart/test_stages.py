"""Stage bookkeeping: every stage gives its memory back (shared models forgotten, cycles collected) and its record
keeps the RSS figures; a stage that is up to date is skipped without running."""

from __future__ import annotations

import gc
import json
import re
import weakref

from judgerl import model_loader
from judgerl.quickstart.stages import Stages, free_memory, rss_gb


class Held:
    """Stands in for loaded weights: something big enough to see, caught in a reference cycle like a trainer."""

    def __init__(self):
        self.blob = bytearray(64 * 2 ** 20)
        self.me = self


def test_each_stage_empties_the_model_registry_and_collects_cycles(tmp_path):
    lines: list[str] = []
    stages = Stages(lines.append, tmp_path / "train.log", 2)
    refs = []

    def stage(resume: bool) -> str:
        held = Held()
        refs.append(weakref.ref(held))
        model_loader.register("m", "causal", "cpu", "float32", held, None)
        return "ok"

    gc.disable()  # only the stage's own teardown may collect the cycle
    try:
        stages.run("one", tmp_path / "one", {"k": 1}, [], stage)
        # the stage's model is forgotten and collected; a model some other test still holds may stay shared
        # (model_loader.release_unused keeps what is in use elsewhere)
        assert not [k for k in model_loader._REGISTRY if k[0] == "m"] and refs[0]() is None
    finally:
        gc.enable()
    rec = json.loads((tmp_path / "one" / "stage-one.json").read_text())
    assert rec["status"] == "done" and rec["peak_rss_gb"] >= 0.064 and rec["rss_after_gb"] > 0
    assert 0 <= rec["cpu_seconds"] <= 60
    assert len(lines) == 1 and re.fullmatch(r"\[1/2\] one \(\d+ s\): ok", lines[0])  # seconds vary with load

    stages.run("one", tmp_path / "one", {"k": 1}, [], lambda r: 1 / 0)  # up to date: not run
    assert stages.status["one"] == "skipped"


def test_rss_and_free_memory():
    peak, cur = rss_gb()
    assert 0 < cur <= peak + 0.005
    model_loader.register("m", "causal", "cpu", "float32", object(), None)
    free_memory()
    assert not [k for k in model_loader._REGISTRY if k[0] == "m"]  # nothing else holds it: forgotten
