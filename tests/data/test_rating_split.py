"""The multi-task split (tf_attnrec.data.rating_split): rows shuffled once, cut, labelled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)

from tf_attnrec.data.rating_split import rating_split


def _ratings(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"user_id": rng.integers(1, 30, n), "item_id": rng.integers(100, 160, n),
                         "rating": rng.integers(1, 6, n), "timestamp": np.arange(n)})


def test_parts_partition_the_rows_in_the_given_shares():
    df = _ratings()
    split = rating_split(df, fractions=(0.7, 0.1, 0.2), seed=3)
    parts = [split.rows(stage) for stage in ("train", "validation", "test")]
    assert [len(p) for p in parts] == [140, 20, 40]
    assert sorted(np.concatenate(parts).tolist()) == list(range(200))  # every row once


def test_rows_keep_their_user_item_and_rating():
    df = _ratings()
    split = rating_split(df, seed=1)
    test = split.arrays("test")
    rows = split.rows("test")
    assert split.user_vocabulary.raw_ids(test["user"]).tolist() == df["user_id"].to_numpy()[rows].tolist()
    assert split.vocabulary.raw_ids(test["item"]).tolist() == df["item_id"].to_numpy()[rows].tolist()
    np.testing.assert_array_equal(test["rating"], df["rating"].to_numpy()[rows])
    np.testing.assert_array_equal(test["click"], (df["rating"].to_numpy()[rows] >= 4).astype(np.float32))


def test_validation_comes_out_of_the_training_share_and_test_rows_stay():
    """(0.8, 0, 0.2) and (0.7, 0.1, 0.2) with one seed test on the same rows (the tutorial's cut)."""
    df = _ratings()
    plain = rating_split(df, fractions=(0.8, 0.0, 0.2), seed=42)
    held = rating_split(df, fractions=(0.7, 0.1, 0.2), seed=42)
    assert set(plain.rows("test")) == set(held.rows("test"))
    assert set(held.rows("train")) | set(held.rows("validation")) == set(plain.rows("train"))
    assert plain.num_rows("validation") == 0


def test_seed_changes_the_cut_and_is_deterministic():
    df = _ratings()
    a, b, c = (rating_split(df, seed=s) for s in (5, 5, 6))
    np.testing.assert_array_equal(a.rows("test"), b.rows("test"))
    assert set(a.rows("test")) != set(c.rows("test"))


def test_click_threshold_and_summary():
    df = _ratings()
    split = rating_split(df, click_threshold=5, seed=0)
    train = split.arrays("train")
    np.testing.assert_array_equal(train["click"], (train["rating"] >= 5).astype(np.float32))
    summary = split.summary()
    assert summary["train"] + summary["validation"] + summary["test"] == 200
    assert summary["click_threshold"] == 5.0 and summary["seed"] == 0


def test_item_counts_count_training_rows_only():
    df = _ratings()
    split = rating_split(df, seed=0)
    counts = split.item_counts("train")
    assert counts.shape == (split.vocabulary.size,) and counts[:2].sum() == 0
    assert counts.sum() == split.num_rows("train")


def test_dataset_batches_carry_every_key():
    split = rating_split(_ratings(), seed=0)
    batch = next(iter(split.dataset("train", batch_size=16, shuffle=True, seed=1)))
    assert set(batch) == {"user", "item", "rating", "click"}
    assert batch["user"].shape == (16,) and batch["user"].dtype.name == "int32"


def test_missing_rating_column_names_it():
    with pytest.raises(ValueError, match=r"rating"):
        rating_split(_ratings().drop(columns="rating"))


def test_non_numeric_rating_names_the_row():
    df = _ratings()
    df["rating"] = df["rating"].astype(object)
    df.loc[7, "rating"] = "five"
    with pytest.raises(ValueError, match=r"row 7 holds 'five'"):
        rating_split(df)


@pytest.mark.parametrize("fractions", [(0.5, 0.5, 0.0), (0.0, 0.5, 0.5), (0.8, 0.1, 0.2), (0.9, -0.1, 0.2), (1.0,)])
def test_bad_fractions_are_refused(fractions):
    with pytest.raises(ValueError, match="fractions"):
        rating_split(_ratings(), fractions=fractions)


def test_empty_validation_dataset_is_a_clear_error():
    split = rating_split(_ratings(), fractions=(0.8, 0.0, 0.2))
    with pytest.raises(ValueError, match="validation part .* is empty"):
        split.dataset("validation", batch_size=8)
