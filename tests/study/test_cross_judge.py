"""Cross-judge matrix on the committed 15-step runs: final vs step-0 answers paired by prompt; real SmolLM2 judges
on the CPU at toy size (the prompted judge and the embedded gold RM re-score the final answers as the run's
monitor did on the GPU), and the arena against the base with the embedded judge."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from judgerl import JudgerlError
from judgerl.study.cross_judge import cross_judge_matrix, final_and_base, keep_columns, keep_rows
from judgerl.study.samples import read_samples

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "docs/experiments/reward_hacking"


def test_final_and_base_pair_the_last_point_with_step_0():
    x = final_and_base(RUNS / "weak", limit=5)
    assert x["final_step"] == 14 and x["base_step"] == 0 and len(x["items"]) == 5
    base = {json.dumps(r["prompt"]): r["response"] for r in read_samples(RUNS / "weak", 0)}
    assert all(base[json.dumps(p)] == b for p, _, b in x["items"])


def test_a_run_with_one_sampled_point_and_no_judges_are_clear_errors(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(RUNS / "weak", run)
    (run / "samples" / "step_0014.jsonl").unlink()
    with pytest.raises(JudgerlError, match="needs samples at two monitor points"):
        final_and_base(run)
    with pytest.raises(JudgerlError, match="no judges"):
        cross_judge_matrix({"weak": RUNS / "weak"}, {}, log=lambda m: None)


def test_kept_columns_come_from_the_earlier_matrix_marked_with_their_step():
    from judgerl.study.writeup import cross_judge_table

    cell = {"final": {"value": 7.0, "lo": 6.9, "hi": 7.1}, "base": {"value": 7.1, "lo": 7.0, "hi": 7.2},
            "change": {"value": -0.1, "lo": -0.2, "hi": 0.0}}
    earlier = {"judges": ["prompted", "reasoning", "gold"],
               "runs": {"a": {"final_step": 105, "n": 2, "scores": {"reasoning": cell, "gold": cell}},
                        "b": {"final_step": 50, "n": 2, "scores": {"reasoning": cell, "gold": cell}}}}
    new = {"judges": ["prompted", "gold"], "runs": {
        "a": {"final_step": 200, "n": 2, "scores": {"prompted": cell, "gold": cell}},
        "b": {"final_step": 50, "n": 2, "scores": {"prompted": cell, "gold": cell}},
        "c": {"final_step": 10, "n": 2, "scores": {"prompted": cell, "gold": cell}}}}
    res = keep_columns(new, earlier, ["reasoning"])
    assert res["judges"] == ["prompted", "reasoning", "gold"] and res["kept_from_earlier"] == ["reasoning"]
    assert res["runs"]["a"]["scores"]["reasoning"] == {**cell, "scored_step": 105}  # the earlier run's answers
    assert res["runs"]["b"]["scores"]["reasoning"] == cell  # same final step: the same answers
    assert "reasoning" not in res["runs"]["c"]["scores"]  # no earlier cell: left empty
    assert cell.get("scored_step") is None  # the earlier matrix is not changed
    text = cross_judge_table({"cross_judge": res})
    assert text.count("[step-105 answers]") == 1 and "kept from an earlier matrix (reasoning not re-scored)" in text
    assert keep_columns(new, earlier, []) is new and keep_columns(new, {}, ["reasoning"]) is new


def test_rows_of_runs_not_rescored_are_kept_without_the_changed_judges_cells():
    cell = {"final": {"value": 7.0, "lo": 6.9, "hi": 7.1}}
    earlier = {"judges": ["prompted", "reasoning", "gold"], "trained_on": {"a": "prompted", "b": "reasoning"},
               "runs": {"a": {"final_step": 200, "scores": {"prompted": cell, "reasoning": cell}, "arena": {"x": 1}},
                        "b": {"final_step": 50, "scores": {"prompted": cell, "reasoning": cell}}}}
    new = {"judges": ["prompted"], "trained_on": {"b": "reasoning"},
           "runs": {"b": {"final_step": 200, "scores": {"prompted": cell}}}}
    res = keep_rows(new, earlier, ["reasoning"])
    assert set(res["runs"]) == {"a", "b"} and res["runs"]["b"]["final_step"] == 200  # b re-scored, not replaced
    assert res["runs"]["a"]["scores"] == {"prompted": cell} and res["runs"]["a"]["arena"] == {"x": 1}
    assert res["runs"]["a"]["kept_from_earlier_pass"] and res["trained_on"]["a"] == "prompted"
    assert res["judges"] == ["prompted", "gold"] and res["dropped_stale"] == ["reasoning"]
    assert "reasoning" in earlier["runs"]["a"]["scores"]  # the earlier matrix is not changed


def test_an_interrupted_pass_keeps_the_columns_it_finished(tmp_path, monkeypatch):
    import judgerl.study.cross_judge as cj

    def fake_runs(judge, runs, nb, seed=0):
        if judge is broken:
            raise RuntimeError("backend died")
        return {r: {"final": {"value": 1.0}} for r in runs}
    broken, ok = object(), object()  # fault injection: the second judge's backend dies mid-pass
    monkeypatch.setattr(cj, "judge_runs", fake_runs)
    out = tmp_path / "cross_judge.json"
    with pytest.raises(RuntimeError, match="backend died"):
        cross_judge_matrix({"weak": RUNS / "weak"}, {"ok": ok, "broken": broken}, out, log=lambda m: None, limit=3)
    saved = json.loads(out.read_text())
    assert saved["incomplete"] and saved["runs"]["weak"]["scores"] == {"ok": {"final": {"value": 1.0}}}
    with pytest.raises(JudgerlError, match="no policy run named nope"):
        cross_judge_matrix({"weak": RUNS / "weak"}, {"ok": ok}, out, log=lambda m: None, only=["nope"])
    res = cross_judge_matrix({"weak": RUNS / "weak"}, {"ok": ok}, out, log=lambda m: None, limit=3)
    assert "incomplete" not in res and "incomplete" not in json.loads(out.read_text())


@pytest.mark.slow
def test_matrix_and_arena_with_real_smollm2_on_cpu(tmp_path):
    from judgerl.judges.spec import JudgeSpec, Sampling
    from judgerl.study.embedded import embedded_gold_spec

    prompted = JudgeSpec(name="prompted", backend="hf", model="smollm2-135m-instruct", format="pointwise",
                         mode="direct", device="cpu", batch_size=8, sampling=Sampling(max_new_tokens=8))
    runs = {k: RUNS / k for k in ("prompted", "gold_control")}
    out = tmp_path / "cross_judge.json"
    res = cross_judge_matrix(runs, {"prompted": prompted, "gold": embedded_gold_spec("cpu", 8)}, out, arena="default",
                             nb=100, limit=3, log=lambda m: None, trained_on={"prompted": "prompted"})
    assert json.loads(out.read_text())["runs"]["prompted"]["n"] == 3
    for run, stored_key in (("prompted", "proxy"), ("gold_control", "gold")):
        stored = read_samples(runs[run], res["runs"][run]["final_step"])[:3]
        mean = sum(r[stored_key] for r in stored) / 3
        judge = "prompted" if stored_key == "proxy" else "gold"
        # the CPU fp32 re-score agrees with what the run's monitor stored (GPU) to a few hundredths
        assert abs(res["runs"][run]["scores"][judge]["final"]["value"] - mean) < 0.05
    g = res["runs"]["gold_control"]["scores"]["gold"]
    assert g["change"]["value"] > 0.5 and res["runs"]["prompted"]["scores"]["gold"]["change"]["value"] < 0
    a = res["runs"]["prompted"]["arena"]
    assert a["games"] == 6 and a["invalid_games"] == 0 and 0.0 < a["win_rate"]["value"] < 1.0
    # a second matrix keeps the prompted column instead of re-scoring it, from the file the first one wrote
    again = cross_judge_matrix(runs, {"gold": embedded_gold_spec("cpu", 8)}, out, nb=100, limit=3,
                               log=lambda m: None, keep=["prompted"])
    assert again["judges"] == ["prompted", "gold"] and again["kept_from_earlier"] == ["prompted"]
    for run in runs:
        assert again["runs"][run]["scores"]["prompted"] == res["runs"][run]["scores"]["prompted"]
        assert again["runs"][run]["scores"]["gold"]["final"]["value"] == pytest.approx(
            res["runs"][run]["scores"]["gold"]["final"]["value"], abs=1e-4)
    assert json.loads(out.read_text())["kept_from_earlier"] == ["prompted"]
