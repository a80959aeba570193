"""QuickstartConfig: presets fill unset sizes, judge sources are checked, one line switches a judge."""

from __future__ import annotations

import pytest

from judgerl import JudgerlError
from judgerl.config import load_config
from judgerl.quickstart.config import QuickstartConfig, source_name


def test_presets_fill_sizes_and_full_agreement_is_at_least_100():
    full, ci = QuickstartConfig(), QuickstartConfig(scale="ci")
    assert full.agreement_items >= 100 and ci.agreement_items < 10
    assert QuickstartConfig(policy_steps=3).policy_steps == 3


def test_judge_source_switch_is_one_field():
    cfg = load_config(QuickstartConfig, None, ["weak_judge=shipped:sft-500", "extra_judges=[prompted,shipped:sft-20000]"])
    assert cfg.judge_sources() == {"weak": "shipped:sft-500", "reasoning": "shipped:reasoning",
                                   "prompted": "prompted", "sft-20000": "shipped:sft-20000"}
    assert source_name("configs/judges/mine.yaml") == "mine" and not cfg.trains_judge()
    assert QuickstartConfig(weak_judge="trained").trains_judge()


@pytest.mark.parametrize("bad", ["sft-500", "shipped", "gpt-4"])
def test_unknown_judge_source_is_a_one_line_error(bad):
    with pytest.raises(JudgerlError, match="is not a judge source"):
        load_config(QuickstartConfig, None, [f"weak_judge={bad}"])


def test_judge_dtype_is_bf16_only_where_the_cpu_has_native_bf16(monkeypatch, tmp_path):
    import torch

    from judgerl.quickstart.config import judge_dtype
    from judgerl.quickstart.judges import spec_for
    from judgerl.quickstart.loop import Quickstart

    for native in (True, False):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda n=native: n)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        want = "bfloat16" if native else "float32"
        cfg = QuickstartConfig(run_dir=str(tmp_path))
        assert judge_dtype(cfg) == want
        assert spec_for("prompted", cfg, tmp_path).dtype == want
        assert Quickstart(cfg).gold_spec().dtype == want
        for fixed in ("float32", "bfloat16"):  # an explicit setting wins over the CPU
            assert judge_dtype(QuickstartConfig(judge_dtype=fixed)) == fixed
    with pytest.raises(JudgerlError, match="judge_dtype"):
        load_config(QuickstartConfig, None, ["judge_dtype=float16"])
