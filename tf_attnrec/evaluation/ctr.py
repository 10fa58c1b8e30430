"""Click-through-rate / ranking-model metrics: exact AUC, GAUC (DIN paper) and log loss.

AUC is the probability that a random positive scores above a random negative, with ties
counting 0.5 (the Mann-Whitney statistic, computed from average ranks — exact, unlike the
thresholded `tf.keras.metrics.AUC`). GAUC (Zhou et al., DIN, KDD 2018) is the per-user AUC
averaged with weights = the user's number of impressions; users whose labels are all one
class have no AUC, are skipped, and are counted in the result.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _as_labels_and_scores(labels, scores, scores_name: str = "scores"):
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.ndim != 1 or scores.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(
            f"`labels` and `{scores_name}` must be 1-D arrays of equal length, got shapes "
            f"{labels.shape} and {scores.shape}."
        )
    if labels.size == 0:
        raise ValueError("`labels` is empty: nothing to evaluate.")
    if not np.isin(labels, (0, 1)).all():
        bad = labels[~np.isin(labels, (0, 1))][0]
        raise ValueError(f"`labels` must be 0/1 (or bool), found value {bad!r}.")
    if not np.isfinite(scores).all():
        row = int(np.flatnonzero(~np.isfinite(scores))[0])
        raise ValueError(f"`{scores_name}[{row}]` = {scores[row]} is not finite.")
    return labels.astype(bool), scores


def _auc_from_ranks(ranks_of_positives_sum, num_pos, num_neg):
    return (ranks_of_positives_sum - num_pos * (num_pos + 1) / 2.0) / (num_pos * num_neg)


def auc(labels, scores) -> float:
    """Exact ROC AUC; tied positive/negative pairs count 0.5.

    Args:
        labels: 0/1 [N].
        scores: float [N] (logits or probabilities; only the order matters).

    Returns:
        AUC in [0, 1].

    Raises:
        ValueError: all labels are one class (AUC undefined), or malformed input.

    Example:
        >>> auc([0, 1, 0, 1], [0.1, 0.4, 0.4, 0.9])  # the tied pair counts 0.5
        0.875
    """
    labels, scores = _as_labels_and_scores(labels, scores)
    num_pos = int(labels.sum())
    num_neg = labels.size - num_pos
    if num_pos == 0 or num_neg == 0:
        raise ValueError(
            f"AUC is undefined when all {labels.size} labels are one class "
            f"({num_pos} positives, {num_neg} negatives)."
        )
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float(_auc_from_ranks(ranks[labels].sum(), num_pos, num_neg))


def gauc(user_ids, labels, scores) -> dict:
    """Group AUC: per-user AUC weighted by the user's number of impressions (DIN paper).

    Args:
        user_ids: [N] user of each impression (any hashable dtype).
        labels: 0/1 [N].
        scores: float [N].

    Returns:
        A dict: ``"gauc"`` (NaN if no user has both classes), ``"num_users"`` (users with both
        classes, used), ``"num_skipped_users"`` (users with one class only),
        ``"num_impressions"`` (impressions of the used users).

    Example:
        >>> gauc([1, 1, 2, 2, 3], [0, 1, 1, 0, 1], [0.2, 0.8, 0.1, 0.5, 0.3])
        {'gauc': 0.5, 'num_users': 2, 'num_skipped_users': 1, 'num_impressions': 4}
    """
    labels, scores = _as_labels_and_scores(labels, scores)
    user_ids = np.asarray(user_ids)
    if user_ids.shape != labels.shape:
        raise ValueError(
            f"`user_ids` must have one entry per impression ({labels.shape[0]}), got shape "
            f"{user_ids.shape}."
        )
    frame = pd.DataFrame({"user": user_ids, "label": labels, "score": scores})
    frame["rank"] = frame.groupby("user", sort=False)["score"].rank(method="average")
    frame["positive_rank"] = np.where(frame["label"], frame["rank"], 0.0)
    per_user = frame.groupby("user", sort=False).agg(
        impressions=("label", "size"), num_pos=("label", "sum"), rank_sum=("positive_rank", "sum")
    )
    num_pos = per_user["num_pos"].to_numpy(np.float64)
    impressions = per_user["impressions"].to_numpy(np.float64)
    num_neg = impressions - num_pos
    both = (num_pos > 0) & (num_neg > 0)
    result = {
        "gauc": float("nan"),
        "num_users": int(both.sum()),
        "num_skipped_users": int((~both).sum()),
        "num_impressions": int(impressions[both].sum()),
    }
    if both.any():
        user_auc = _auc_from_ranks(
            per_user["rank_sum"].to_numpy()[both], num_pos[both], num_neg[both]
        )
        result["gauc"] = float(np.sum(user_auc * impressions[both]) / impressions[both].sum())
    return result


def log_loss(labels, probabilities, epsilon: float = 1e-7) -> float:
    """Mean binary cross-entropy in float64, probabilities clipped to [eps, 1 - eps].

    Args:
        labels: 0/1 [N].
        probabilities: predicted click probabilities in [0, 1] [N] (apply a sigmoid to logits
            first).
        epsilon: clipping, as in Keras.

    Returns:
        Mean log loss (natural log).

    Example:
        >>> round(log_loss([1, 0], [0.9, 0.2]), 4)
        0.1643
    """
    labels, probabilities = _as_labels_and_scores(labels, probabilities, "probabilities")
    if (probabilities < 0).any() or (probabilities > 1).any():
        raise ValueError(
            f"`probabilities` must lie in [0, 1], got range [{probabilities.min()}, "
            f"{probabilities.max()}]; pass sigmoid(logits), not logits."
        )
    p = np.clip(probabilities, epsilon, 1.0 - epsilon)
    return float(-np.mean(np.where(labels, np.log(p), np.log1p(-p))))


def ctr_metrics(labels, probabilities, user_ids=None) -> dict:
    """AUC, log loss and (with `user_ids`) GAUC in one dict.

    Example:
        >>> sorted(ctr_metrics([0, 1], [0.3, 0.6]))
        ['auc', 'log_loss']
    """
    metrics = {"auc": auc(labels, probabilities), "log_loss": log_loss(labels, probabilities)}
    if user_ids is not None:
        grouped = gauc(user_ids, labels, probabilities)
        metrics["gauc"] = grouped["gauc"]
        metrics["gauc_num_users"] = grouped["num_users"]
        metrics["gauc_num_skipped_users"] = grouped["num_skipped_users"]
    return metrics
