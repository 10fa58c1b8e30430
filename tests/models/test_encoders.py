"""Encoder-level guarantees at model level: causality and padding invariance."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.models.conftest import MAX_LENGTH, VOCAB_SIZE
from tf_attnrec.models.registry import create_model
from tf_attnrec.models.sequence_encoder import without_leading_padding

PER_POSITION = {
    "sasrec": {"hidden_dim": 8, "num_blocks": 2},
    "mean_pooling": {"embedding_dim": 8},
    "lstm_attention": {"embedding_dim": 8, "units": 8},
    "lstm_attention_gru": {"embedding_dim": 8, "units": 8, "cell": "gru"},
    "attention_pooling": {"embedding_dim": 8},
}


def _create(name: str, **config):
    return create_model(name.removesuffix("_gru"), vocab_size=VOCAB_SIZE, max_length=MAX_LENGTH, **config)


@pytest.mark.parametrize("name", sorted(PER_POSITION))
def test_states_at_t_ignore_later_items(name):
    model = _create(name, **PER_POSITION[name])
    history = np.array([[0, 0, 5, 6, 7, 8, 9, 10]], np.int32)
    changed = history.copy()
    cut = 5  # positions 0..5 keep their items, 6.. change
    changed[0, cut + 1 :] = [20, 21]
    before = model.encoder.encode_sequence(history, training=False).numpy()
    after = model.encoder.encode_sequence(changed, training=False).numpy()
    np.testing.assert_allclose(after[0, : cut + 1], before[0, : cut + 1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(after[0, cut + 1 :], before[0, cut + 1 :]), "later states must change"
    # The query is the last position's state.
    np.testing.assert_allclose(model(history).numpy(), before[:, -1], rtol=1e-5, atol=1e-6)
    assert (before[0, :2] == 0).all(), "padded positions output zeros"


# Encoders whose state at t does not depend on the window: no position embeddings, or
# start-aligned ones. End-aligned positions (original SASRec) count back from the window's last
# slot, so a prefix fed alone sits at other positions (tested below).
PREFIX_EXACT = {
    "mean_pooling": PER_POSITION["mean_pooling"],
    "lstm_attention": PER_POSITION["lstm_attention"],
    "lstm_attention_gru": PER_POSITION["lstm_attention_gru"],
    "attention_pooling": PER_POSITION["attention_pooling"],  # start-aligned by default
    "sasrec": {**PER_POSITION["sasrec"], "position_alignment": "start"},
}


@pytest.mark.parametrize("name", sorted(PREFIX_EXACT))
def test_state_at_t_is_the_query_of_the_prefix_ending_at_t(name):
    """Training on every position trains exactly the query `call` computes for that prefix."""
    model = _create(name, **PREFIX_EXACT[name])
    history = np.array([[0, 0, 5, 6, 7, 8, 9, 10]], np.int32)
    states = model.encoder.encode_sequence(history, training=False).numpy()
    for t in range(2, MAX_LENGTH):
        query = model.encoder(history[:, : t + 1], training=False).numpy()
        np.testing.assert_allclose(states[:, t], query, rtol=1e-5, atol=1e-5, err_msg=f"t={t}")



@pytest.mark.parametrize("options", [{}, {"position_alignment": "start"}, {"norm_first": False},
                                     {"num_blocks": 1}, {"num_heads": 2}])
def test_sasrec_query_skips_padding_and_earlier_queries_without_changing_them(options):
    """`call` cuts the batch's common left padding and runs the last block for the last query
    only; it must still be the last state of the full per-position computation."""
    model = _create("sasrec", **{**PER_POSITION["sasrec"], **options})
    history = np.array([[0, 0, 0, 0, 0, 5, 6, 7],   # the longest row has 5 items: 3 columns cut
                        [0, 0, 0, 0, 0, 0, 0, 9],
                        [0, 0, 0, 0, 0, 0, 0, 0],   # all padding: a zero query, no NaN
                        [0, 0, 0, 2, 1, 3, 4, 8]], np.int32)
    states = model.encoder.encode_sequence(history, training=False).numpy()
    query = model.encoder(history, training=False).numpy()
    np.testing.assert_allclose(query, states[:, -1], rtol=1e-5, atol=1e-6)
    assert np.isfinite(query).all() and (query[2] == 0).all()
    # The same rows without their common padding, and a batch with no item at all.
    np.testing.assert_allclose(model.encoder(history[:, 3:], training=False).numpy(), query, rtol=1e-5, atol=1e-6)
    assert (model.encoder(np.zeros([2, MAX_LENGTH], np.int32), training=False).numpy() == 0).all()



@pytest.fixture(scope="module")
def sasrec_model():
    return _create("sasrec", **PER_POSITION["sasrec"])


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(0, MAX_LENGTH), min_size=1, max_size=5), seed=st.integers(0, 2**16))
def test_sasrec_query_equals_the_last_state_for_any_left_padded_batch(sasrec_model, lengths, seed):
    model = sasrec_model
    rng = np.random.default_rng(seed)
    history = np.zeros([len(lengths), MAX_LENGTH], np.int32)
    for row, length in enumerate(lengths):
        if length:
            history[row, -length:] = rng.integers(1, VOCAB_SIZE, size=length)  # 1 = unknown item, a real slot
    states = model.encoder.encode_sequence(history, training=False).numpy()
    np.testing.assert_allclose(model.encoder(history, training=False).numpy(), states[:, -1], rtol=1e-5, atol=1e-5)

def test_without_leading_padding_keeps_every_item_and_one_column_at_least():
    history = tf.constant([[0, 0, 0, 5], [0, 0, 3, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(without_leading_padding(history).numpy(), [[0, 5], [3, 0], [0, 0]])
    np.testing.assert_array_equal(without_leading_padding(tf.zeros([2, 4], tf.int32)).numpy(), [[0], [0]])


@pytest.mark.parametrize("name", sorted(PER_POSITION))
def test_training_loss_skips_the_padding_a_batch_shares_without_changing_it(name, monkeypatch):
    model = _create(name, **PER_POSITION[name])
    history = np.array([[0, 0, 0, 0, 5, 6, 7, 8], [0, 0, 0, 0, 0, 0, 3, 4]], np.int32)
    targets = np.where(history > 0, np.roll(history, -1, axis=1), 0)
    targets[:, -1] = [9, 5]
    features = {"history": tf.constant(history), "targets": tf.constant(targets)}
    seen = []
    encode = model.encoder.encode_sequence
    monkeypatch.setattr(model.encoder, "encode_sequence", lambda h, **kw: seen.append(h.shape[1]) or encode(h, **kw))
    trimmed = float(model.compute_loss(features, training=False))
    model._jit_compile = True  # XLA needs static shapes: the whole [B, L] is encoded
    whole = float(model.compute_loss(features, training=False))
    assert seen == [4, MAX_LENGTH]
    np.testing.assert_allclose(trimmed, whole, rtol=1e-5)


def test_end_aligned_positions_make_the_state_depend_on_the_window():
    model = _create("sasrec", **PER_POSITION["sasrec"], position_alignment="end")
    history = np.array([[0, 0, 5, 6, 7, 8, 9, 10]], np.int32)
    states = model.encoder.encode_sequence(history, training=False).numpy()
    assert not np.allclose(states[:, 4], model.encoder(history[:, :5], training=False).numpy())


@pytest.mark.parametrize("name", sorted(PER_POSITION))
def test_padding_and_truncation_do_not_change_scores(name):
    model = _create(name, **PER_POSITION[name])
    short = np.array([[0, 0, 0, 0, 0, 4, 5, 6]], np.int32)
    scores = model.score(short).numpy()
    # A longer input keeps only the most recent MAX_LENGTH items.
    longer = np.concatenate([[[9, 9, 9]], short], axis=1).astype(np.int32)
    np.testing.assert_allclose(model.score(longer).numpy(), scores, rtol=1e-5, atol=1e-5)
    # A different (real) history changes the scores, so the check above can fail.
    other = np.array([[0, 0, 0, 0, 0, 7, 8, 3]], np.int32)
    assert not np.allclose(model.score(other).numpy(), scores)


def test_encoder_rejects_bad_input():
    model = create_model("sasrec", vocab_size=VOCAB_SIZE, max_length=MAX_LENGTH, hidden_dim=8)
    with pytest.raises(ValueError, match=r"\[batch, length\]"):
        model.encoder(tf.zeros([2, 3, 4], tf.int32))
    with pytest.raises(ValueError, match="vocab_size"):
        create_model("sasrec", vocab_size=2)


def test_initializer_range_draws_tables_and_kernels_from_a_small_normal():
    model = create_model("sasrec", vocab_size=500, max_length=50, hidden_dim=64, initializer_range=0.02)
    model.score(np.full([1, 50], 5, np.int32))  # build
    kernels = [w for w in model.trainable_weights if "kernel" in w.name or "embeddings" in w.name]
    assert len(kernels) == 2 + 2 * 6  # item + position tables, 6 kernels per block
    for weight in kernels:
        assert 0.017 < np.std(weight.numpy()) < 0.023, weight.name
    rebuilt = type(model.encoder).from_config(model.encoder.get_config())
    assert rebuilt.initializer_range == 0.02
    with pytest.raises(ValueError, match="initializer_range"):
        create_model("sasrec", vocab_size=VOCAB_SIZE, initializer_range=0.0)
