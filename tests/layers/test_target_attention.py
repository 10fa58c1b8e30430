"""Tests for tf_attnrec.layers.target_attention.TargetAttention (DIN activation unit)."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec.layers.target_attention import TargetAttention

B, T, D = 3, 5, 4
# Row 0 fully real, row 1 left-padded by 2, row 2 all padding.
MASK = np.array([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=bool)
HIDDEN = (6, 3)


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
        rng.normal(size=(B, D)).astype(np.float32),
        rng.normal(size=(B, T, D)).astype(np.float32),
    )


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _numpy_target_attention(layer: TargetAttention, query, keys, mask, training=False):
    """Reimplementation of DIN's activation unit with the layer's weights."""
    q = np.broadcast_to(query[:, None, :], keys.shape)
    hidden = np.concatenate([q, keys, q - keys, q * keys], axis=-1)
    for dense, activation in zip(layer.hidden_layers, layer.hidden_activations):
        hidden = hidden @ dense.kernel.numpy() + dense.bias.numpy()
        if layer.activation == "sigmoid":
            hidden = _sigmoid(hidden)
        elif layer.activation == "relu":
            hidden = np.maximum(hidden, 0.0)
        elif layer.activation == "prelu":
            alpha = activation.alpha.numpy().reshape(-1)
            hidden = np.where(hidden > 0, hidden, alpha * hidden)
        elif layer.activation == "dice":
            if training:  # moments over the real positions of the batch only
                real = hidden[mask]
                mean, var = real.mean(axis=0), real.var(axis=0)
            else:
                mean, var = activation.moving_mean.numpy(), activation.moving_variance.numpy()
            p = _sigmoid((hidden - mean) / np.sqrt(var + activation.epsilon))
            hidden = p * hidden + (1 - p) * activation.alpha.numpy() * hidden
        else:
            raise AssertionError(layer.activation)
    scores = hidden @ layer.score.kernel.numpy()[:, 0]
    if layer.score.use_bias:
        scores = scores + layer.score.bias.numpy()[0]
    weights = np.zeros_like(scores)
    for b in range(scores.shape[0]):
        real = mask[b]
        if not real.any():
            continue
        if layer.use_softmax:
            e = np.exp(scores[b, real] - scores[b, real].max())
            weights[b, real] = e / e.sum()
        else:
            weights[b, real] = scores[b, real]
            if layer.weight_normalization == "length":
                weights[b, real] /= real.sum()
    return np.einsum("bt,btd->bd", weights, keys), weights


def _randomize_activation_weights(layer: TargetAttention, seed: int = 3) -> None:
    """Alpha starts at 0 and Dice's moving stats at (0, 1); move them so the test can fail."""
    rng = np.random.default_rng(seed)
    for activation in layer.hidden_activations:
        if activation is None:
            continue
        for variable in activation.weights:
            low = 0.5 if "variance" in variable.name else -0.5
            variable.assign(rng.uniform(low, 1.5, size=variable.shape).astype(np.float32))


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # paper default: sigmoid, no softmax
        {"use_softmax": True},
        {"activation": "relu", "weight_normalization": "length"},
        {"activation": "prelu"},
        {"activation": "dice"},
    ],
    ids=["sigmoid", "softmax", "relu-length", "prelu", "dice"],
)
def test_matches_numpy_reference(kwargs):
    query, keys = _inputs()
    layer = TargetAttention(hidden_units=HIDDEN, **kwargs)
    layer(query, keys, mask=MASK)  # build
    _randomize_activation_weights(layer)
    out, weights = layer(query, keys, mask=MASK, return_attention_scores=True)
    expected_out, expected_weights = _numpy_target_attention(layer, query, keys, MASK)
    np.testing.assert_allclose(weights.numpy(), expected_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.numpy(), expected_out, rtol=1e-5, atol=1e-6)
    assert np.all(weights.numpy()[~MASK] == 0.0)


