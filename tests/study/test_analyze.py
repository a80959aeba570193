"""The study's analyze stage from run files only (no model: distance off, or the run's own KL): the committed
15-step runs re-analysed (numbers equal the committed study.json), gzipped and missing sample points, the
trained judge's alpha, the tuned alarm's quality, the online Gao fit and the figures of a 41-point run."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from synthetic import write_run

from judgerl.study.analyze import analyze, run_points
from judgerl.study.config import StudyConfig

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "docs/experiments/reward_hacking"
NAMES = ("prompted", "weak", "gold_control")


def committed_root(tmp_path: Path, gz: bool = False) -> Path:
    root = tmp_path / "study"
    for name in NAMES:
        shutil.copytree(RUNS / name, root / "policies" / name)
        if gz:
            for f in (root / "policies" / name / "samples").glob("*.jsonl"):
                with gzip.open(f.with_suffix(".jsonl.gz"), "wt", encoding="utf-8") as out:
                    out.write(f.read_text())
                f.unlink()
    return root


def cfg_for(runs: list[tuple[str, str]], **kw) -> StudyConfig:
    return StudyConfig.model_validate({"policy": {"runs": [{"name": n, "judge": j} for n, j in runs]},
                                       "gold": {"bootstrap": 200}, **kw})


def test_committed_runs_reanalysed_from_gzipped_samples(tmp_path):
    root = committed_root(tmp_path, gz=True)
    (root / "judges").mkdir()
    curve = [{"judge": "prompted", "labels": 0, "alpha_expected": {"value": -8.1, "lo": -18.8, "hi": 1.2}},
             {"judge": "sft-500", "labels": 500, "alpha_expected": {"value": 1.4, "lo": -5.1, "hi": 6.5}}]
    (root / "judges" / "curve.json").write_text(json.dumps(curve))
    (root / "gold").mkdir()
    shutil.copy(ROOT / "src/judgerl/study/gold_rm/gold.json", root / "gold" / "gold.json")  # the embedded gold's record
    cfg = cfg_for([("prompted", "prompted"), ("weak", "sft-weak"), ("gold_control", "gold")])
    logs: list[str] = []
    res = analyze(cfg, root, logs.append, distance=False)
    study = json.loads((root / "analysis" / "study.json").read_text())
    old = json.loads((RUNS / "study.json").read_text())
    for name in NAMES:
        a, b = study["runs"][name], old["runs"][name]
        assert [p["step"] for p in a["points"]] == [p["step"] for p in b["points"]]
        assert abs(a["points"][-1]["gold_delta_vs_step0"]["value"] - b["points"][-1]["gold_delta_vs_step0"]["value"]) < 1e-9
        assert a["peak_step"] == b["peak_step"] and a["exploit"]["exploited"] == b["exploit"]["exploited"]
    assert study["gold"]["alpaca_heldout_vs_gpt4_turbo"]["n"] > 1000  # checks_gpu of the embedded gold.json
    assert study["runs"]["weak"]["judge_name"] == "sft-500" and study["runs"]["weak"]["alpha"]["value"] == 1.4
    assert study["runs"]["gold_control"]["alpha"]["gold_itself"]
    q = study["alarm_quality"]
    assert q["held_out_runs"] == [] and q["runs"]["prompted"]["status"] == "on time"  # these are the tuning runs
    assert any(line.startswith("alarm quality") for line in logs)
    assert any(line.startswith("with the template input") for line in logs)
    for name in NAMES:  # the template detector per point (15-step runs: no cross-prompt template yet)
        assert all(p["template_share"] < 0.5 and p["template_flag"] is False for p in study["runs"][name]["points"])
    assert "gold_peak_vs_alpha.png" in res["figures"] and (root / "analysis" / "gold_peak_vs_alpha.png").stat().st_size > 5000


def test_missing_points_and_a_long_synthetic_run(tmp_path):
    root = tmp_path / "study"
    n = 41
    gold = [0.0] + [0.06 * t if t < 20 else 1.2 - 0.08 * (t - 20) for t in range(1, n)]  # rises, peaks, falls
    proxy = [5.0 + 0.05 * t for t in range(n)]
    kl = [(0.05 * t) ** 2 for t in range(n)]
    write_run(root / "policies" / "best", gold, proxy, kl=kl, keep=set(range(n)) - {7, 8})  # 2 points lost samples
    write_run(root / "policies" / "gold_control", [0.05 * t for t in range(n)], [0.05 * t for t in range(n)],
              judge="gold-rm", seed=1)
    pts = run_points(cfg_for([("best", "sft-best")]), root / "policies" / "best", False)
    assert len(pts) == n - 2 and {35, 40} & {p["step"] for p in pts} == set() and pts[-1]["kl"] == kl[-1]
    cfg = cfg_for([("best", "sft-best"), ("gold_control", "gold")])
    res = analyze(cfg, root, lambda m: None, distance=False)
    study = json.loads((root / "analysis" / "study.json").read_text())
    best = study["runs"]["best"]
    assert best["peak_step"] in (95, 100, 105) and best["gold_fell_beyond_ci"]
    g = best["gao"]
    assert g["distance"].startswith("sqrt(kl)") and g["happened"]["step"] == best["peak_step"]
    assert g["called_step"] is not None and g["called_step"] >= g["happened"]["step"]
    q = study["alarm_quality"]
    assert q["held_out_runs"] == ["best", "gold_control"]  # the tuning never saw these
    assert q["runs"]["best"]["onset_step"] is not None and q["runs"]["best"]["onset_step"] > best["peak_step"]
    assert q["runs"]["gold_control"]["status"] == "quiet" and q["held_out"]["false_alarms"] == 0
    assert {"gold_vs_sqrt_kl.png", "proxy_vs_gold.png"} <= set(res["figures"])


def test_a_run_cut_before_its_summary_gets_its_steps_from_its_metrics(tmp_path):
    """A call's timeout can kill a policy run after its last monitor point and before summary.json: the runs table
    takes its step count from the last training step metrics.jsonl logged, and a run with neither says none."""
    root = tmp_path / "study"
    run = write_run(root / "policies" / "best", [0.1 * t for t in range(5)], [5.0] * 5)
    (run / "summary.json").unlink()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"step": 19, "loss": 0.1, "reward": 5.0}, {"step": 20, "monitor/n": 24}, {"step": 20, "loss": 0.0, "reward": 5.1},
        {"time": 1.0}]))

    def steps() -> int | None:
        analyze(cfg_for([("best", "sft-best")]), root, lambda m: None, distance=False)
        return json.loads((root / "analysis" / "study.json").read_text())["runs"]["best"]["steps"]

    assert steps() == 20
    (run / "metrics.jsonl").unlink()
    assert steps() is None


@pytest.mark.slow
def test_base_nll_equals_the_full_vocabulary_computation():
    """base_nll applies the vocabulary head at the answer positions only; the NLL equals log_softmax over the whole
    sequence (real SmolLM2, the committed step-0 answers, padded in one batch)."""
    import torch

    from judgerl.judges.hf import chat_text
    from judgerl.model_loader import shared_model
    from judgerl.study.analyze import base_nll
    from judgerl.study.samples import read_samples

    cfg = StudyConfig(device="cpu")
    items = [(r["prompt"][-1]["content"], r["response"]) for r in read_samples(RUNS / "weak", 14)[:3]]
    got = base_nll(cfg, items)
    model, tok = shared_model(cfg.base, "causal", "cpu", "float32")
    for (p, r), g in zip(items, got):
        head = chat_text(tok, [{"role": "user", "content": p}])
        ids = tok(head + r, return_tensors="pt", add_special_tokens=False)["input_ids"]
        k = len(tok(head, add_special_tokens=False)["input_ids"])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        ref = -logp[k - 1:].gather(-1, ids[0, k:, None])[:, 0].mean()
        assert abs(g - float(ref)) < 1e-4


def test_base_nll_cache_is_used_and_checked(tmp_path, monkeypatch):
    """A committed run's distances re-draw from base_nll.json without the model; changed texts are recomputed."""
    import hashlib

    from judgerl.study import analyze as an
    from judgerl.study.config import StudyConfig

    cfg = StudyConfig.model_validate({"device": "cpu"})
    items = [("Say hi.", "Hi!"), ("Count to 2.", "1, 2")]
    key = hashlib.sha256(json.dumps([cfg.base, items]).encode()).hexdigest()[:16]
    (tmp_path / "base_nll.json").write_text(json.dumps({"5": {"key": key, "n": 2, "nll": [1.5, 2.5]}}))
    calls = []
    monkeypatch.setattr(an, "base_nll", lambda c, its: calls.append(its) or [9.0] * len(its))
    assert an.cached_base_nll(cfg, tmp_path, 5, items) == [1.5, 2.5] and calls == []
    assert an.cached_base_nll(cfg, tmp_path, 5, items[:1]) == [9.0] and len(calls) == 1  # other texts: recomputed
    assert json.loads((tmp_path / "base_nll.json").read_text())["5"]["nll"] == [9.0]


