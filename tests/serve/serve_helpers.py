"""Helpers for the reward-server tests: the real SmolLM2 judge behind `judgerl serve` on 127.0.0.1."""

from __future__ import annotations

import pytest

from judge_testdata import SHORT_PAIRWISE, SHORT_POINTWISE


@pytest.fixture(scope="module")
def short_templates(tmp_path_factory):
    d = tmp_path_factory.mktemp("tpl")
    (d / "point.txt").write_text(SHORT_POINTWISE)
    (d / "pair.txt").write_text(SHORT_PAIRWISE)
    return {"pointwise": str(d / "point.txt"), "pairwise": str(d / "pair.txt")}


def smollm2_spec(template: str, fmt: str = "pointwise", **kw):
    from judgerl.judges import JudgeSpec

    return JudgeSpec(name=f"smollm2-{fmt}", backend="hf", model="smollm2-135m-instruct", format=fmt, mode="direct",
                     template=template, device="cpu", dtype="float32", batch_size=16, **kw)


def served(spec, run_dir, smollm2, **cfg):
    """(service, in-process twin judge) sharing the loaded weights but not the cache or ledger."""
    from judgerl.judges import Judge
    from judgerl.serve import RewardService, ServeConfig

    model, tok = smollm2
    config = ServeConfig(judge=spec, run_dir=str(run_dir / "serve"), port=0, **cfg)
    service = RewardService(config, model=model, tokenizer=tok)
    twin = Judge(spec, cache=run_dir / "twin" / "cache.sqlite", ledger=run_dir / "twin" / "ledger.sqlite",
                 stage="policy-reward", model=model, tokenizer=tok)
    return service, twin
