"""AUC, GAUC and log loss against the slow references in _reference.py."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)

from tests.evaluation import _reference as ref
from tf_attnrec.evaluation.ctr import auc, ctr_metrics, gauc, log_loss


def _impressions(seed: int, n: int = 300):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 25, size=n)
    labels = (rng.random(n) < 0.3).astype(int)
    scores = np.round(rng.random(n) + 0.3 * labels, 1)  # coarse grid: many ties
    users[:4] = 99  # one user with a single class
    labels[:4] = 1
    return users, labels, scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_pairwise_reference_with_ties(seed):
    _, labels, scores = _impressions(seed)
    assert auc(labels, scores) == pytest.approx(ref.auc(labels.tolist(), scores.tolist()))


def test_auc_extremes():
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
    assert auc([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5]) == 0.5


@pytest.mark.parametrize("seed", [0, 1])
def test_gauc_matches_reference_and_counts_skipped_users(seed):
    users, labels, scores = _impressions(seed)
    expected, used, skipped = ref.gauc(users.tolist(), labels.tolist(), scores.tolist())
    got = gauc(users, labels, scores)
    assert got["gauc"] == pytest.approx(expected)
    assert (got["num_users"], got["num_skipped_users"]) == (used, skipped)
    assert skipped >= 1
    single_class = {u for u in set(users.tolist()) if len(set(labels[users == u])) < 2}
    assert got["num_impressions"] == int(sum(~np.isin(users, list(single_class))))


def test_gauc_with_string_user_ids_and_no_usable_user():
    got = gauc(["a", "a", "b", "b"], [1, 0, 0, 1], [0.9, 0.1, 0.9, 0.1])
    assert got["gauc"] == pytest.approx(0.5) and got["num_users"] == 2
    none = gauc(["a", "b"], [1, 0], [0.3, 0.4])
    assert np.isnan(none["gauc"]) and none["num_skipped_users"] == 2


@pytest.mark.parametrize("seed", [0, 1])
def test_log_loss_matches_reference(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random(200) < 0.4).astype(int)
    probabilities = rng.random(200)
    probabilities[:3] = [0.0, 1.0, 1e-9]  # clipping
    assert log_loss(labels, probabilities) == pytest.approx(
        ref.log_loss(labels.tolist(), probabilities.tolist()), rel=1e-12
    )


def test_ctr_metrics_combines():
    users, labels, scores = _impressions(3)
    probabilities = np.clip(scores / 1.4, 0, 1)
    got = ctr_metrics(labels, probabilities, user_ids=users)
    assert got["auc"] == pytest.approx(ref.auc(labels.tolist(), probabilities.tolist()))
    assert got["gauc"] == pytest.approx(
        ref.gauc(users.tolist(), labels.tolist(), probabilities.tolist())[0]
    )
    assert got["log_loss"] == pytest.approx(ref.log_loss(labels.tolist(), probabilities.tolist()))


def test_ctr_bad_inputs():
    with pytest.raises(ValueError, match="all 3 labels are one class"):
        auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="0/1"):
        auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="equal length"):
        auc([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"scores\[1\]` = nan"):
        auc([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="pass sigmoid"):
        log_loss([0, 1], [-2.0, 3.0])
    with pytest.raises(ValueError, match="one entry per impression"):
        gauc([1], [0, 1], [0.1, 0.2])
