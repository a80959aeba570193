"""bench/template_heldout: the scorer's figures on a tiny hand-made set (worked out by hand below), its errors,
and the shipped held-out set's shape. No detector figures here: the detector's author must not tune on the set."""

from __future__ import annotations

import collections
import gzip
import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HELDOUT = REPO / "bench" / "template_heldout"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"template_heldout_{name}", HELDOUT / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


score = load("score")


def first_word(responses, prompts):
    """Trivial detector: share = largest share of answers opening with one word; flag at share >= 0.5."""
    top = max(collections.Counter(r.split()[0] for r in responses).values()) / len(responses)
    return {"share": top, "flag": top >= 0.5, "template": None}


def group(gid, label, kind, share_true, responses):
    return {"id": gid, "label": label, "kind": kind, "share_true": share_true,
            "prompts": [f"prompt {gid} {i}" for i in range(len(responses))], "responses": responses}


# first-word shares: T1 .5 (flag), T2 .25 (missed), T3 1.0 (flag), C1 .5 (false flag), C2 .25
TINY = [
    group("T1", "template", "opening", 0.5, ["Hi a", "Hi b", "c", "d"]),
    group("T2", "template", "opening", 0.75, ["Yo a", "b", "c", "d"]),
    group("T3", "template", "loop", 1.0, ["Q a", "Q b", "Q c", "Q d"]),
    group("C1", "clean", "clean-polite", 0.0, ["Sure a", "Sure b", "c", "d"]),
    group("C2", "clean", "clean-mixed", 0.0, ["a", "b", "c", "d"]),
]


def write_set(path: Path, groups) -> Path:
    path.write_text("".join(json.dumps(g) + "\n" for g in groups), encoding="utf-8")
    return path


def test_auc_rank_formula_with_ties():
    # positives .9 and .1 against negatives .9 and 0: pairs .5 + 1 + 0 + 1 = 2.5 of 4
    assert score.auc([True, False, True, False], [0.9, 0.9, 0.1, 0.0]) == pytest.approx(0.625)
    assert score.auc([True, False], [0.2, 0.1]) == 1.0
    assert score.auc([True, False], [0.1, 0.2]) == 0.0
    assert score.auc([True, True], [0.1, 0.2]) is None


def test_overall_figures_match_hand_count():
    res = score.evaluate(TINY, first_word)
    o = res["overall"]
    # TP = T1, T3; FN = T2; FP = C1; TN = C2
    assert o["precision"] == pytest.approx(2 / 3) and o["recall"] == pytest.approx(2 / 3)
    assert o["f1"] == pytest.approx(2 / 3)
    # positives .5 .25 1.0 vs negatives .5 .25: (.5+1) + (0+.5) + (1+1) = 4 of 6
    assert o["auc"] == pytest.approx(4 / 6)
    assert o["share_mae"] == pytest.approx((0 + 0.5 + 0) / 3)
    assert o["false_flag_rate"] == 0.5
    assert (o["groups"], o["template_groups"], o["clean_groups"]) == (5, 3, 2)
    assert [g["flag"] for g in res["groups"]] == [True, False, True, True, False]


def test_per_kind_rows_pair_the_kind_with_the_other_label():
    k = score.evaluate(TINY, first_word)["by_kind"]
    op = k["opening"]  # T1, T2 against C1, C2
    assert (op["precision"], op["recall"], op["f1"], op["auc"]) == (0.5, 0.5, 0.5, 0.5)
    assert op["share_mae"] == pytest.approx(0.25) and op["false_flag_rate"] is None and op["kind_groups"] == 2
    assert k["loop"]["recall"] == 1.0 and k["loop"]["precision"] == 0.5 and k["loop"]["auc"] == 1.0  # 1.0 vs .5, .25
    polite = k["clean-polite"]  # C1 against T1, T2, T3
    assert polite["precision"] == pytest.approx(2 / 3) and polite["recall"] == pytest.approx(2 / 3)
    assert polite["auc"] == pytest.approx(0.5) and polite["false_flag_rate"] == 1.0 and polite["share_mae"] is None
    mixed = k["clean-mixed"]  # C2 against T1, T2, T3
    assert mixed["precision"] == 1.0 and mixed["f1"] == pytest.approx(0.8)
    assert mixed["auc"] == pytest.approx(2.5 / 3) and mixed["false_flag_rate"] == 0.0


