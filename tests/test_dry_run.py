"""Every stage verb that makes judge calls takes --dry-run: it prints the plan, loads no model, writes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "judgerl.cli", *args], capture_output=True, text=True, cwd=tmp_path)


CASES = {
    "annotate": ["annotate", "--config", str(REPO / "configs/annotate_embedded.yaml"), "--set", "output_dir=out/ann"],
    "train-judge": ["train-judge", "--config", str(REPO / "configs/judge_embedded_non_reasoning.yaml"),
                    "--set", "output_dir=out/judge", "--set", "annotations=data/ann"],
    "eval-judge": ["eval-judge", "--judge", "smollm2-135m-instruct", "--human", "llmbar-natural", "--limit", "3",
                   "--run-dir", "out/eval"],
    "train-policy": ["train-policy", "--config", str(REPO / "configs/policy_embedded.yaml"), "--set", "run_dir=out/pol"],
    "arena judge": ["arena", "judge", "--judge", "smollm2-135m-instruct", "--model", "m", "--limit", "1",
                    "--run-dir", "out/arena"],
    "probe": ["probe", "--judge", "smollm2-135m-instruct", "--n", "3", "--run-dir", "out/probe"],
    "quickstart": ["quickstart", "--config", str(REPO / "configs/quickstart.yaml"), "--run-dir", "out/qs"],
}


@pytest.mark.parametrize("verb", list(CASES))
def test_dry_run_prints_a_plan_and_writes_nothing(verb, tmp_path, shared_data, monkeypatch):
    if verb == "train-judge":
        from judge_testdata import tiny_annotation_set

        (tmp_path / "data").mkdir()
        tiny_annotation_set(shared_data, tmp_path / "data")
    r = cli(tmp_path, *CASES[verb], "--dry-run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("plan: "), r.stdout
    assert "expected judge calls:" in r.stdout
    assert not (tmp_path / "out").exists(), sorted(p.name for p in (tmp_path / "out").rglob("*"))
