"""Annotation inputs: item files in every supported format and the built-in shared-data loaders."""

from __future__ import annotations

import gzip
import json

import pytest

from judgerl import JudgerlError
from judgerl.annotate.loaders import alpaca_eval, builtin_items, eq_bench, load_items, policy_prompts, writingbench


def test_alpaca_eval_joins_reference_and_keeps_soft_preference(shared_data):
    items = alpaca_eval(models=["alpaca-7b", "NullModel"], data_dir=str(shared_data))
    assert len(items) == 2 * 805 and len({it["id"] for it in items}) == len(items)
    ref = {r["instruction"]: r["output"] for r in json.load(
        gzip.open(shared_data / "alpaca-eval" / "reference_outputs" / "gpt4_1106_preview.json.gz", "rt"))}
    raw = [json.loads(x) for x in gzip.open(
        shared_data / "alpaca-eval" / "weighted_alpaca_eval_gpt4_turbo_annotations" / "alpaca-7b.jsonl.gz", "rt")]
    first = items[0]
    assert first["id"] == "alpaca_eval/alpaca-7b/0"
    assert first["prompt"] == raw[0]["instruction"]
    assert first["responses"] == [ref[raw[0]["instruction"]], raw[0]["output_2"]]
    assert first["meta"]["gpt4_turbo_preference"] == pytest.approx(float(raw[0]["preference"]))
    assert first["meta"]["p_response_2_better"] == pytest.approx(float(raw[0]["preference"]) - 1)
    # the mean soft preference reproduces the published win rate of alpaca-7b (2.6 %)
    p = [it["meta"]["p_response_2_better"] for it in items if it["meta"]["generator_2"] == "alpaca-7b"]
    assert sum(p) / len(p) == pytest.approx(0.026, abs=0.002)
    null = [it for it in items if it["meta"]["generator_2"] == "NullModel"]
    assert len({it["responses"][1] for it in null}) <= 3  # a constant adversarial output


def test_alpaca_eval_options(shared_data):
    items = builtin_items("alpaca_eval", {"models": ["phi-2"], "limit_per_model": 5, "data_dir": str(shared_data)})
    assert [it["id"] for it in items] == [f"alpaca_eval/phi-2/{i}" for i in range(5)]
    with pytest.raises(JudgerlError, match="unknown model.*no-such-model"):
        alpaca_eval(models=["no-such-model"], data_dir=str(shared_data))
    with pytest.raises(JudgerlError, match="has no option.*modelz"):
        builtin_items("alpaca_eval", {"modelz": []})
    with pytest.raises(JudgerlError, match="unknown loader 'tulu'"):
        builtin_items("tulu", {})


def test_prompt_only_loaders(shared_data):
    wb = writingbench(data_dir=str(shared_data))
    assert len(wb) == 555 and all(it["meta"]["lang"] == "en" and not it["responses"] for it in wb)
    assert len(writingbench(lang="zh", data_dir=str(shared_data))) == 445
    fin = writingbench(domains=["Finance & Business"], data_dir=str(shared_data))
    assert fin and all(it["meta"]["domain1"] == "Finance & Business" for it in fin)
    eq = eq_bench(data_dir=str(shared_data))
    assert len(eq) == 19 and all("<SEED>" not in it["prompt"] for it in eq)
    assert len(eq_bench(seeds="all", data_dir=str(shared_data))) > 19
    prompts = policy_prompts("eq_bench", data_dir=str(shared_data))
    assert prompts == [it["prompt"] for it in eq] and all(isinstance(p, str) and p for p in prompts)
    with pytest.raises(JudgerlError, match="not a prompt loader"):
        policy_prompts("alpaca_eval")


def test_item_file_formats(tmp_path):
    rows = [{"id": "a", "prompt": "P1", "responses": ["x", "y"], "source": "s"},
            {"prompt": [{"role": "user", "content": "P2"}], "chosen": "good", "rejected": "bad"},
            {"id": 3, "prompt": "P3", "response": "only"}]
    f = tmp_path / "in.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = load_items(f)
    assert items[0] == {"id": "a", "prompt": "P1", "responses": ["x", "y"], "meta": {"source": "s"}}
    assert items[1]["responses"] == ["good", "bad"] and items[1]["meta"] == {"preferred": 1}
    assert len(items[1]["id"]) == 16 and items[2]["id"] == "3"
    # Parquet and a saved HF datasets folder give the same items
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    flat = [{"id": "a", "prompt": "P1", "responses": ["x", "y"]}, {"id": "b", "prompt": "P2", "responses": ["z", "w"]}]
    pq.write_table(pa.Table.from_pylist(flat), tmp_path / "in.parquet")
    Dataset.from_list(flat).save_to_disk(str(tmp_path / "hf"))
    for src in (tmp_path / "in.parquet", tmp_path / "hf"):
        assert [(it["id"], it["prompt"], it["responses"]) for it in load_items(src)] == \
            [("a", "P1", ["x", "y"]), ("b", "P2", ["z", "w"])]


def test_item_file_errors(tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text('{"id": "a", "prompt": 5, "responses": ["x"]}\n')
    with pytest.raises(JudgerlError, match=r"in\.jsonl:1: 'prompt' must be"):
        load_items(f)
    f.write_text('{"id": "a", "prompt": "p", "chosen": "x"}\n')
    with pytest.raises(JudgerlError, match=r"in\.jsonl:1: a preference pair needs both"):
        load_items(f)
    f.write_text('[1, 2]\n')
    with pytest.raises(JudgerlError, match=r"in\.jsonl:1: expected a JSON object"):
        load_items(f)
    # identical rows without ids are dropped, not duplicated
    f.write_text('{"prompt": "p", "responses": ["x"]}\n{"prompt": "p", "responses": ["x"]}\n')
    assert len(load_items(f)) == 1
