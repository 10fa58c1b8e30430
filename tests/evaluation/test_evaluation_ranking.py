"""Ranking metrics and protocols against the slow references in _reference.py."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tests.evaluation import _reference as ref
from tf_attnrec.evaluation.ranking import (
    full_catalogue_evaluate,
    rank_targets,
    ranking_metrics,
    sample_negatives,
    sampled_evaluate,
)

NUM_ITEMS = 10
VOCAB = NUM_ITEMS + 2  # ids 0 (pad), 1 (OOV), 2..11 real
KS = (1, 3, 5, 50)  # 50 > catalogue


def _random_problem(seed: int, num_users: int = 23, max_length: int = 6):
    """Left-padded histories (some containing their target, some with OOV id 1) + targets."""
    rng = np.random.default_rng(seed)
    histories = np.zeros((num_users, max_length), np.int32)
    for row in range(num_users):
        length = rng.integers(0, max_length + 1)
        if length:
            histories[row, -length:] = rng.integers(1, VOCAB, size=length)
    targets = rng.integers(2, VOCAB, size=num_users).astype(np.int32)
    # Force a few users to have their target in the history (it must stay a candidate).
    histories[:3, -1] = targets[:3]
    return histories, targets


def _tied_table(seed: int) -> np.ndarray:
    # Scores on a coarse grid so that ties are frequent; columns 0/1 score highest of all to
    # prove they are never candidates.
    rng = np.random.default_rng(seed)
    table = rng.integers(0, 4, size=(VOCAB, VOCAB)).astype(np.float32)
    table[:, :2] = 100.0
    return table


def _score_fn_for(table: np.ndarray):
    def score_fn(history):  # numpy scorer: row of the last history item
        return table[np.asarray(history)[:, -1]]

    return score_fn


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_rank_targets_matches_reference_with_ties(seed, as_tensor):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, size=(40, VOCAB)).astype(np.float32)
    targets = rng.integers(2, VOCAB, size=40)
    exclude = rng.random((40, VOCAB)) < 0.3
    exclude[:5, targets[:5]] = True  # target excluded by the mask: must be kept anyway
    expected = [
        ref.rank(scores[u], targets[u], np.flatnonzero(exclude[u])) for u in range(40)
    ]
    args = (scores, targets, exclude)
    if as_tensor:
        args = tuple(tf.constant(a) for a in args)
    np.testing.assert_array_equal(rank_targets(*args), expected)
    expected_no_mask = [ref.rank(scores[u], targets[u]) for u in range(40)]
    np.testing.assert_array_equal(rank_targets(scores, targets), expected_no_mask)


def test_ties_are_pessimistic_and_reserved_columns_ignored():
    scores = np.full((1, VOCAB), 5.0, np.float32)
    scores[0, :2] = 99.0
    assert rank_targets(scores, [4]).tolist() == [NUM_ITEMS]  # worst rank among 10 items
    scores[0, 4] = 5.5
    assert rank_targets(scores, [4]).tolist() == [1]


@pytest.mark.parametrize("seed", [0, 3])
def test_ranking_metrics_match_reference(seed):
    ranks = np.random.default_rng(seed).integers(1, 30, size=57)
    got = ranking_metrics(ranks, ks=KS)
    expected = ref.ranking_metrics(ranks.tolist(), KS)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key


def test_k_larger_than_catalogue_counts_every_target():
    got = ranking_metrics([1, NUM_ITEMS, 4], ks=(50,))
    assert got["hr@50"] == 1.0 and got["precision@50"] == pytest.approx(1 / 50)


@pytest.mark.parametrize("exclude_history", [True, False])
@pytest.mark.parametrize("batch_size", [7, 512])
def test_full_catalogue_evaluate_matches_reference(exclude_history, batch_size):
    histories, targets = _random_problem(seed=5)
    table = _tied_table(seed=6)
    metrics, top_k, ranks = full_catalogue_evaluate(
        _score_fn_for(table), histories, targets, ks=KS, exclude_history=exclude_history,
        batch_size=batch_size, return_top_k=True, return_ranks=True,
    )
    scores = table[histories[:, -1]]
    expected_ranks = [
        ref.rank(scores[u], targets[u], histories[u] if exclude_history else ())
        for u in range(len(targets))
    ]
    np.testing.assert_array_equal(ranks, expected_ranks)
    expected = ref.ranking_metrics(expected_ranks, KS)
    assert metrics["protocol"] == "full" and metrics["num_users"] == len(targets)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, rel=1e-12), key

    assert top_k.shape == (len(targets), max(KS)) and top_k.dtype == np.int32
    for u in range(len(targets)):
        best_scores, candidates = ref.top_k_scores(
            scores[u], targets[u], histories[u] if exclude_history else (), max(KS)
        )
        listed = top_k[u][top_k[u] != 0]
        assert len(listed) == len(best_scores) == len(set(listed.tolist()))
        assert set(listed.tolist()) <= candidates
        np.testing.assert_array_equal(scores[u][listed], best_scores)
        assert (top_k[u][len(listed):] == 0).all()


def test_target_in_history_stays_a_candidate_other_history_items_do_not():
    table = np.zeros((VOCAB, VOCAB), np.float32)
    table[:, 3] = 9.0  # target, also in the history
    table[:, 2] = 10.0  # history item scoring above the target: excluded
    histories = np.array([[0, 2, 3]], np.int32)
    metrics, top_k, ranks = full_catalogue_evaluate(
        lambda h: table[np.asarray(h)[:, -1]], histories, [3], ks=(1,), return_top_k=True,
        return_ranks=True,
    )
    assert ranks.tolist() == [1] and metrics["hr@1"] == 1.0 and top_k.tolist() == [[3]]
    _, ranks = full_catalogue_evaluate(
        lambda h: table[np.asarray(h)[:, -1]], histories, [3], ks=(1,), exclude_history=False,
        return_ranks=True,
    )
    assert ranks.tolist() == [2]


def test_keras_model_as_score_fn():
    tf.keras.utils.set_random_seed(0)
    history = tf.keras.Input(shape=(4,), dtype="int32")
    last = tf.keras.layers.Lambda(lambda h: h[:, -1])(history)
    query = tf.keras.layers.Embedding(VOCAB, 8)(last)
    model = tf.keras.Model(history, tf.keras.layers.Dense(VOCAB)(query))
    histories, targets = _random_problem(seed=2, max_length=4)
    _, ranks = full_catalogue_evaluate(model, histories, targets, batch_size=5, return_ranks=True)
    scores = model.predict(histories, verbose=0)
    expected = [ref.rank(scores[u], targets[u], histories[u]) for u in range(len(targets))]
    np.testing.assert_array_equal(ranks, expected)


@pytest.mark.parametrize(
    "targets, match",
    [([0], r"targets\[0\] = 0"), ([1], r"targets\[0\] = 1"), ([VOCAB], "not a real item id")],
)
def test_invalid_targets_are_rejected(targets, match):
    table = _tied_table(0)
    with pytest.raises(ValueError, match=match):
        full_catalogue_evaluate(_score_fn_for(table), [[0, 2]], targets)
    with pytest.raises(ValueError, match=match):
        rank_targets(table[:1], targets)


def test_bad_inputs_get_clear_errors():
    table = _tied_table(0)
    with pytest.raises(ValueError, match="2-D integer array"):
        full_catalogue_evaluate(_score_fn_for(table), [2, 3], [4, 5])
    with pytest.raises(ValueError, match="one item id per history row"):
        full_catalogue_evaluate(_score_fn_for(table), [[2, 3]], [4, 5])
    with pytest.raises(ValueError, match="returned shape"):
        full_catalogue_evaluate(lambda h: np.zeros((1, 2, VOCAB)), [[2, 3]], [4])
    with pytest.raises(ValueError, match="contains item id 40"):
        full_catalogue_evaluate(_score_fn_for(table), [[2, 3], [40, 3]], [4, 5])
    nan_table = table.copy()
    nan_table[3, 7] = np.nan
    with pytest.raises(ValueError, match=r"NaN .* user rows \[1\]"):
        full_catalogue_evaluate(_score_fn_for(nan_table), [[2, 2], [2, 3]], [4, 5])
    with pytest.raises(ValueError, match="positive integers"):
        ranking_metrics([1, 2], ks=(0,))
    with pytest.raises(ValueError, match=">= 1"):
        ranking_metrics([0, 2])


def test_sample_negatives_are_valid_deterministic_and_batch_invariant():
    histories, targets = _random_problem(seed=8, num_users=30)
    negatives = sample_negatives(histories, targets, VOCAB, num_negatives=4, seed=3, batch_size=7)
    assert negatives.shape == (30, 4)
    for u in range(30):
        row = negatives[u].tolist()
        assert len(set(row)) == 4 and min(row) >= 2 and max(row) < VOCAB
        assert targets[u] not in row and not set(row) & set(histories[u].tolist())
    again = sample_negatives(histories, targets, VOCAB, num_negatives=4, seed=3, batch_size=512)
    np.testing.assert_array_equal(np.sort(negatives, 1), np.sort(again, 1))
    other = sample_negatives(histories, targets, VOCAB, num_negatives=4, seed=4)
    assert not np.array_equal(np.sort(negatives, 1), np.sort(other, 1))


def test_sample_negatives_are_uniform():
    # 1 user, empty history, target 2: the other 9 items should each be drawn ~1/9 * 3 of the time.
    draws = np.concatenate([
        sample_negatives([[0]], [2], VOCAB, num_negatives=3, seed=s).ravel() for s in range(900)
    ])
    counts = np.bincount(draws, minlength=VOCAB)[3:]
    assert counts.sum() == 2700 and counts.min() > 230 and counts.max() < 370


def test_sampled_evaluate_matches_reference_and_is_labelled():
    histories, targets = _random_problem(seed=9, num_users=25)
    table = _tied_table(seed=10)
    negatives = sample_negatives(histories, targets, VOCAB, num_negatives=5, seed=1)
    metrics = sampled_evaluate(
        _score_fn_for(table), histories, targets, ks=(1, 3, 10), num_negatives=5, seed=1,
        batch_size=6,
    )
    assert metrics["protocol"] == "sampled-5"
    assert all(key.startswith("sampled5_") for key in metrics if key != "protocol")
    expected_ranks = []
    for u in range(25):
        row = table[histories[u, -1]]
        expected_ranks.append(1 + sum(row[n] >= row[targets[u]] for n in negatives[u]))
    expected = ref.ranking_metrics(expected_ranks, (1, 3, 10))
    for key, value in expected.items():
        assert metrics[f"sampled5_{key}"] == pytest.approx(value, rel=1e-12), key
    assert metrics["sampled5_num_users"] == 25
    # Default protocol is the SASRec paper's 100 negatives.
    big = np.zeros((2, 3), np.int32)
    default = sampled_evaluate(lambda h: np.zeros((2, 200), np.float32), big, [5, 6])
    assert default["protocol"] == "sampled-100" and "sampled100_hr@10" in default
    assert default["sampled100_hr@10"] == 0.0  # constant scores: pessimistic rank 101


def test_sampled_evaluate_rejects_too_few_negatives():
    with pytest.raises(ValueError, match="only 9 items eligible"):
        sampled_evaluate(_score_fn_for(_tied_table(0)), [[0, 0]], [2], num_negatives=100)
