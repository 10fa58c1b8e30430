"""Full-catalogue ranking when each user has a SET of held-out items (the CF protocol).

Leave-one-out has one target per user (`tf_attnrec.evaluation.ranking`); the random 80/10/10
split holds out many. The conventions are the same: columns 0 and 1 (padding, OOV) are never
candidates, the user's seen items are removed, and ranks are pessimistic (a candidate that
ties a target's score ranks above it, so a constant scorer gets the worst ranks). The rank of
each target is `#{candidates c : score[c] >= score[target]}`, other targets included, which
is the target's place in the sorted list when there are no ties.

Per user with T targets and ranks r_t (averaged over users with at least one target):

* ``recall@K = #{r_t <= K} / T``;
* ``ndcg@K = sum_{r_t <= K} 1 / log2(r_t + 1)  /  sum_{i <= min(T, K)} 1 / log2(i + 1)``;
* ``precision@K = #{r_t <= K} / K``;
* ``hit@K = 1 if any r_t <= K``.

These are RecBole's definitions of Recall, NDCG, Precision and Hit, so the numbers compare
with RecBole's on the same split.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from tf_attnrec.evaluation.ranking import NUM_RESERVED_IDS, _check_ks

# The rank of a target that was removed from the candidates: beyond any K.
UNRANKED = np.iinfo(np.int64).max // 2
UserScoreFn = Callable[[tf.Tensor], "tf.Tensor | np.ndarray"]


def _ragged(lists: Sequence[np.ndarray], what: str) -> tuple[np.ndarray, np.ndarray]:
    """(values int64, row lengths) of per-user id arrays."""
    lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    values = np.concatenate([np.asarray(x, np.int64) for x in lists]) if len(lists) else np.zeros(0, np.int64)
    if values.size and values.min() < 0:
        raise ValueError(f"{what} hold a negative item id ({int(values.min())}).")
    return values, lengths


def target_ranks(scores: np.ndarray, seen: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> list:
    """Per user, the int64 pessimistic rank of each target among the unseen candidates.

    Args:
        scores: float [B, V] scores over model item ids.
        seen: per user, item ids removed from the candidates (a seen target can never be hit).
        targets: per user, the held-out item ids.

    Returns:
        A list of B int64 arrays, aligned with `targets`; a target that is seen (or padding /
        OOV) gets `UNRANKED`, so it is never within a cut-off.

    Raises:
        ValueError: NaN scores (the row is named) or ids outside [0, V).
    """
    scores = np.array(scores, dtype=np.float32)  # a copy: seen items are overwritten
    batch, vocab_size = scores.shape
    if len(seen) != batch or len(targets) != batch:
        raise ValueError(f"scores have {batch} rows but seen has {len(seen)} and targets {len(targets)}.")
    nan_rows = np.flatnonzero(np.isnan(scores).any(axis=1))
    if len(nan_rows):
        raise ValueError(f"the model produced NaN scores for batch row {int(nan_rows[0])} ({len(nan_rows)} rows).")
    seen_values, seen_lengths = _ragged(seen, "seen items")
    target_values, target_lengths = _ragged(targets, "targets")
    for what, values in (("seen items", seen_values), ("targets", target_values)):
        if values.size and values.max() >= vocab_size:
            raise ValueError(f"{what} hold id {int(values.max())}, outside the {vocab_size} scored items.")
    scores[:, :NUM_RESERVED_IDS] = -np.inf
    scores[np.repeat(np.arange(batch), seen_lengths), seen_values] = -np.inf
    target_scores = scores[np.repeat(np.arange(batch), target_lengths), target_values]
    # #{c : s_c >= s_t} = V - #{c : s_c < s_t}, by binary search in each row's ascending sort.
    ascending = tf.sort(tf.constant(scores), axis=1)
    padded = tf.RaggedTensor.from_row_lengths(target_scores, target_lengths).to_tensor(default_value=np.inf)
    below = tf.searchsorted(ascending, padded, side="left").numpy().astype(np.int64)
    # A removed target (seen, padding or OOV) is no candidate: a rank past every cut-off.
    ranks = np.where(np.isneginf(padded.numpy()), UNRANKED, vocab_size - below)
    return [ranks[row, :length].astype(np.int64) for row, length in enumerate(target_lengths)]


def item_set_metrics(ranks: Sequence[np.ndarray], ks: Sequence[int] = (10, 20)) -> dict:
    """Recall, NDCG, Precision and Hit at each K, averaged over users with targets.

    Example:
        >>> metrics = item_set_metrics([np.array([1, 3]), np.array([50])], ks=(10,))
        >>> round(metrics["recall@10"], 3), round(metrics["hit@10"], 3)
        (0.5, 0.5)
    """
    ks = _check_ks(ks)
    ranks = [np.asarray(r, np.int64) for r in ranks if len(r)]
    if not ranks:
        raise ValueError("no user has a target item to evaluate.")
    metrics: dict = {}
    for k in ks:
        ideal = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))  # IDCG for 1..K targets
        recall, ndcg, precision, hit = [], [], [], []
        for r in ranks:
            top = r[r <= k]
            recall.append(len(top) / len(r))
            ndcg.append(np.sum(1.0 / np.log2(top + 1.0)) / ideal[min(len(r), k) - 1])
            precision.append(len(top) / k)
            hit.append(float(len(top) > 0))
        metrics.update({f"recall@{k}": float(np.mean(recall)), f"ndcg@{k}": float(np.mean(ndcg)),
                        f"precision@{k}": float(np.mean(precision)), f"hit@{k}": float(np.mean(hit))})
    metrics["users"] = len(ranks)
    return metrics


def evaluate_item_sets(
    score_fn: UserScoreFn,
    users: np.ndarray,
    seen: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    ks: Sequence[int] = (10, 20),
    batch_size: int = 1024,
) -> dict:
    """Full-catalogue Recall / NDCG / Precision / Hit @K for users with held-out item sets.

    Args:
        score_fn: `int32 user rows [B] -> [B, V]` scores over model item ids.
        users: int32 [N] user rows to evaluate.
        seen: per evaluated user, the items removed from the ranking.
        targets: per evaluated user, the held-out items.
        ks: cut-offs.
        batch_size: users scored at once.

    Returns:
        `{"protocol": "full", "recall@10": ..., "ndcg@10": ..., "users": N, ...}`.

    Example:
        ```python
        metrics = evaluate_item_sets(score_fn, rows, split.seen("test"), split.targets("test"))
        ```
    """
    users = np.asarray(users, np.int32)
    if not (len(users) == len(seen) == len(targets)):
        raise ValueError(f"users ({len(users)}), seen ({len(seen)}) and targets ({len(targets)}) must align.")
    ranks: list = []
    for start in range(0, len(users), batch_size):
        stop = start + batch_size
        scores = score_fn(tf.constant(users[start:stop]))
        scores = scores.numpy() if hasattr(scores, "numpy") else np.asarray(scores)
        ranks += target_ranks(scores, seen[start:stop], targets[start:stop])
    return {"protocol": "full", **item_set_metrics(ranks, ks)}


__all__ = ["evaluate_item_sets", "item_set_metrics", "target_ranks"]
