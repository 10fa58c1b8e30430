"""The `Dataset` record that readers and `load_dataset` return."""

from __future__ import annotations

import dataclasses
from typing import Optional

import pandas as pd


@dataclasses.dataclass
class Dataset:
    """Interactions plus optional item and user metadata, as read from files.

    Args:
        interactions: one row per interaction with columns `user_id`, `item_id` (raw ids),
            optionally `timestamp` (int64) and `rating`, plus any extra feature columns.
            Rows are in file order; `tf_attnrec.data.splits.sort_chronologically` orders them.
        items: item metadata keyed by `item_id` (`title`, `genres` as a tuple of str,
            `year` as nullable Int64, ...) or None.
        users: user metadata keyed by `user_id` (`gender`, `age`, `occupation`, ...) or None.
        name: the dataset's name, e.g. "ml-1m".
        source: where it was read from (a folder or file), for provenance.
        form: which form of a named dataset was read, e.g. "sasrec (ml-1m.txt)",
            "sasrec (5-core, chronological, from ratings.dat)" or "grouplens (all ratings)";
            "" for a user's own files.

    Example:
        ```python
        data = load_dataset("ml-1m")
        print(data.num_users, data.num_items, data.num_interactions)
        ```
    """

    interactions: pd.DataFrame
    items: Optional[pd.DataFrame] = None
    users: Optional[pd.DataFrame] = None
    name: str = ""
    source: str = ""
    form: str = ""

    @property
    def num_users(self) -> int:
        """Number of distinct users in `interactions`."""
        return int(self.interactions["user_id"].nunique())

    @property
    def num_items(self) -> int:
        """Number of distinct items in `interactions` (not in the metadata table)."""
        return int(self.interactions["item_id"].nunique())

    @property
    def num_interactions(self) -> int:
        """Number of interaction rows."""
        return int(len(self.interactions))

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, users={self.num_users:,}, items={self.num_items:,}, "
            f"interactions={self.num_interactions:,}, items_metadata={self.items is not None}, "
            f"users_metadata={self.users is not None}, source={self.source!r}, form={self.form!r})"
        )
