"""Upstream arena-hard-auto's style-controlled score, re-implemented verbatim as a test reference.

Source: github.com/lmarena/arena-hard-auto at commit 196f6b826783b3da7310e361a805fa36f0be83f3
(2025-06-20): `show_result.py` (`load_judgments`, `print_leaderboard_with_style_features`) and
`utils/math_utils.py` (`one_hot_encode`, `fit_pairwise_model` with `bt_loss`, `to_winrate_probabilities`).
The only changes: the fit runs on all rows once (no bootstrap), in float64 and to convergence
(upstream stops L-BFGS at 50 iterations inside each of its 100 bootstraps); this "converged fit" is
what a score is compared against. Metadata dicts must keep upstream's key order (token_len first).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LABEL_TO_SCORE = {"A>B": [1], "A>>B": [1] * 3, "A=B": [0.5], "A<<B": [0] * 3, "A<B": [0], "B>A": [0],
                  "B>>A": [0] * 3, "B=A": [0.5], "B<<A": [1] * 3, "B<A": [1]}  # show_result.load_judgments


def load_judgments(judgments: list[dict]) -> list[dict]:
    """Rows {uid, model, scores} after `.explode('scores')`; games[0] = baseline in A, games[1] = model in A."""
    rows = []
    for j in judgments:
        x = j["games"]
        scores = LABEL_TO_SCORE[x[1]["score"]] + [1 - s for s in LABEL_TO_SCORE[x[0]["score"]]]
        rows += [{"uid": j["uid"], "model": j["model"], "scores": s} for s in scores]
    return rows


def _vector(meta: dict) -> list[float]:
    return [v if isinstance(v, int) else sum(v.values()) for k, v in meta.items()]


def one_hot_encode(items, baseline):
    unique_items = sorted(set(items + [baseline]))
    item_to_index = {item: idx for idx, item in enumerate(unique_items)}
    one_hot_matrix = []
    for item in items:
        one_hot_vector = [0] * len(unique_items)
        one_hot_vector[item_to_index[item]] = 1
        one_hot_vector[item_to_index[baseline]] = -1
        one_hot_matrix.append(one_hot_vector)
    return torch.tensor(one_hot_matrix, dtype=torch.float32), unique_items


def fit_pairwise_model(features, outcomes, lr=0.1, tol=1e-9, max_epochs=50):
    logits = torch.nn.Parameter(torch.nn.init.constant_(torch.empty(features.shape[1], dtype=features.dtype), 0.5))
    optimizer = torch.optim.LBFGS([logits], lr=lr, max_iter=max_epochs, tolerance_grad=tol, tolerance_change=tol)

    def closure():
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(features @ logits, outcomes.to(features.dtype), reduction="sum")
        loss.backward()
        return loss

    optimizer.step(closure)
    return logits.detach()


def style_controlled_scores(judgments: list[dict], metadata: dict[str, dict[str, dict]], baseline: str,
                            max_epochs: int = 5000) -> dict[str, float]:
    """{model: score %} of upstream's style-controlled fit (length + markdown) on one category."""
    battles = load_judgments(judgments)
    model_feature_tensor = torch.tensor([_vector(metadata[b["model"]][b["uid"]]) for b in battles], dtype=torch.float64)
    baseline_feature_tensor = torch.tensor([_vector(metadata[baseline][b["uid"]]) for b in battles], dtype=torch.float64)
    final_feature_tensor = torch.zeros_like(model_feature_tensor)
    final_feature_tensor[:, 0] = (model_feature_tensor[:, 0] - baseline_feature_tensor[:, 0]) / (
        model_feature_tensor[:, 0] + baseline_feature_tensor[:, 0])
    model_md_density = model_feature_tensor[:, 1:] / (model_feature_tensor[:, :1] + 1)
    baseline_md_density = baseline_feature_tensor[:, 1:] / (baseline_feature_tensor[:, :1] + 1)
    final_feature_tensor[:, 1:] = (model_md_density - baseline_md_density) / (model_md_density + baseline_md_density + 1)
    normalized_feature_tensor = (final_feature_tensor - torch.mean(final_feature_tensor, axis=0)) / torch.std(
        final_feature_tensor, axis=0)
    assert not normalized_feature_tensor.isnan().any()
    outcomes = torch.tensor([b["scores"] for b in battles], dtype=torch.float64)
    model_features, unique_models = one_hot_encode([b["model"] for b in battles], baseline=baseline)
    all_features = torch.cat([model_features.double(), normalized_feature_tensor], dim=1)
    # converged: more iterations change nothing visible (checked by the caller)
    coefs = fit_pairwise_model(all_features, outcomes, max_epochs=max_epochs)[: len(unique_models)]
    b = unique_models.index(baseline)
    return {m: 100 * float(torch.exp(coefs[i]) / (torch.exp(coefs[i]) + torch.exp(coefs[b])))
            for i, m in enumerate(unique_models) if m != baseline}
