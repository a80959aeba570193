"""The quickstart in its CI form on the real SmolLM2: every stage runs and the report is produced; a second
run reuses every finished stage (no new judge calls in any ledger); a changed stage config reruns only
that stage."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from judgerl.cli import app
from judgerl.quickstart import Quickstart, QuickstartConfig

STAGES = ["annotate", "judge-non_reasoning", "judge-reasoning", "eval-judges", "policy-non_reasoning",
          "policy-reasoning", "heldout", "probes"]


def judge_calls(root: Path) -> int:
    """Rows in every ledger of the run (one row per judge request served, cached or not)."""
    n = 0
    for p in root.rglob("ledger.sqlite"):
        with sqlite3.connect(p) as c:
            n += c.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    return n


@pytest.mark.slow
def test_quickstart_ci_runs_every_stage_then_reuses_them(tmp_path, shared_data, smollm2_path):
    root = tmp_path / "qs"
    cfg = QuickstartConfig(scale="ci", run_dir=str(root), shared_data=str(shared_data))
    first = Quickstart(cfg).run()
    assert first["stages"] == {s: "ran" for s in STAGES}
    for f in ["config.yaml", "annotations/pointwise.jsonl", "annotations/manifest.json",
              "judges/non_reasoning/judge/model.safetensors", "judges/reasoning/judge.yaml",
              "judges/base-prompted/eval.json", "judges/non_reasoning/eval.json", "judges/reasoning/eval.json",
              "policies/non_reasoning/monitor.jsonl", "policies/reasoning/final/model.safetensors",
              "policies/reasoning/summary.json", "heldout/scores.json", "probes/probe-gold.json",
              "probes/probe-judge-reasoning.json", "report.html"]:
        assert (root / f).exists(), f
    for s, folder in [("annotate", "annotations"), ("policy-reasoning", "policies/reasoning"), ("probes", "probes")]:
        rec = json.loads((root / folder / f"stage-{s}.json").read_text())
        assert rec["status"] == "done" and len(rec["hash"]) == 16
    monitor = [json.loads(x) for x in (root / "policies/non_reasoning/monitor.jsonl").read_text().splitlines()]
    assert [m["step"] for m in monitor] == [0, 1] and all(m["gold_mean"] is not None for m in monitor)
    scores = json.loads((root / "heldout/scores.json").read_text())["policies"]
    assert set(scores) == {"base", "policy-non_reasoning", "policy-reasoning"}
    assert set(scores["base"]) == {"gold", "judge-non_reasoning", "judge-reasoning"}
    html = (root / "report.html").read_text()
    assert "not run" not in html and html.count("data:image/png;base64,") >= 6
    calls = judge_calls(root)
    assert calls >= 30

    # second run: every stage reused, no judge called (the ledgers do not grow), report rewritten
    r = CliRunner().invoke(app, ["quickstart", "--scale", "ci", "--run-dir", str(root),
                                 "--set", f"shared_data={shared_data}"])
    assert r.exit_code == 0, r.output
    assert "up to date" in r.output or "skipped" in r.output
    assert f"report: {root / 'report.html'}" in r.output
    assert judge_calls(root) == calls

    # a changed probe config reruns the probes only (their folder, ledger included, is rebuilt)
    t0 = time.time()
    again = Quickstart(cfg.model_copy(update={"probe_attacks": ["null_model"]})).run()
    assert again["stages"] == {**{s: "skipped" for s in STAGES}, "probes": "ran"}
    res = json.loads((root / "probes/probe-gold.json").read_text())
    assert [a["attack"] for a in res["attacks"]] == ["null_model"]
    with sqlite3.connect(root / "probes/ledger.sqlite") as c:
        n, first = c.execute("SELECT COUNT(*), MIN(ts) FROM calls").fetchone()
    assert n == 3 * 2 and first >= t0  # 3 judges x (honest + attacked), all new
