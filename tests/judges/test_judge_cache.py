"""Verdict cache and ledger on real SQLite files (with the real SmolLM2 behind the judge)."""

from __future__ import annotations

import pytest

from judgerl import JudgerlError
from judgerl.judges import Judge, JudgeRequest, JudgeSpec
from judgerl.judges.cache import Ledger, VerdictCache

REQS = [JudgeRequest(prompt="What is the capital of France?", responses=["Paris."]),
        JudgeRequest(prompt="Name a primary colour.", responses=["Blue."])]


@pytest.mark.slow
def test_second_run_makes_zero_backend_calls(smollm2, tmp_path):
    model, tok = smollm2
    cache, ledger = tmp_path / "run" / "cache.sqlite", tmp_path / "run" / "ledger.sqlite"
    tpl = tmp_path / "tpl.txt"
    tpl.write_text("=== SYSTEM ===\nGrade 0-9.\n{{output_instructions}}\n=== USER ===\n{{instruction}}\n"
                   "[BEGIN CANDIDATE RESPONSE]\n{{response_1}}\n[END CANDIDATE RESPONSE]\n")
    spec = JudgeSpec(name="smol", template=str(tpl))
    first = Judge(spec, cache=cache, ledger=ledger, model=model, tokenizer=tok).judge(REQS)
    j2 = Judge(spec, cache=cache, ledger=ledger, model=model, tokenizer=tok)
    second = j2.judge(REQS)
    assert j2.backend_calls == 0 and j2._backend is None  # the backend was never even built
    assert all(v.cached for v in second) and not any(v.cached for v in first)
    assert [v.expected for v in second] == pytest.approx([v.expected for v in first])
    s = Ledger(ledger).summary()
    assert s["requests"] == 4 and s["backend_calls"] == 2 and s["cache_hits"] == 2
    # a changed spec (different template text / mode) is a different cache key
    j3 = Judge(spec.model_copy(update={"mode": "reasoning", "sampling": spec.sampling.model_copy(
        update={"max_new_tokens": 2})}), cache=cache, ledger=ledger, model=model, tokenizer=tok)
    j3.judge(REQS[:1])
    assert j3.backend_calls == 1
    assert len(VerdictCache(cache)) == 3


def test_missing_cache_file_is_created(tmp_path):
    path = tmp_path / "new" / "dir" / "cache.sqlite"
    c = VerdictCache(path)
    assert path.is_file() and len(c) == 0
    led = Ledger(tmp_path / "new" / "ledger.sqlite")
    assert led.summary()["requests"] == 0


@pytest.mark.parametrize("cls", [VerdictCache, Ledger])
def test_corrupted_file_is_a_clear_error(tmp_path, cls):
    bad = tmp_path / "cache.sqlite"
    bad.write_bytes(b"\x00garbage, not sqlite\xff" * 200)
    with pytest.raises(JudgerlError) as e:
        cls(bad)
    msg = str(e.value)
    assert "not a readable SQLite database" in msg and str(bad) in msg and "\n" not in msg


def test_corrupted_cache_through_judge(tmp_path):
    bad = tmp_path / "cache.sqlite"
    bad.write_bytes(b"SQLite format 3\x00" + b"\xde\xad" * 3000)  # right magic, broken body
    with pytest.raises(JudgerlError, match="not a readable SQLite database"):
        Judge(JudgeSpec(), cache=bad)


def test_roundtrip_and_failed_not_cached(tmp_path):
    from judgerl.judges.spec import Verdict

    c = VerdictCache(tmp_path / "c.sqlite")
    c.put_many([("k1", "j", Verdict(label=3, expected=3.2, valid=True, reasoning="r")),
                ("k2", "j", Verdict(valid=False, error="timeout after 1s (2 attempts)", retries=1))])
    got = c.get_many(["k1", "k2", "k3"])
    assert list(got) == ["k1"] and got["k1"].label == 3 and got["k1"].expected == 3.2
