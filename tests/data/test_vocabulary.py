"""Vocabulary: 0 = padding, 1 = OOV, real ids from 2; round trips and the in-graph layer."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tf_attnrec.data.vocabulary import Vocabulary


def test_ids_start_at_two_in_sorted_order_and_unknown_is_one():
    vocab = Vocabulary.from_ids(["b", "a", "b", "c"])
    assert (vocab.num_items, vocab.size) == (3, 5)
    np.testing.assert_array_equal(vocab.lookup(["a", "b", "c", "zzz"]), [2, 3, 4, 1])
    assert vocab.lookup(["a"]).dtype == np.int32
    np.testing.assert_array_equal(vocab.lookup([["c", "a"], ["q", "b"]]), [[4, 2], [1, 3]])
    assert vocab.raw_ids([4, 2]).tolist() == ["c", "a"]


def test_mapping_does_not_depend_on_row_order():
    ids = np.random.default_rng(0).integers(0, 50, size=200)
    assert Vocabulary.from_ids(ids) == Vocabulary.from_ids(ids[::-1])


def test_min_count_sends_rare_ids_to_oov():
    vocab = Vocabulary.from_ids([7, 7, 8, 9, 9, 9], min_count=2)
    np.testing.assert_array_equal(vocab.lookup([7, 8, 9]), [2, 1, 3])
    with pytest.raises(ValueError, match="min_count must be >= 1"):
        Vocabulary.from_ids([1], min_count=0)


def test_raw_ids_of_padding_needs_default():
    vocab = Vocabulary.from_ids([10, 20])
    with pytest.raises(ValueError, match=r"ids \[0, 1\] are padding \(0\) / out-of-vocabulary \(1\)"):
        vocab.raw_ids([0, 1, 2])
    assert vocab.raw_ids([0, 3], default=-1).tolist() == [-1, 20]
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 4\)"):
        vocab.raw_ids([4])


def test_rejects_mixed_or_duplicate_raw_ids():
    with pytest.raises(TypeError, match="all integers or all strings"):
        Vocabulary.from_ids([1, "a"])
    with pytest.raises(ValueError, match="must be unique"):
        Vocabulary([1, 1])


@pytest.mark.parametrize("raw", [[30, 10, 20, 0], ["x", "y", "z"]])
def test_json_round_trip_and_lookup_layer_agree(raw):
    vocab = Vocabulary.from_ids(raw)
    restored = Vocabulary.from_json(vocab.to_json())
    assert restored == vocab and restored.raw_ids([2]).tolist() == vocab.raw_ids([2]).tolist()
    queries = np.asarray(list(raw) + ([999] if isinstance(raw[0], int) else ["unknown"]))
    expected = vocab.lookup(queries)
    layer = vocab.to_lookup_layer()
    np.testing.assert_array_equal(layer(tf.constant(queries)).numpy(), expected)
    assert expected[-1] == 1 and layer.vocabulary_size() == vocab.size
