"""Cold-item split: exact parts on a hand-made log, no cold item in training, seeded draw."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tf_attnrec.data.cold_items import ColdItemSplit, cold_item_split, draw_cold_items
from tf_attnrec.data.splits import leave_one_out_split
from tf_attnrec.data.vocabulary import Vocabulary

# Raw items 10..19 are ids 2..11. fraction 0.2, seed 2 draws ids 4 and 9 (raw 12 and 17):
# pinned below, so a change in the draw shows here first.
COLD = [4, 9]
SEQUENCES = {  # raw items per user, in time order
    "a": [10, 12, 11, 13, 17],  # test 17 is cold; 12 is removed
    "b": [14, 17, 15, 12, 16],  # test 16 is warm; 17 and 12 are removed
    "c": [12, 10, 17, 11],  # only 1 warm item (10) before the test: short
    "d": [18, 19, 10],  # no cold item at all: plain leave-one-out
    "e": [12, 13],  # short in leave-one-out too
}


def _log(sequences: dict = SEQUENCES, shuffle_seed: int = 7) -> pd.DataFrame:
    """The sequences as rows with timestamps, shuffled so the split has to sort them."""
    rows = [(user, item, t) for user, items in sequences.items() for t, item in enumerate(items)]
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return df.sample(frac=1.0, random_state=shuffle_seed).reset_index(drop=True)


def _ids(raw: list) -> list:
    return [r - 8 for r in raw]  # raw 10 -> id 2


def test_hand_made_split_is_exact():
    split = cold_item_split(_log(), fraction=0.2, seed=2)
    assert isinstance(split, ColdItemSplit)
    assert split.cold_items.tolist() == COLD and split.cold_items.dtype == np.int32
    assert split.users.tolist() == ["a", "b", "c", "d", "e"]
    assert [t.tolist() for t in split.train] == [
        _ids([10, 11]), _ids([14]), _ids([10, 11]), _ids([18]), _ids([13])
    ]
    assert split.validation_target.tolist() == _ids([13, 15]) + [0] + _ids([19]) + [0]
    assert split.test_target.tolist() == _ids([17, 16]) + [0] + _ids([10]) + [0]
    assert [r.tolist() for r in split.removed] == [_ids([12]), _ids([17, 12]), _ids([12, 17]), [], _ids([12])]
    assert split.test_is_cold.tolist() == [True, False, False, False, False]
    assert split.num_interactions() == {
        "train": 7, "validation": 3, "test": 3, "removed_cold": 6,
        "cold_test_users": 1, "warm_test_users": 2,
    }
    # Every row lands in exactly one place: 7 + 3 + 3 + 6 = 19.
    assert sum(split.num_interactions()[k] for k in ("train", "validation", "test", "removed_cold")) == 19
    assert "cold_items=2" in repr(split) and "array" not in repr(split)


def test_inherited_inputs_hold_no_cold_item():
    split = cold_item_split(_log(), fraction=0.2, seed=2)
    assert split.evaluable.tolist() == [True, True, False, True, False]
    validation, test = split.validation_inputs(), split.test_inputs()
    assert [h.tolist() for h in validation.histories] == [_ids([10, 11]), _ids([14]), _ids([18])]
    assert [h.tolist() for h in test.histories] == [_ids([10, 11, 13]), _ids([14, 15]), _ids([18, 19])]
    assert test.targets.tolist() == _ids([17, 16, 10]) and test.user_indices.tolist() == [0, 1, 3]
    for history in validation.histories + test.histories:
        assert not split.is_cold(history).any()
    assert not split.is_cold(split.validation_target).any()
    for sequence in split.train:
        assert not split.is_cold(sequence).any()
    # full_sequences = train + validation + test: removed cold interactions are not "seen",
    # only the test item is, and the positional layout of leave-one-out is kept.
    assert [s.tolist() for s in split.full_sequences()] == [
        _ids([10, 11, 13, 17]), _ids([14, 15, 16]), _ids([10, 11]), _ids([18, 19, 10]), _ids([13])
    ]


def test_test_targets_match_leave_one_out():
    df = _log()
    split = cold_item_split(df, fraction=0.2, seed=2)
    plain = leave_one_out_split(df)
    assert split.vocabulary == plain.vocabulary  # built from all items, cold ones included
    assert split.vocabulary.num_items == 10
    has_target = split.test_target > 0
    np.testing.assert_array_equal(split.test_target[has_target], plain.test_target[has_target])
    # User c is short only because of the cold items: leave-one-out tests it on raw 11.
    assert plain.test_target[2] == 3 and split.test_target[2] == 0


def test_is_cold_mask_shapes_and_specials():
    split = cold_item_split(_log(), fraction=0.2, seed=2)
    assert split.is_cold([[0, 1, 4], [9, 5, 11]]).tolist() == [[False, False, True], [True, False, False]]
    assert split.is_cold(np.array([], dtype=np.int32)).shape == (0,)


def test_short_users_options():
    df = _log()
    dropped = cold_item_split(df, fraction=0.2, seed=2, short_users="drop")
    assert dropped.users.tolist() == ["a", "b", "d"]
    assert dropped.evaluable.all() and len(dropped.train) == len(dropped.removed) == 3
    assert dropped.test_is_cold.tolist() == [True, False, False]
    with pytest.raises(ValueError, match=r"2 user\(s\) have fewer than 2 warm items.*short_users='train_only'"):
        cold_item_split(df, fraction=0.2, seed=2, short_users="error")
    with pytest.raises(ValueError, match="short_users must be"):
        cold_item_split(df, fraction=0.2, seed=2, short_users="keep")
    with pytest.raises(ValueError, match=r"needs column\(s\) \['item_id'\]"):
        cold_item_split(df.drop(columns="item_id"))


def test_draw_is_seeded_and_ignores_row_order():
    vocabulary = Vocabulary.from_ids(range(1000))
    first = draw_cold_items(vocabulary, 0.1, seed=3)
    assert len(first) == 100 and len(np.unique(first)) == 100
    assert first.min() >= 2 and first.max() < vocabulary.size
    np.testing.assert_array_equal(first, draw_cold_items(vocabulary, 0.1, seed=3))
    draws = [tuple(draw_cold_items(vocabulary, 0.1, seed=s)) for s in range(5)]
    assert len(set(draws)) == 5
    # The draw sees only the sorted item set: row order and other users do not matter.
    a = cold_item_split(_log(shuffle_seed=1), fraction=0.2, seed=2)
    b = cold_item_split(_log(shuffle_seed=2), fraction=0.2, seed=2)
    np.testing.assert_array_equal(a.cold_items, b.cold_items)
    c = cold_item_split(_log(), fraction=0.2, seed=3)
    assert c.cold_items.tolist() != COLD and (c.fraction, c.seed) == (0.2, 3)


@pytest.mark.parametrize("fraction", [0, 0.0, 1, 1.0, -0.1, 1.5, float("nan"), True, "0.1", None])
def test_fraction_must_lie_in_the_open_unit_interval(fraction):
    with pytest.raises(ValueError, match=rf"fraction must be a number in \(0, 1\); got {fraction!r}"):
        cold_item_split(_log(), fraction=fraction)


def test_fraction_must_give_a_cold_and_a_warm_item():
    with pytest.raises(ValueError, match=r"fraction=0\.01 of 10 item\(s\) gives 0 cold"):
        cold_item_split(_log(), fraction=0.01)
    with pytest.raises(ValueError, match=r"fraction=0\.96 of 10 item\(s\) gives 10 cold"):
        cold_item_split(_log(), fraction=0.96)
    with pytest.raises(ValueError, match="seed must be a non-negative integer; got -1"):
        cold_item_split(_log(), fraction=0.2, seed=-1)


def test_ml1m_ten_percent_cold(ml1m, ml1m_split, capsys):
    split = cold_item_split(ml1m.interactions, fraction=0.1, seed=0)
    assert split.vocabulary == ml1m_split.vocabulary and split.vocabulary.num_items == 3416
    assert len(split.cold_items) == 342  # round(341.6)
    # Pinned draw: a change of NumPy's stream would change every cold-item number.
    assert split.cold_items[:8].tolist() == [10, 18, 27, 29, 35, 49, 52, 54]
    assert int(split.cold_items.sum()) == 606_237
    # No user is short: every test item is the leave-one-out one.
    assert split.evaluable.all()
    np.testing.assert_array_equal(split.test_target, ml1m_split.test_target)
    assert not split.is_cold(split.validation_target).any()
    assert not split.is_cold(np.concatenate(split.train)).any()
    counts = split.num_interactions()
    assert counts == {
        "train": 890_765, "validation": 6040, "test": 6040, "removed_cold": 96_766,
        "cold_test_users": 648, "warm_test_users": 5392,
    }
    assert counts["train"] + counts["validation"] + counts["test"] + counts["removed_cold"] == 999_611
    assert capsys.readouterr() == ("", "")
