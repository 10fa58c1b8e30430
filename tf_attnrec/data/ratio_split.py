"""The collaborative-filtering split: each user's interactions cut at random 80/10/10.

This is RecBole's random-ordering ratio split (`eval_args: {split: {RS: [0.8, 0.1, 0.1]},
order: RO, group_by: user}`), the protocol of the LightGCN / NGCF literature. Per user, the
interactions are shuffled with a seeded generator and cut with RecBole's rounding rule
(`_calc_split_ids`): `floor(ratio * n)` interactions each for validation and test, plus one
more for a part whose share `ratio * n` lies in (0, 1) while more than one training
interaction is left, so that a user with few interactions still gets held-out items when that
leaves training at least one.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from tf_attnrec.data.splits import require_columns
from tf_attnrec.data.vocabulary import Vocabulary

STAGES = ("validation", "test")


def split_counts(lengths: np.ndarray, ratios: Sequence[float]) -> np.ndarray:
    """int64 [U, 3]: per user, how many interactions go to train, validation and test.

    RecBole's `_calc_split_ids`, vectorised: parts 1 and 2 get `floor(ratio * n)`; part 0 the
    rest. Then, test first, a part whose `ratio * n` lies in (0, 1) takes one interaction
    from training while training keeps more than one.

    Example:
        >>> split_counts(np.array([10, 5, 2]), (0.8, 0.1, 0.1)).tolist()
        [[8, 1, 1], [3, 1, 1], [1, 0, 1]]
    """
    n = np.asarray(lengths, np.int64)
    ratios = np.asarray(ratios, np.float64)
    counts = np.stack([np.zeros_like(n)] + [np.floor(r * n).astype(np.int64) for r in ratios[1:]], axis=1)
    counts[:, 0] = n - counts[:, 1:].sum(axis=1)
    for part in range(len(ratios) - 1, 0, -1):  # test, then validation
        share = ratios[part] * n
        bump = (counts[:, 0] > 1) & (share > 0) & (share < 1)
        counts[bump, part] += 1
        counts[bump, 0] -= 1
    return counts


@dataclasses.dataclass
class RatioSplit:
    """Per user, random train / validation / test item sets (the CF protocol).

    Args:
        train: per user, int32 model item ids for training (interaction order kept).
        validation: per user, int32 model item ids held out for validation.
        test: per user, int32 model item ids held out for test.
        users: raw user ids [U] (sorted), aligned with the lists; user row u is graph node u.
        vocabulary: the item `Vocabulary` (model id = raw item's index + 2).
        ratios: the (train, validation, test) shares.
        seed: the seed of the per-user shuffles (stored in a run, so the split is rebuilt).

    Example:
        ```python
        split = ratio_split(read_sasrec_txt("ml-1m.txt"), seed=2020)
        seen, targets = split.seen("test"), split.targets("test")
        ```
    """

    train: list
    validation: list
    test: list
    users: np.ndarray
    vocabulary: Vocabulary
    ratios: tuple
    seed: int

    @property
    def num_users(self) -> int:
        return len(self.users)

    @property
    def user_vocabulary(self) -> Vocabulary:
        """Raw user id -> model id; user row r is model id r + 2 (what runs and exports store)."""
        return Vocabulary(self.users)

    def targets(self, stage: str) -> list:
        """Per user, the held-out items of `stage` ("validation" or "test")."""
        return self.validation if _check_stage(stage) == "validation" else self.test

    def seen(self, stage: str) -> list:
        """Per user, the items excluded from the ranking at `stage`.

        Validation excludes the training items; test the training and validation items
        (RecBole's full-sort evaluation does the same), so a held-out item of an earlier part
        is never counted as a recommendation.
        """
        if _check_stage(stage) == "validation":
            return self.train
        return [np.concatenate([t, v]).astype(np.int32) for t, v in zip(self.train, self.validation)]

    def evaluable_users(self, stage: str) -> np.ndarray:
        """int32 rows of the users that have at least one `stage` item."""
        return np.flatnonzero([len(t) > 0 for t in self.targets(stage)]).astype(np.int32)

    def num_interactions(self) -> dict:
        """Interactions per part, e.g. for a card."""
        return {name: int(sum(len(x) for x in part)) for name, part in
                (("train", self.train), ("validation", self.validation), ("test", self.test))}


def _check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}; got {stage!r}.")
    return stage


def ratio_split(
    df: pd.DataFrame,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 2020,
    vocabulary: Optional[Vocabulary] = None,
) -> RatioSplit:
    """Splits each user's interactions at random into train / validation / test.

    Args:
        df: interactions with `user_id` and `item_id` (one row per interaction).
        ratios: three non-negative shares summing to 1 (train first).
        seed: seed of the shuffles; the same seed and data give the same split.
        vocabulary: item vocabulary; None builds one from every item in `df` (the catalogue
            ranked at evaluation).

    Returns:
        `RatioSplit` with users in sorted raw-id order.

    Raises:
        ValueError: missing columns, or ratios that are not three shares summing to 1.

    Example:
        ```python
        split = ratio_split(read_sasrec_txt("ml-1m.txt"))
        split.num_interactions()  # {'train': 804_987, 'validation': 97_312, 'test': 97_312} on ML-1M
        ```
    """
    require_columns(df, ("user_id", "item_id"), "ratio_split")
    ratios = tuple(float(r) for r in ratios)
    if len(ratios) != 3 or min(ratios) < 0 or abs(sum(ratios) - 1.0) > 1e-6 or ratios[0] <= 0:
        raise ValueError(f"ratios must be three shares (train > 0, validation, test) summing to 1; got {ratios}.")
    if vocabulary is None:
        vocabulary = Vocabulary.from_ids(df["item_id"])
    user_codes, users = pd.factorize(df["user_id"], sort=True)
    items = np.asarray(vocabulary.lookup(df["item_id"].to_numpy())).astype(np.int32)
    rng = np.random.default_rng(seed)
    # Order rows by (user, random key): a seeded shuffle within each user, in one sort.
    order = np.lexsort([rng.random(len(df)), user_codes])
    lengths = np.bincount(user_codes, minlength=len(users))
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    rank = np.arange(len(df)) - np.repeat(starts, lengths)  # position in the user's shuffled order
    counts = split_counts(lengths, ratios)
    bounds = np.cumsum(counts, axis=1)
    part = (rank >= np.repeat(bounds[:, 0], lengths)).astype(np.int8) + (rank >= np.repeat(bounds[:, 1], lengths))
    rows = order
    parts = []
    for value in range(3):
        chosen = rows[part == value]
        chosen = chosen[np.lexsort([chosen, user_codes[chosen]])]  # by user, file order within each
        per_user = np.split(items[chosen], np.cumsum(np.bincount(user_codes[chosen], minlength=len(users)))[:-1])
        parts.append([p.astype(np.int32) for p in per_user])
    return RatioSplit(parts[0], parts[1], parts[2], np.asarray(users), vocabulary, ratios, int(seed))


__all__ = ["RatioSplit", "ratio_split", "split_counts"]
