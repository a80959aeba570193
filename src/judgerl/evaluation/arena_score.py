"""Arena-Hard-V2 scoring: verdicts -> battles -> score vs baseline, Bradley-Terry with style control.

Protocol (arena-hard-auto v2, with its known bugs fixed):
- Each (question, model) is judged twice: game 1 puts the baseline in position A, game 2 the model.
  Verdict labels map to the model's score 1 / 0.5 / 0; a strong verdict (`>>`) counts 3 times.
- Score without style control = mean battle score (%). With style control: a Bradley-Terry logistic
  regression on model indicators plus the style features below, fitted jointly over all models of
  a category; score = sigma(beta_model - beta_baseline) with the style terms at 0.
- Style features exactly as arena-hard-auto's `show_result.py` (commit 196f6b8): per answer the token
  length and the counts of headers (h1..h6), list items (ordered + unordered) and bold spans (** and
  __), code blocks removed before counting. Length enters as (m - b) / (m + b); each markdown count
  becomes a density count / (tokens + 1), entering as (md - bd) / (md + bd + 1). Every column is then
  standardised (mean, sample std) over the expanded rows, where a strong verdict is 3 rows, once over
  the whole battle set before bootstrapping. Where upstream would divide by zero (both lengths 0, a
  constant column) the feature is 0 here instead of an assertion error.
- Fit: the same Bradley-Terry model as upstream (soft labels, no intercept beyond the baseline's
  coefficient), solved to convergence (L-BFGS-B, l2 1e-6); upstream stops at 50 L-BFGS iterations.
- Confidence intervals (a documented difference): percentile bootstrap over questions (clusters,
  stratified by category) at an explicit level (default 95%); arena-hard-auto resamples single
  rows and prints 5th-95th percentiles of 100 bootstraps (= 90%) and their median as the score.
- Several categories are scored separately in one call (no shared `battles` variable); "overall"
  pools all battles, each against its own category's baseline. Judges are ensembled by pooling.
"""

from __future__ import annotations

import re

import numpy as np
from scipy.optimize import minimize

from judgerl import JudgerlError

LABELS = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
_VERDICT = re.compile(r"\[\[([AB<>=]+)\]\]")
# score of position B (1 = B wins) and the repeat weight
_B_SCORE = {"A>>B": (0.0, 3), "A>B": (0.0, 1), "A=B": (0.5, 1), "B=A": (0.5, 1), "B>A": (1.0, 1),
            "B>>A": (1.0, 3), "A<B": (1.0, 1), "A<<B": (1.0, 3), "B<A": (0.0, 1), "B<<A": (0.0, 3)}
STYLE = ("token_len", "header_count", "list_count", "bold_count")
_CODE = re.compile(r"```[^`]*```")


def parse_arena_verdict(text: str) -> tuple[str | None, str]:
    """(label, problem). All `[[...]]` verdicts in the whole output must agree; none or several -> None."""
    found = [m for m in _VERDICT.findall(text or "") if m]
    labels = {m for m in found if m in _B_SCORE}
    if not found:
        return None, "no [[verdict]] in the output"
    if not labels:
        return None, f"unknown verdict label {found[-1]!r}"
    if len(labels) > 1:
        return None, f"conflicting verdicts {sorted(labels)}"
    return labels.pop(), ""


def game_battle(label: str, model_is_b: bool) -> tuple[float, int]:
    """(model's score, weight) for one game; a strong verdict weighs 3."""
    s, w = _B_SCORE[label]
    return (s if model_is_b else 1.0 - s), w


def approx_token_len(text: str) -> int:
    """Token count without tiktoken: words and punctuation marks (close to cl100k for English)."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def style_metadata(text: str) -> dict:
    """arena-hard-auto v2 answer metadata (markdown counted with code blocks removed)."""
    t = _CODE.sub("", text)
    return {
        "token_len": approx_token_len(text),
        "header_count": {f"h{i}": len(re.findall(rf"^#{{{i}}}\s", t, re.MULTILINE)) for i in range(1, 7)},
        "list_count": {"ordered": len(re.findall(r"^\s*\d+\.\s", t, re.MULTILINE)),
                       "unordered": len(re.findall(r"^\s*[-*+]\s", t, re.MULTILINE))},
        "bold_count": {"**": len(re.findall(r"\*\*[^*\n]+\*\*", t)), "__": len(re.findall(r"__[^_\n]+__", t))},
    }


def style_vector(meta: dict) -> np.ndarray:
    """[token_len, headers, lists, bold] from an answer's metadata."""
    def total(v):
        return float(sum(v.values())) if isinstance(v, dict) else float(v)
    try:
        return np.array([total(meta[k]) for k in STYLE])
    except (KeyError, TypeError, AttributeError):
        raise JudgerlError(f"answer metadata lacks style fields {STYLE}: {meta!r:.120}") from None