def test_weights_are_not_normalized_by_default():
    query, keys = _inputs()
    _, weights = TargetAttention(hidden_units=HIDDEN)(
        query, keys, mask=MASK, return_attention_scores=True
    )
    sums = weights.numpy()[:2].sum(axis=1)
    assert not np.allclose(sums, 1.0, atol=1e-3)
    _, soft = TargetAttention(hidden_units=HIDDEN, use_softmax=True)(
        query, keys, mask=MASK, return_attention_scores=True
    )
    np.testing.assert_allclose(soft.numpy()[:2].sum(axis=1), [1.0, 1.0], rtol=1e-6)


def test_dice_training_uses_masked_batch_moments_and_updates_moving_stats():
    query, keys = _inputs()
    layer = TargetAttention(hidden_units=HIDDEN, activation="dice")
    layer(query, keys, mask=MASK)
    _randomize_activation_weights(layer)
    before = [a.moving_mean.numpy().copy() for a in layer.hidden_activations]
    out = layer(query, keys, mask=MASK, training=True).numpy()
    # The first Dice sees the first hidden layer's pre-activations: check against numpy.
    expected, _ = _numpy_target_attention(layer, query, keys, MASK, training=True)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    after = [a.moving_mean.numpy() for a in layer.hidden_activations]
    assert all(not np.allclose(b, a) for b, a in zip(before, after))


@pytest.mark.parametrize(
    "kwargs,training",
    [({}, False), ({"use_softmax": True}, False), ({"activation": "dice"}, True),
     ({"activation": "prelu", "weight_normalization": "length"}, False)],
)
def test_padding_never_changes_output(kwargs, training):
    query, keys = _inputs()
    garbage = keys.copy()
    garbage[~MASK] = np.random.default_rng(1).normal(scale=1e4, size=(int((~MASK).sum()), D))
    clean_layer = TargetAttention(hidden_units=HIDDEN, **kwargs)
    clean = clean_layer(query, keys, mask=MASK, training=training).numpy()
    dirty_layer = TargetAttention.from_config(clean_layer.get_config())
    dirty_layer(query, keys, mask=MASK)
    dirty_layer.set_weights(
        # Dice's moving statistics were updated by the training call: start from the same ones.
        _initial_weights(clean_layer) if training else clean_layer.get_weights()
    )
    dirty = dirty_layer(query, garbage, mask=MASK, training=training).numpy()
    np.testing.assert_allclose(dirty, clean, rtol=0, atol=1e-5)
    if training:  # moving statistics are also untouched by padding
        for a, b in zip(clean_layer.weights, dirty_layer.weights):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)
    # Padding is really ignored, not the same by chance: an unmasked call differs.
    assert not np.allclose(dirty_layer(query, garbage).numpy()[1], clean[1], atol=1e-3)


def _initial_weights(layer: TargetAttention) -> list:
    """The layer's trainable weights plus freshly initialised Dice statistics (0 and 1)."""
    weights = []
    for variable in layer.weights:
        if "moving_mean" in variable.name:
            weights.append(np.zeros(variable.shape, np.float32))
        elif "moving_variance" in variable.name:
            weights.append(np.ones(variable.shape, np.float32))
        else:
            weights.append(variable.numpy())
    return weights


@pytest.mark.parametrize("use_softmax", [False, True])
def test_fully_masked_row_is_zero_not_nan(use_softmax):
    query, keys = _inputs()
    keys[2] = np.inf
    out, weights = TargetAttention(hidden_units=HIDDEN, use_softmax=use_softmax)(
        query, keys, mask=MASK, return_attention_scores=True
    )
    assert np.all(np.isfinite(out.numpy()))
    np.testing.assert_array_equal(out.numpy()[2], np.zeros(D))
    np.testing.assert_array_equal(weights.numpy()[2], np.zeros(T))