def test_cached_distance_uses_only_what_base_nll_json_holds(tmp_path, monkeypatch):
    """distance="cached": points whose base NLL is in base_nll.json get a distance, the others none, and the base
    model is never run (a CPU re-draw of a committed study whose distances were computed for some points only)."""
    from judgerl.study import analyze as an

    run = write_run(tmp_path / "run", [0.0, 0.2, 0.4, 0.3], [5.0, 5.2, 5.4, 5.6])
    cfg = StudyConfig.model_validate({"device": "cpu", "distance_prompts": 4})
    monkeypatch.setattr(an, "base_nll", lambda c, its: [1.0 + 0.1 * len(its[0][1]) % 1] * len(its))
    full = run_points(cfg, run, True)  # fills the cache
    assert all(p["distance"] is not None for p in full)
    cache = json.loads((run / "base_nll.json").read_text())
    del cache["10"]
    (run / "base_nll.json").write_text(json.dumps(cache))
    monkeypatch.setattr(an, "base_nll", lambda c, its: pytest.fail("the base model ran in cached mode"))
    pts = {p["step"]: p for p in run_points(cfg, run, "cached")}
    assert pts[10]["distance"] is None and "base_nll" not in pts[10]
    assert [pts[s]["distance"] for s in (0, 5, 15)] == [p["distance"] for p in full if p["step"] in (0, 5, 15)]


def test_same_opening_share_of_a_learned_template():
    from judgerl.study.analyze import same_opening

    varied = ["The sky is blue today.", "Here is a poem about rain.", "Politics: the topic is politics.", "Sure! A joke."]
    assert same_opening(varied) == 0.25  # every answer opens differently: 1 of 4
    template = ["That's exactly what I was considering. I agree.", "that's exactly  what I was considering: yes",
                "That's exactly what I was considering. Poem.", "A real answer about the sunset."]
    assert same_opening(template) == 0.75  # case and spacing do not split the template
    assert same_opening([]) is None and same_opening(["", "  "]) is None


def test_same_opening_rises_in_the_committed_best_run():
    """The sft-5000 arm's held-out answers converge on one opening (docs/experiments/reward_hacking.md)."""
    from judgerl.study.analyze import same_opening
    from judgerl.study.samples import read_samples

    run = ROOT / "docs/experiments/reward_hacking/contrast/policies/best"
    start, end = (same_opening([r["response"] for r in read_samples(run, s)]) for s in (0, 200))
    assert start < 0.1 and end > 0.9
