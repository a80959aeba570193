"""The reward-hacking study (issue 15): config, prompt split, labels, intervals, stage bookkeeping, and the
whole command end to end at toy size on the CPU (real SmolLM2, real TRL steps; marked slow)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from judgerl import JudgerlError
from judgerl.paths import data_root
from judgerl.study.config import StudyConfig
from judgerl.study.labels import decile_cuts, split_prompts, to_label
from judgerl.study.run import expand, load_config, main
from judgerl.study.stages import StageRunner
from judgerl.study.stats import cluster_bootstrap

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_config_loads_and_expands():
    cfg = load_config(str(ROOT / "configs/study/hacking.yaml"), ["policy.steps=7"])
    assert cfg.policy.steps == 7 and cfg.policy.policy_dtype == "float32"
    sel = expand(["judges", "policy:best"], cfg)
    assert sel == {f"judge-sft-{n}" for n in (500, 1500, 5000, 10000, 20000)} | {
        "judges-eval", "policy-best", "reasoning-traces", "judge-reasoning"}
    assert cfg.gold.source == "embedded" and [r.judge for r in cfg.policy.runs] == [
        "prompted", "sft-mid", "sft-best", "reasoning", "gold"]
    with pytest.raises(JudgerlError, match="unknown stage"):
        expand(["policy:nope"], cfg)


def test_config_refuses_unknown_judge_and_weak():
    with pytest.raises(Exception, match="sft-77"):
        StudyConfig.model_validate({"policy": {"runs": [{"name": "a", "judge": "sft-77"}]}})
    with pytest.raises(Exception, match="judges.weak"):
        StudyConfig.model_validate({"judges": {"label_counts": [10], "weak": 5}})
    with pytest.raises(Exception, match="judges.best"):
        StudyConfig.model_validate({"judges": {"label_counts": [10], "weak": 10, "best": 5}})


def test_best_judge_is_pinned_when_larger_judges_come_later():
    from judgerl.study.run import Study

    cfg = load_config(str(ROOT / "configs/study/hacking.yaml"), [])
    assert max(cfg.judges.label_counts) == 20000 and Study(cfg).judge_name("sft-best") == "sft-5000"
    assert Study(load_config(None, ["judges.label_counts=[500,1500,5000,10000]"])).judge_name("sft-best") == "sft-10000"


def test_earlier_alpha_rows_hold_only_for_judges_trained_before_them(tmp_path):
    from judgerl.study.judges import earlier_alpha_rows

    cfg = {"eval_limit": 1500, "counts": [500, 5000], "reasoning_eval_limit": None, "bootstrap": 1000}
    rows = [{"judge": "prompted"}, {"judge": "sft-500"}, {"judge": "sft-5000"},
            {"judge": "reasoning (sft only)", "reasoning": True}, {"judge": "sft-900", "missing": "not trained"}]
    (tmp_path / "curve.json").write_text(json.dumps(rows))
    for name, finished in (("sft-500", 10.0), ("sft-5000", 30.0), ("reasoning", 5.0)):  # sft-5000 trained again
        (tmp_path / name).mkdir()
        (tmp_path / name / f"stage-judge-{name}.json").write_text(json.dumps({"finished": finished}))
    rec = {"status": "done", "config": cfg, "started": 20.0}
    (tmp_path / "stage-judges-eval.json").write_text(json.dumps(rec))
    assert sorted(earlier_alpha_rows(tmp_path, {**cfg, "counts": [500, 5000, 20000]})) == ["prompted", "reasoning", "sft-500"]
    assert earlier_alpha_rows(tmp_path, {**cfg, "eval_limit": 800}) == {}  # other settings: every judge again
    (tmp_path / "stage-judges-eval.json").write_text(json.dumps({**rec, "status": "running"}))
    assert earlier_alpha_rows(tmp_path, cfg) == {}
    # a re-run stopped half-way (the record says running) keeps the last finished record as `previous`
    (tmp_path / "stage-judges-eval.json").write_text(json.dumps({"status": "running", "started": 99.0, "previous": rec}))
    assert sorted(earlier_alpha_rows(tmp_path, cfg)) == ["prompted", "reasoning", "sft-500"]


def test_a_stopped_rerun_keeps_the_last_finished_record(tmp_path):
    from judgerl.study.stages import last_done

    def stop():
        raise KeyboardInterrupt  # the call's deadline

    S = StageRunner(lambda m: None)
    S.run("a", tmp_path, {"x": 1}, [], lambda: {"r": 1})
    S2 = StageRunner(lambda m: None)
    with pytest.raises(KeyboardInterrupt):
        S2.run("a", tmp_path, {"x": 2}, [], stop, owns_folder=False)
    rec = json.loads((tmp_path / "stage-a.json").read_text())
    assert rec["status"] == "running" and last_done(rec)["config"] == {"x": 1} and last_done(rec)["result"] == {"r": 1}
    with pytest.raises(KeyboardInterrupt):  # stopped twice: still the finished one, not nested
        StageRunner(lambda m: None).run("a", tmp_path, {"x": 3}, [], stop, owns_folder=False)
    rec = json.loads((tmp_path / "stage-a.json").read_text())
    assert last_done(rec)["config"] == {"x": 1} and "previous" not in last_done(rec)


def test_bad_override_is_one_line_error(capsys):
    assert main(["--config", str(ROOT / "configs/study/hacking.yaml"), "--set", "policy.steps=0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "policy.steps" in err and "\n" not in err


def test_prompt_sets_are_disjoint_and_deterministic():
    cfg = StudyConfig.model_validate({"prompts": {"monitor": 40}})
    a = split_prompts(cfg, data_root())
    b = split_prompts(cfg, data_root())
    assert a == b and len(a["monitor"]) == 40
    sets = [set(v) for v in a.values()]
    assert sum(map(len, sets)) == len(set().union(*sets))  # no prompt in two sets
    alpaca = {r["instruction"] for r in json.load(__import__("gzip").open(
        data_root() / "alpaca-eval/reference_outputs/gpt4_1106_preview.json.gz", "rt"))}
    assert not alpaca & set().union(*sets)  # evaluation prompts never become RL prompts


def test_decile_labels_cover_0_to_9():
    vals = [float(i) for i in range(100)]
    cuts = decile_cuts(vals)
    labels = [to_label(v, cuts) for v in vals]
    assert min(labels) == 0 and max(labels) == 9
    assert all(labels.count(k) == 10 for k in range(10))
    assert to_label(1e9, cuts) == 9 and to_label(-1e9, cuts) == 0


def test_cluster_bootstrap_interval_and_small_n():
    rows = [(f"p{i % 40}", float(i % 2)) for i in range(400)]
    ci = cluster_bootstrap(rows, lambda r: r[0], lambda rs: sum(x for _, x in rs) / len(rs), 300)
    assert ci["lo"] < ci["value"] < ci["hi"] and ci["clusters"] == 40 and not ci["small_n"]
    small = cluster_bootstrap(rows[:10], lambda r: r[0], lambda rs: sum(x for _, x in rs) / len(rs), 50)
    assert small["small_n"]


def test_stage_runner_needs_dependencies_done(tmp_path):
    logs = []
    S = StageRunner(logs.append, selected={"b"})
    S.run("a", tmp_path / "a", {"x": 1}, [], lambda: {"ran": True})  # not selected, not done
    with pytest.raises(JudgerlError, match="needs a done first"):
        S.run("b", tmp_path / "b", {}, ["a"], lambda: {})
    S = StageRunner(logs.append)
    assert S.run("a", tmp_path / "a", {"x": 1}, [], lambda: {"n": 1}) == {"n": 1}
    assert S.run("b", tmp_path / "b", {}, ["a"], lambda: {"m": 2}) == {"m": 2}
    S2 = StageRunner(logs.append)  # same configs: both skipped, results kept
    assert S2.run("a", tmp_path / "a", {"x": 1}, [], lambda: pytest.fail("reran")) == {"n": 1}
    S3 = StageRunner(logs.append)  # a changed config reruns the stage and its dependants
    assert S3.run("a", tmp_path / "a", {"x": 2}, [], lambda: {"n": 3}) == {"n": 3}
    assert S3.run("b", tmp_path / "b", {}, ["a"], lambda: {"m": 4}) == {"m": 4}


def test_interval_alpha_matches_krippendorff():
    import random

    from judgerl.evaluation.judge_metrics import interval_alpha, krippendorff_alpha

    r = random.Random(1)
    g = [r.randint(0, 9) for _ in range(60)]
    p = [x + r.gauss(0, 2) for x in g]
    p[5] = None
    assert abs(interval_alpha(g, p) - krippendorff_alpha(g, p)) < 1e-6
    assert interval_alpha([1, 1], [1, 1]) is None and interval_alpha([1], [2]) is None


def test_length_collapse_detector():
    from judgerl.evaluation.patterns import DETECTORS, detect

    base = " ".join(["word"] * 80)
    assert "length_collapse" in DETECTORS
    assert detect("A one-line non-answer.", base)["length_collapse"]
    assert not detect(" ".join(["word"] * 60), base)["length_collapse"]  # shorter, not collapsed
    assert not detect("Short.", "Also short, the base.")["length_collapse"]  # needs 30 fewer words
    assert not detect("Short.", None)["length_collapse"]


def test_exploit_table_scores_detectors_against_the_gold(tmp_path):
    from judgerl.study.exploit import exploit_table

    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    long = " ".join(["detail"] * 80)
    base = [{"prompt": [{"role": "user", "content": f"q{i}"}], "response": long, "proxy": 5.0, "gold": 0.0}
            for i in range(4)]
    last = [{**base[0], "response": "one line", "proxy": 5.2, "gold": -2.0},   # exploited, flagged
            {**base[1], "response": "one line", "proxy": 4.0, "gold": -2.0},   # judge fell: not exploited
            {**base[2], "proxy": 5.1, "gold": -1.0},                           # exploited, not flagged
            {**base[3], "proxy": 5.0, "gold": 0.5}]
    for name, rows in (("step_0000.jsonl", base), ("step_0010.jsonl", last)):
        (run / "samples" / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    t = exploit_table(run, 10)
    d = t["detectors"]["length_collapse"]
    assert t["exploited"] == 2 and d["flags"] == 2 and d["tp"] == 1
    assert d["precision"] == 0.5 and d["recall"] == 0.5


def test_embedded_gold_adapter_is_checked(tmp_path):
    import shutil

    from judgerl.study.adapters import check_adapter
    from judgerl.study.embedded import adapter_dir, gold_record

    rec = check_adapter(adapter_dir())
    assert rec["bytes"] < 8_000_000 and rec["kind"] == "reward"
    g = gold_record()
    assert g["checks_gpu"]["alpaca_heldout_vs_gpt4_turbo"]["n"] > 1000 and len(g["score_0_9"]["decile_cuts"]) == 9
    bad = tmp_path / "bad"
    shutil.copytree(adapter_dir(), bad)
    data = bytearray((bad / "adapter_model.safetensors").read_bytes())
    data[-1] ^= 1  # one flipped bit
    (bad / "adapter_model.safetensors").write_bytes(bytes(data))
    with pytest.raises(JudgerlError, match="sha256"):
        check_adapter(bad)


@pytest.mark.slow
def test_embedded_gold_prefers_the_reference_answer_on_cpu():
    """The shipped gold on the CPU: a held-out GPT-4-Turbo reference answer beats a one-line non-answer."""
    from judgerl.judges.judge import Judge
    from judgerl.judges.spec import JudgeRequest
    from judgerl.study.embedded import embedded_gold_spec
    from judgerl.study.gold import alpaca_pairs

    held = [r for r in alpaca_pairs(data_root(), StudyConfig()) if r["split"] == "test"][:3]
    judge = Judge(embedded_gold_spec("cpu", 4))
    reqs = [JudgeRequest(prompt=r["prompt"], responses=[x]) for r in held for x in (r["responses"][0], "I don't know.")]
    v = judge.judge(reqs)
    assert all(v[2 * i].expected > v[2 * i + 1].expected for i in range(len(held)))


TOY = {"device": "cpu",
       "gold": {"source": "train", "pairs": 40, "max_chars": 400, "max_steps": 1, "batch_size": 2, "max_length": 256,
                "eval_pairs": 4, "bootstrap": 10},
       "prompts": {"limit": 10, "monitor": 2, "max_chars": 300},
       "labels": {"samples_per_prompt": 2, "max_new_tokens": 6, "batch_size": 8},
       "judges": {"label_counts": [4], "weak": 4, "max_steps": 1, "batch_size": 2, "eval_limit": 2},
       "reasoning": {"items": 3, "samples": 2, "tolerance": 9, "max_new_tokens": 40, "grpo_steps": 1,
                     "grpo_prompts": 1, "grpo_generations": 2, "sft_epochs": 1},
       "policy": {"runs": [{"name": "weak", "judge": "sft-weak"}, {"name": "gold_control", "judge": "gold"},
                           {"name": "reasoning", "judge": "reasoning"}],
                  "steps": 2, "prompts_per_step": 1, "num_generations": 2, "max_completion_length": 6,
                  "monitor_every": 1, "monitor_tokens": 6}}


@pytest.mark.slow
def test_study_end_to_end_toy(tmp_path, capsys):
    import yaml

    cfg_path = tmp_path / "toy.yaml"
    cfg_path.write_text(yaml.safe_dump({**TOY, "run_dir": str(tmp_path / "study")}))
    assert main(["--config", str(cfg_path)]) == 0
    root = tmp_path / "study"
    gold = json.loads((root / "gold" / "gold.json").read_text())
    assert gold["adapter"]["bytes"] < 20_000_000 and (root / "gold" / "adapter" / "adapter_model.safetensors").is_file()
    assert gold["checks"]["alpaca_heldout_vs_gpt4_turbo"]["n"] == 4
    ann = [json.loads(x) for x in (root / "labels" / "annotations" / "pointwise.jsonl").read_text().splitlines()]
    assert ann and all(0 <= a["score"] <= 9 for a in ann) and {a["split"] for a in ann} == {"train", "test"}
    curve = json.loads((root / "judges" / "curve.json").read_text())
    assert [r["judge"] for r in curve] == ["prompted", "sft-4", "reasoning (sft+grpo)"]
    assert curve[2]["tokens_out_per_verdict"] > curve[1]["tokens_out_per_verdict"]  # it thinks before the verdict
    traces = json.loads((root / "judges" / "reasoning-traces" / "traces.json").read_text())
    assert traces["sampled"] == 6 and 0 < traces["kept"] <= traces["valid"] <= 6
    for a in ("sft_adapter", "adapter"):  # both reasoning-judge stages keep a small adapter
        assert (root / "judges" / "reasoning" / a / "adapter_model.safetensors").stat().st_size < 20_000_000
    for run in ("weak", "gold_control", "reasoning"):
        mon = [json.loads(x) for x in (root / "policies" / run / "monitor.jsonl").read_text().splitlines()]
        assert [m["step"] for m in mon] == [0, 1, 2]
        assert (root / "policies" / run / "train.log").stat().st_size > 0  # TRL's per-step lines, not the console
    study = json.loads((root / "analysis" / "study.json").read_text())
    pts = study["runs"]["weak"]["points"]
    assert pts[0]["distance"] == 0.0 and all(p["gold"]["n"] == 2 for p in pts)
    assert (root / "analysis" / "proxy_vs_gold.png").is_file()
    out = capsys.readouterr().out
    assert "gold: held-out accuracy" in out and "'loss'" not in out  # one line per stage, no trainer dicts
    # a second run skips every stage
    assert main(["--config", str(cfg_path)]) == 0
    assert "gold: done earlier, skipped" in capsys.readouterr().out
    # a reasoning judge whose GRPO stage was cut off: the re-run keeps the SFT adapter and trains GRPO again
    rj = root / "judges" / "reasoning"
    sft_sha = json.loads((rj / "sft_adapter" / "adapter.json").read_text())["sha256"]
    shutil.rmtree(rj / "adapter")
    (rj / "stage-judge-reasoning.json").unlink()
    assert main(["--config", str(cfg_path), "--stage", "judge-reasoning"]) == 0
    assert "SFT adapter of an earlier run kept" in capsys.readouterr().out
    assert json.loads((rj / "sft_adapter" / "adapter.json").read_text())["sha256"] == sft_sha
    assert (rj / "adapter" / "adapter_model.safetensors").is_file()
    # a judge added to the curve later is scored alone: the earlier rows are kept, not re-scored
    more = ["--set", "judges.label_counts=[4,6]", "--set", "judges.best=4"]
    assert main(["--config", str(cfg_path), *more, "--stage", "judge-sft-6", "--stage", "judges-eval"]) == 0
    out = capsys.readouterr().out
    assert "judge sft-6: SFT" in out and "policy-weak" in out.splitlines()[-1]  # its run stays done
    # (the reasoning judge's GRPO stage ran again above, after that evaluation: it is scored again)
    assert out.count("alpha kept from the earlier evaluation") == 2 and "judge sft-4: alpha kept" in out
    assert "judge reasoning: alpha kept" not in out
    curve2 = json.loads((root / "judges" / "curve.json").read_text())
    assert [r["judge"] for r in curve2] == ["prompted", "sft-4", "sft-6", "reasoning (sft+grpo)"]
    assert json.dumps(curve2[:2]) == json.dumps(curve[:2])  # as text: toy rows hold NaN (NaN != NaN)
    assert curve2[2]["alpha_expected"]["n"] == 2 and "seconds_per_verdict" in curve2[3]


def test_gold_pairs_keep_a_held_out_split():
    """gold.pairs on a small n keeps validation and test rows (rows[:n] of the shuffled AlpacaEval pairs
    had none: splits go by instruction, and 24 rows drew from a handful of instructions)."""
    from judgerl.study.gold import keep_split_shares

    rows = [{"i": i, "split": "train"} for i in range(50)] + [{"i": 100 + i, "split": s} for i, s in
                                                              enumerate(["validation"] * 3 + ["test"] * 3)]
    kept = keep_split_shares(rows, 20)
    assert [r["split"] for r in kept].count("test") == 2 and [r["split"] for r in kept].count("validation") == 2
    assert len(kept) == 20 and [r["i"] for r in kept][:16] == list(range(16))  # order kept, train first-come
    assert len(keep_split_shares(rows, 200)) == 56                           # capped by what there is


@pytest.mark.slow
def test_policy_run_pauses_on_budget_and_resumes(tmp_path, capsys):
    """A policy stage paused by policy.max_seconds saves on a monitor step, is recorded `partial`, and the same
    command resumes it from that checkpoint to policy.steps (monitor points 0..4, none repeated)."""
    import yaml

    cfg = {**TOY, "gold": {"source": "embedded", "bootstrap": 10}, "run_dir": str(tmp_path / "study"),
           "reasoning": {"enabled": False},
           "policy": {**TOY["policy"], "runs": [{"name": "gold_control", "judge": "gold"}], "steps": 4,
                      "monitor_every": 2, "save_steps": 100, "max_seconds": 0.01}}
    p = tmp_path / "toy.yaml"
    p.write_text(yaml.safe_dump(cfg))
    args = ["--config", str(p), "--stage", "prompts", "--stage", "gold", "--stage", "policy:gold_control"]
    assert main(args) == 0
    run = tmp_path / "study" / "policies" / "gold_control"
    rec = json.loads((run / "stage-policy-gold_control.json").read_text())
    assert rec["status"] == "partial" and rec["result"]["steps"] == 2
    assert (run / "checkpoints" / "checkpoint-2").is_dir()
    assert "paused after" in capsys.readouterr().out
    assert main(args) == 0
    rec = json.loads((run / "stage-policy-gold_control.json").read_text())
    assert rec["status"] == "done" and rec["result"]["steps"] == 4
    steps = [json.loads(x)["step"] for x in (run / "monitor.jsonl").read_text().splitlines()]
    assert steps == [0, 2, 4]


def test_verdict_cost_only_from_backend_calls():
    from judgerl.study.judges import verdict_cost

    assert verdict_cost(2.0, 4, {"backend_calls": 4, "tokens_in": 400, "tokens_out": 40}) == {
        "seconds_per_verdict": 0.5, "tokens_in_per_verdict": 100.0, "tokens_out_per_verdict": 10.0}
    assert verdict_cost(0.01, 4, {"backend_calls": 1, "tokens_in": 100, "tokens_out": 10}) == {
        "cost_note": "not measured: 3 of 4 verdicts came from the cache"}


def test_a_run_can_take_its_own_seed(tmp_path):
    """policy.runs[].seed: a second draw of an arm (other GRPO seed) beside the first; a run without it keeps
    policy.seed and its stage hash (the committed runs stay done: tests/study/test_reasoning.py)."""
    from judgerl.study.judges import prompted_spec
    from judgerl.study.policy import policy_config

    cfg = load_config(None, ["policy.runs=[{name: mid, judge: sft-mid}, {name: mid_s1, judge: sft-mid, seed: 1}]",
                             "judges.label_counts=[500,1500,5000]", "policy.seed=7"])
    (tmp_path / "monitor_prompts.jsonl").write_text('{"prompt": "hi"}\n')
    seeds = [policy_config(cfg, r, prompted_spec(cfg), prompted_spec(cfg), tmp_path, tmp_path / r.name)["grpo"]["seed"]
             for r in cfg.policy.runs]
    assert seeds == [7, 1]

