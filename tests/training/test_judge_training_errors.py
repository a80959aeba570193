"""Bad input to train-judge / eval-judge: clear one-line errors before any model is loaded."""

import json
import subprocess
import sys

import pytest
import yaml

from judge_testdata import alpaca_items, write_annotations
from judgerl import JudgerlError
from judgerl.config import load_config
from judgerl.training.judge_config import TrainJudgeConfig
from judgerl.training.train_judge import check_data


@pytest.fixture(scope="module")
def items(shared_data):
    return alpaca_items(shared_data, 6, chars=60)


def cfg(ann, **kw):
    return load_config(TrainJudgeConfig, overrides={"annotations": str(ann), **kw})


def test_reasoning_needs_traces_cli_exit_2(tmp_path, items):
    ann = write_annotations(tmp_path / "ann", items, reasoning=False)
    conf = tmp_path / "judge.yaml"
    conf.write_text(yaml.safe_dump({"variant": "reasoning", "annotations": str(ann), "output_dir": str(tmp_path / "run")}))
    r = subprocess.run([sys.executable, "-m", "judgerl.cli", "train-judge", "--config", str(conf)],
                       capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert "no reasoning trace" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    check_data(cfg(ann, variant="rl_only"))          # RL-only needs no traces
    check_data(cfg(ann, variant="non_reasoning"))


def test_score_range_mismatch(tmp_path, items):
    ann = write_annotations(tmp_path / "ann", items, score_range=(1, 5))
    with pytest.raises(JudgerlError, match="score range mismatch: .* annotated on 1-5, the config says 0-9"):
        check_data(cfg(ann))
    check_data(cfg(ann, score_min=1, score_max=5))
    bad = write_annotations(tmp_path / "bad", items, scores=[12] + [3] * 11)
    with pytest.raises(JudgerlError, match="outside 0-9"):
        check_data(cfg(bad))


def test_empty_split_and_missing_rubrics(tmp_path, items):
    ann = write_annotations(tmp_path / "ann", items, rubric=False, splits=("train", "validation"))
    with pytest.raises(JudgerlError, match="no valid pointwise annotations in split 'nope'"):
        check_data(cfg(ann, train_split="nope"))
    with pytest.raises(JudgerlError, match="rows have no rubric"):
        check_data(cfg(ann, variant="rubric"))
    from judgerl.evaluation.eval_judge import evaluate_judge
    from judgerl.judges.spec import JudgeSpec

    with pytest.raises(JudgerlError, match="in split 'test'"):   # held-out split is empty
        evaluate_judge(JudgeSpec(), tmp_path / "eval", data=str(ann), split="test", judge=object())


def test_config_errors(tmp_path, items):
    ann = write_annotations(tmp_path / "ann", items)
    with pytest.raises(JudgerlError, match="variant"):
        cfg(ann, variant="dpo")
    with pytest.raises(JudgerlError, match="multiple of num_generations"):
        cfg(ann, variant="rl_only", grpo={"num_generations": 3, "per_device_train_batch_size": 4})
    with pytest.raises(JudgerlError, match="template file not found"):
        cfg(ann, template=str(tmp_path / "missing.txt"))
    with pytest.raises(JudgerlError, match="not an annotation dataset"):
        check_data(cfg(tmp_path))
    (ann / "pairwise.jsonl").write_text(json.dumps({"item_id": "x", "prompt": "p", "responses": ["a"], "label": 1,
                                                    "valid": True, "split": "train"}) + "\n")
    with pytest.raises(JudgerlError, match="lack a label 1|2 or two responses"):
        check_data(cfg(ann, variant="bt_rm"))
