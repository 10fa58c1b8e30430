"""Published preprocessing recipes that turn raw rating logs into benchmark forms."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tf_attnrec.data.splits import require_columns

_REQUIRED = ("user_id", "item_id")


def sasrec_form(interactions: pd.DataFrame, min_count: int = 5) -> pd.DataFrame:
    """Applies the SASRec preprocessing (Kang & McAuley, `data/DataProcessing.py`) to a log.

    The recipe, step by step as in the published script:

    1. Every row is an implicit interaction; ratings are not thresholded (the `rating`
       column, if any, is kept but plays no part).
    2. Users and items are counted ONCE, on the unfiltered log (repeated user-item pairs
       count once per row).
    3. One pass: a row is kept when its user has >= `min_count` and its item has
       >= `min_count` interactions in those counts. The filter is not iterated to a fixed
       point, so an item may end with fewer than `min_count` rows after users are dropped
       (unlike `tf_attnrec.data.splits.k_core_filter`, which iterates).
    4. Users are laid out in order of their first kept row (the script's dict order;
       ascending user id for GroupLens `ratings.dat`, which is sorted by user), and each
       user's rows are sorted by `timestamp` with a stable sort, so ties keep file order.
       Without a `timestamp` column the file order is taken as the time order.

    Unlike the script, the raw ids are kept (no remapping to dense 1..N ids), so item and
    user metadata from e.g. `movies.dat` / `users.dat` still join on `item_id` / `user_id`;
    `tf_attnrec.data.Vocabulary` does the dense encoding later.

    On GroupLens ML-1M `ratings.dat` (6,040 users, 3,706 items, 1,000,209 ratings) this is
    expected to give the counts of the SASRec repository's `ml-1m.txt`: 6,040 users, 3,416
    items, 999,611 interactions (ratings.dat itself is not checked in tests; the test suite
    verifies that the published form, read with original ids from
    `ml-1m_original_ids.txt`, is a fixed point of this function).

    Args:
        interactions: rows with `user_id`, `item_id` and optionally `timestamp` (plus any
            other columns, kept unchanged), in file order.
        min_count: the minimum number of interactions per user and per item (5 in SASRec).

    Returns:
        A new DataFrame (index reset) with the kept rows, grouped by user and in
        chronological order within each user.

    Raises:
        ValueError: a required column is missing or has missing values, or `min_count` < 1.

    Example:
        ```python
        ratings = read_movielens_ratings("ml-1m/ratings.dat")
        sasrec = sasrec_form(ratings)  # expected: 6,040 users, 3,416 items, 999,611 rows
        ```
    """
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
        raise ValueError(f"sasrec_form: min_count must be an integer >= 1, got {min_count!r}.")
    require_columns(interactions, _REQUIRED + (("timestamp",) if "timestamp" in interactions.columns else ()),
                    "sasrec_form")

    users, user_values = pd.factorize(interactions["user_id"])
    items, item_values = pd.factorize(interactions["item_id"])
    user_counts = np.bincount(users, minlength=len(user_values))
    item_counts = np.bincount(items, minlength=len(item_values))
    keep = (user_counts[users] >= min_count) & (item_counts[items] >= min_count)
    kept = interactions.loc[keep]

    first_seen, _ = pd.factorize(kept["user_id"])  # users in order of their first kept row
    keys = [np.arange(len(kept))]  # least significant: file order breaks timestamp ties
    if "timestamp" in kept.columns:
        keys.append(kept["timestamp"].to_numpy())
    keys.append(first_seen)
    return kept.iloc[np.lexsort(keys)].reset_index(drop=True)
