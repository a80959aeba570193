"""The write-up's tables rendered from study.json alone: the committed study.json, and a full study.json of a
synthetic 41-point run with judges, alarm quality, Gao fit and a cross-judge matrix; no placeholders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from synthetic import write_run

from judgerl import JudgerlError
from judgerl.study.analyze import analyze
from judgerl.study.config import StudyConfig
from judgerl.study.writeup import render, render_file

ROOT = Path(__file__).resolve().parents[2]
BAD = re.compile(r"None|nan|TODO|TBD|XXX|\{|\}")


def test_committed_study_json_renders_its_run_table():
    text = render(json.loads((ROOT / "docs/experiments/reward_hacking/study.json").read_text()))
    row = next(line for line in text.splitlines() if line.startswith("| prompted |"))
    assert "+0.12 [+0.05, +0.18]" in row and "−0.56 [−0.78, −0.33]" in row and "step 10" in row
    assert "(Not in this study.json: Judges: alpha vs gold; Reward cost in the policy loop; How good the alarm is;" in text
    assert not BAD.search(text)


def test_contrast_study_json_renders_the_template_columns():
    """The contrast study's committed study.json: the template detector's share per run and the alarm with the
    template input beside the alarm without it."""
    text = render(json.loads((ROOT / "docs/experiments/reward_hacking/contrast/analysis/study.json").read_text()))
    head = next(line for line in text.splitlines() if line.startswith("| run | training judge"))
    assert "| same opening (share) | template share |" in head
    best = next(line for line in text.splitlines() if line.startswith("| best |"))
    assert "0.00 → 1.00, flagged from step 40 (33 of 41 points)" in best
    reasoning = next(line for line in text.splitlines() if line.startswith("| reasoning |"))
    assert "0.00 → 0.97, flagged from step 90 (23 of 41 points)" in reasoning
    control = [line for line in text.splitlines() if line.startswith("| gold_control | held out")][0]
    assert "| silent | quiet | – | step 60 (template) | false alarm |" in control
    assert "With the template input" in text and not BAD.search(text)


def test_full_synthetic_study_renders_every_section(tmp_path):
    root = tmp_path / "study"
    n = 41
    write_run(root / "policies" / "best", [0.06 * t if t < 20 else 1.2 - 0.08 * (t - 20) for t in range(n)],
              [5 + 0.05 * t for t in range(n)], judge="sft-5000", kl=[(0.05 * t) ** 2 for t in range(n)])
    write_run(root / "policies" / "gold_control", [0.05 * t for t in range(n)], [0.05 * t for t in range(n)],
              judge="gold-rm", kl=[(0.04 * t) ** 2 for t in range(n)], seed=1)
    (root / "judges").mkdir()
    (root / "judges" / "curve.json").write_text(json.dumps([
        {"judge": "sft-5000", "labels": 5000, "alpha_expected": {"value": 38.3, "lo": 22.2, "hi": 51.1}, "n": 1000,
         "invalid_rate": 0.0},
        {"judge": "reasoning", "labels": 5000, "alpha_expected": {"value": 20.5, "lo": 10.0, "hi": 30.1}, "n": 1000,
         "invalid_rate": 0.04, "reasoning": True, "tokens_out_per_verdict": 141.24, "seconds_per_verdict": 0.0312}]))
    (root / "analysis").mkdir()
    cell = {"final": {"value": 6.1, "lo": 5.9, "hi": 6.3}, "base": {"value": 5.0, "lo": 4.8, "hi": 5.2},
            "change": {"value": 1.1, "lo": 0.9, "hi": 1.3}}
    (root / "analysis" / "cross_judge.json").write_text(json.dumps({
        "judges": ["sft-5000", "gold"], "trained_on": {"best": "sft-5000"}, "arena_judge": "arena-smollm2",
        "runs": {"best": {"final_step": 200, "base_step": 0, "n": 24, "scores": {"sft-5000": cell, "gold": cell},
                          "arena": {"win_rate": {"value": 0.41, "lo": 0.3, "hi": 0.52}, "games": 48, "invalid_games": 0}},
                 # scored before gold_control was re-run from step 0 to 200: its row must not pass for the new run's
                 "gold_control": {"final_step": 105, "base_step": 0, "n": 24, "scores": {"sft-5000": cell, "gold": cell}}}}))
    summ = root / "policies" / "best" / "summary.json"  # the run's judge-call ledger, as run_policy writes it
    summ.write_text(json.dumps({**(json.loads(summ.read_text()) if summ.is_file() else {}), "steps": 200,
                                "judge_calls": {"backend_calls": 6400, "tokens_in": 3200000, "tokens_out": 1280000,
                                                "seconds": 200.0, "invalid": 3}}))
    cfg = StudyConfig.model_validate({"policy": {"runs": [{"name": "best", "judge": "sft-best"},
                                                          {"name": "gold_control", "judge": "gold"}]},
                                      "judges": {"label_counts": [5000], "weak": 5000}, "gold": {"bootstrap": 200}})
    analyze(cfg, root, lambda m: None, distance=False)
    out = tmp_path / "tables.md"
    text = render_file(root / "analysis" / "study.json", out)
    assert out.read_text() == text and not BAD.search(text) and "Not in this study.json" not in text
    for title in ("Judges: alpha vs gold", "Policy runs", "Reward cost in the policy loop", "How good the alarm is",
                  "Gold vs distance: Gao's RL form", "Cross-judge matrix"):
        assert f"### {title}" in text
    assert "| reasoning | 5,000 | 20.5 [10.0, 30.1] | 1000 | 0.040 | 141.2 | 0.0312 |" in text  # named once
    assert "| best | held out | step 105 |" in text and "of 1 without one, 0 false alarms" in text
    assert "| best (200) | 24 | 6.10 [5.90, 6.30]; Δ +1.10 [+0.90, +1.30] (own) |" in text
    assert "0.41 [0.30, 0.52] (0 invalid of 48)" in text
    assert "| gold_control (105: an earlier run, replaced by the 200-step re-run, not yet scored) | 24 |" in text
    assert "Rows marked *earlier run* (gold_control)" in text and "| best (200: an earlier" not in text
    assert "| best | sft-5000 | 6,400 | 500 | 200.0 | 31.2 | 3 |" in text  # gold_control has no ledger: no row
    gao_row = next(line for line in text.splitlines() if line.startswith("| best | 40 |"))
    assert "d* " in gao_row and "step 100" in gao_row


def test_unreadable_study_json_is_one_line_error(tmp_path):
    p = tmp_path / "study.json"
    p.write_text("{not json")
    with pytest.raises(JudgerlError, match="not a readable study.json"):
        render_file(p)


def test_template_cell_says_when_a_run_was_never_flagged():
    from judgerl.study.writeup import _template_cell

    quiet = [{"step": 0, "template_share": 0.0, "template_flag": False}, {"step": 5, "template_share": 0.1}]
    assert _template_cell(quiet) == "0.00 → 0.10, never flagged"
    assert _template_cell([{"step": 0}, {"step": 5, "template_share": None}]) == "–"
