"""The cold-item split: leave-one-out where a seeded share of the items is never trained on.

Protocol: a seeded `fraction` of the items (10% by default) is cold. Every interaction with a
cold item is removed from the training and validation sequences; the test item (each user's
last interaction) is kept as it is, cold or warm. Evaluation ranks the whole catalogue, cold
items included, for every user, and reports users whose test item is cold apart from users
whose test item is warm (`ColdItemSplit.test_is_cold`). A model can only place a cold item
well through what it knows besides the item id (genres, text or image vectors, ...), since
the cold item's id never occurs as a training positive.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Optional

import numpy as np
import pandas as pd

from tf_attnrec.data.splits import SequenceSplit, ShortUsers, group_sequences, require_columns
from tf_attnrec.data.vocabulary import FIRST_ID, Vocabulary


@dataclasses.dataclass
class ColdItemSplit(SequenceSplit):
    """A leave-one-out split whose training and validation parts hold no cold item.

    Per user, with the chronological sequence s: the test item is s[-1] (cold or warm); the
    warm items before it, r, give the validation item r[-1] and the training sequence r[:-1].
    So `train`, `validation_target` and the histories of `validation_inputs()` and
    `test_inputs()` never hold a cold item.

    `full_sequences()` (inherited: train + validation + test item) is what negative sampling
    and the ranking examples treat as the user's interactions. It deliberately leaves out the
    removed cold interactions: the protocol treats them as never observed, so a cold item the
    user met before the test is, like any unobserved item, a candidate (and may be sampled as a
    negative); only the test item itself counts, as in leave-one-out. Whoever wants to treat
    them as seen can add `removed[u]`. Keeping full_sequences as train + [validation] + [test]
    also keeps the positional layout `build_ranking_data` relies on.

    Args:
        train, validation_target, test_target, users, vocabulary: as in `SequenceSplit`.
        cold_items: sorted int32 item ids (>= 2) of the cold items.
        fraction: the share of the catalogue drawn cold.
        seed: the seed of the draw (`draw_cold_items`).
        removed: per user, int32 ids of the cold interactions taken out of the training and
            validation part, most recent last (the test item is never among them).

    Example:
        ```python
        split = cold_item_split(load_dataset("ml-1m").interactions, fraction=0.1, seed=0)
        inputs = split.test_inputs()
        cold_users = split.test_is_cold[inputs.user_indices]  # report both groups apart
        ```
    """

    cold_items: np.ndarray
    fraction: float
    seed: int
    removed: list

    @property
    def test_is_cold(self) -> np.ndarray:
        """bool [U]: the user's test item is cold (False for users without a test item)."""
        return self.is_cold(self.test_target)

    def is_cold(self, items: Any) -> np.ndarray:
        """bool mask, shaped like `items` (model item ids), of the cold ones; 0/1 are never cold."""
        return np.isin(np.asarray(items), self.cold_items)

    def __repr__(self) -> str:  # the dataclass default would print every sequence
        counts = self.num_interactions()
        return (
            f"ColdItemSplit(users={self.num_users:,}, items={self.vocabulary.num_items:,}, "
            f"cold_items={len(self.cold_items):,}, fraction={self.fraction}, seed={self.seed}, "
            f"cold_test_users={counts['cold_test_users']:,}, warm_test_users={counts['warm_test_users']:,})"
        )

    def num_interactions(self) -> dict:
        """Counts for a card: interactions per part, removed cold ones, and test users per group."""
        has_test = self.test_target > 0
        cold_test = self.test_is_cold
        return {
            "train": int(sum(len(s) for s in self.train)),
            "validation": int((self.validation_target > 0).sum()),
            "test": int(has_test.sum()),
            "removed_cold": int(sum(len(r) for r in self.removed)),
            "cold_test_users": int((has_test & cold_test).sum()),
            "warm_test_users": int((has_test & ~cold_test).sum()),
        }


def draw_cold_items(vocabulary: Vocabulary, fraction: float = 0.1, seed: int = 0) -> np.ndarray:
    """Draws `round(fraction * num_items)` cold items, without replacement, reproducibly.

    The draw is `np.random.default_rng(seed).choice(num_items, count, replace=False)` over the
    positions of the vocabulary (ids in sorted raw-id order), so it depends only on the sorted
    item set, `fraction` and `seed`: not on row order, other columns or the machine (PCG64's
    stream is platform independent). NumPy does not promise the same `choice` stream across
    its own releases; the ML-1M test pins the draw so such a change shows, and runs should
    record `cold_items` (or the seed with the NumPy version).

    Args:
        vocabulary: the item vocabulary (the catalogue).
        fraction: share of items to make cold, in (0, 1); `round` is Python's (half to even).
        seed: a non-negative integer seed.

    Returns:
        Sorted int32 item ids (>= 2).

    Raises:
        ValueError: `fraction` outside (0, 1), or one that gives no cold or no warm item.

    Example:
        ```python
        draw_cold_items(Vocabulary.from_ids(range(1, 3417)), 0.1, seed=0).shape  # (342,)
        ```
    """
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be a number in (0, 1); got {fraction!r}.")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}.")
    num_items = vocabulary.num_items
    count = round(float(fraction) * num_items)
    if not 1 <= count < num_items:
        raise ValueError(
            f"fraction={fraction!r} of {num_items} item(s) gives {count} cold item(s) (rounded); "
            "expected at least 1 cold and 1 warm item. Pick a fraction that leaves both, or use "
            "more items."
        )
    positions = np.random.default_rng(int(seed)).choice(num_items, size=count, replace=False)
    return np.sort(positions + FIRST_ID).astype(np.int32)


