"""eval-judge on the real SmolLM2: gold split metrics, human-label slices, outputs in the run dir."""

import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from judge_testdata import tiny_annotation_set
from judgerl.evaluation import judge_metrics as jm
from judgerl.evaluation.eval_judge import evaluate_judge
from judgerl.judges import Judge, JudgeSpec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ann(shared_data, tmp_path_factory):
    d = tmp_path_factory.mktemp("evaljudge")
    yield tiny_annotation_set(shared_data, d)
    shutil.rmtree(d, ignore_errors=True)  # free the disk before the next module


def test_pointwise_judge_gold_and_human_sets(ann, smollm2, smollm2_path, shared_data, tmp_path):
    data, d = ann
    spec = JudgeSpec(name="smol", model=str(smollm2_path), template=str(d / "tiny.txt"), batch_size=4)
    judge = Judge(spec, cache=tmp_path / "cache.sqlite", ledger=tmp_path / "ledger.sqlite", stage="eval-judge",
                  model=smollm2[0], tokenizer=smollm2[1])
    res = evaluate_judge(spec, tmp_path / "run", data=str(data), split="test",
                         human=["llmbar-natural", "llmbar-adversarial", "pandalm", "mtbench"],
                         shared_data=str(shared_data), limit=2, judge=judge)
    gold = res["gold"]
    assert gold["n"] == 2 and gold["pairwise_n"] == 1                # --limit applies to the gold split too
    assert gold["invalid_rate"] is not None and 0 <= gold["invalid_rate"] <= 1
    assert gold["mean_thinking_tokens"] == 0.0                        # direct judge
    # alpha recomputed from the cached verdicts equals the reported one
    from judgerl.annotate.dataset import load_annotations
    from judgerl.annotate.dataset import request_of

    rows = load_annotations(data, "pointwise", "test")[:2]
    vs = judge.judge([request_of(r, "pointwise") for r in rows])
    assert all(v.cached for v in vs)
    want = jm.krippendorff_alpha([r["score"] for r in rows], [v.label if v.valid else None for v in vs])
    assert gold["alpha"] == (pytest.approx(want) if want is not None else None)
    for name in ("llmbar-natural", "llmbar-adversarial", "pandalm", "mtbench"):
        h = res["human"][name]
        assert h["n"] == 2 and (h["accuracy"] is None or 0 <= h["accuracy"] <= 1), (name, h)
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert saved["human"]["mtbench"]["n"] == 2
    assert "| mtbench | accuracy |" in (tmp_path / "run" / "eval.md").read_text()


def test_pairwise_judge_both_orders_cli(ann, smollm2_path, shared_data, tmp_path):
    data, d = ann
    conf = tmp_path / "pair.yaml"
    conf.write_text(yaml.safe_dump({"name": "smol-pair", "model": str(smollm2_path), "format": "pairwise",
                                    "template": str(d / "tinypair.txt")}))
    r = CliRunner().invoke(__import__("judgerl.cli", fromlist=["app"]).app,
                           ["eval-judge", "--judge", str(conf), "--data", str(data), "--human", "mtbench",
                            "--limit", "1", "--shared-data", str(shared_data)])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "eval.json").read_text())        # default run dir: the judge YAML's folder
    g = res["gold"]
    assert g["n"] == 1 and 0 <= g["position_consistency"] <= 1 and "accuracy_swapped" in g
    assert res["human"]["mtbench"]["n"] == 1 and "position_consistency" in res["human"]["mtbench"]
