"""Splits: chronological order, k-core, leave-one-out without leaks, temporal split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tf_attnrec.data.splits import (
    k_core_filter,
    leave_one_out_split,
    sort_chronologically,
    temporal_split,
)
from tf_attnrec.data.vocabulary import Vocabulary


def test_sort_is_stable_by_user_then_time():
    df = pd.DataFrame(
        {"user_id": ["b", "a", "b", "a", "b"], "item_id": [1, 2, 3, 4, 5], "timestamp": [20, 9, 10, 9, 10]}
    )
    ordered = sort_chronologically(df)
    assert ordered["user_id"].tolist() == ["a", "a", "b", "b", "b"]
    # Ties (a: 9, 9; b: 10, 10) keep the original row order.
    assert ordered["item_id"].tolist() == [2, 4, 3, 5, 1]
    no_time = sort_chronologically(df.drop(columns="timestamp"))
    assert no_time["item_id"].tolist() == [2, 4, 1, 3, 5]


def test_k_core_iterates_to_a_fixed_point():
    # Round 1 drops user 3 (1 interaction) and item 40 (1 user); that leaves item 30 with one
    # user -> dropped in round 2, which leaves user 2 with one item -> dropped in round 3.
    df = pd.DataFrame(
        {"user_id": [1, 1, 2, 2, 3, 4, 4, 4], "item_id": [10, 20, 10, 30, 30, 10, 20, 40]}
    )
    core = k_core_filter(df, k=2)
    assert core.to_numpy().tolist() == [[1, 10], [1, 20], [4, 10], [4, 20]]
    assert core["user_id"].value_counts().min() >= 2 and core["item_id"].value_counts().min() >= 2
    assert len(k_core_filter(df, user_k=1, item_k=1)) == len(df)
    with pytest.raises(ValueError, match="must be >= 1"):
        k_core_filter(df, k=0)


def test_ml1m_is_already_a_5_core(ml1m):
    interactions = ml1m.interactions[["user_id", "item_id"]]
    assert len(k_core_filter(interactions, k=5)) == 999_611
    # A stricter core does remove rows, so the filter is not a no-op.
    assert len(k_core_filter(interactions, user_k=20, item_k=5)) < 999_611


def test_ml1m_leave_one_out_matches_the_file(ml1m, ml1m_split):
    split = ml1m_split
    assert split.num_users == 6040 and split.vocabulary.num_items == 3416
    assert split.evaluable.all()  # ML-1M's shortest user has 18 interactions, none is short
    assert ml1m.interactions.groupby("user_id").size().min() == 18
    lengths = np.array([len(s) for s in split.train])
    assert lengths.sum() + 2 * 6040 == 999_611
    # Check every user against the raw file, in file order (the file is time-ordered).
    encoded = split.vocabulary.lookup(ml1m.interactions["item_id"].to_numpy())
    by_user = np.split(encoded, np.flatnonzero(np.diff(ml1m.interactions["user_id"].to_numpy())) + 1)
    assert split.users.tolist() == list(range(1, 6041))
    for row, sequence in enumerate(by_user):
        np.testing.assert_array_equal(split.train[row], sequence[:-2])
        assert split.validation_target[row] == sequence[-2]
        assert split.test_target[row] == sequence[-1]


def test_ml1m_leave_one_out_never_leaks(ml1m_split):
    split = ml1m_split
    validation = split.validation_inputs()
    test = split.test_inputs()
    assert len(validation.histories) == len(test.histories) == 6040
    full = split.full_sequences()
    for row in range(split.num_users):
        sequence = full[row]
        # Validation history is exactly the items before the validation item.
        np.testing.assert_array_equal(validation.histories[row], sequence[:-2])
        assert validation.targets[row] == sequence[-2]
        # Test history is exactly the items before the test item (validation item included).
        np.testing.assert_array_equal(test.histories[row], sequence[:-1])
        assert test.targets[row] == sequence[-1]
    # ML-1M has no repeated user-item pairs, so the held-out items must not occur at all.
    assert not any(t in h for h, t in zip(validation.histories, validation.targets))
    assert not any(t in h for h, t in zip(test.histories, test.targets))
    assert not any(t in h for h, t in zip(validation.histories, test.targets))
    np.testing.assert_array_equal(validation.user_indices, np.arange(6040))


def _short_user_frame():
    return pd.DataFrame(
        {"user_id": [1, 1, 1, 1, 2, 2, 3], "item_id": ["a", "b", "c", "d", "a", "b", "c"], "timestamp": [4, 3, 2, 1, 1, 2, 1]}
    )


def test_short_users_default_train_only():
    split = leave_one_out_split(_short_user_frame())
    vocab = split.vocabulary
    assert split.users.tolist() == [1, 2, 3]
    # User 1's items in time order: d, c, b, a.
    np.testing.assert_array_equal(split.train[0], vocab.lookup(["d", "c"]))
    assert (split.validation_target[0], split.test_target[0]) == tuple(vocab.lookup(["b", "a"]))
    np.testing.assert_array_equal(split.train[1], vocab.lookup(["a", "b"]))
    np.testing.assert_array_equal(split.train[2], vocab.lookup(["c"]))
    assert split.validation_target[1:].tolist() == [0, 0] and split.test_target[1:].tolist() == [0, 0]
    assert split.evaluable.tolist() == [True, False, False]
    assert split.test_inputs().user_indices.tolist() == [0]


def test_short_users_drop_and_error():
    dropped = leave_one_out_split(_short_user_frame(), short_users="drop")
    assert dropped.users.tolist() == [1] and len(dropped.train) == 1
    with pytest.raises(ValueError, match=r"2 user\(s\) have fewer than 3 interactions \(e\.g\. \[2, 3\]\)"):
        leave_one_out_split(_short_user_frame(), short_users="error")


def test_given_vocabulary_maps_unknown_items_to_oov():
    split = leave_one_out_split(_short_user_frame(), vocabulary=Vocabulary.from_ids(["a", "b"]))
    assert split.test_target[0] == split.vocabulary.lookup(["a"])[0]
    assert split.train[0].tolist() == [1, 1]  # d and c are unknown


def test_temporal_split_is_global_in_time():
    df = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [1, 2, 3, 4, 5], "timestamp": [1, 5, 2, 9, 7]})
    parts = temporal_split(df, cutoff=7, validation_cutoff=5)
    assert parts.train["timestamp"].tolist() == [1, 2]
    assert parts.validation["timestamp"].tolist() == [5]
    assert sorted(parts.test["timestamp"].tolist()) == [7, 9]
    assert parts.train["timestamp"].max() < parts.validation["timestamp"].min()
    by_quantile = temporal_split(df, cutoff=0.6)
    assert by_quantile.cutoff == 7 and len(by_quantile.train) == 3 and len(by_quantile.test) == 2
    with pytest.raises(ValueError, match="must not be after cutoff"):
        temporal_split(df, cutoff=5, validation_cutoff=7)
    with pytest.raises(ValueError, match=r"needs column\(s\) \['timestamp'\]"):
        temporal_split(df.drop(columns="timestamp"), cutoff=3)
    with pytest.raises(ValueError, match="leaves train with 0"):
        temporal_split(df, cutoff=0)


def test_temporal_split_on_ml100k(ml100k):
    parts = temporal_split(ml100k.interactions, cutoff=0.9)
    assert len(parts.train) + len(parts.test) == 100_000
    assert parts.train["timestamp"].max() < parts.test["timestamp"].min()
    assert 0.08 < len(parts.test) / 100_000 < 0.12