def cold_item_split(
    df: pd.DataFrame,
    fraction: float = 0.1,
    seed: int = 0,
    vocabulary: Optional[Vocabulary] = None,
    short_users: ShortUsers = "train_only",
) -> ColdItemSplit:
    """Leave-one-out with a seeded share of cold items removed from training and validation.

    A user with fewer than 2 warm items before the test item cannot have a warm validation
    item and a training item; `short_users` decides as in `leave_one_out_split`:
    "train_only" (default) keeps all their warm items (the last one included) for training and
    gives them no targets; "drop" removes them; "error" raises. On ML-1M with fraction 0.1
    there are none.

    Args:
        df: interactions with `user_id`, `item_id` and optionally `timestamp` (the same
            ordering as `leave_one_out_split`).
        fraction: share of the catalogue made cold, in (0, 1).
        seed: seed of the cold draw (see `draw_cold_items` for what it depends on).
        vocabulary: item vocabulary; None builds one from every item in `df`, cold ones
            included, since the test ranks the whole catalogue.
        short_users: "train_only", "drop" or "error" (see above).

    Returns:
        `ColdItemSplit` with users in sorted raw-id order; its test targets are those of
        `leave_one_out_split` for every user with at least 2 warm items before the test item.

    Raises:
        ValueError: missing columns, a bad `fraction`/`seed`/`short_users`, or short users
            with short_users="error".

    Example:
        ```python
        split = cold_item_split(read_sasrec_txt("ml-1m.txt"), fraction=0.1, seed=0)
        len(split.cold_items), split.num_interactions()["cold_test_users"]  # (342, 648)
        ```
    """
    if short_users not in ("train_only", "drop", "error"):
        raise ValueError(f"short_users must be 'train_only', 'drop' or 'error', got {short_users!r}.")
    require_columns(df, ("user_id", "item_id"), "cold_item_split")
    if vocabulary is None:
        vocabulary = Vocabulary.from_ids(df["item_id"])
    cold_items = draw_cold_items(vocabulary, fraction, seed)
    cold_mask = np.zeros(vocabulary.size, dtype=bool)  # a table: one gather per user below
    cold_mask[cold_items] = True

    users, sequences = group_sequences(df, vocabulary)
    num_users = len(users)
    train: list = []
    removed: list = []
    validation_target = np.zeros(num_users, dtype=np.int32)
    test_target = np.zeros(num_users, dtype=np.int32)
    short = np.zeros(num_users, dtype=bool)
    for row, sequence in enumerate(sequences):
        before = sequence[:-1]
        cold_before = cold_mask[before]
        warm = before[~cold_before]
        if len(warm) < 2:
            short[row] = True
            whole_cold = cold_mask[sequence]
            train.append(sequence[~whole_cold])  # no test item: it trains if warm
            removed.append(sequence[whole_cold])
            continue
        train.append(warm[:-1])
        validation_target[row] = warm[-1]
        test_target[row] = sequence[-1]
        removed.append(before[cold_before])

    if short.any():
        if short_users == "error":
            raise ValueError(
                f"{int(short.sum())} user(s) have fewer than 2 warm items before their test item "
                f"once the {len(cold_items)} cold items are removed (e.g. {users[short][:5].tolist()}), "
                "so they cannot have train and validation items. Pass short_users='train_only' or "
                "'drop', or filter them first (k_core_filter)."
            )
        if short_users == "drop":
            keep = np.flatnonzero(~short)
            users, validation_target, test_target = users[keep], validation_target[keep], test_target[keep]
            train = [train[i] for i in keep]
            removed = [removed[i] for i in keep]
    return ColdItemSplit(
        train=[np.asarray(s, dtype=np.int32) for s in train],
        validation_target=validation_target,
        test_target=test_target,
        users=users,
        vocabulary=vocabulary,
        cold_items=cold_items,
        fraction=float(fraction),
        seed=int(seed),
        removed=[np.asarray(r, dtype=np.int32) for r in removed],
    )


__all__ = ["ColdItemSplit", "cold_item_split", "draw_cold_items"]
