"""`sasrec_form`: the published SASRec recipe (one 5-core pass on raw counts, stable time sort)."""

from __future__ import annotations

import pandas as pd
import pytest

from tf_attnrec.data.preprocessing import sasrec_form
from tf_attnrec.data.readers import read_movielens_ratings, read_sasrec_txt
from tf_attnrec.data.splits import k_core_filter


def _write_ratings(tmp_path, rows) -> pd.DataFrame:
    """Writes (user, item, rating, timestamp) rows in the exact ratings.dat format and reads them back."""
    path = tmp_path / "ratings.dat"
    path.write_bytes("".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in rows).encode("ISO-8859-1"))
    return read_movielens_ratings(path)


@pytest.fixture
def ratings(tmp_path):
    rows = []
    # Users 1-5 rate items 101-105: every one of them has 5 interactions.
    for user in range(1, 6):
        for k, item in enumerate(range(101, 106)):
            rows.append((user, item, 4, 1000 * user + 10 * (5 - k)))  # newest first in the file
    # Item 200: rated by users 1-4 and by user 9, whose only rating it is. 5 raw ratings, so one
    # pass keeps it; after user 9 goes it has 4, which an iterated filter would not keep.
    rows += [(user, 200, 5, 1000 * user + 1) for user in range(1, 5)]
    rows.append((9, 200, 5, 9001))
    # Item 300: only 4 ratings -> removed.
    rows += [(user, 300, 2, 1000 * user + 2) for user in range(1, 5)]
    # User 1: two ratings with the same timestamp, 104 before 103 in the file -> kept in that order.
    rows = [(u, i, r, 1005 if (u, i) in ((1, 103), (1, 104)) else t) for u, i, r, t in rows]
    a, b = rows.index((1, 103, 4, 1005)), rows.index((1, 104, 4, 1005))
    rows[a], rows[b] = rows[b], rows[a]
    # User 8 appears first in the file... with 3 ratings only -> removed.
    rows = [(8, 101, 1, 1), (8, 102, 1, 2), (8, 103, 1, 3)] + rows
    return _write_ratings(tmp_path, rows)


def test_users_and_items_below_five_are_removed(ratings):
    out = sasrec_form(ratings)
    assert set(out["user_id"]) == {1, 2, 3, 4, 5}  # users 8 (3) and 9 (1) gone
    assert set(out["item_id"]) == {101, 102, 103, 104, 105, 200}  # item 300 (4) gone
    assert list(out.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert out.index.equals(pd.RangeIndex(len(out)))


def test_one_pass_on_raw_counts_not_a_fixed_point(ratings):
    out = sasrec_form(ratings)
    assert (out["item_id"] == 200).sum() == 4  # kept although it now has fewer than 5
    assert len(out) == 5 * 5 + 4
    iterated = k_core_filter(ratings, k=5)  # the iterated filter drops it
    assert 200 not in set(iterated["item_id"]) and len(iterated) == 25


def test_stable_chronological_order_per_user(ratings):
    out = sasrec_form(ratings)
    assert out["user_id"].tolist() == sorted(out["user_id"])  # grouped, in order of first appearance
    assert (out.groupby("user_id")["timestamp"].diff().dropna() >= 0).all()
    user1 = out[out["user_id"] == 1]
    assert user1["item_id"].tolist() == [200, 104, 103, 105, 102, 101]  # the 104/103 tie keeps file order
    assert user1["timestamp"].tolist() == [1001, 1005, 1005, 1010, 1040, 1050]


def test_users_keep_their_order_of_first_appearance_and_no_timestamp_means_file_order():
    frame = pd.DataFrame({"user_id": [7] * 5 + [3] * 5, "item_id": list(range(5)) * 2})
    out = sasrec_form(frame, min_count=2)
    assert out["user_id"].tolist() == [7] * 5 + [3] * 5
    assert out["item_id"].tolist() == list(range(5)) * 2


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"sasrec_form needs column\(s\) \['item_id'\]"):
        sasrec_form(pd.DataFrame({"user_id": [1]}))
    with pytest.raises(ValueError, match="min_count must be an integer >= 1, got 0"):
        sasrec_form(pd.DataFrame({"user_id": [1], "item_id": [1]}), min_count=0)
    with pytest.raises(ValueError, match="column 'timestamp' has missing values"):
        sasrec_form(pd.DataFrame({"user_id": [1], "item_id": [1], "timestamp": [None]}))


@pytest.mark.slow
def test_the_published_ml1m_form_is_a_fixed_point(shared_data_dir):
    """ml-1m.txt with original ids is already 5-core and chronological: sasrec_form leaves it as is.

    (GroupLens ratings.dat is not available here, so its expected 6,040 / 3,416 / 999,611 counts
    after sasrec_form are not checked.)
    """
    published = read_sasrec_txt(shared_data_dir / "ml-1m" / "ml-1m_original_ids.txt")
    out = sasrec_form(published)
    assert (out["user_id"].nunique(), out["item_id"].nunique(), len(out)) == (6040, 3416, 999_611)
    pd.testing.assert_frame_equal(out, published)
