"""AlpacaEval win rates: reproduce the leaderboard from the shared annotations; LC deviations printed."""

import math

import pandas as pd
import pytest

from judgerl import JudgerlError
from judgerl.evaluation.winrate import markdown, win_rate, winrate_table


def test_win_rate_ties_and_nan_follow_alpaca_eval():
    r = win_rate([1.0, 2.0, 0, 1.5, float("nan"), 2.5, 1.75])
    assert r["n_total"] == 5 and r["n_dropped"] == 2  # NaN and out-of-range dropped
    assert r["n_draws"] == 2  # 0 and 1.5 are draws
    assert r["n_wins"] == 2 and r["n_wins_base"] == 1
    assert math.isclose(r["win_rate"], 100 * (0 + 1 + 0.5 + 0.5 + 0.75) / 5)
    assert math.isclose(r["standard_error"], pd.Series([0, 1, 0.5, 0.5, 0.75]).sem() * 100)


def test_all_shared_annotations_match_leaderboard(shared_data, capsys):
    base = shared_data / "alpaca-eval"
    t = winrate_table(base / "weighted_alpaca_eval_gpt4_turbo_annotations",
                      base / "reference_outputs" / "gpt4_1106_preview.json.gz",
                      base / "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv")
    assert len(t) == 22
    on_board = t[t["lb_win_rate"].notna()]
    assert set(t["model"]) - set(on_board["model"]) == {"text_davinci_003"}  # not in the leaderboard CSV
    assert (on_board["win_rate_diff"].abs() < 0.1).all(), on_board[["model", "win_rate", "lb_win_rate"]]
    assert ((on_board["standard_error"] - on_board["lb_standard_error"]).abs() < 0.1).all()
    assert on_board.set_index("model").loc["NullModel", "win_rate"] == pytest.approx(76.92, abs=0.01)
    assert t["lc_win_rate"].between(0, 100).all()
    with capsys.disabled():
        print("\nLC win rate vs leaderboard (our refit; see docs/winrate.md):")
        print(t[["model", "win_rate", "lc_win_rate", "lb_lc_win_rate", "lc_deviation"]].round(2).to_string(index=False))
    assert "| model |" in markdown(t)


def test_bad_annotation_folder(tmp_path):
    with pytest.raises(JudgerlError, match="no annotation files"):
        winrate_table(tmp_path, tmp_path / "ref.json", lc=False)
    (tmp_path / "m.jsonl").write_text('{"instruction": "x", "preference": 1.5}\n')
    with pytest.raises(JudgerlError, match="output_2"):
        winrate_table(tmp_path, tmp_path / "ref.json", lc=False)
