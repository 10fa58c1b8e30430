"""Chronological ordering, k-core filtering, leave-one-out and temporal splits.

All functions take an interactions DataFrame with `user_id`, `item_id` and (optionally)
`timestamp` columns and are vectorised with numpy/pandas.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, NamedTuple, Optional, Union

import numpy as np
import pandas as pd

from tf_attnrec.data.dataset import Dataset
from tf_attnrec.data.vocabulary import Vocabulary

ShortUsers = Literal["train_only", "drop", "error"]


def require_columns(
    df: pd.DataFrame,
    columns: tuple[str, ...],
    what: str,
    hint: str = "Rename your columns (see tf_attnrec.data.readers.read_interactions).",
    allow_missing_values: bool = False,
) -> None:
    """ValueError naming `what` needs, when `df` lacks a column (or has missing values in one).

    Args:
        df: The table.
        columns: Columns `what` reads.
        what: Who needs them, for the message (e.g. "leave_one_out_split").
        hint: What the user can do about it.
        allow_missing_values: Accept NaN / None in the columns.
    """
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} needs column(s) {missing}; the DataFrame has {list(df.columns)}. {hint}")
    for column in () if allow_missing_values else columns:
        if df[column].isna().any():
            raise ValueError(f"{what}: column {column!r} has missing values; fill or drop them first.")


def sort_chronologically(df: pd.DataFrame) -> pd.DataFrame:
    """Groups rows by user (sorted user ids) and orders each user's rows by time.

    The sort is stable: rows with equal timestamps keep their original order. Without a
    `timestamp` column the original row order is taken as the time order.

    Args:
        df: interactions with `user_id`, `item_id` and optionally `timestamp`.

    Returns:
        A new DataFrame (index reset) with the same rows.

    Example:
        ```python
        ordered = sort_chronologically(read_movielens_ratings("ratings.dat"))
        ```
    """
    require_columns(df, ("user_id", "item_id"), "sort_chronologically")
    user_codes, _ = pd.factorize(df["user_id"], sort=True)
    keys = [np.arange(len(df))]
    if "timestamp" in df.columns:
        require_columns(df, ("timestamp",), "sort_chronologically")
        keys.append(df["timestamp"].to_numpy())
    keys.append(user_codes)
    order = np.lexsort(keys)  # last key is the primary one
    return df.iloc[order].reset_index(drop=True)


def k_core_filter(
    df: pd.DataFrame, k: int = 5, *, user_k: Optional[int] = None, item_k: Optional[int] = None
) -> pd.DataFrame:
    """Keeps the largest subset in which every user and every item has at least k interactions.

    Filtering repeats until nothing changes (dropping an item can push a user below k).
    Repeated user-item pairs count once each, as in the SASRec preprocessing.

    Args:
        df: interactions with `user_id` and `item_id`.
        k: the minimum count for both users and items.
        user_k: overrides `k` for users.
        item_k: overrides `k` for items.

    Returns:
        The kept rows in their original order (index reset).

    Example:
        ```python
        five_core = k_core_filter(ratings, k=5)
        ```
    """
    require_columns(df, ("user_id", "item_id"), "k_core_filter")
    user_k = k if user_k is None else user_k
    item_k = k if item_k is None else item_k
    if user_k < 1 or item_k < 1:
        raise ValueError(f"k, user_k and item_k must be >= 1; got user_k={user_k}, item_k={item_k}.")
    users, user_values = pd.factorize(df["user_id"])
    items, item_values = pd.factorize(df["item_id"])
    keep = np.ones(len(df), dtype=bool)
    while True:
        user_counts = np.bincount(users[keep], minlength=len(user_values))
        item_counts = np.bincount(items[keep], minlength=len(item_values))
        still = keep & (user_counts[users] >= user_k) & (item_counts[items] >= item_k)
        if still.sum() == keep.sum():
            break
        keep = still
    return df.loc[keep].reset_index(drop=True)


def group_sequences(
    df: pd.DataFrame, vocabulary: Vocabulary
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Encodes items and groups them into one chronological sequence per user.

    Args:
        df: interactions with `user_id`, `item_id` and optionally `timestamp`.
        vocabulary: maps raw item ids to ids (unknown items become 1, OOV).

    Returns:
        (users, sequences): raw user ids in sorted order and, per user, an int32 array of
        item ids, most recent last.
    """
    ordered = sort_chronologically(df)
    codes = vocabulary.lookup(ordered["item_id"].to_numpy())
    user_codes, users = pd.factorize(ordered["user_id"], sort=True)
    boundaries = np.flatnonzero(np.diff(user_codes)) + 1
    return np.asarray(users), np.split(codes, boundaries)


