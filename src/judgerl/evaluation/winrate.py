"""AlpacaEval win rates from pairwise annotations: raw win rate (+ standard error) and the
length-controlled (LC) win rate of alpaca_eval's `length_controlled_v1` GLM.

Raw win rate, as alpaca_eval's `AbsoluteScoringRule.describe_head2head`: preference 0 means a draw
and becomes 1.5; values that are not in [1, 2] (NaN included) are dropped; win rate = mean(p - 1),
standard error = its sample standard error (ddof 1), both x100. n_wins/n_wins_base count p - 1 above/
below 0.5, n_draws counts exact 1.5 (or 0).

LC win rate: per model, a logistic regression with soft targets p - 1 on
    tanh(std_delta_len) + instruction_difficulty + intercept,
where std_delta_len = (len(reference) - len(model output)) / std over the model's items, in
characters; LC = mean over instructions of the prediction at std_delta_len = 0.
Deviation from alpaca_eval: its instruction difficulties (fitted once on the whole leaderboard, a
Hugging Face file) and its regularisation towards "gamed" baselines (also Hugging Face only) are not
available, so difficulty is re-estimated jointly on the annotation files at hand (a per-instruction
term shared across models, with per-model intercepts and length slopes, L2-regularised) and the
per-model fit is unregularised (tiny ridge). alpaca_eval's fitted per-model weights are in its GitHub
repo (src/alpaca_eval/metrics/weights/...), not in the PyPI wheel (checked alpaca-eval 0.6.6).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from judgerl import JudgerlError
from judgerl.data import check_readable, read_json, read_jsonl


def load_annotations(folder: Path) -> dict[str, pd.DataFrame]:
    """{file stem: DataFrame(instruction, output_2, preference)} from <folder>/<model>.jsonl(.gz) or .json."""
    folder = Path(folder)
    if not folder.is_dir():
        raise JudgerlError(f"annotations folder not found: {folder} (give the folder of AlpacaEval annotation files)")
    files = sorted(list(folder.glob("*.jsonl.gz")) + list(folder.glob("*.jsonl")) + list(folder.glob("*.json")))
    if not files:
        raise JudgerlError(f"no annotation files (*.jsonl.gz, *.jsonl, *.json) in {folder}")
    out = {}
    for f in files:
        recs = read_json(f, "annotation file", list) if f.suffix == ".json" else read_jsonl(f)
        if not all(isinstance(r, dict) for r in recs):
            raise JudgerlError(f"{f}: expected a list of annotation objects")
        df = pd.DataFrame(recs)
        missing = {"instruction", "output_2", "preference"} - set(df.columns)
        if missing:
            raise JudgerlError(f"{f}: annotations lack field(s) {sorted(missing)}")
        pref = pd.to_numeric(df["preference"], errors="coerce")
        bad = df.index[(pref.isna() & df["preference"].notna()) | (pref < 0) | (pref > 2)]
        if len(bad):
            raise JudgerlError(f"{f}: record {bad[0] + 1}: preference {df['preference'][bad[0]]!r} is not a number "
                               f"in [1, 2] (or null)")
        df["preference"] = pref
        out[re.sub(r"\.(jsonl\.gz|jsonl|json)$", "", f.name)] = df  # the file name is the leaderboard name (NullModel's generator is "example")
    return out


def win_rate(preferences) -> dict:
    """alpaca_eval's raw (weighted) win rate of output_2 over output_1; see the module docstring."""
    p = pd.to_numeric(pd.Series(preferences), errors="coerce").replace({0.0: 1.5})
    n_draws = int((p == 1.5).sum())
    ok = p.between(1, 2)
    x = p[ok] - 1
    return {"win_rate": float(x.mean() * 100), "standard_error": float(x.sem() * 100),
            "n_wins": int((x > 0.5).sum()), "n_wins_base": int((x < 0.5).sum()), "n_draws": n_draws,
            "n_total": int(len(x)), "n_dropped": int((~ok).sum()),
            "discrete_win_rate": float(((x.round() if len(x) else x) * 1.0).where(x != 0.5, 0.5).mean() * 100)}


