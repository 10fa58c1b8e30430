"""Beyond-accuracy metrics against the slow references in _reference.py."""

from __future__ import annotations

import collections

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)

from tests.evaluation import _reference as ref
from tf_attnrec.evaluation.beyond_accuracy import (
    beyond_accuracy_metrics,
    catalogue_coverage,
    exposure_gini,
    gini_coefficient,
    intra_list_diversity,
    item_popularity,
    mean_popularity,
    novelty,
)

VOCAB = 30  # 28 real items
K = 6


def _top_k(seed: int, num_users: int = 40) -> np.ndarray:
    """Distinct items per list, skewed towards low ids; some lists end in 0-padding."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, VOCAB - 1)
    top = np.zeros((num_users, K), np.int32)
    for u in range(num_users):
        length = K if u % 5 else rng.integers(0, K + 1)  # includes empty and 1-item lists
        top[u, :length] = rng.choice(
            np.arange(2, VOCAB), size=length, replace=False, p=weights / weights.sum()
        )
    return top


def _counts(seed: int) -> np.ndarray:
    counts = np.random.default_rng(seed).integers(0, 50, size=VOCAB)
    counts[:2] = 0
    counts[5] = 0  # an item never seen in training
    return counts


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("k", [1, 3, K])
def test_popularity_coverage_gini_match_reference(seed, k):
    top, counts = _top_k(seed), _counts(seed)
    top[0, 0] = 5  # a recommended item with training count 0: novelty must stay finite
    assert catalogue_coverage(top, VOCAB, k) == pytest.approx(ref.coverage(top, VOCAB, k))
    assert novelty(top, counts, k) == pytest.approx(ref.novelty(top, counts.tolist(), k))
    assert mean_popularity(top, counts, k) == pytest.approx(
        ref.mean_popularity(top, counts.tolist(), k)
    )
    assert exposure_gini(top, VOCAB, k) == pytest.approx(ref.gini_of_exposure(top, VOCAB, k))


def test_gini_extremes():
    assert gini_coefficient([3, 3, 3]) == 0.0
    assert gini_coefficient([0, 0, 0, 0]) == 0.0
    assert gini_coefficient([0, 0, 0, 7]) == pytest.approx(0.75)
    everyone_same_item = np.full((10, 1), 2)
    assert exposure_gini(everyone_same_item, VOCAB) == pytest.approx(1 - 1 / (VOCAB - 2))


@pytest.mark.parametrize("similarity", ["jaccard", "cosine"])
@pytest.mark.parametrize("k", [2, K])
def test_genre_diversity_matches_reference(similarity, k):
    rng = np.random.default_rng(4)
    genres = (rng.random((VOCAB, 5)) < 0.35).astype(np.int8)
    genres[7] = 0  # an item without genres
    top = _top_k(2)
    top[1, :2] = [7, 8]
    got = intra_list_diversity(top, genres, similarity=similarity, k=k, batch_size=7)
    assert got == pytest.approx(ref.intra_list_diversity(top, genres, similarity, k))


@pytest.mark.parametrize("k", [2, K])
def test_embedding_diversity_matches_reference(k):
    embeddings = np.random.default_rng(5).normal(size=(VOCAB, 4))
    embeddings[9] = 0.0
    top = _top_k(3)
    top[2, :2] = [9, 10]
    got = intra_list_diversity(top, embeddings, similarity="cosine", k=k)
    assert got == pytest.approx(ref.intra_list_diversity(top, embeddings, "cosine", k))


def test_diversity_of_identical_and_disjoint_items():
    genres = np.zeros((VOCAB, 3))
    genres[2:5] = [1, 1, 0]
    genres[5] = [0, 0, 1]
    assert intra_list_diversity([[2, 3, 4]], genres, "jaccard") == pytest.approx(0.0)
    assert intra_list_diversity([[2, 5]], genres, "cosine") == pytest.approx(1.0)


def test_item_popularity_counts_training_ids():
    rng = np.random.default_rng(0)
    sequences = rng.integers(0, VOCAB, size=(12, 7))
    expected = collections.Counter(int(i) for i in sequences.ravel() if i >= 2)
    got = item_popularity(sequences, VOCAB)
    assert got.tolist() == [expected.get(i, 0) for i in range(VOCAB)]
    with pytest.raises(ValueError, match="vocab_size is 5"):
        item_popularity([[2, 9]], vocab_size=5)


def test_beyond_accuracy_metrics_combines_all_metrics():
    top, counts = _top_k(6), _counts(6)
    genres = (np.random.default_rng(1).random((VOCAB, 4)) < 0.5).astype(float)
    embeddings = np.random.default_rng(2).normal(size=(VOCAB, 3))
    metrics = beyond_accuracy_metrics(
        top, counts, ks=(3, K), item_genres=genres, item_embeddings=embeddings,
        genre_similarity="cosine",
    )
    for k in (3, K):
        assert metrics[f"coverage@{k}"] == pytest.approx(ref.coverage(top, VOCAB, k))
        assert metrics[f"novelty@{k}"] == pytest.approx(ref.novelty(top, counts.tolist(), k))
        assert metrics[f"gini@{k}"] == pytest.approx(ref.gini_of_exposure(top, VOCAB, k))
        assert metrics[f"mean_popularity@{k}"] == pytest.approx(
            ref.mean_popularity(top, counts.tolist(), k)
        )
        assert metrics[f"ild_genre@{k}"] == pytest.approx(
            ref.intra_list_diversity(top, genres, "cosine", k)
        )
        assert metrics[f"ild_embedding@{k}"] == pytest.approx(
            ref.intra_list_diversity(top, embeddings, "cosine", k)
        )
    assert len(metrics) == 12


def test_beyond_accuracy_bad_inputs():
    top, counts = _top_k(0), _counts(0)
    with pytest.raises(ValueError, match="exceeds the 6 items per list"):
        beyond_accuracy_metrics(top, counts, ks=(10,))
    with pytest.raises(ValueError, match="has 4 rows but `item_counts` has 30"):
        beyond_accuracy_metrics(top, counts, item_genres=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="contains item id 30"):
        novelty([[30]], counts)
    with pytest.raises(ValueError, match="one of"):
        intra_list_diversity(top, np.zeros((VOCAB, 2)), similarity="euclid")
    with pytest.raises(ValueError, match="no recommended items"):
        novelty([[0, 0]], counts)
