"""The quickstart in its CI form on the real SmolLM2: every stage runs, the console shows one line per stage and
the five-line summary (no library chatter), the report opens with the summary; each stage leaves no shared model
and no GRPO trainer alive behind it; a second run reuses every finished stage (no new judge calls in any ledger); a
changed stage config reruns only that stage."""

from __future__ import annotations

import gc
import json
import sqlite3
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from judgerl import model_loader
from judgerl.cli import app
from judgerl.quickstart import Quickstart, QuickstartConfig
from judgerl.quickstart.config import judge_dtype
from judgerl.quickstart.stages import Stages

STAGES = ["labels", "policy-weak", "policy-reasoning", "policy-gold", "judges", "probes"]
NOISE = ("Loading weights", "Writing model shards", "{'loss'", "'monitor/n'", "it/s]", "Warning", "WARNING")


def judge_calls(root: Path) -> int:
    """Rows in every ledger of the run (one row per judge request served, cached or not)."""
    n = 0
    for p in root.rglob("ledger.sqlite"):
        with sqlite3.connect(p) as c:
            n += c.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    return n


def live_trainers() -> int:
    return sum(type(o).__name__ == "GRPOTrainer" for o in gc.get_objects())


@pytest.mark.slow
def test_quickstart_ci_runs_every_stage_then_reuses_them(tmp_path, shared_data, smollm2_path, monkeypatch):
    root = tmp_path / "qs"
    cfg = QuickstartConfig(scale="ci", run_dir=str(root), shared_data=str(shared_data))
    # (stage, CPU judges trim, head memo) as each stage ends; shared models and GRPO trainers once the run is over
    after: list[tuple] = []
    run_stage = Stages.run

    def spy(self, name, *a, **kw):
        run_stage(self, name, *a, **kw)
        after.append((name, model_loader.trim_cpu_judges, model_loader.memo_judge_heads))

    monkeypatch.setattr(Stages, "run", spy)
    r = CliRunner().invoke(app, ["quickstart", "--scale", "ci", "--run-dir", str(root),
                                 "--set", f"shared_data={shared_data}"])
    assert r.exit_code == 0, r.output
    assert sorted(after) == sorted((s, True, True) for s in STAGES)
    gc.collect()
    assert model_loader._REGISTRY == {} and live_trainers() == 0  # every stage gave its models and trainer back
    assert not model_loader.trim_cpu_judges and not model_loader.memo_judge_heads  # on for the quickstart's run only
    # two lanes (quickstart/lanes.py): each keeps its order, the lines are numbered as the stages end
    stage_lines = [x for x in r.output.splitlines() if x.startswith("[")]
    assert [x.split(" (")[0].split("] ")[0] for x in stage_lines] == [f"[{k}/6" for k in range(1, 7)]
    names = [x.split(" (")[0].split("] ")[1] for x in stage_lines]
    assert sorted(names) == sorted(STAGES)
    # policy lane: the weak then the reasoning run; side lane: labels, agreement, probes, then the gold control
    for lane in (["policy-weak", "policy-reasoning"], ["labels", "judges", "probes", "policy-gold"]):
        assert [n for n in names if n in lane] == lane
    for noise in NOISE:
        assert noise not in r.output, noise
    assert "'loss'" in (root / "train.log").read_text()  # TRL's per-step dicts were kept, in the log
    for f in ["config.yaml", "labels/heldout.jsonl", "labels/labels.json", "judges/prompted/eval.json",
              "judges/reasoning/eval.json", "policies/weak/monitor.jsonl", "policies/reasoning/changes.json",
              "policies/gold/monitor.jsonl", "probes/probe-gold.json", "probes/probe-reasoning.json",
              "summary.json", "report.html", "figures/proxy_vs_gold.png"]:
        assert (root / f).exists(), f
    for s, folder in [("labels", "labels"), ("policy-reasoning", "policies/reasoning"), ("probes", "probes")]:
        rec = json.loads((root / folder / f"stage-{s}.json").read_text())
        assert rec["status"] == "done" and len(rec["hash"]) == 16 and rec["result"]
        assert 0 < rec["rss_after_gb"] <= rec["peak_rss_gb"]
    held = [json.loads(x) for x in (root / "labels/heldout.jsonl").read_text().splitlines()]
    assert len(held) == cfg.agreement_items and all(0 <= h["score"] <= 9 for h in held)
    ev = json.loads((root / "judges/prompted/eval.json").read_text())
    assert ev["judge"]["dtype"] == judge_dtype(cfg)  # the weights the verdicts came from
    ev = ev["gold"]
    assert ev["n"] == cfg.agreement_items and ev["alpha_expected"] is not None
    # the run against the prompted base model reads the judge's weights for its frozen blocks (policy_grpo.share_base)
    shared = {n: json.loads((root / f"policies/{n}/summary.json").read_text())["trainable_params"]
              ["shared_with_judge_bytes"] for n in ("weak", "reasoning", "gold")}
    # (same dtype only: bf16 judges on a CPU with native bf16 lend nothing to the fp32 policy)
    assert (shared["weak"] > 0.4e9) == (judge_dtype(cfg) == "float32") and shared["reasoning"] == shared["gold"] == 0
    monitor = [json.loads(x) for x in (root / "policies/weak/monitor.jsonl").read_text().splitlines()]
    assert [m["step"] for m in monitor] == [0, 1, 2] and all(m["gold_mean"] is not None for m in monitor)
    # the later runs take the weak run's step 0 (same base policy, prompts, greedy decoding, gold): the answers a
    # freshly loaded base policy gives, and their gold scores; the control's judge is the gold, scored once
    step0 = {n: [json.loads(x) for x in (root / f"policies/{n}/samples/step_0000.jsonl").read_text().splitlines()]
             for n in ("weak", "reasoning", "gold")}
    for n in ("reasoning", "gold"):
        rec = [json.loads(x) for x in (root / f"policies/{n}/monitor.jsonl").read_text().splitlines()]
        assert rec[0]["step0_from"] == "policies/weak" and "step0_from" not in rec[1]
        assert [(r["response"], r["gold"]) for r in step0[n]] == [(r["response"], r["gold"]) for r in step0["weak"]]
    from judgerl.evaluation.monitor import generate
    from judgerl.model_loader import load_model

    base, tok = load_model(str(smollm2_path), "causal", device="cpu", dtype="float32")
    fresh = generate(base, tok, [r["prompt"] for r in step0["weak"]], cfg.completion_tokens, 0.0, 32)
    assert fresh == [r["response"] for r in step0["weak"]]
    assert all(r["proxy"] == r["gold"] for r in step0["gold"])
    with sqlite3.connect(root / "policies/gold/ledger.sqlite") as c:
        stages = {s for (s,) in c.execute("SELECT DISTINCT stage FROM calls")}
    assert stages == {"policy-reward", "monitor-gold"}
    with sqlite3.connect(root / "policies/reasoning/ledger.sqlite") as c:
        n0 = c.execute("SELECT COUNT(*) FROM calls WHERE stage = 'monitor-gold'").fetchone()[0]
    assert n0 == 2 * cfg.monitor_prompts  # steps 1 and 2 only
    ch = json.loads((root / "policies/gold/changes.json").read_text())
    assert ch["last_step"] == 2 and ch["gold"]["n"] == cfg.monitor_prompts
    summary = json.loads((root / "summary.json").read_text())["lines"]
    assert len(summary) == 5 and "alpha" in summary[0] and "report.html" in summary[4]
    for line in summary:
        assert line in r.output
    html = (root / "report.html").read_text()
    assert html.index("<h2>Summary</h2>") < html.index("<h2>Pipeline</h2>") and "not run" not in html
    calls = judge_calls(root)
    assert calls >= 30

    # second run: every stage reused, no judge called (the ledgers do not grow), summary and report rewritten
    second = Quickstart(cfg).run()
    assert second["stages"] == {s: "skipped" for s in STAGES}
    assert second["summary"][:4] == summary[:4]
    assert judge_calls(root) == calls

    # a changed probe config reruns the probes only (their folder, ledger included, is rebuilt)
    t0 = time.time()
    again = Quickstart(cfg.model_copy(update={"probe_attacks": ["null_model"]})).run()
    assert again["stages"] == {**{s: "skipped" for s in STAGES}, "probes": "ran"}
    res = json.loads((root / "probes/probe-gold.json").read_text())
    assert [a["attack"] for a in res["attacks"]] == ["null_model"]
    with sqlite3.connect(root / "probes/ledger.sqlite") as c:
        n, first = c.execute("SELECT COUNT(*), MIN(ts) FROM calls").fetchone()
    assert n == 3 * 2 and first >= t0  # 3 judges x (honest + attacked), all new