def test_keras_mask_on_keys_is_picked_up():
    ids = np.array([[0, 0, 3, 4, 5], [5, 6, 7, 8, 9]], np.int32)
    keys = tf.keras.layers.Embedding(10, D, mask_zero=True)(ids)
    query = tf.constant(np.random.default_rng(0).normal(size=(2, D)).astype(np.float32))
    layer = TargetAttention(hidden_units=HIDDEN)
    implicit = layer(query, keys).numpy()
    explicit = layer(query, tf.identity(keys), mask=ids != 0).numpy()
    np.testing.assert_allclose(implicit, explicit, rtol=1e-6)
    assert not np.allclose(implicit[0], layer(query, tf.identity(keys)).numpy()[0])


@pytest.mark.parametrize("activation", ["sigmoid", "dice", "prelu"])
def test_config_round_trip_identical_outputs(activation):
    query, keys = _inputs()
    layer = TargetAttention(hidden_units=HIDDEN, activation=activation, use_softmax=True)
    layer(query, keys, mask=MASK)
    _randomize_activation_weights(layer)
    expected = layer(query, keys, mask=MASK).numpy()
    config = layer.get_config()
    assert config["hidden_units"] == list(HIDDEN) and config["activation"] == activation
    assert tf.keras.utils.get_registered_name(TargetAttention) == "tf_attnrec>TargetAttention"
    clone = tf.keras.layers.deserialize(tf.keras.layers.serialize(layer))
    assert isinstance(clone, TargetAttention) and clone.get_config() == config
    clone(query, keys, mask=MASK)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(query, keys, mask=MASK).numpy(), expected)


@pytest.mark.parametrize(
    "kwargs", [{}, {"use_softmax": True, "activation": "dice"}, {"activation": "prelu"}]
)
def test_gradients_finite_and_nonzero(kwargs):
    query, keys = _inputs()
    layer = TargetAttention(hidden_units=HIDDEN, **kwargs)
    direction = np.random.default_rng(2).normal(size=(B, D))
    with tf.GradientTape() as tape:
        out = layer(query, keys, mask=MASK, training=True)
        loss = tf.reduce_sum(out * direction)
    variables = layer.trainable_variables
    expected_count = 2 * len(HIDDEN) + (1 if layer.use_softmax else 2)
    if layer.activation in ("dice", "prelu"):
        expected_count += len(HIDDEN)
    assert len(variables) == expected_count
    for variable, grad in zip(variables, tape.gradient(loss, variables)):
        assert grad is not None, variable.name
        assert np.all(np.isfinite(grad.numpy())), variable.name
        assert np.any(grad.numpy() != 0), variable.name


@pytest.mark.parametrize("activation", ["sigmoid", "dice"])
def test_mixed_float16(mixed_precision, activation):
    query, keys = _inputs()
    layer = TargetAttention(hidden_units=HIDDEN, activation=activation, use_softmax=True)
    with tf.GradientTape() as tape:
        out = layer(tf.cast(query, tf.float16), tf.cast(keys, tf.float16), mask=MASK,
                    training=True)
        loss = tf.reduce_sum(tf.cast(out, tf.float32))
    assert out.dtype == tf.float16
    assert np.all(np.isfinite(out.numpy()))
    np.testing.assert_array_equal(out.numpy()[2], np.zeros(D))
    grads = tape.gradient(loss, layer.trainable_variables)
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)


def test_clear_errors():
    query, keys = _inputs()
    with pytest.raises(ValueError, match="query dim 3 != keys dim 4"):
        TargetAttention(hidden_units=HIDDEN)(query[:, :3], keys)
    with pytest.raises(ValueError, match="already normalises"):
        TargetAttention(use_softmax=True, weight_normalization="length")
    with pytest.raises(ValueError, match="weight_normalization"):
        TargetAttention(weight_normalization="softmax")
    with pytest.raises(ValueError, match="unknown `activation`"):
        TargetAttention(activation="not-an-activation")
    with pytest.raises(ValueError, match="hidden_units"):
        TargetAttention(hidden_units=(8, 0))
    with pytest.raises(ValueError, match=r"\[batch, time, dim\]"):
        TargetAttention(hidden_units=HIDDEN)(query, keys[0])
