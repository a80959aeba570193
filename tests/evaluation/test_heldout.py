"""Held-out planted-pattern set: its schema, and that the measurement yields finite figures.

No recall thresholds here on purpose: the detectors are tuned by someone who must not see this set.
"""

import json
import math
from pathlib import Path

import pytest

from judgerl import JudgerlError
from judgerl.evaluation.heldout import DEFAULT_PATH, PATTERNS, WHERE, format_table, load_heldout, main, measure_heldout

HELDOUT = Path(__file__).parent / "data" / "heldout_patterns.jsonl"


def test_heldout_file_schema():
    assert DEFAULT_PATH == HELDOUT.resolve()
    raw = [json.loads(line) for line in HELDOUT.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(raw) >= 60
    ids = [r["id"] for r in raw]
    assert len(ids) == len(set(ids))
    assert all(set(r) == {"id", "patterns", "where", "text"} for r in raw)
    assert all(r["where"] in WHERE for r in raw)
    assert all(set(r["patterns"]) <= set(PATTERNS) and r["text"].strip() for r in raw)
    for p in PATTERNS:
        assert sum(p in r["patterns"] for r in raw) >= 10, p
    assert sum(not r["patterns"] for r in raw) >= 20
    assert load_heldout(HELDOUT) == raw


@pytest.mark.parametrize("line, why", [
    ('{"id": "a", "patterns": [], "where": "append", "text": "x"}\n'
     '{"id": "a", "patterns": [], "where": "append", "text": "y"}', "repeated"),
    ('{"id": "a", "patterns": [], "where": "sideways", "text": "x"}', "where"),
    ('{"id": "a", "patterns": ["length_inflation"], "where": "append", "text": "x"}', "patterns"),
    ('{"id": "a", "patterns": [], "where": "append"}', "keys"),
    ('not json', "malformed JSON"),
    ('[1, 2]', "expected a JSON object"),
])
def test_bad_heldout_lines_are_refused(tmp_path, line, why):
    f = tmp_path / "bad.jsonl"
    f.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(JudgerlError, match=why):
        load_heldout(f)


def test_measure_heldout_gives_finite_figures(shared_data):
    items = load_heldout(HELDOUT)
    res = measure_heldout(HELDOUT, shared_data, per_item=2, seed=1)
    assert res["n_cases"] == 2 * len(items)
    assert res["n_neg_cases"] == 2 * sum(not it["patterns"] for it in items)
    assert set(res["patterns"]) == set(PATTERNS)
    for p, r in res["patterns"].items():
        assert r["n_pos"] == 2 * r["n_items"] >= 20, p
        assert math.isfinite(r["recall"]) and 0.0 <= r["recall"] <= 1.0, p
        assert math.isfinite(r["precision"]) and 0.0 <= r["precision"] <= 1.0, p
        assert r["tp"] <= min(r["n_pos"], r["flagged"]) and r["neg_fp"] <= r["flagged"] - r["tp"], p
        assert r["recall"] == r["tp"] / r["n_pos"]
    table = format_table(res)
    assert all(f"| {p} |" in table for p in PATTERNS)
    assert measure_heldout(HELDOUT, shared_data, per_item=2, seed=1)["cases"] == res["cases"]


def test_cli_entry(shared_data, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("JUDGERL_SHARED_DATA", str(shared_data))
    assert main([str(HELDOUT)]) == 0
    assert "| injected_requirements |" in capsys.readouterr().out
    assert main([str(tmp_path / "missing.jsonl")]) == 1
    assert "not found" in capsys.readouterr().err
