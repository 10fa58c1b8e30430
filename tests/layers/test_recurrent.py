"""Tests for tf_attnrec.layers.recurrent.RecurrentAttentionEncoder (NARM encoder)."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec.layers.recurrent import RecurrentAttentionEncoder

B, T, D, UNITS = 3, 6, 5, 4
LENGTHS = np.array([6, 3, 0])  # row 1 left-padded by 3, row 2 all padding
MASK = np.arange(T)[None, :] >= (T - LENGTHS)[:, None]


@pytest.fixture
def mixed_precision():
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")


def _inputs(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(B, T, D)).astype(np.float32)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_left_padding_equals_unpadded_sequence(cell):
    """The encoding of a left-padded row equals that of the same items without padding."""
    x = _inputs()
    encoder = RecurrentAttentionEncoder(UNITS, cell=cell)
    padded = encoder(x, mask=MASK).numpy()
    length = LENGTHS[1]
    unpadded = encoder(x[1:2, T - length:]).numpy()
    np.testing.assert_allclose(padded[1:2], unpadded, rtol=1e-5, atol=1e-6)
    # Global half = final RNN state on the real items only, computed by the bare Keras RNN.
    final_state = encoder.rnn(x[1:2, T - length:])[1].numpy()
    np.testing.assert_allclose(padded[1:2, :UNITS], final_state, rtol=1e-5, atol=1e-6)


def test_local_half_is_narm_attention_over_states():
    """Local half = softmax(v^T sigmoid(A1 h_T + A2 h_j)) weighted sum of RNN states (numpy)."""
    x = _inputs()
    encoder = RecurrentAttentionEncoder(UNITS, cell="gru", attention_units=3)
    out = encoder(x, mask=MASK).numpy()
    attention = encoder.local_attention
    for row in range(2):
        real = x[row : row + 1, MASK[row]]
        states, final = (t.numpy()[0] for t in encoder.rnn(real)[:2])
        hidden = (
            states @ attention.value_projection.kernel.numpy()
            + attention.value_projection.bias.numpy()
            + final @ attention.query_projection.kernel.numpy()
        )
        scores = (1 / (1 + np.exp(-hidden))) @ attention.score.kernel.numpy()[:, 0]
        weights = np.exp(scores - scores.max())
        weights /= weights.sum()
        np.testing.assert_allclose(out[row, UNITS:], weights @ states, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out[row, :UNITS], final, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "cell,output", [("lstm", "concat"), ("gru", "sum"), ("lstm", "projection")]
)
def test_padding_never_changes_output(cell, output):
    x = _inputs()
    garbage = x.copy()
    garbage[~MASK] = np.random.default_rng(1).normal(scale=1e3, size=(int((~MASK).sum()), D))
    encoder = RecurrentAttentionEncoder(UNITS, cell=cell, output=output)
    clean = encoder(x, mask=MASK).numpy()
    dirty = encoder(garbage, mask=MASK).numpy()
    np.testing.assert_allclose(dirty, clean, rtol=0, atol=1e-6)
    assert clean.shape == (B, encoder.output_dim)
    # Padding is really ignored, not the same by chance: an unmasked call differs.
    assert not np.allclose(encoder(garbage).numpy()[1], clean[1], atol=1e-3)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fully_masked_row_is_zero_not_nan(cell):
    x = _inputs()
    x[2] = np.inf
    out = RecurrentAttentionEncoder(UNITS, cell=cell)(x, mask=MASK).numpy()
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[2], np.zeros(2 * UNITS))


def test_keras_mask_is_picked_up():
    ids = np.array([[0, 0, 3, 4], [5, 6, 7, 8]], np.int32)
    embedded = tf.keras.layers.Embedding(10, D, mask_zero=True)(ids)
    encoder = RecurrentAttentionEncoder(UNITS)
    implicit = encoder(embedded).numpy()
    explicit = encoder(tf.identity(embedded), mask=ids != 0).numpy()
    np.testing.assert_allclose(implicit, explicit, rtol=1e-6)
    assert not np.allclose(implicit[0], encoder(tf.identity(embedded)).numpy()[0])


def test_output_modes_and_dropout():
    x = _inputs()
    concat = RecurrentAttentionEncoder(UNITS, output="concat")
    summed = RecurrentAttentionEncoder(UNITS, output="sum")
    out_concat = concat(x, mask=MASK).numpy()
    summed(x, mask=MASK)
    summed.set_weights(concat.get_weights())  # same weights, only the combination differs
    np.testing.assert_allclose(
        summed(x, mask=MASK).numpy(), out_concat[:, :UNITS] + out_concat[:, UNITS:], rtol=1e-5
    )
    projected = RecurrentAttentionEncoder(UNITS, output="projection")
    assert projected(x, mask=MASK).shape == (B, UNITS)
    assert projected.compute_output_shape((B, T, D)) == (B, UNITS)

    dropped = RecurrentAttentionEncoder(UNITS, dropout=0.5)
    inference = dropped(x, mask=MASK).numpy()
    np.testing.assert_array_equal(dropped(x, mask=MASK, training=False).numpy(), inference)
    assert not np.allclose(dropped(x, mask=MASK, training=True).numpy(), inference)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_config_round_trip_identical_outputs(cell):
    x = _inputs()
    encoder = RecurrentAttentionEncoder(
        UNITS, cell=cell, attention_units=3, dropout=0.1, output="projection", name="narm"
    )
    expected = encoder(x, mask=MASK).numpy()
    config = encoder.get_config()
    assert {k: config[k] for k in ("units", "cell", "attention_units", "dropout", "output")} == {
        "units": UNITS, "cell": cell, "attention_units": 3, "dropout": 0.1, "output": "projection"
    }
    assert (
        tf.keras.utils.get_registered_name(RecurrentAttentionEncoder)
        == "tf_attnrec>RecurrentAttentionEncoder"
    )
    clone = tf.keras.layers.deserialize(tf.keras.layers.serialize(encoder))
    assert isinstance(clone, RecurrentAttentionEncoder) and clone.get_config() == config
    clone(x, mask=MASK)
    clone.set_weights(encoder.get_weights())
    np.testing.assert_array_equal(clone(x, mask=MASK).numpy(), expected)


@pytest.mark.parametrize("cell,output", [("lstm", "concat"), ("gru", "projection")])
def test_gradients_finite_and_nonzero(cell, output):
    x = _inputs()
    encoder = RecurrentAttentionEncoder(UNITS, cell=cell, output=output)
    with tf.GradientTape() as tape:
        out = encoder(x, mask=MASK, training=True)
        loss = tf.reduce_sum(out * np.random.default_rng(2).normal(size=out.shape))
    variables = encoder.trainable_variables
    assert len(variables) == 7 + (output == "projection")
    for variable, grad in zip(variables, tape.gradient(loss, variables)):
        assert grad is not None, variable.name
        assert np.all(np.isfinite(grad.numpy())), variable.name
        assert np.any(grad.numpy() != 0), variable.name


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_mixed_float16(mixed_precision, cell):
    x = _inputs()
    encoder = RecurrentAttentionEncoder(UNITS, cell=cell)
    with tf.GradientTape() as tape:
        out = encoder(tf.cast(x, tf.float16), mask=MASK, training=True)
        loss = tf.reduce_sum(tf.cast(out, tf.float32))
    assert out.dtype == tf.float16
    assert np.all(np.isfinite(out.numpy()))
    np.testing.assert_array_equal(out.numpy()[2], np.zeros(2 * UNITS))
    grads = tape.gradient(loss, encoder.trainable_variables)
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)


def test_clear_errors():
    with pytest.raises(ValueError, match="`cell` must be one of"):
        RecurrentAttentionEncoder(UNITS, cell="rnn")
    with pytest.raises(ValueError, match="`output` must be one of"):
        RecurrentAttentionEncoder(UNITS, output="mean")
    with pytest.raises(ValueError, match="`units` must be a positive int"):
        RecurrentAttentionEncoder(0)
    with pytest.raises(ValueError, match="`dropout`"):
        RecurrentAttentionEncoder(UNITS, dropout=1.0)
    with pytest.raises(ValueError, match=r"\[batch, time, dim\]"):
        RecurrentAttentionEncoder(UNITS)(_inputs()[0])


@pytest.mark.parametrize("cell,output", [("lstm", "concat"), ("gru", "sum"), ("lstm", "projection")])
def test_return_sequences_encodes_every_prefix(cell, output):
    """Position t of return_sequences=True is the encoding of inputs[:, :t + 1]."""
    x = _inputs()
    encoder = RecurrentAttentionEncoder(UNITS, cell=cell, output=output)
    sequences = encoder(x, mask=MASK, return_sequences=True).numpy()
    assert sequences.shape == (B, T, encoder.output_dim)
    for t in range(T):
        prefix = encoder(x[:, : t + 1], mask=MASK[:, : t + 1]).numpy()
        np.testing.assert_allclose(sequences[:, t], prefix, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sequences[:, -1], encoder(x, mask=MASK).numpy(), rtol=1e-5, atol=1e-6)
    assert np.all(sequences[~MASK] == 0), "padded positions are 0"
    assert not np.allclose(sequences[0, 2], sequences[0, -1])


def test_return_sequences_gradients_finite():
    x = tf.constant(_inputs())
    encoder = RecurrentAttentionEncoder(UNITS, cell="lstm")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(encoder(x, mask=MASK, return_sequences=True, training=True) ** 2)
    grads = tape.gradient(loss, encoder.trainable_variables)
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)
    assert any(np.abs(g.numpy()).sum() > 0 for g in grads)