class EvaluationInputs(NamedTuple):
    """Histories and the item to predict after each, for one evaluation stage.

    Attributes:
        histories: per evaluated user, the int32 item ids seen before the target (most recent
            last).
        targets: int32 [N], the held-out item of each history.
        user_indices: int32 [N], the row of each user in `SequenceSplit.users`, to join user
            features.
    """

    histories: list
    targets: np.ndarray
    user_indices: np.ndarray


@dataclasses.dataclass
class SequenceSplit:
    """A leave-one-out split: per user, train sequence, validation item and test item.

    Args:
        train: per user, int32 item ids used for training (all but the last two).
        validation_target: int32 [U], the second-to-last item; 0 for users without one.
        test_target: int32 [U], the last item; 0 for users without one.
        users: raw user ids [U], aligned with the lists above.
        vocabulary: the item `Vocabulary` used to encode the ids.

    Example:
        ```python
        split = leave_one_out_split(data.interactions)
        histories, targets, users = split.test_inputs()
        ```
    """

    train: list
    validation_target: np.ndarray
    test_target: np.ndarray
    users: np.ndarray
    vocabulary: Vocabulary
    #: The catalogue's `ItemContent` (titles, genres, years), row-aligned with `vocabulary`, for
    #: models that read item content; None when the data has no item metadata.
    item_content: Optional[Any] = dataclasses.field(default=None, kw_only=True, repr=False, compare=False)

    @property
    def num_users(self) -> int:
        """Number of users (rows)."""
        return len(self.users)

    @property
    def evaluable(self) -> np.ndarray:
        """bool [U]: users that have both a validation and a test item."""
        return (self.validation_target > 0) & (self.test_target > 0)

    def validation_inputs(self) -> EvaluationInputs:
        """Validation: history = the train sequence; target = the second-to-last item.

        Neither the validation item nor the test item is in the history.
        """
        rows = np.flatnonzero(self.evaluable)
        return EvaluationInputs(
            [self.train[i] for i in rows], self.validation_target[rows], rows.astype(np.int32)
        )

    def test_inputs(self) -> EvaluationInputs:
        """Test: history = train sequence + validation item; target = the last item."""
        rows = np.flatnonzero(self.evaluable)
        histories = [
            np.append(self.train[i], self.validation_target[i]).astype(np.int32) for i in rows
        ]
        return EvaluationInputs(histories, self.test_target[rows], rows.astype(np.int32))

    def full_sequences(self) -> list:
        """Per user, every item (train + validation + test), e.g. to exclude from negatives."""
        return [
            np.concatenate([seq, [v] if v else [], [t] if t else []]).astype(np.int32)
            for seq, v, t in zip(self.train, self.validation_target, self.test_target)
        ]


def leave_one_out_split(
    df: pd.DataFrame,
    vocabulary: Optional[Vocabulary] = None,
    short_users: ShortUsers = "train_only",
) -> SequenceSplit:
    """Splits each user's chronological sequence: last = test, second-to-last = validation.

    Users with fewer than 3 interactions cannot have all three parts. `short_users` decides:
    "train_only" (default, as in the SASRec code) keeps all their items for training and
    gives them no validation/test target (0; they are left out of `validation_inputs()` and
    `test_inputs()`); "drop" removes those users; "error" raises. MovieLens-1M (SASRec form)
    has none: its shortest user has 18 interactions.

    Args:
        df: interactions with `user_id`, `item_id` and optionally `timestamp` (ties and
            missing timestamps fall back to row order).
        vocabulary: item vocabulary; None builds one from every item in `df` (leave-one-out
            evaluates items that all users' training data can contain).
        short_users: "train_only", "drop" or "error" (see above).

    Returns:
        `SequenceSplit` with users in sorted raw-id order.

    Example:
        ```python
        split = leave_one_out_split(read_sasrec_txt("ml-1m.txt"))
        len(split.users), split.vocabulary.num_items  # (6040, 3416)
        ```
    """
    if short_users not in ("train_only", "drop", "error"):
        raise ValueError(f"short_users must be 'train_only', 'drop' or 'error', got {short_users!r}.")
    require_columns(df, ("user_id", "item_id"), "leave_one_out_split")
    if vocabulary is None:
        vocabulary = Vocabulary.from_ids(df["item_id"])
    users, sequences = group_sequences(df, vocabulary)
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    short = lengths < 3
    if short.any():
        if short_users == "error":
            raise ValueError(
                f"{int(short.sum())} user(s) have fewer than 3 interactions (e.g. "
                f"{users[short][:5].tolist()}), so they cannot have train, validation and test "
                "items. Pass short_users='train_only' or 'drop', or filter them (k_core_filter)."
            )
        if short_users == "drop":
            users = users[~short]
            sequences = [s for s, is_short in zip(sequences, short) if not is_short]
            lengths = lengths[~short]
            short = short[~short]
    validation_target = np.zeros(len(sequences), dtype=np.int32)
    test_target = np.zeros(len(sequences), dtype=np.int32)
    train = []
    for row, (sequence, is_short) in enumerate(zip(sequences, short)):
        if is_short:
            train.append(sequence)
        else:
            train.append(sequence[:-2])
            validation_target[row] = sequence[-2]
            test_target[row] = sequence[-1]
    return SequenceSplit(train, validation_target, test_target, users, vocabulary)