def test_cli_writes_table_and_json(tmp_path, capsys):
    path = write_set(tmp_path / "tiny.jsonl", TINY)
    out = tmp_path / "r.json"
    assert score.main(["--set", str(path), "--out", str(out), "--tag", "before-tuning"], detector=first_word) == 0
    printed = capsys.readouterr().out
    assert "| overall | all | 5 | 0.667 | 0.667 | 0.667 | 0.667 | 0.167 | 0.500 |" in printed
    assert "| clean-mixed | clean | 1 | 1.000 | 0.667 | 0.800 | 0.833 | - | 0.000 |" in printed
    data = json.loads(out.read_text())
    assert data["tag"] == "before-tuning" and data["overall"]["auc"] == pytest.approx(4 / 6)
    assert len(data["groups"]) == 5 and len(data["set_sha256"]) == 64


def test_cli_without_the_detector_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "judgerl.evaluation.template", None)  # import fails as if not landed
    out = tmp_path / "r.json"
    out.write_text("kept")
    assert score.main(["--set", str(write_set(tmp_path / "t.jsonl", TINY)), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot import judgerl.evaluation.template.template_report") and "\n" not in err
    assert out.read_text() == "kept"


@pytest.mark.parametrize("line, why", [
    ('{"id": "a"}', "expected an object with keys"),
    ('not json', "malformed JSON"),
    ('{"id": "a", "label": "odd", "kind": "k", "share_true": 0, "prompts": ["p"], "responses": ["r"]}', "label"),
    ('{"id": "a", "label": "clean", "kind": "k", "share_true": 0, "prompts": ["p"], "responses": []}',
     "equal length"),
])
def test_bad_set_lines(tmp_path, capsys, line, why):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    assert score.main(["--set", str(path)], detector=first_word) == 2
    err = capsys.readouterr().err
    assert why in err and "line 1" in err


@pytest.mark.parametrize("report, why", [
    ({"share": 1.5, "flag": True}, "not a number in [0, 1]"),
    ({"share": 0.5, "flag": "yes"}, "not a bool"),
    ({"flag": True}, "must return a dict"),
])
def test_bad_detector_output_names_the_group(report, why):
    with pytest.raises(score.ScoreError) as e:
        score.evaluate(TINY, lambda responses, prompts: report)
    assert why in str(e.value) and str(e.value).startswith("group T1:")


def test_a_detector_that_raises_is_named_with_the_group():
    def broken(responses, prompts):
        raise KeyError("boom")

    with pytest.raises(score.ScoreError, match="group T1: the detector raised KeyError"):
        score.evaluate(TINY, broken)


def test_shipped_set_shape():
    groups = score.load_set(score.DEFAULT_SET)
    labels = collections.Counter(g["label"] for g in groups)
    assert len(groups) >= 120 and min(labels.values()) >= 0.4 * len(groups)
    kinds = collections.Counter(g["kind"] for g in groups)
    assert sum(k.startswith("partial-collapse") for k in kinds) >= 4 and len(kinds) >= 30
    for g in groups:
        assert 16 <= len(g["responses"]) <= 96, g["id"]
        assert len(set(g["prompts"])) == len(g["prompts"]), g["id"]
        if g["label"] == "clean":
            assert g["share_true"] == 0 and g["kind"].startswith("clean-")
        else:
            assert 0.3 <= g["share_true"] <= 1 and not g["kind"].startswith("clean-")
    assert sum(g["share_true"] < 0.65 for g in groups if g["label"] == "template") >= 10
    raw = score.DEFAULT_SET.read_bytes()
    assert raw[4:8] == b"\0\0\0\0" and len(raw) < 3.5e6  # gzip mtime 0: reproducible bytes
    assert gzip.decompress(raw).count(b"\n") == len(groups)


@pytest.mark.slow
def test_build_reproduces_the_shipped_bytes(shared_data, tmp_path):
    build = load("build")
    out = tmp_path / "again.jsonl.gz"
    assert build.main(["--data", str(shared_data), "--out", str(out)]) == 0
    assert out.read_bytes() == score.DEFAULT_SET.read_bytes()
