"""The study's reasoning-judge traces: rationalisation (the gold label as a hint while the base model thinks) and
the stage hashes of the judges trained before the option existed."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from judgerl.study.config import StudyConfig

ROOT = Path(__file__).resolve().parents[2]
CONTRAST = ROOT / "docs/experiments/reward_hacking/contrast"


def test_rationalize_shows_the_gold_label_only_while_sampling():
    from judgerl.judges.prompts import render
    from judgerl.judges.spec import JudgeRequest
    from judgerl.study.reasoning import base_reasoning_spec, rationale_hint

    plain = base_reasoning_spec(StudyConfig(), 0)
    hinted = base_reasoning_spec(StudyConfig.model_validate({"reasoning": {"traces": "rationalize"}}), 0)
    assert not plain.rubric and hinted.rubric and hinted.name != plain.name  # no cache entry shared
    req = JudgeRequest(prompt="Name a prime.", responses=["7"], rubric=rationale_hint(6))
    text = "\n".join(m["content"] for m in render(hinted, req))
    assert "gave this one 6" in text and "end with Score: 6" in text
    assert "gave this one" not in "\n".join(m["content"] for m in render(plain, req.model_copy(update={"rubric": None})))


def test_default_trace_mode_keeps_the_hashes_of_records_made_before_it(tmp_path):
    """The new field must not enter the stage hashes at its default (else every judge trained before it would be
    trained again on a GPU): the first reasoning judge's traces (rejection sampling, 1,500 items x 4, recorded on
    2026-12-06 with hash b1b892384083c574) stay done under that config; the committed rationalised traces are done
    under the committed config, and not under the default trace mode."""
    from judgerl.study.run import Study, load_config

    for p in CONTRAST.rglob("stage-*.json"):
        q = tmp_path / p.relative_to(CONTRAST)
        q.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, q)

    def done(*sets: str) -> set[str]:
        cfg = load_config(str(CONTRAST / "config.yaml"), [f"run_dir={tmp_path}", *sets])
        return set(Study(cfg, lambda m: None).run(set())["stages"])

    assert {"reasoning-traces", "judge-sft-5000", "policy-best", "policy-prompted"} <= done()
    assert "reasoning-traces" not in done("reasoning.traces=rejection")
    rec = tmp_path / "judges/reasoning-traces/stage-reasoning-traces.json"
    rec.write_text(json.dumps({**json.loads(rec.read_text()), "hash": "b1b892384083c574"}))
    first = ("reasoning.traces=rejection", "reasoning.items=1500", "reasoning.samples=4")
    assert "reasoning-traces" in done(*first)
    assert "reasoning-traces" not in done(*first[1:])  # the committed config says rationalize: not the same stage


@pytest.mark.slow
def test_rationalized_traces_on_the_real_model(tmp_path):
    """The real SmolLM2 on the CPU, two labelled answers: the hinted traces are sampled, filtered and written
    without the hint (the SFT prompt is the plain judge prompt)."""
    from judgerl.study.gold import write_annotations
    from judgerl.study.reasoning import sample_traces

    with gzip.open(CONTRAST / "labels/judge_test.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(next(f)) for _ in range(2)]
    rows = [{**r, "split": "train", "valid": True, "response": r["response"][:300]} for r in rows]
    ann = write_annotations(tmp_path / "ann", "pointwise", rows, {"source": "test"})
    cfg = StudyConfig.model_validate({"device": "cpu", "reasoning": {"traces": "rationalize", "items": 2,
                                                                     "samples": 1, "tolerance": 9,
                                                                     "max_new_tokens": 24}})
    stats = sample_traces(cfg, ann, tmp_path / "traces", lambda m: None)
    assert stats["traces"] == "rationalize" and stats["sampled"] == 2
    kept = [json.loads(x) for x in (tmp_path / "traces/annotations/pointwise.jsonl").read_text().splitlines()]
    assert len(kept) == stats["kept"] and all("rubric" not in k and k["reasoning"] for k in kept)
    assert "hint" in json.loads((tmp_path / "traces/annotations/manifest.json").read_text())["source"]