@dataclasses.dataclass
class TemporalSplit:
    """A global temporal split: every interaction before the cutoff trains, the rest tests.

    Args:
        train: rows with `timestamp < validation_cutoff` (or `< cutoff` without validation).
        validation: rows with `validation_cutoff <= timestamp < cutoff` (empty if unused).
        test: rows with `timestamp >= cutoff`.
        cutoff: the test cutoff timestamp.
        validation_cutoff: the validation cutoff timestamp, or None.
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    cutoff: int
    validation_cutoff: Optional[int] = None


def temporal_split(
    df: pd.DataFrame,
    cutoff: Union[int, float],
    validation_cutoff: Optional[Union[int, float]] = None,
) -> TemporalSplit:
    """Splits all interactions at one point in time (no user's future leaks into training).

    Args:
        df: interactions with `user_id`, `item_id`, `timestamp`.
        cutoff: test start. An int is a timestamp; a float in (0, 1) is the quantile of all
            timestamps (0.9 puts about the last 10% of interactions in test).
        validation_cutoff: optional validation start (same forms), earlier than `cutoff`.

    Returns:
        `TemporalSplit`; each part is chronologically sorted. Items first seen after the
        cutoff are not in a vocabulary built from `train` and map to OOV (1).

    Example:
        ```python
        parts = temporal_split(ratings, cutoff=0.9, validation_cutoff=0.8)
        ```
    """
    require_columns(df, ("user_id", "item_id", "timestamp"), "temporal_split")
    ordered = sort_chronologically(df)
    times = ordered["timestamp"].to_numpy()

    def resolve(value: Union[int, float], name: str) -> int:
        if isinstance(value, float):
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} as a float is a quantile and must lie in (0, 1); got {value}.")
            return int(np.quantile(times, value, method="higher"))
        if isinstance(value, (int, np.integer)):
            return int(value)
        raise TypeError(f"{name} must be an int timestamp or a float quantile; got {value!r}.")

    test_start = resolve(cutoff, "cutoff")
    validation_start = None if validation_cutoff is None else resolve(validation_cutoff, "validation_cutoff")
    if validation_start is not None and validation_start > test_start:
        raise ValueError(
            f"validation_cutoff ({validation_start}) must not be after cutoff ({test_start})."
        )
    train_end = test_start if validation_start is None else validation_start
    train = ordered[times < train_end].reset_index(drop=True)
    validation = ordered[(times >= train_end) & (times < test_start)].reset_index(drop=True)
    test = ordered[times >= test_start].reset_index(drop=True)
    if train.empty or test.empty:
        raise ValueError(
            f"cutoff {test_start} leaves train with {len(train)} and test with {len(test)} rows; "
            f"timestamps range from {times.min()} to {times.max()}."
        )
    return TemporalSplit(train, validation, test, test_start, validation_start)


def split_for(data: Dataset, item_vocabulary: Vocabulary) -> SequenceSplit:
    """The leave-one-out split of `data` with the run's item ids (checked to be the same data).

    Raises:
        ValueError: `data` does not hold the items the run was trained on.
    """
    if Vocabulary.from_ids(data.interactions["item_id"]) != item_vocabulary:
        raise ValueError(
            f"the {data.name or 'dataset'} data read from {data.source or 'memory'} does not have the "
            "items the run was trained on; pass the --data-dir or --data used for training."
        )
    return leave_one_out_split(data.interactions, vocabulary=item_vocabulary)