def _soft_logreg(X: np.ndarray, y: np.ndarray, l2: float = 1e-4) -> np.ndarray:
    """Weights minimising the soft-label log loss (targets y in [0, 1]) + l2 |w|^2."""
    def f(w):
        z = X @ w
        loss = np.sum(np.logaddexp(0, -z) * y + np.logaddexp(0, z) * (1 - y)) + l2 * w @ w
        return loss, X.T @ (1 / (1 + np.exp(-z)) - y) + 2 * l2 * w
    return minimize(f, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B").x


def length_term(df: pd.DataFrame, ref_len: dict[str, int]) -> np.ndarray:
    """tanh((len(reference) - len(output)) / std): alpaca_eval's length feature, in characters."""
    d = df["instruction"].map(ref_len).to_numpy(float) - df["output_2"].fillna("").str.len().to_numpy(float)
    if np.isnan(d).any():
        raise JudgerlError("some annotated instructions have no reference output (join on 'instruction')")
    sd = d.std(ddof=1)
    return np.tanh(d / sd) if sd > 0 else np.zeros_like(d)


def fit_difficulty(frames: dict[str, pd.DataFrame], ref_len: dict[str, int], l2: float = 1.0) -> dict[str, float]:
    """Per-instruction difficulty, fitted jointly: logit p = theta_m + psi_m * length_m + d_i."""
    instr = sorted({i for df in frames.values() for i in df["instruction"]})
    pos = {s: k for k, s in enumerate(instr)}
    rows_m, rows_i, ys, ls = [], [], [], []
    for m, (name, df) in enumerate(sorted(frames.items())):
        y = pd.to_numeric(df["preference"], errors="coerce").replace({0.0: 1.5}).to_numpy(float) - 1
        keep = (y >= 0) & (y <= 1)
        rows_m.append(np.full(keep.sum(), m))
        rows_i.append(df["instruction"].map(pos).to_numpy()[keep])
        ys.append(y[keep])
        ls.append(length_term(df, ref_len)[keep])
    mi, ii, y, lt = (np.concatenate(a) for a in (rows_m, rows_i, ys, ls))
    nm, ni = len(frames), len(instr)

    def f(t):
        th, ps, d = t[:nm], t[nm:2 * nm], t[2 * nm:]
        z = th[mi] + ps[mi] * lt + d[ii]
        g = 1 / (1 + np.exp(-z)) - y
        loss = np.sum(np.logaddexp(0, -z) * y + np.logaddexp(0, z) * (1 - y)) + l2 * d @ d
        grad = np.concatenate([np.bincount(mi, g, nm), np.bincount(mi, g * lt, nm), np.bincount(ii, g, ni) + 2 * l2 * d])
        return loss, grad

    t = minimize(f, np.zeros(2 * nm + ni), jac=True, method="L-BFGS-B", options={"maxiter": 2000}).x
    return dict(zip(instr, t[2 * nm:].tolist()))


def lc_win_rate(df: pd.DataFrame, ref_len: dict[str, int], difficulty: dict[str, float]) -> tuple[float, dict]:
    """(LC win rate in %, fitted weights) for one model's annotations."""
    lt = length_term(df, ref_len)
    d = df["instruction"].map(difficulty).fillna(0.0).to_numpy(float)
    y = pd.to_numeric(df["preference"], errors="coerce").replace({0.0: 1.5}).to_numpy(float) - 1
    keep = (y >= 0) & (y <= 1)
    X = np.column_stack([lt, d, np.ones_like(d)])
    w = _soft_logreg(X[keep], y[keep])
    pred = 1 / (1 + np.exp(-(w[1] * d + w[2])))  # length difference set to 0; all instructions
    return float(pred.mean() * 100), {"length": float(w[0]), "difficulty": float(w[1]), "intercept": float(w[2])}


def reference_lengths(path: Path) -> dict[str, int]:
    recs = read_json(path, "reference outputs", list)
    if not all(isinstance(r, dict) and isinstance(r.get("instruction"), str) and isinstance(r.get("output"), str)
               for r in recs):
        raise JudgerlError(f"{path}: expected a list of {{instruction, output}} reference outputs")
    return {r["instruction"]: len(r["output"]) for r in recs}


def read_leaderboard(path: Path, lc: bool) -> pd.DataFrame:
    """The leaderboard CSV (index: model), with the columns the comparison needs."""
    check_readable(path, "leaderboard")
    try:
        lb = pd.read_csv(path, index_col=0)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise JudgerlError(f"leaderboard {path} is not a readable CSV ({str(e).splitlines()[0][:120]})") from None
    need = ["win_rate", "standard_error"] + (["length_controlled_winrate"] if lc else [])
    missing = [c for c in need if c not in lb.columns]
    if missing:
        raise JudgerlError(f"leaderboard {path} lacks column(s) {missing} (an AlpacaEval leaderboard CSV has them)")
    return lb


def winrate_table(annotations: Path, reference: Path, leaderboard: Path | None = None, lc: bool = True) -> pd.DataFrame:
    """One row per annotated model: our win rate/SE/LC and, if given, the leaderboard's and the deviations."""
    frames = load_annotations(annotations)
    lb = read_leaderboard(Path(leaderboard), lc) if leaderboard is not None else None
    ref_len = reference_lengths(reference) if lc else {}
    difficulty = fit_difficulty(frames, ref_len) if lc else {}
    rows = []
    for name, df in sorted(frames.items()):
        r = {"model": name, **win_rate(df["preference"])}
        if lc:
            r["lc_win_rate"], wts = lc_win_rate(df, ref_len, difficulty)
            r.update({f"w_{k}": v for k, v in wts.items()})
        rows.append(r)
    table = pd.DataFrame(rows).set_index("model")
    if lb is not None:
        table["lb_win_rate"] = lb["win_rate"].reindex(table.index)
        table["win_rate_diff"] = table["win_rate"] - table["lb_win_rate"]
        table["lb_standard_error"] = lb["standard_error"].reindex(table.index)
        if lc:
            table["lb_lc_win_rate"] = lb["length_controlled_winrate"].reindex(table.index)
            table["lc_deviation"] = table["lc_win_rate"] - table["lb_lc_win_rate"]
    return table.reset_index()


def markdown(table: pd.DataFrame) -> str:
    """The table as markdown (the numbers kept in docs/winrate.md)."""
    cols = [c for c in ["model", "n_total", "win_rate", "lb_win_rate", "win_rate_diff", "standard_error",
                        "lb_standard_error", "lc_win_rate", "lb_lc_win_rate", "lc_deviation"] if c in table]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join(f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"
