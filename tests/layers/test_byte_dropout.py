"""ByteDropout: Keras dropout with byte masks (rate rounded to 1/256, expectation exact)."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec.layers.dropout import ByteDropout


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.5])
def test_drops_the_applied_rate_and_scales_the_rest(rate):
    tf.keras.utils.set_random_seed(0)
    layer = ByteDropout(rate)
    inputs = tf.fill([300, 1000], 3.0)
    outputs = layer(inputs, training=True).numpy()
    applied = round(rate * 256) / 256
    assert layer.applied_rate == applied
    dropped = outputs == 0
    np.testing.assert_allclose(outputs[~dropped], 3.0 / (1 - applied), rtol=1e-6)
    # 300,000 draws: the dropped share is within 4 standard errors of the applied rate.
    assert abs(dropped.mean() - applied) < 4 * np.sqrt(applied * (1 - applied) / dropped.size)
    np.testing.assert_allclose(outputs.mean(), 3.0, rtol=0.01)  # the expectation is kept


def test_masks_are_independent_across_elements_and_calls():
    tf.keras.utils.set_random_seed(0)
    layer = ByteDropout(0.5)
    first, second = (layer(tf.ones([64, 64]), training=True).numpy() == 0 for _ in range(2))
    assert 0.4 < (first != second).mean() < 0.6  # a new mask each call
    # Neighbouring elements share a 32-bit word, not a decision.
    assert 0.4 < (first[:, ::2] != first[:, 1::2]).mean() < 0.6


def test_seeded_runs_draw_the_same_masks_and_inference_is_the_identity():
    def masks():
        tf.keras.utils.set_random_seed(7)
        return ByteDropout(0.3)(tf.ones([50, 50]), training=True).numpy()

    np.testing.assert_array_equal(masks(), masks())
    inputs = tf.random.normal([5, 7])
    np.testing.assert_array_equal(ByteDropout(0.3)(inputs, training=False).numpy(), inputs.numpy())


def test_gradient_is_the_mask_times_the_scale():
    tf.keras.utils.set_random_seed(0)
    layer = ByteDropout(0.25)
    inputs = tf.random.normal([40, 40])
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = layer(inputs, training=True)
        total = tf.reduce_sum(outputs)
    gradient = tape.gradient(total, inputs).numpy()
    np.testing.assert_allclose(gradient, np.where(outputs.numpy() == 0, 0.0, 1 / 0.75), rtol=1e-6)


@pytest.mark.parametrize("kwargs", [{"rate": 0.5, "noise_shape": (None, 1)}, {"rate": 0.001}])
def test_falls_back_to_keras_dropout_where_bytes_cannot_apply(kwargs):
    tf.keras.utils.set_random_seed(0)
    layer = ByteDropout(**kwargs)
    outputs = layer(tf.ones([400, 8]), training=True).numpy()
    kept = outputs != 0
    np.testing.assert_allclose(outputs[kept], 1 / (1 - kwargs["rate"]), rtol=1e-6)  # Keras' exact scale
    if "noise_shape" in kwargs:
        assert (kept.all(axis=1) | ~kept.any(axis=1)).all()  # one decision per row


def test_config_round_trip_and_works_in_a_graph():
    layer = ByteDropout(0.2, name="drop")
    clone = tf.keras.layers.deserialize(tf.keras.layers.serialize(layer))
    assert type(clone) is ByteDropout and clone.get_config() == layer.get_config()
    step = tf.function(lambda x: layer(x, training=True))
    assert step(tf.ones([3, 8])).shape == (3, 8)
    assert step(tf.ones([5, 3])).shape == (5, 3)  # a size that is not a multiple of 4


def test_drop_without_scale_leaves_the_scale_to_the_caller():
    inputs = tf.random.normal([30, 40])
    tf.keras.utils.set_random_seed(3)
    expected = ByteDropout(0.2)(inputs, training=True).numpy()
    tf.keras.utils.set_random_seed(3)
    dropped, scale = ByteDropout(0.2).drop_without_scale(inputs, training=True)
    assert float(scale) == pytest.approx(256 / (256 - 51))
    np.testing.assert_allclose(dropped.numpy()[expected != 0], inputs.numpy()[expected != 0])
    np.testing.assert_allclose((dropped * scale).numpy(), expected, rtol=1e-6)
    kept, none = ByteDropout(0.2).drop_without_scale(inputs, training=False)
    assert none is None and kept is inputs


def test_attention_output_is_the_dropped_weights_times_the_values_times_the_scale():
    from tf_attnrec.layers.attention import ScaledDotProductAttention

    query, value = tf.random.normal([2, 5, 4]), tf.random.normal([2, 5, 4])
    layer = ScaledDotProductAttention(dropout=0.3, causal=True)
    _, weights = layer(query, value, return_attention_scores=True, training=False)
    tf.keras.utils.set_random_seed(5)
    output = layer(query, value, training=True).numpy()
    tf.keras.utils.set_random_seed(5)
    expected = ByteDropout(0.3)(weights, training=True) @ value
    np.testing.assert_allclose(output, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(output, (weights @ value).numpy())  # dropout did drop