def style_features(model_meta: np.ndarray, base_meta: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """Upstream's style features (rows = battles; columns = STYLE), standardised over the expanded rows:
    a row of weight w counts w times (strong verdicts 3). Constant column -> 0."""
    m, b = np.asarray(model_meta, float), np.asarray(base_meta, float)
    w = np.ones(len(m)) if weight is None else np.asarray(weight, float)
    x = np.zeros_like(m)
    tot = m[:, 0] + b[:, 0]
    x[:, 0] = np.where(tot > 0, (m[:, 0] - b[:, 0]) / np.where(tot > 0, tot, 1), 0.0)
    md, bd = m[:, 1:] / (m[:, :1] + 1), b[:, 1:] / (b[:, :1] + 1)
    x[:, 1:] = (md - bd) / (md + bd + 1)
    n = w.sum()
    mean = (w[:, None] * x).sum(0) / n
    sd = np.sqrt((w[:, None] * (x - mean) ** 2).sum(0) / max(n - 1, 1))  # torch.std: sample std
    return np.where(sd > 1e-12, (x - mean) / np.where(sd > 1e-12, sd, 1), 0.0)


def fit_bt(model_idx: np.ndarray, y: np.ndarray, w: np.ndarray, n_models: int,
           style: np.ndarray | None = None, l2: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Soft-label logistic regression: logit P(model wins) = beta[model] + style @ gamma.
    The baseline's beta is 0. Returns (beta, gamma)."""
    k = 0 if style is None else style.shape[1]

    def f(theta):
        beta, gamma = theta[:n_models], theta[n_models:]
        z = beta[model_idx] + (style @ gamma if k else 0.0)
        p = 1.0 / (1.0 + np.exp(-z))
        loss = np.sum(w * (np.logaddexp(0, -z) * y + np.logaddexp(0, z) * (1 - y))) + l2 * theta @ theta
        g = w * (p - y)
        grad = np.concatenate([np.bincount(model_idx, g, n_models), style.T @ g if k else np.zeros(0)])
        return loss, grad + 2 * l2 * theta

    res = minimize(f, np.zeros(n_models + k), jac=True, method="L-BFGS-B")
    return res.x[:n_models], res.x[n_models:]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def battle_arrays(battles: list[dict]):
    """Columns of a battle list: rows {uid, category, model, score, weight, style(model), style(base)}."""
    uid = np.array([b["uid"] for b in battles])
    model = np.array([b["model"] for b in battles])
    y = np.array([b["score"] for b in battles], float)
    w = np.array([b["weight"] for b in battles], float)
    ms = np.array([b["model_style"] for b in battles], float).reshape(-1, len(STYLE))
    bs = np.array([b["base_style"] for b in battles], float).reshape(-1, len(STYLE))
    return uid, model, y, w, ms, bs


def point_scores(models: list[str], model, y, w, style: np.ndarray | None) -> dict[str, float]:
    """Score (%) per model for one set of battles; `style` = standardised features (None: no control)."""
    if style is None:
        return {m: 100 * float(np.sum((y * w)[model == m]) / np.sum(w[model == m])) for m in models}
    idx = np.searchsorted(np.array(models), model)
    beta, _ = fit_bt(idx, y, w, len(models), style)
    return {m: 100 * float(_sigmoid(b)) for m, b in zip(models, beta)}


def score_battles(battles: list[dict], style_control: bool = False, level: float = 0.95,
                  n_boot: int = 100, seed: int = 0) -> dict[str, dict]:
    """{model: {score, ci_low, ci_high, n_questions, n_battles}} with a question-level bootstrap CI."""
    if not battles:
        return {}
    if not 0 < level < 1:
        raise JudgerlError(f"confidence level must be in (0, 1), got {level}")
    uid, model, y, w, ms, bs = battle_arrays(battles)
    models = sorted(set(model.tolist()))
    x = style_features(ms, bs, w) if style_control else None  # once, over all rows (as upstream)
    point = point_scores(models, model, y, w, x)
    cats = np.array([b["category"] for b in battles])
    rng = np.random.default_rng(seed)
    # resample questions within each category; a question brings all its battles (all models, games)
    groups = {}
    for i, (c, u) in enumerate(zip(cats, uid)):
        groups.setdefault((c, u), []).append(i)
    by_cat: dict[str, list[list[int]]] = {}
    for (c, _), rows in sorted(groups.items()):
        by_cat.setdefault(c, []).append(rows)
    boots = {m: [] for m in models}
    for _ in range(n_boot):
        rows = []
        for qs in by_cat.values():
            for j in rng.integers(0, len(qs), len(qs)):
                rows.extend(qs[j])
        r = np.array(rows)
        present = [m for m in models if np.any(model[r] == m)]
        s = point_scores(present, model[r], y[r], w[r], None if x is None else x[r])
        for m in present:
            boots[m].append(s[m])
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    out = {}
    for m in models:
        b = np.array(boots[m]) if boots[m] else np.array([point[m]])
        out[m] = {"score": point[m], "ci_low": float(np.percentile(b, lo)), "ci_high": float(np.percentile(b, hi)),
                  "n_questions": len(set(zip(cats[model == m].tolist(), uid[model == m].tolist()))), "n_battles": int(np.sum(model == m))}
    return out


def leaderboard(battles: list[dict], categories: list[str], style_control: bool = False, level: float = 0.95,
                n_boot: int = 100, seed: int = 0) -> list[dict]:
    """Rows {category, model, score, ci_low, ci_high, ...} per category and 'overall' (pooled)."""
    rows = []
    for cat in list(categories) + (["overall"] if len(categories) > 1 else []):
        sub = battles if cat == "overall" else [b for b in battles if b["category"] == cat]
        res = score_battles(sub, style_control, level, n_boot, seed)
        for m, r in sorted(res.items(), key=lambda kv: -kv[1]["score"]):
            rows.append({"category": cat, "model": m, **r, "level": level, "style_control": style_control,
                         "source": "judgerl"})
    return rows
