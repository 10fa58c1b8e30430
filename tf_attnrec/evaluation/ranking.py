"""Ranking accuracy: where does each user's held-out target land among the candidates?

Conventions shared by every function here:

* Item ids: 0 = padding, 1 = out-of-vocabulary, real items are ``2 .. vocab_size - 1``.
  Columns 0 and 1 of a score matrix are never candidates.
* Ranks are 1-based and **pessimistic**: a candidate whose score ties the target's score is
  ranked above the target, so ``rank = 1 + #{candidates c != target : score[c] >= score[target]}``.
  A constant scorer therefore gets the worst possible rank, never a lucky one.
* With ``exclude_history=True`` every item in the user's history is removed from the candidates
  **except the target itself**: if the target also occurs in the history it stays a candidate
  (the RecBole / SASRec+ convention — only the target is kept), so that a re-consumed item can
  still be hit.
* ``hr@K`` equals Recall@K (one relevant item per user); ``precision@K = hr@K / K`` (the list
  length asked for, also when K exceeds the number of candidates); ``mrr@K`` counts ``1/rank``
  only inside the top K; ``mrr`` is the untruncated mean reciprocal rank.
* The sampled protocol (SASRec paper: 100 uniform negatives) is always labelled: its keys are
  prefixed ``sampled{N}_`` and its ``"protocol"`` is ``"sampled-{N}"``; full-catalogue results
  carry ``"protocol": "full"``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

NUM_RESERVED_IDS = 2  # 0 = padding, 1 = out-of-vocabulary: never candidates.

ScoreFn = Callable[[tf.Tensor], "tf.Tensor | np.ndarray"]


# --------------------------------------------------------------------------------------------
# Metrics from ranks
# --------------------------------------------------------------------------------------------
def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    if isinstance(ks, (int, np.integer)):
        ks = (int(ks),)
    ks = tuple(ks)
    if not ks or any(not isinstance(k, (int, np.integer)) or int(k) < 1 for k in ks):
        raise ValueError(
            f"`ks` must be a non-empty sequence of positive integers (cut-offs such as (10, 20)), "
            f"got {ks!r}."
        )
    return tuple(sorted(set(int(k) for k in ks)))


def ranking_metrics(
    ranks: "np.ndarray | tf.Tensor | Sequence[int]", ks: Sequence[int] = (10, 20)
) -> dict:
    """Averages HR@K, NDCG@K, MRR@K, Precision@K (several K at once) and MRR over users.

    Args:
        ranks: 1-based rank of each user's single target, shape [U] (e.g. from `rank_targets`).
        ks: cut-offs. K may exceed the number of candidates (then every target is a hit and
            precision@K = 1/K).

    Returns:
        A dict of Python floats with keys ``"hr@K"``, ``"ndcg@K"``, ``"mrr@K"``,
        ``"precision@K"`` for each K, plus ``"mrr"`` (untruncated). HR@K equals Recall@K.

    Example:
        >>> m = ranking_metrics([1, 3, 50], ks=(10,))
        >>> round(m["hr@10"], 4), round(m["ndcg@10"], 4)
        (0.6667, 0.5)
    """
    ks = _check_ks(ks)
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or ranks.size == 0:
        raise ValueError(
            f"`ranks` must be a non-empty 1-D array of per-user ranks, got shape {ranks.shape}."
        )
    if not np.issubdtype(ranks.dtype, np.integer) or ranks.min() < 1:
        raise ValueError(
            f"`ranks` must be integers >= 1 (1 = target ranked first), got dtype {ranks.dtype} "
            f"with minimum {ranks.min()}."
        )
    ranks = ranks.astype(np.float64)
    reciprocal = 1.0 / ranks
    discount = 1.0 / np.log2(ranks + 1.0)
    metrics: dict = {}
    for k in ks:
        hit = ranks <= k
        metrics[f"hr@{k}"] = float(hit.mean())
        metrics[f"ndcg@{k}"] = float(np.where(hit, discount, 0.0).mean())
        metrics[f"mrr@{k}"] = float(np.where(hit, reciprocal, 0.0).mean())
        metrics[f"precision@{k}"] = float(hit.mean() / k)
    metrics["mrr"] = float(reciprocal.mean())
    return metrics


# --------------------------------------------------------------------------------------------
# Ranks from scores (TensorFlow, usable inside tf.function)
# --------------------------------------------------------------------------------------------
def _pessimistic_ranks(scores: tf.Tensor, targets: tf.Tensor, excluded: tf.Tensor | None):
    """Ranks of `targets` in `scores` [B, V]; `excluded` bool [B, V] or None. Pure TF ops.

    Returns (ranks int32 [B], candidates bool [B, V], has_nan bool [B]); `candidates` includes
    the target column.
    """
    vocab_size = tf.shape(scores)[1]
    columns = tf.range(vocab_size, dtype=targets.dtype)
    is_target = columns[tf.newaxis, :] == targets[:, tf.newaxis]
    allowed = tf.broadcast_to(columns >= NUM_RESERVED_IDS, tf.shape(scores))
    if excluded is not None:
        allowed = allowed & ~excluded
    candidates = allowed | is_target  # the target is always kept, even if in the history
    others = allowed & ~is_target
    target_scores = tf.gather(scores, targets, batch_dims=1)
    at_least_as_good = others & (scores >= target_scores[:, tf.newaxis])
    ranks = 1 + tf.reduce_sum(tf.cast(at_least_as_good, tf.int32), axis=1)
    # NaN compares False, which would silently make the target look better than it is.
    has_nan = tf.reduce_any(candidates & tf.math.is_nan(scores), axis=1)
    return ranks, candidates, has_nan


def _raise_on_nan(has_nan: np.ndarray, row_offset: int = 0) -> None:
    if has_nan.any():
        rows = (np.flatnonzero(has_nan)[:5] + row_offset).tolist()
        raise ValueError(
            f"Scores contain NaN in candidate columns for user rows {rows} (first 5 shown). "
            "Ranks would be meaningless; check the model for NaN outputs (e.g. a fully-masked "
            "history producing 0/0) before evaluating."
        )


def _check_targets(targets: np.ndarray, vocab_size: int, num_rows: int) -> None:
    if targets.shape != (num_rows,):
        raise ValueError(
            f"`targets` must have shape [{num_rows}] (one item id per score row), got "
            f"{targets.shape}."
        )
    bad = (targets < NUM_RESERVED_IDS) | (targets >= vocab_size)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"targets[{row}] = {int(targets[row])} is not a real item id: targets "
            f"must lie in [{NUM_RESERVED_IDS}, {vocab_size - 1}] for a score matrix with "
            f"{vocab_size} columns (0 = padding and 1 = out-of-vocabulary are never candidates). "
            "Drop users without a known target before evaluating."
        )


def rank_targets(
    scores: "np.ndarray | tf.Tensor",
    targets: "np.ndarray | tf.Tensor | Sequence[int]",
    exclude_mask: "np.ndarray | tf.Tensor | None" = None,
) -> np.ndarray:
    """Pessimistic 1-based rank of each row's target among that row's candidates.

    Args:
        scores: float [U, vocab_size]; higher = more relevant. Columns 0 and 1 are ignored.
        targets: int [U], item ids in ``[2, vocab_size)``.
        exclude_mask: optional bool [U, vocab_size]; True removes an item from the candidates
            (e.g. the user's history). The target's own column is never removed.

    Returns:
        np.int32 [U]: ``1 + #{candidates c != target : scores[u, c] >= scores[u, target]}``
        (ties count against the target).

    Raises:
        ValueError: a target outside ``[2, vocab_size)``, mismatched shapes, or NaN scores.

    Example:
        >>> rank_targets([[9., 9., 0.5, 0.7, 0.5]], [2]).tolist()  # item 4 ties item 2
        [3]
    """
    scores = tf.convert_to_tensor(scores)
    if not scores.dtype.is_floating:
        scores = tf.cast(scores, tf.float32)
    if scores.shape.rank != 2:
        raise ValueError(f"`scores` must be 2-D [users, vocab_size], got shape {scores.shape}.")
    num_rows, vocab_size = int(scores.shape[0]), int(scores.shape[1])
    targets_np = np.asarray(targets).astype(np.int64)
    _check_targets(targets_np, vocab_size, num_rows)
    excluded = None
    if exclude_mask is not None:
        excluded = tf.cast(tf.convert_to_tensor(exclude_mask), tf.bool)
        if tuple(excluded.shape) != (num_rows, vocab_size):
            raise ValueError(
                f"`exclude_mask` must have the shape of `scores` {(num_rows, vocab_size)}, got "
                f"{tuple(excluded.shape)}."
            )
    ranks, _, has_nan = _pessimistic_ranks(scores, tf.constant(targets_np, tf.int32), excluded)
    _raise_on_nan(has_nan.numpy())
    return ranks.numpy()


@tf.function(reduce_retracing=True)
def _evaluate_batch(scores, histories, targets, exclude_history: bool, top_k: int):
    """One batch of full-catalogue ranking (+ optional top-k lists), compiled as a graph."""
    vocab_size = tf.shape(scores)[1]
    excluded = None
    if exclude_history:
        # Multi-hot of the history ids (pad id 0 lands in column 0, which is excluded anyway).
        excluded = tf.math.bincount(
            histories, minlength=vocab_size, maxlength=vocab_size, binary_output=True, axis=-1
        ) > 0
    ranks, candidates, has_nan = _pessimistic_ranks(scores, targets, excluded)
    if top_k == 0:
        return ranks, has_nan, tf.zeros([tf.shape(scores)[0], 0], tf.int32)
    masked = tf.where(candidates, scores, tf.cast(float("-inf"), scores.dtype))
    _, top_items = tf.math.top_k(masked, k=tf.minimum(top_k, vocab_size))
    # Rows with fewer candidates than k are padded with id 0 rather than filled with
    # excluded items.
    valid = tf.gather(candidates, top_items, batch_dims=1)
    return ranks, has_nan, tf.where(valid, top_items, 0)


def _as_history_matrix(histories) -> np.ndarray:
    histories = np.asarray(histories)
    if histories.ndim != 2 or not np.issubdtype(histories.dtype, np.integer):
        raise ValueError(
            f"`histories` must be a 2-D integer array [users, max_length] of left-padded item ids "
            f"(0 = padding), got shape {histories.shape} and dtype {histories.dtype}. Pad "
            "variable-length sequences first, e.g. with tf_attnrec.data.pipelines.pad_sequences."
        )
    if histories.size and histories.min() < 0:
        raise ValueError(f"`histories` contains negative item id {histories.min()}; ids are >= 0.")
    return histories.astype(np.int32, copy=False)


def _call_score_fn(score_fn: ScoreFn, history_batch: np.ndarray, start: int) -> tf.Tensor:
    scores = tf.convert_to_tensor(score_fn(tf.constant(history_batch)))
    if scores.shape.rank != 2 or scores.shape[0] != history_batch.shape[0]:
        raise ValueError(
            f"score_fn must map a history batch [B, L] = {list(history_batch.shape)} to scores "
            f"[B, vocab_size]; for the batch starting at user row {start} it returned shape "
            f"{scores.shape.as_list()}."
        )
    if not scores.dtype.is_floating:
        scores = tf.cast(scores, tf.float32)
    return scores


def _check_inputs(histories, targets) -> tuple[np.ndarray, np.ndarray]:
    histories = _as_history_matrix(histories)
    targets = np.asarray(targets)
    if targets.shape != (histories.shape[0],) or not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(
            f"`targets` must be a 1-D integer array with one item id per history row "
            f"({histories.shape[0]}), got shape {targets.shape} and dtype {targets.dtype}."
        )
    if histories.shape[0] == 0:
        raise ValueError("No users to evaluate: `histories` has 0 rows.")
    return histories, targets.astype(np.int32)


def _check_vocab(histories: np.ndarray, targets: np.ndarray, vocab_size: int) -> None:
    _check_targets(targets, vocab_size, targets.shape[0])
    if histories.max(initial=0) >= vocab_size:
        row = int(np.argwhere(histories >= vocab_size)[0, 0])
        raise ValueError(
            f"histories[{row}] contains item id {int(histories[row].max())} but score_fn returns "
            f"only {vocab_size} columns (ids 0..{vocab_size - 1}). Use the same vocabulary for "
            "the histories and the model."
        )


def full_catalogue_evaluate(
    score_fn: ScoreFn,
    histories: "np.ndarray | Sequence[Sequence[int]]",
    targets: "np.ndarray | Sequence[int]",
    ks: Sequence[int] = (10, 20),
    exclude_history: bool = True,
    batch_size: int = 512,
    return_top_k: bool = False,
    return_ranks: bool = False,
):
    """Ranks every user's target against the whole catalogue and averages ranking metrics.

    Users are scored in batches of `batch_size`; for each batch the history items are masked
    (except the target itself, see the module docstring), the pessimistic rank of the target is
    computed in TensorFlow and the ranks are averaged by `ranking_metrics`.

    Args:
        score_fn: maps an int32 [B, L] left-padded history batch to float scores
            [B, vocab_size] (a Keras model, a `tf.function`, or any callable returning an
            array). Columns 0 (padding) and 1 (OOV) are never candidates.
        histories: int [U, L] left-padded histories (most recent last, 0 = padding).
        targets: int [U] held-out item ids in ``[2, vocab_size)``.
        ks: cut-offs, e.g. (10, 20).
        exclude_history: remove the user's history items (but not the target) from the
            candidates.
        batch_size: users scored at once.
        return_top_k: also return the top ``max(ks)`` recommended items per user, drawn from
            the same candidate set as the ranks (for `beyond_accuracy_metrics`).
        return_ranks: also return the per-user ranks (np.int32 [U]).

    Returns:
        ``metrics`` — a dict with ``"protocol": "full"``, ``"num_users"`` and the keys of
        `ranking_metrics`; or the tuple ``(metrics, top_k_items)`` / ``(metrics, ranks)`` /
        ``(metrics, top_k_items, ranks)`` when requested. ``top_k_items`` is np.int32
        [U, max(ks)], best first, padded with 0 when a user has fewer candidates.

    Example:
        >>> table = tf.random.normal([12, 8])
        >>> score_fn = lambda h: tf.matmul(tf.gather(table, h[:, -1]), table, transpose_b=True)
        >>> m = full_catalogue_evaluate(score_fn, [[0, 2, 3], [4, 5, 6]], [7, 8], ks=(5,))
        >>> m["protocol"], sorted(k for k in m if "@" in k)
        ('full', ['hr@5', 'mrr@5', 'ndcg@5', 'precision@5'])
    """
    ks = _check_ks(ks)
    histories, targets = _check_inputs(histories, targets)
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    top_k = max(ks) if return_top_k else 0
    rank_batches, top_batches = [], []
    vocab_size = None
    for start in range(0, histories.shape[0], batch_size):
        history_batch = histories[start:start + batch_size]
        target_batch = targets[start:start + batch_size]
        scores = _call_score_fn(score_fn, history_batch, start)
        if vocab_size is None:
            vocab_size = int(scores.shape[1])
            _check_vocab(histories, targets, vocab_size)
        elif int(scores.shape[1]) != vocab_size:
            raise ValueError(
                f"score_fn returned {scores.shape[1]} columns for the batch starting at user row "
                f"{start} but {vocab_size} for the first batch; the catalogue must not change."
            )
        ranks, has_nan, top_items = _evaluate_batch(
            scores, tf.constant(history_batch), tf.constant(target_batch),
            exclude_history=bool(exclude_history), top_k=top_k,
        )
        _raise_on_nan(has_nan.numpy(), row_offset=start)
        rank_batches.append(ranks.numpy())
        top_batches.append(top_items.numpy())
    ranks = np.concatenate(rank_batches)
    metrics = {"protocol": "full", "num_users": int(ranks.shape[0])}
    metrics.update(ranking_metrics(ranks, ks))
    extras = []
    if return_top_k:
        top = np.concatenate(top_batches).astype(np.int32)
        if top.shape[1] < top_k:  # K larger than the catalogue
            top = np.pad(top, ((0, 0), (0, top_k - top.shape[1])))
        extras.append(top)
    if return_ranks:
        extras.append(ranks)
    return (metrics, *extras) if extras else metrics


# --------------------------------------------------------------------------------------------
# Sampled protocol
# --------------------------------------------------------------------------------------------
def sample_negatives(
    histories: "np.ndarray | Sequence[Sequence[int]]",
    targets: "np.ndarray | Sequence[int]",
    vocab_size: int,
    num_negatives: int = 100,
    seed: int = 0,
    exclude_history: bool = True,
    batch_size: int = 512,
) -> np.ndarray:
    """Draws `num_negatives` distinct uniform negatives per user (the SASRec-paper protocol).

    Negatives are real items (ids ``2 .. vocab_size - 1``), never the target and, with
    `exclude_history`, never an item of the user's history. Deterministic given `seed`.

    Args:
        histories: int [U, L] left-padded histories.
        targets: int [U] target ids.
        vocab_size: number of score columns (num_items + 2).
        num_negatives: negatives per user.
        seed: seed of the numpy random generator.
        exclude_history: do not draw items from the user's history.
        batch_size: users sampled at once (bounds memory at ``batch_size * vocab_size``).

    Returns:
        np.int32 [U, num_negatives].

    Raises:
        ValueError: a user has fewer than `num_negatives` eligible items.

    Example:
        >>> sample_negatives([[0, 2, 3]], [4], vocab_size=10, num_negatives=3).shape
        (1, 3)
    """
    histories, targets = _check_inputs(histories, targets)
    _check_vocab(histories, targets, vocab_size)
    if num_negatives < 1:
        raise ValueError(f"`num_negatives` must be >= 1, got {num_negatives}.")
    rng = np.random.default_rng(seed)
    rows = []
    for start in range(0, histories.shape[0], batch_size):
        h = histories[start:start + batch_size]
        t = targets[start:start + batch_size]
        # A uniform random key per item; the `num_negatives` smallest eligible keys form a
        # uniform sample without replacement.
        keys = rng.random((h.shape[0], vocab_size))
        keys[:, :NUM_RESERVED_IDS] = np.inf
        row_index = np.arange(h.shape[0])
        if exclude_history:
            keys[row_index[:, None], h] = np.inf
        keys[row_index, t] = np.inf
        eligible = np.isfinite(keys).sum(axis=1)
        if eligible.min() < num_negatives:
            row = int(np.argmin(eligible))
            raise ValueError(
                f"User row {start + row} has only {int(eligible[row])} items eligible as "
                f"negatives but num_negatives={num_negatives}; lower num_negatives or set "
                "exclude_history=False."
            )
        chosen = np.argpartition(keys, num_negatives - 1, axis=1)[:, :num_negatives]
        rows.append(chosen.astype(np.int32))
    return np.concatenate(rows)


def sampled_evaluate(
    score_fn: ScoreFn,
    histories: "np.ndarray | Sequence[Sequence[int]]",
    targets: "np.ndarray | Sequence[int]",
    ks: Sequence[int] = (10,),
    num_negatives: int = 100,
    seed: int = 0,
    exclude_history: bool = True,
    batch_size: int = 512,
    negatives: "np.ndarray | None" = None,
) -> dict:
    """Ranks each target against `num_negatives` sampled items only (SASRec paper protocol).

    Sampled metrics overestimate full-catalogue metrics and are not comparable with them, so
    every key is prefixed ``sampled{num_negatives}_`` and ``"protocol"`` is
    ``"sampled-{num_negatives}"``.

    Args:
        score_fn: as in `full_catalogue_evaluate`.
        histories: int [U, L] left-padded histories.
        targets: int [U] target ids.
        ks: cut-offs.
        num_negatives: negatives per user (100 in the SASRec paper).
        seed: seed for `sample_negatives`.
        exclude_history: negatives are never history items.
        batch_size: users scored at once.
        negatives: optional precomputed int [U, num_negatives] (e.g. to share one sample
            across models); drawn with `sample_negatives` otherwise.

    Returns:
        A dict: ``"protocol": "sampled-100"``, ``"sampled100_num_users"``,
        ``"sampled100_hr@10"``, ``"sampled100_ndcg@10"``, ... (ties still pessimistic).

    Example:
        >>> table = tf.random.normal([300, 8])
        >>> score_fn = lambda h: tf.matmul(tf.gather(table, h[:, -1]), table, transpose_b=True)
        >>> sampled_evaluate(score_fn, [[0, 2, 3]], [7])["protocol"]
        'sampled-100'
    """
    ks = _check_ks(ks)
    histories, targets = _check_inputs(histories, targets)
    rank_batches = []
    for start in range(0, histories.shape[0], batch_size):
        history_batch = histories[start:start + batch_size]
        scores = _call_score_fn(score_fn, history_batch, start)
        if start == 0:
            vocab_size = int(scores.shape[1])
            if negatives is None:
                negatives = sample_negatives(
                    histories, targets, vocab_size, num_negatives, seed, exclude_history,
                    batch_size,
                )
            negatives = np.asarray(negatives, dtype=np.int32)
            if negatives.shape != (histories.shape[0], num_negatives):
                raise ValueError(
                    f"`negatives` must have shape {(histories.shape[0], num_negatives)}, got "
                    f"{negatives.shape}."
                )
            _check_vocab(histories, targets, vocab_size)
        # Column 0 = target, columns 1.. = negatives; rank within these num_negatives + 1 items.
        candidates = np.concatenate(
            [targets[start:start + batch_size, None], negatives[start:start + batch_size]], axis=1
        )
        sampled_scores = tf.gather(scores, candidates, batch_dims=1)
        rank_batches.append(_rank_sampled(sampled_scores, start))
    ranks = np.concatenate(rank_batches)
    prefix = f"sampled{num_negatives}_"
    metrics = {"protocol": f"sampled-{num_negatives}", f"{prefix}num_users": int(ranks.shape[0])}
    metrics.update({prefix + key: value for key, value in ranking_metrics(ranks, ks).items()})
    return metrics


def _rank_sampled(sampled_scores: tf.Tensor, row_offset: int) -> np.ndarray:
    """Pessimistic rank of column 0 among the columns of `sampled_scores` [B, 1 + n]."""
    target_scores = sampled_scores[:, :1]
    has_nan = tf.reduce_any(tf.math.is_nan(sampled_scores), axis=1).numpy()
    _raise_on_nan(has_nan, row_offset)
    better = tf.reduce_sum(tf.cast(sampled_scores[:, 1:] >= target_scores, tf.int32), axis=1)
    return (1 + better).numpy()
