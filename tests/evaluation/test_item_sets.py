"""Tests for tf_attnrec.evaluation.item_sets (full ranking with held-out item SETS)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec.evaluation.item_sets import evaluate_item_sets, item_set_metrics, target_ranks

V = 17  # 15 items + padding + OOV
KS = (1, 3, 5, 10)


def _case(num_users: int = 20, seed: int = 0, ties: bool = False):
    """Random scores [U, V] and per user disjoint seen / target sets over ids 2..V-1."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(num_users, V)).astype(np.float32)
    if ties:
        scores = np.round(scores * 2) / 2  # many equal scores
    seen, targets = [], []
    for _ in range(num_users):
        ids = rng.permutation(np.arange(2, V))
        n_seen, n_target = int(rng.integers(0, 6)), int(rng.integers(0, 5))
        seen.append(ids[:n_seen].astype(np.int32))
        targets.append(ids[n_seen:n_seen + n_target].astype(np.int32))
    targets[0] = np.zeros(0, np.int32)  # a user without targets is skipped by the metrics
    return scores, seen, targets


def _brute_ranks(scores, seen, targets):
    """Per user, each target's 1-based place among the candidates, ties counted against it.

    Candidates are ids 2..V-1 minus the seen ones; the place of target t is the number of
    candidates c with score[c] >= score[t] (t itself included). A target that is seen or
    reserved is not a candidate: its rank is None (never a hit).
    """
    out = []
    for row, (s, t) in enumerate(zip(seen, targets)):
        candidates = [c for c in range(2, scores.shape[1]) if c not in set(s.tolist())]
        ranks = []
        for target in t.tolist():
            if target not in candidates:
                ranks.append(None)
                continue
            ranks.append(sum(1 for c in candidates if scores[row, c] >= scores[row, target]))
        out.append(ranks)
    return out


def _brute_metrics(ranks, ks):
    """RecBole's Recall / NDCG / Precision / Hit @K, averaged over users with targets."""
    users = [r for r in ranks if len(r)]
    result = {}
    for k in ks:
        recall, ndcg, precision, hit = [], [], [], []
        for r in users:
            hits = [x for x in r if x is not None and x <= k]
            recall.append(len(hits) / len(r))
            dcg = sum(1.0 / math.log2(x + 1) for x in hits)
            idcg = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(r), k) + 1))
            ndcg.append(dcg / idcg)
            precision.append(len(hits) / k)
            hit.append(1.0 if hits else 0.0)
        result.update({f"recall@{k}": np.mean(recall), f"ndcg@{k}": np.mean(ndcg),
                       f"precision@{k}": np.mean(precision), f"hit@{k}": np.mean(hit)})
    result["users"] = len(users)
    return result


def _assert_metrics_equal(actual, expected):
    assert set(expected) <= set(actual)
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, abs=1e-9), key


def _score_fn(scores):
    def score(rows):
        return tf.gather(tf.constant(scores), rows)
    return score


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_ranks_match_brute_force(seed, ties):
    scores, seen, targets = _case(seed=seed, ties=ties)
    ranks = target_ranks(scores, seen, targets)
    expected = _brute_ranks(scores, seen, targets)
    assert len(ranks) == len(targets)
    for got, want in zip(ranks, expected):
        assert got.dtype == np.int64
        assert got.tolist() == want  # targets are never seen here: every rank is a number


@pytest.mark.parametrize("ties", [False, True])
def test_metrics_match_brute_force(ties):
    scores, seen, targets = _case(seed=3, ties=ties)
    metrics = item_set_metrics(target_ranks(scores, seen, targets), ks=KS)
    _assert_metrics_equal(metrics, _brute_metrics(_brute_ranks(scores, seen, targets), KS))


def test_constant_scorer_gets_the_worst_ranks():
    _, seen, targets = _case(seed=4)
    scores = np.zeros((len(seen), V), np.float32)
    for row, (s, t, r) in enumerate(zip(seen, targets, target_ranks(scores, seen, targets))):
        num_candidates = V - 2 - len(s)
        assert r.tolist() == [num_candidates] * len(t)
    metrics = item_set_metrics(target_ranks(scores, seen, targets), ks=(1,))
    # Every target ties every candidate: the last place; only a user with a single candidate hits.
    expected = _brute_metrics(_brute_ranks(scores, seen, targets), (1,))
    _assert_metrics_equal(metrics, expected)


