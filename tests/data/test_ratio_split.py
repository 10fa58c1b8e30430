"""Tests for tf_attnrec.data.ratio_split (the per-user random 80/10/10 CF split)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

import tf_attnrec  # noqa: F401  (selects Keras 2; must come before TensorFlow)

from tf_attnrec.data.ratio_split import RatioSplit, ratio_split, split_counts
from tf_attnrec.data.vocabulary import Vocabulary

RATIOS = [(0.8, 0.1, 0.1), (0.7, 0.2, 0.1), (0.6, 0.2, 0.2), (0.9, 0.05, 0.05), (0.5, 0.5, 0.0), (1.0, 0.0, 0.0)]


def _recbole_calc_split_ids(tot: int, ratios) -> list:
    """RecBole's `_calc_split_ids` counts, transcribed literally (one user, Python ints)."""
    cnt = [int(ratios[i] * tot) for i in range(len(ratios))]
    cnt[0] = tot - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * tot < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


def _interactions(num_users: int = 20, num_items: int = 15, seed: int = 0, repeats: bool = True) -> pd.DataFrame:
    """Random interactions, rows shuffled so that users are interleaved (not grouped)."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(num_users):
        n = int(rng.integers(1, 14))
        chosen = rng.integers(0, num_items, n) if repeats else rng.choice(num_items, min(n, num_items), replace=False)
        users += [f"u{u:02d}"] * len(chosen)
        items += [int(100 + i) for i in chosen]
    order = rng.permutation(len(users))
    return pd.DataFrame({"user_id": np.asarray(users)[order], "item_id": np.asarray(items)[order]})


def _raw_multiset(vocabulary: Vocabulary, ids) -> Counter:
    return Counter(vocabulary.raw_ids(np.asarray(ids, np.int64)).tolist()) if len(ids) else Counter()


@pytest.mark.parametrize("ratios", RATIOS)
def test_split_counts_is_recboles_rule(ratios):
    lengths = np.arange(1, 301)
    counts = split_counts(lengths, ratios)
    expected = np.array([_recbole_calc_split_ids(int(n), ratios) for n in lengths])
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_array_equal(counts.sum(axis=1), lengths)
    assert counts.min() >= 0


def test_split_counts_keeps_one_training_item_for_short_users():
    counts = split_counts(np.arange(1, 10), (0.8, 0.1, 0.1))
    assert (counts[:, 0] >= 1).all()
    expected = np.array([_recbole_calc_split_ids(n, (0.8, 0.1, 0.1)) for n in range(1, 10)])
    np.testing.assert_array_equal(counts, expected)


@pytest.mark.parametrize("seed", [0, 7])
def test_per_user_parts_are_a_partition_of_the_users_interactions(seed):
    df = _interactions(seed=seed)
    split = ratio_split(df, seed=seed)
    assert isinstance(split, RatioSplit)
    assert split.users.tolist() == sorted(df["user_id"].unique().tolist())
    assert split.num_users == len(split.users) == len(split.train) == len(split.validation) == len(split.test)
    voc = split.vocabulary
    assert voc == Vocabulary.from_ids(df["item_id"])
    expected_counts = split_counts(df.groupby("user_id").size().loc[split.users].to_numpy(), (0.8, 0.1, 0.1))
    for row, user in enumerate(split.users):
        own = Counter(df.loc[df["user_id"] == user, "item_id"].tolist())
        parts = [split.train[row], split.validation[row], split.test[row]]
        for part in parts:
            assert part.dtype == np.int32
            assert part.size == 0 or part.min() >= 2
        # The three parts are disjoint as interactions: together exactly the user's multiset.
        union = sum((_raw_multiset(voc, p) for p in parts), Counter())
        assert union == own, (user, union, own)
        assert [len(p) for p in parts] == expected_counts[row].tolist()
    assert split.num_interactions() == {
        "train": int(expected_counts[:, 0].sum()), "validation": int(expected_counts[:, 1].sum()),
        "test": int(expected_counts[:, 2].sum())}


def test_training_part_keeps_file_order_within_the_user():
    df = _interactions(seed=3, repeats=False)
    split = ratio_split(df, seed=3)
    voc = split.vocabulary
    for row, user in enumerate(split.users):
        file_order = df.loc[df["user_id"] == user, "item_id"].tolist()
        for part in (split.train[row], split.validation[row], split.test[row]):
            raw = voc.raw_ids(part).tolist() if len(part) else []
            positions = [file_order.index(r) for r in raw]
            assert positions == sorted(positions)


def test_same_seed_same_split_other_seed_different():
    df = _interactions(seed=1)

    def parts(split):
        return [[p.tolist() for p in part] for part in (split.train, split.validation, split.test)]

    first, again, other = ratio_split(df, seed=5), ratio_split(df, seed=5), ratio_split(df, seed=6)
    assert parts(first) == parts(again)
    assert parts(first) != parts(other)
    assert (first.seed, other.seed) == (5, 6)
    assert first.ratios == (0.8, 0.1, 0.1)


def test_seen_and_targets_per_stage():
    df = _interactions(seed=2)
    split = ratio_split(df, seed=2)
    seen_test, seen_validation = split.seen("test"), split.seen("validation")
    for row in range(split.num_users):
        assert Counter(seen_test[row].tolist()) == Counter(split.train[row].tolist() + split.validation[row].tolist())
        assert seen_validation[row].tolist() == split.train[row].tolist()
    assert split.targets("validation") is split.validation
    assert split.targets("test") is split.test
    for stage, part in (("validation", split.validation), ("test", split.test)):
        expected = [row for row in range(split.num_users) if len(part[row]) > 0]
        rows = split.evaluable_users(stage)
        assert rows.dtype == np.int32
        assert rows.tolist() == expected
    with pytest.raises(ValueError, match="stage"):
        split.seen("train")
    with pytest.raises(ValueError, match="stage"):
        split.targets("valid")


def test_given_vocabulary_is_used():
    df = _interactions(seed=4)
    vocabulary = Vocabulary.from_ids(list(range(90, 130)))  # a larger catalogue, other ids
    split = ratio_split(df, seed=4, vocabulary=vocabulary)
    assert split.vocabulary is vocabulary
    every = np.concatenate([np.concatenate(p) for p in (split.train, split.validation, split.test)])
    assert Counter(vocabulary.raw_ids(every).tolist()) == Counter(df["item_id"].tolist())


@pytest.mark.parametrize("ratios, match", [
    ((0.8, 0.2), "three"),
    ((0.8, 0.1, 0.2), "summing to 1"),
    ((0.9, -0.1, 0.2), "ratios"),
    ((0.0, 0.5, 0.5), "train > 0"),
])
def test_bad_ratios_raise(ratios, match):
    with pytest.raises(ValueError, match=match):
        ratio_split(_interactions(), ratios=ratios)


@pytest.mark.parametrize("column", ["user_id", "item_id"])
def test_missing_column_raises_naming_it(column):
    df = _interactions().drop(columns=[column])
    with pytest.raises(ValueError, match=column):
        ratio_split(df)
