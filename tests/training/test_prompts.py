"""RL prompt pools from the real shared data, file sources, and their errors."""

from __future__ import annotations

import json

import pytest

from judgerl import JudgerlError
from judgerl.paths import data_root
from judgerl.training.prompts import load_prompts, load_source


def test_pools_load_real_prompts(shared_data):
    eq = load_source("pool:eq-bench", shared_data)
    assert len(eq) == 19 and not any("<SEED>" in p for p in eq)  # seed modifier filled in
    wb = load_source("pool:writingbench", shared_data)
    assert len(wb) > 100 and all(p.strip() for p in wb)
    wiz = load_source("pool:wizardlm", shared_data)
    raw = [json.loads(x) for x in (shared_data / "wizardlm" / "WizardLM_testset.jsonl").read_text().splitlines()]
    assert 0 < len(wiz) < len(raw)  # math / code skills left out
    assert not {r["Instruction"] for r in raw if r["Skill"] == "Math"} & set(wiz)
    si = load_source("pool:self-instruct", shared_data)
    assert len(si) == 175


def test_load_prompts_dedupes_filters_and_shuffles_by_seed(tmp_path, shared_data):
    f = tmp_path / "p.jsonl"
    f.write_text("".join(json.dumps({"q": t}) + "\n" for t in ["a short one", "a short one", "x" * 50, " padded "]))
    got = load_prompts([str(f)], field="q", max_chars=20, seed=1)
    assert sorted(got) == ["a short one", "padded"]
    many = load_prompts(["pool:self-instruct"], shared_data)
    assert many == load_prompts(["pool:self-instruct"], shared_data) != load_prompts(["pool:self-instruct"], shared_data, seed=1)


def test_prompt_source_errors(tmp_path, shared_data):
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"text": "hi"}) + "\n")
    with pytest.raises(JudgerlError, match="no prompt field"):
        load_source(str(f), shared_data)
    with pytest.raises(JudgerlError, match="unknown prompt pool"):
        load_source("pool:alpaca-eval", shared_data)
    with pytest.raises(JudgerlError, match="not found"):
        load_source("pool:wizardlm", tmp_path)
    with pytest.raises(JudgerlError, match="no prompts loaded"):
        load_prompts([str(f)], shared_data, field="text", max_chars=1)


def test_configured_data_root_wins_over_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("JUDGERL_SHARED_DATA", str(tmp_path / "env"))
    (tmp_path / "env").mkdir()
    assert data_root(tmp_path) == tmp_path
    assert data_root(None) == tmp_path / "env"
    monkeypatch.setenv("JUDGERL_SHARED_DATA", "/elsewhere")
    with pytest.raises(JudgerlError, match="shared data folder not found: /elsewhere"):
        data_root(None)
