"""The multi-task split: rating rows shuffled once and cut into train / validation / test.

This is the protocol of the TFRS multi-task tutorial (MovieLens-100K: the 100,000 ratings
shuffled with a seed, the first 80,000 for training and the next 20,000 for test), with an
optional validation part cut from the end of the training share, so that early stopping never
looks at test rows. Every row keeps its rating: the rating task regresses it, the click task
labels it (rating >= `click_threshold`) and the retrieval task takes the (user, item) pair as a
positive. Users and items get their ids from all rows, as the tutorial's vocabularies do, so a
test row's user or item may have no training row (its embedding is then untrained; the counts
are in `RatingSplit.summary()`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np
import pandas as pd
import tensorflow as tf

from tf_attnrec.data.splits import require_columns
from tf_attnrec.data.vocabulary import Vocabulary

STAGES = ("train", "validation", "test")
# The keys of a batch (`RatingSplit.dataset`), read by the multi-task models.
USER, ITEM, RATING, CLICK = "user", "item", "rating", "click"


@dataclasses.dataclass
class RatingSplit:
    """Rating rows split at random into train / validation / test, with id vocabularies.

    Args:
        users: int32 [N] user ids (`user_vocabulary`: 0 padding, 1 OOV, known users from 2).
        items: int32 [N] item ids (`vocabulary`).
        ratings: float32 [N] ratings as read.
        stage: int8 [N] 0 train, 1 validation, 2 test.
        order: int64 [N] the shuffled row order (a stage's rows come in this order, as the
            tutorial's take / skip of its shuffled dataset).
        vocabulary: the item `Vocabulary` (every item of the rows).
        user_vocabulary: the user `Vocabulary` (every user of the rows).
        click_threshold: a row is a click when its rating is >= this.
        fractions: the (train, validation, test) shares.
        seed: the seed of the shuffle (stored in a run, so the split is rebuilt).
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    stage: np.ndarray
    order: np.ndarray
    vocabulary: Vocabulary
    user_vocabulary: Vocabulary
    click_threshold: float
    fractions: tuple
    seed: int

    def rows(self, stage: str) -> np.ndarray:
        """int64 row indices of one stage, in shuffled order."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}; got {stage!r}.")
        return self.order[self.stage[self.order] == STAGES.index(stage)]

    def arrays(self, stage: str) -> dict[str, np.ndarray]:
        """`{"user", "item", "rating", "click"}` arrays of one stage."""
        rows = self.rows(stage)
        ratings = self.ratings[rows]
        return {USER: self.users[rows], ITEM: self.items[rows], RATING: ratings,
                CLICK: (ratings >= self.click_threshold).astype(np.float32)}

    def num_rows(self, stage: str) -> int:
        return int(len(self.rows(stage)))

    def dataset(self, stage: str, batch_size: int, shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
        """Batches of one stage: `{"user", "item": int32 [B], "rating", "click": float32 [B]}`.

        Args:
            stage: "train", "validation" or "test".
            batch_size: rows per batch (the last batch may be smaller).
            shuffle: reshuffle the rows every pass (training).
            seed: the shuffle's seed.
        """
        arrays = self.arrays(stage)
        if not len(arrays[USER]):
            raise ValueError(f"the {stage} part of the rating split is empty (fractions {self.fractions}).")
        data = tf.data.Dataset.from_tensor_slices(arrays)
        if shuffle:
            data = data.shuffle(len(arrays[USER]), seed=seed, reshuffle_each_iteration=True)
        return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    @property
    def num_users(self) -> int:
        return self.user_vocabulary.num_items

    def item_counts(self, stage: str = "train") -> np.ndarray:
        """float32 [vocabulary.size]: how often each item id occurs in one stage's rows."""
        return np.bincount(self.items[self.rows(stage)], minlength=self.vocabulary.size).astype(np.float32)

    def summary(self) -> dict[str, Any]:
        """Sizes for `metrics.json`: rows per stage, and test rows whose user / item never trains."""
        train = self.rows("train")
        test = self.rows("test")
        return {
            "kind": "random rows", "fractions": list(self.fractions), "seed": self.seed,
            "click_threshold": self.click_threshold,
            **{stage: self.num_rows(stage) for stage in STAGES},
            "users": self.user_vocabulary.num_items, "items": self.vocabulary.num_items,
            "test_rows_user_not_in_train": int((~np.isin(self.users[test], self.users[train])).sum()),
            "test_rows_item_not_in_train": int((~np.isin(self.items[test], self.items[train])).sum()),
        }


def rating_split(
    interactions: pd.DataFrame,
    fractions: tuple = (0.8, 0.0, 0.2),
    seed: int = 42,
    click_threshold: float = 4.0,
    vocabulary: Optional[Vocabulary] = None,
    user_vocabulary: Optional[Vocabulary] = None,
) -> RatingSplit:
    """Shuffles the rating rows with `seed` and cuts them into train / validation / test.

    The first `fractions[0] + fractions[1]` of the shuffled rows are the tutorial's training
    share; its last `fractions[1]` (of all rows) are held out for validation. So
    `(0.8, 0.0, 0.2)` is the TFRS tutorial's 80k / 20k cut of ML-100K and `(0.7, 0.1, 0.2)`
    tests on the same 20k rows with 10k for early stopping.

    Args:
        interactions: rows with `user_id`, `item_id` and `rating`.
        fractions: (train, validation, test) shares, non-negative, summing to 1, train and
            test positive.
        seed: the shuffle's seed.
        click_threshold: rating at or above which a row is a click.
        vocabulary, user_vocabulary: the run's vocabularies (evaluate / export a saved run);
            None builds them from the rows.

    Returns:
        `RatingSplit`.

    Raises:
        ValueError: a missing `rating` column (or missing values in it), or bad fractions.

    Example:
        >>> rows = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [5, 6, 5, 7, 6],
        ...                      "rating": [5, 3, 4, 1, 2]})
        >>> split = rating_split(rows, fractions=(0.6, 0.0, 0.4), seed=0)
        >>> split.num_rows("train"), split.num_rows("test")
        (3, 2)
    """
    require_columns(interactions, ("user_id", "item_id", "rating"), "the multi-task models",
                    hint="They regress ratings and label clicks from them; read a file that has ratings "
                         "(e.g. --dataset ml-100k).")
    fractions = tuple(float(f) for f in fractions)
    if (len(fractions) != 3 or min(fractions) < 0 or fractions[0] <= 0 or fractions[2] <= 0
            or not np.isclose(sum(fractions), 1.0)):
        raise ValueError(
            f"fractions must be (train, validation, test) shares >= 0 summing to 1 with train and test > 0; "
            f"got {fractions}.")
    ratings = pd.to_numeric(interactions["rating"], errors="coerce").to_numpy(np.float64)
    if np.isnan(ratings).any():
        bad = int(np.flatnonzero(np.isnan(ratings))[0])
        raise ValueError(f"rating: row {bad} holds {interactions['rating'].iloc[bad]!r}; expected a number.")
    n = len(interactions)
    vocabulary = vocabulary or Vocabulary.from_ids(interactions["item_id"])
    user_vocabulary = user_vocabulary or Vocabulary.from_ids(interactions["user_id"])
    order = np.random.default_rng(seed).permutation(n)
    train_end = int(round((fractions[0] + fractions[1]) * n))
    validation_start = int(round(fractions[0] * n))
    stage = np.empty(n, np.int8)
    stage[order[:validation_start]] = 0
    stage[order[validation_start:train_end]] = 1
    stage[order[train_end:]] = 2
    return RatingSplit(
        users=user_vocabulary.lookup(interactions["user_id"].to_numpy()),
        items=vocabulary.lookup(interactions["item_id"].to_numpy()),
        ratings=ratings.astype(np.float32), stage=stage, order=order, vocabulary=vocabulary,
        user_vocabulary=user_vocabulary, click_threshold=float(click_threshold), fractions=fractions, seed=int(seed),
    )


__all__ = ["CLICK", "ITEM", "RATING", "STAGES", "USER", "RatingSplit", "rating_split"]