def test_reserved_columns_are_never_candidates():
    scores, seen, targets = _case(seed=5)
    scores[:, :2] = 1e6  # padding and OOV would outrank everything if they were candidates
    ranks = target_ranks(scores, seen, targets)
    for got, want in zip(ranks, _brute_ranks(scores, seen, targets)):
        assert got.tolist() == want


@pytest.mark.parametrize("k", [5, V - 2, 50])
def test_a_seen_target_is_never_a_hit(k):
    # User 0: target 4 is also seen and has the best score; target 6 is a fair candidate.
    scores = np.arange(V, dtype=np.float32)[None, :].copy()
    scores[0, 4] = 100.0
    seen, targets = [np.array([4, 9], np.int32)], [np.array([4, 6], np.int32)]
    ranks = target_ranks(scores, seen, targets)
    brute = _brute_ranks(scores, seen, targets)
    assert ranks[0][1] == brute[0][1]
    metrics = item_set_metrics(ranks, ks=(k,))
    # Only target 6 may count: recall is at most 1/2 whatever K (even K past the catalogue).
    _assert_metrics_equal(metrics, _brute_metrics(brute, (k,)))
    assert metrics[f"recall@{k}"] <= 0.5


def test_nan_scores_raise_naming_the_row():
    scores, seen, targets = _case(seed=6)
    scores[3, 7] = np.nan
    with pytest.raises(ValueError, match="NaN.*row 3"):
        target_ranks(scores, seen, targets)
    with pytest.raises(ValueError, match="NaN"):
        evaluate_item_sets(_score_fn(scores), np.arange(len(seen)), seen, targets)


def test_out_of_range_ids_raise():
    scores, seen, targets = _case(seed=7)
    bad = list(targets)
    bad[1] = np.array([V], np.int32)
    with pytest.raises(ValueError, match="outside"):
        target_ranks(scores, seen, bad)
    with pytest.raises(ValueError, match="negative"):
        target_ranks(scores, [np.array([-1])] + seen[1:], targets)


def test_target_ranks_does_not_modify_the_scores():
    scores, seen, targets = _case(seed=8)
    before = scores.copy()
    target_ranks(scores, seen, targets)
    np.testing.assert_array_equal(scores, before)


def test_no_target_at_all_raises():
    with pytest.raises(ValueError, match="no user"):
        item_set_metrics([np.zeros(0, np.int64)] * 3)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 1024])
def test_evaluate_item_sets_matches_brute_force_whatever_the_batch(batch_size):
    scores, seen, targets = _case(seed=9)
    # Evaluate a subset of users in a shuffled order: row r of the request is user users[r].
    users = np.array([5, 0, 12, 3, 19, 7, 8, 2], np.int32)
    calls = []

    def score(rows):
        calls.append(len(rows))
        return tf.gather(tf.constant(scores), rows)

    metrics = evaluate_item_sets(score, users, [seen[u] for u in users], [targets[u] for u in users],
                                 ks=KS, batch_size=batch_size)
    assert metrics["protocol"] == "full"
    assert max(calls) <= batch_size and sum(calls) == len(users)
    brute = _brute_ranks(scores[users], [seen[u] for u in users], [targets[u] for u in users])
    _assert_metrics_equal(metrics, _brute_metrics(brute, KS))


def test_evaluate_item_sets_accepts_numpy_scores_and_checks_alignment():
    scores, seen, targets = _case(seed=10)
    users = np.arange(len(seen))
    metrics = evaluate_item_sets(lambda rows: scores[rows.numpy()], users, seen, targets, ks=(5,))
    _assert_metrics_equal(metrics, _brute_metrics(_brute_ranks(scores, seen, targets), (5,)))
    with pytest.raises(ValueError, match="align"):
        evaluate_item_sets(_score_fn(scores), users[:-1], seen, targets)
