"""Tests for tf_attnrec.layers.pooling.AttentionPooling."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec.layers.pooling import AttentionPooling, masked_softmax

B, T, D, DQ = 3, 6, 5, 4
# Row 0 fully real, row 1 left-padded by 2, row 2 all padding.
MASK = np.array(
    [[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]], dtype=bool
)


@pytest.fixture
def mixed_precision():
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")


def _inputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(B, T, D)).astype(np.float32),
        rng.normal(size=(B, DQ)).astype(np.float32),
    )


def _numpy_pooling(layer: AttentionPooling, values, query, mask):
    act = {"tanh": np.tanh, "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
           "relu": lambda z: np.maximum(z, 0.0)}[layer.activation]
    w_v = layer.value_projection.kernel.numpy()
    b_v = layer.value_projection.bias.numpy()
    hidden = values @ w_v + b_v
    if layer.use_query:
        hidden = hidden + (query @ layer.query_projection.kernel.numpy())[:, None, :]
    scores = (act(hidden) @ layer.score.kernel.numpy())[..., 0]  # [B, T]
    weights = np.zeros_like(scores)
    for b in range(scores.shape[0]):
        real = mask[b]
        if real.any():
            e = np.exp(scores[b, real] - scores[b, real].max())
            weights[b, real] = e / e.sum()
    return np.einsum("bt,btd->bd", weights, values), weights


@pytest.mark.parametrize(
    "use_query,activation,hidden_units",
    [(False, "tanh", None), (True, "tanh", 7), (True, "sigmoid", 3), (False, "relu", 4)],
)
def test_matches_numpy_reference(use_query, activation, hidden_units):
    values, query = _inputs()
    layer = AttentionPooling(hidden_units=hidden_units, use_query=use_query, activation=activation)
    pooled, weights = layer(
        values, query=query if use_query else None, mask=MASK, return_attention_scores=True
    )
    expected_pooled, expected_weights = _numpy_pooling(layer, values, query, MASK)
    assert layer.value_projection.kernel.shape == (D, hidden_units or D)
    np.testing.assert_allclose(weights.numpy(), expected_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pooled.numpy(), expected_pooled, rtol=1e-5, atol=1e-6)
    # Weights of real positions sum to one; padded positions get exactly zero.
    np.testing.assert_allclose(weights.numpy()[:2].sum(axis=1), [1.0, 1.0], rtol=1e-6)
    assert np.all(weights.numpy()[~MASK] == 0.0)


def test_without_mask_attends_everywhere():
    values, _ = _inputs()
    layer = AttentionPooling()
    _, weights = layer(values, return_attention_scores=True)
    _, expected = _numpy_pooling(layer, values, None, np.ones((B, T), bool))
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("use_query", [False, True])
def test_padding_never_changes_output(use_query):
    values, query = _inputs()
    garbage = values.copy()
    garbage[~MASK] = np.random.default_rng(1).normal(scale=1e4, size=(int((~MASK).sum()), D))
    layer = AttentionPooling(hidden_units=4, use_query=use_query)
    q = query if use_query else None
    clean = layer(values, query=q, mask=MASK).numpy()
    dirty = layer(garbage, query=q, mask=MASK).numpy()
    np.testing.assert_allclose(dirty, clean, rtol=0, atol=1e-6)
    # And padding really is ignored, not just the same by chance: an unmasked call differs.
    assert not np.allclose(layer(garbage, query=q).numpy()[1], clean[1], atol=1e-3)


def test_fully_masked_row_is_zero_not_nan():
    values, _ = _inputs()
    values[2] = np.inf  # even non-finite padding must not leak
    pooled, weights = AttentionPooling()(values, mask=MASK, return_attention_scores=True)
    assert np.all(np.isfinite(pooled.numpy()))
    np.testing.assert_array_equal(pooled.numpy()[2], np.zeros(D))
    np.testing.assert_array_equal(weights.numpy()[2], np.zeros(T))


def test_masked_softmax_fully_masked_and_dtype():
    scores = tf.constant([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], tf.float16)
    mask = tf.constant([[True, False, True], [False, False, False]])
    weights = masked_softmax(scores, mask).numpy()
    assert weights.dtype == np.float16
    np.testing.assert_allclose(weights[0], [1 / (1 + np.e**2), 0.0, 1 / (1 + np.e**-2)], rtol=1e-3)
    np.testing.assert_array_equal(weights[1], [0.0, 0.0, 0.0])


def test_keras_mask_is_picked_up():
    ids = np.array([[0, 0, 3, 4], [5, 6, 7, 8]], np.int32)
    embedding = tf.keras.layers.Embedding(10, D, mask_zero=True)
    layer = AttentionPooling()
    embedded = embedding(ids)
    implicit = layer(embedded).numpy()
    explicit = layer(tf.identity(embedded), mask=ids != 0).numpy()
    unmasked = layer(tf.identity(embedded), mask=np.ones_like(ids, bool)).numpy()
    np.testing.assert_allclose(implicit, explicit, rtol=1e-6)
    assert not np.allclose(implicit[0], unmasked[0])
    assert layer.compute_mask(embedded, ids != 0) is None


def test_config_round_trip_identical_outputs():
    values, query = _inputs()
    layer = AttentionPooling(hidden_units=3, use_query=True, activation="sigmoid", name="pool")
    expected = layer(values, query=query, mask=MASK).numpy()
    config = layer.get_config()
    assert config["hidden_units"] == 3 and config["use_query"] and config["activation"] == "sigmoid"
    serialized = tf.keras.layers.serialize(layer)
    assert tf.keras.utils.get_registered_name(AttentionPooling) == "tf_attnrec>AttentionPooling"
    clone = tf.keras.layers.deserialize(serialized)
    assert isinstance(clone, AttentionPooling) and clone.get_config() == config
    clone(values, query=query, mask=MASK)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(values, query=query, mask=MASK).numpy(), expected)


@pytest.mark.parametrize("use_query", [False, True])
def test_gradients_finite_and_nonzero(use_query):
    values, query = _inputs()
    layer = AttentionPooling(hidden_units=4, use_query=use_query)
    values_t = tf.constant(values)
    with tf.GradientTape() as tape:
        tape.watch(values_t)
        pooled = layer(values_t, query=query if use_query else None, mask=MASK)
        loss = tf.reduce_sum(pooled * np.random.default_rng(2).normal(size=(B, D)))
    variables = layer.trainable_variables
    assert len(variables) == (4 if use_query else 3)
    grads = tape.gradient(loss, variables + [values_t])
    for variable, grad in zip(variables, grads[:-1]):
        assert grad is not None, variable.name
        assert np.all(np.isfinite(grad.numpy())), variable.name
        assert np.any(grad.numpy() != 0), variable.name
    # No gradient flows into padded values.
    assert np.all(grads[-1].numpy()[~MASK] == 0)


def test_mixed_float16(mixed_precision):
    values, query = _inputs()
    layer = AttentionPooling(hidden_units=4, use_query=True)
    with tf.GradientTape() as tape:
        pooled, weights = layer(
            tf.cast(values, tf.float16), query=query, mask=MASK, return_attention_scores=True
        )
        loss = tf.reduce_sum(tf.cast(pooled, tf.float32))
    assert pooled.dtype == tf.float16
    assert layer.value_projection.kernel.dtype == tf.float32
    assert np.all(np.isfinite(pooled.numpy()))
    np.testing.assert_array_equal(pooled.numpy()[2], np.zeros(D))
    grads = tape.gradient(loss, layer.trainable_variables)
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)


def test_clear_errors():
    values, query = _inputs()
    with pytest.raises(ValueError, match="needs a `query`"):
        AttentionPooling(use_query=True)(values)
    with pytest.raises(ValueError, match="use_query=True"):
        AttentionPooling()(values, query=query)
    with pytest.raises(ValueError, match="activation"):
        AttentionPooling(activation="softmax")
    with pytest.raises(ValueError, match="hidden_units"):
        AttentionPooling(hidden_units=0)
    with pytest.raises(ValueError, match=r"\[batch, time, dim\]"):
        AttentionPooling()(values[0])


@pytest.mark.parametrize("use_query", [False, True])
def test_causal_pooling_equals_pooling_each_prefix(use_query):
    values, _ = _inputs()
    queries = np.random.default_rng(1).normal(size=(B, T, DQ)).astype(np.float32)
    layer = AttentionPooling(hidden_units=7, use_query=use_query, activation="sigmoid")
    query_arg = queries if use_query else None
    pooled, weights = layer(values, query=query_arg, mask=MASK, causal=True, return_attention_scores=True)
    pooled, weights = pooled.numpy(), weights.numpy()
    assert pooled.shape == (B, T, D) and weights.shape == (B, T, T)
    for t in range(T):
        prefix = layer(values[:, : t + 1], query=queries[:, t] if use_query else None, mask=MASK[:, : t + 1])
        np.testing.assert_allclose(pooled[:, t], prefix.numpy(), rtol=1e-5, atol=1e-6)
    assert np.all(np.triu(weights, k=1) == 0), "position t never attends to a later position"
    assert np.all(weights[:, :, ~MASK[1]][1] == 0), "padding gets weight 0"
    assert np.all(pooled[2] == 0) and np.all(pooled[1, :2] == 0), "a prefix of padding pools to 0"
    assert np.isfinite(pooled).all()
    # Later positions differ from earlier ones, so the prefix comparison above is not vacuous.
    assert not np.allclose(pooled[0, 1], pooled[0, -1])


def test_causal_pooling_rejects_a_single_query():
    values, query = _inputs()
    layer = AttentionPooling(use_query=True)
    with pytest.raises(ValueError, match=r"\[batch, time, dim\] with causal=True"):
        layer(values, query=query, mask=MASK, causal=True)
