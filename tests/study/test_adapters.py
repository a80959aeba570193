"""Merging a shipped adapter into its base (study/adapters.py), on the real SmolLM2 weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judgerl import JudgerlError
from judgerl.study.adapters import check_adapter, merged_model

SHIPPED = Path(__file__).resolve().parents[2] / "src" / "judgerl" / "study" / "judges" / "sft-500" / "adapter"


@pytest.mark.slow
def test_merged_model_is_built_whole_once_and_reused(tmp_path, smollm2_path):
    out = merged_model(str(smollm2_path), SHIPPED, "causal", tmp_path / "merged")
    stamp = json.loads((out / "merged_from.json").read_text())
    assert stamp["sha256"] == check_adapter(SHIPPED)["sha256"] and (out / "config.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["merged"]  # no temporary copy left beside it
    before = (out / "merged_from.json").stat().st_mtime_ns
    assert merged_model(str(smollm2_path), SHIPPED, "causal", tmp_path / "merged") == out
    assert (out / "merged_from.json").stat().st_mtime_ns == before  # reused, not rebuilt


def test_merged_model_refuses_a_tampered_adapter(tmp_path):
    import shutil

    bad = tmp_path / "adapter"
    shutil.copytree(SHIPPED, bad)
    with open(bad / "adapter_model.safetensors", "r+b") as f:
        f.seek(-8, 2)
        f.write(b"\0" * 8)
    with pytest.raises(JudgerlError, match="sha256"):
        merged_model("unused-base", bad, "causal", tmp_path / "merged")
