"""Beyond-accuracy metrics of top-K recommendation lists: coverage, novelty, diversity, bias.

All functions take ``top_k``: int [U, K] recommended item ids per user, best first (e.g. from
``full_catalogue_evaluate(..., return_top_k=True)``). Id 0 marks an empty slot (a user with
fewer candidates than K) and is ignored, as is id 1 (OOV). Real items are ``2 .. vocab_size-1``.
Popularity comes from **training** interactions only, as counts per item id (`item_popularity`).

Definitions (each function's docstring repeats its own):

* coverage@K: share of the ``vocab_size - 2`` real items that appear in at least one list.
* novelty@K: mean self-information ``-log2 p(i)`` over all recommended slots, with
  ``p(i) = count(i) / total training interactions``; items never seen in training count as
  seen once (the largest finite self-information) instead of producing infinity.
* mean_popularity@K: mean training count of the recommended items (ARP, Abdollahpouri et
  al. 2019).
* gini@K: Gini coefficient of exposure (how often each real item appears across all lists),
  over the whole catalogue including never-recommended items: 0 = equal exposure,
  ``1 - 1/n`` = one item takes all exposure.
* ild_genre@K / ild_embedding@K: intra-list diversity, the mean over users of the mean pairwise
  distance ``1 - similarity`` between the items of one list. Genre similarity is Jaccard or
  cosine of multi-hot genre vectors; embedding similarity is cosine. A pair involving an item
  with an all-zero feature vector has similarity 0. Lists with fewer than 2 items are skipped.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tf_attnrec.evaluation.ranking import NUM_RESERVED_IDS, _check_ks


def _as_top_k(top_k, vocab_size: int | None = None) -> np.ndarray:
    top_k = np.asarray(top_k)
    if top_k.ndim != 2 or not np.issubdtype(top_k.dtype, np.integer):
        raise ValueError(
            f"`top_k` must be a 2-D integer array [users, K] of recommended item ids, got shape "
            f"{top_k.shape} and dtype {top_k.dtype}."
        )
    if top_k.size and top_k.min() < 0:
        raise ValueError(f"`top_k` contains negative item id {top_k.min()}; ids are >= 0.")
    if vocab_size is not None and top_k.size and top_k.max() >= vocab_size:
        raise ValueError(
            f"`top_k` contains item id {top_k.max()} but the item table has only {vocab_size} "
            f"rows (ids 0..{vocab_size - 1}); pass popularity/features for the same vocabulary."
        )
    return top_k


def _cut(top_k: np.ndarray, k: int | None) -> np.ndarray:
    if k is None:
        return top_k
    if k < 1:
        raise ValueError(f"`k` must be >= 1, got {k}.")
    return top_k[:, :k]


def _as_counts(item_counts) -> np.ndarray:
    counts = np.asarray(item_counts, dtype=np.float64)
    if counts.ndim != 1 or counts.shape[0] <= NUM_RESERVED_IDS or (counts < 0).any():
        raise ValueError(
            f"`item_counts` must be a 1-D non-negative array [vocab_size] of training counts per "
            f"item id (see item_popularity), got shape {counts.shape}."
        )
    return counts


def item_popularity(train_item_ids, vocab_size: int) -> np.ndarray:
    """Counts training interactions per item id (ids 0 and 1 are not counted).

    Args:
        train_item_ids: any int array of training item ids, e.g. the concatenated training
            sequences or a left-padded [U, L] matrix (padding 0 is ignored). Use training data
            only: counting test targets would leak them into novelty and popularity.
        vocab_size: num_items + 2.

    Returns:
        np.int64 [vocab_size] counts; entries 0 and 1 are 0.

    Example:
        >>> item_popularity([[0, 2, 3], [2, 2, 4]], vocab_size=5).tolist()
        [0, 0, 3, 1, 1]
    """
    ids = np.asarray(train_item_ids).ravel()
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"`train_item_ids` must hold integer item ids, got dtype {ids.dtype}.")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(
            f"`train_item_ids` holds ids in [{ids.min()}, {ids.max()}] but vocab_size is "
            f"{vocab_size} (valid ids 0..{vocab_size - 1})."
        )
    counts = np.bincount(ids.astype(np.int64), minlength=vocab_size).astype(np.int64)
    counts[:NUM_RESERVED_IDS] = 0
    return counts


def catalogue_coverage(top_k, vocab_size: int, k: int | None = None) -> float:
    """Share of the ``vocab_size - 2`` real items recommended to at least one user.

    Args:
        top_k: int [U, K] recommended ids (0 = empty slot).
        vocab_size: num_items + 2.
        k: use only the first k columns (default: all).

    Returns:
        A float in [0, 1].

    Example:
        >>> catalogue_coverage([[2, 3], [3, 0]], vocab_size=6)
        0.5
    """
    top_k = _cut(_as_top_k(top_k, vocab_size), k)
    recommended = np.unique(top_k[top_k >= NUM_RESERVED_IDS])
    return float(recommended.size / (vocab_size - NUM_RESERVED_IDS))


def exposure(top_k, vocab_size: int, k: int | None = None) -> np.ndarray:
    """How many lists each item id appears in: np.int64 [vocab_size] (ids 0, 1 are 0)."""
    top_k = _cut(_as_top_k(top_k, vocab_size), k)
    counts = np.bincount(top_k.ravel().astype(np.int64), minlength=vocab_size)
    counts[:NUM_RESERVED_IDS] = 0
    return counts


def gini_coefficient(values) -> float:
    """Gini coefficient of non-negative values (0 = all equal; all-zero input gives 0).

    Example:
        >>> gini_coefficient([0, 0, 0, 4])
        0.75
    """
    values = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if values.size == 0 or (values < 0).any():
        raise ValueError("`values` must be a non-empty array of non-negative numbers.")
    total = values.sum()
    if total == 0:
        return 0.0
    n = values.size
    index = np.arange(1, n + 1)
    return float(np.sum((2 * index - n - 1) * values) / (n * total))


def exposure_gini(top_k, vocab_size: int, k: int | None = None) -> float:
    """Gini coefficient of exposure over all real items (never-recommended items count as 0).

    Example:
        >>> round(exposure_gini([[2], [2]], vocab_size=4), 3)  # 2 real items, one gets all
        0.5
    """
    return gini_coefficient(exposure(top_k, vocab_size, k)[NUM_RESERVED_IDS:])


def _valid_slots(top_k: np.ndarray) -> np.ndarray:
    return top_k >= NUM_RESERVED_IDS


def novelty(top_k, item_counts, k: int | None = None) -> float:
    """Mean self-information ``-log2 p(i)`` of the recommended items.

    ``p(i) = count(i) / sum(count)`` from training counts; an item with count 0 is treated as
    count 1 so that novelty stays finite. Averaged over all non-empty slots of all lists.

    Args:
        top_k: int [U, K] recommended ids.
        item_counts: training counts per id [vocab_size] (`item_popularity`).
        k: use only the first k columns.

    Returns:
        Mean bits of self-information (higher = less popular recommendations).

    Example:
        >>> novelty([[2]], item_counts=[0, 0, 1, 3])  # p = 1/4
        2.0
    """
    counts = _as_counts(item_counts)
    top_k = _cut(_as_top_k(top_k, counts.shape[0]), k)
    if counts.sum() == 0:
        raise ValueError("`item_counts` is all zero: novelty needs training popularity.")
    self_information = -np.log2(np.maximum(counts, 1.0) / counts.sum())
    valid = _valid_slots(top_k)
    if not valid.any():
        raise ValueError("`top_k` has no recommended items (all slots are 0 or 1).")
    return float(self_information[top_k[valid]].mean())


def mean_popularity(top_k, item_counts, k: int | None = None) -> float:
    """Average recommendation popularity: mean training count of the recommended items.

    Example:
        >>> mean_popularity([[2, 3]], item_counts=[0, 0, 1, 3])
        2.0
    """
    counts = _as_counts(item_counts)
    top_k = _cut(_as_top_k(top_k, counts.shape[0]), k)
    valid = _valid_slots(top_k)
    if not valid.any():
        raise ValueError("`top_k` has no recommended items (all slots are 0 or 1).")
    return float(counts[top_k[valid]].mean())


_SIMILARITIES = ("jaccard", "cosine")


def intra_list_diversity(
    top_k,
    item_features,
    similarity: str = "cosine",
    k: int | None = None,
    batch_size: int = 1024,
) -> float:
    """Mean pairwise distance ``1 - sim(i, j)`` within each list, averaged over users.

    Args:
        top_k: int [U, K] recommended ids (0 = empty slot, ignored).
        item_features: [vocab_size, F] per item id: a multi-hot genre matrix (with "jaccard"
            or "cosine") or an embedding table (with "cosine").
        similarity: "jaccard" (treats features as sets: non-zero = member) or "cosine".
            A pair involving an all-zero feature row has similarity 0.
        k: use only the first k columns.
        batch_size: users processed at once (memory ``batch_size * K * K``).

    Returns:
        Mean intra-list distance over users whose list has at least 2 items.

    Example:
        >>> genres = np.array([[0, 0], [0, 0], [1, 0], [1, 1], [0, 1]])
        >>> intra_list_diversity([[2, 4]], genres, similarity="jaccard")
        1.0
    """
    if similarity not in _SIMILARITIES:
        raise ValueError(f"`similarity` must be one of {_SIMILARITIES}, got {similarity!r}.")
    features = np.asarray(item_features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(
            f"`item_features` must be 2-D [vocab_size, F] (multi-hot genres or embeddings), got "
            f"shape {features.shape}."
        )
    if similarity == "jaccard":
        features = (features != 0).astype(np.float64)
    top_k = _cut(_as_top_k(top_k, features.shape[0]), k)
    norms = np.linalg.norm(features, axis=1)
    sizes = features.sum(axis=1)
    list_len = top_k.shape[1]
    upper = np.triu(np.ones((list_len, list_len), dtype=bool), k=1)
    per_user = []
    for start in range(0, top_k.shape[0], batch_size):
        ids = top_k[start:start + batch_size]
        valid = _valid_slots(ids)
        f = features[ids]  # [B, K, F]
        dots = np.einsum("bkf,blf->bkl", f, f)
        if similarity == "cosine":
            denom = norms[ids][:, :, None] * norms[ids][:, None, :]
        else:  # |A n B| / |A u B|
            denom = sizes[ids][:, :, None] + sizes[ids][:, None, :] - dots
        sim = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
        pairs = valid[:, :, None] & valid[:, None, :] & upper
        num_pairs = pairs.sum(axis=(1, 2))
        keep = num_pairs > 0
        distance_sum = np.where(pairs, 1.0 - sim, 0.0).sum(axis=(1, 2))
        per_user.append(distance_sum[keep] / num_pairs[keep])
    per_user = np.concatenate(per_user)
    if per_user.size == 0:
        raise ValueError("No list has 2 or more recommended items; diversity is undefined.")
    return float(per_user.mean())


def beyond_accuracy_metrics(
    top_k,
    item_counts,
    ks: Sequence[int] | None = None,
    item_genres=None,
    item_embeddings=None,
    genre_similarity: str = "jaccard",
) -> dict:
    """All beyond-accuracy metrics for several cut-offs at once.

    Args:
        top_k: int [U, K_max] recommended ids, best first.
        item_counts: training counts per id [vocab_size] (`item_popularity`).
        ks: cut-offs <= K_max (default: (K_max,)).
        item_genres: optional multi-hot [vocab_size, G] genre matrix -> ``ild_genre@K``.
        item_embeddings: optional [vocab_size, D] item embeddings -> ``ild_embedding@K``.
        genre_similarity: "jaccard" or "cosine" for the genre diversity.

    Returns:
        A dict with ``coverage@K``, ``novelty@K``, ``mean_popularity@K``, ``gini@K`` and, when
        features are given, ``ild_genre@K`` / ``ild_embedding@K``.

    Example:
        >>> m = beyond_accuracy_metrics([[2, 3], [2, 4]], item_counts=[0, 0, 5, 1, 1], ks=(1, 2))
        >>> m["coverage@1"], m["coverage@2"]
        (0.3333333333333333, 1.0)
    """
    counts = _as_counts(item_counts)
    vocab_size = counts.shape[0]
    top_k = _as_top_k(top_k, vocab_size)
    ks = _check_ks(ks if ks is not None else (top_k.shape[1],))
    if max(ks) > top_k.shape[1]:
        raise ValueError(
            f"Cut-off {max(ks)} exceeds the {top_k.shape[1]} items per list in `top_k`; request "
            "the top-k lists with at least max(ks) items."
        )
    for name, table in (("item_genres", item_genres), ("item_embeddings", item_embeddings)):
        if table is not None and np.shape(table)[0] != vocab_size:
            raise ValueError(
                f"`{name}` has {np.shape(table)[0]} rows but `item_counts` has {vocab_size}; "
                "both must be indexed by the same item ids (vocab_size = num_items + 2)."
            )
    metrics: dict = {}
    for k in ks:
        metrics[f"coverage@{k}"] = catalogue_coverage(top_k, vocab_size, k)
        metrics[f"novelty@{k}"] = novelty(top_k, counts, k)
        metrics[f"mean_popularity@{k}"] = mean_popularity(top_k, counts, k)
        metrics[f"gini@{k}"] = exposure_gini(top_k, vocab_size, k)
        if item_genres is not None:
            metrics[f"ild_genre@{k}"] = intra_list_diversity(
                top_k, item_genres, similarity=genre_similarity, k=k
            )
        if item_embeddings is not None:
            metrics[f"ild_embedding@{k}"] = intra_list_diversity(
                top_k, item_embeddings, similarity="cosine", k=k
            )
    return metrics
