"""Tests for MultiHeadAttention."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401
import tensorflow as tf

from tests.layers import _reference as ref
from tf_attnrec.layers.multi_head_attention import MultiHeadAttention

RNG = np.random.default_rng(1)
B, TQ, TV, D, H, KEY_DIM = 2, 4, 5, 6, 2, 3


def _inputs(tq=TQ, tv=TV):
    query = RNG.normal(size=(B, tq, D)).astype(np.float32)
    value = RNG.normal(size=(B, tv, D)).astype(np.float32)
    return query, value


def _random_weights(layer):
    """Give every weight (biases included) distinct random values."""
    layer.set_weights([RNG.normal(scale=0.5, size=w.shape).astype(np.float32)
                       for w in layer.get_weights()])


def _keras_twin(layer, query, value, **kwargs):
    keras_layer = tf.keras.layers.MultiHeadAttention(
        num_heads=layer.num_heads, key_dim=layer.key_dim, value_dim=layer.value_dim)
    keras_layer(query, value)
    keras_layer.set_weights(layer.get_weights())
    return keras_layer


def _attention_mask_without_empty_rows():
    mask = RNG.random((B, TQ, TV)) > 0.4
    mask[:, :, 2] = True  # Keras MHA averages empty rows uniformly; keep every row non-empty
    return mask


@pytest.mark.parametrize("case", ["no_mask", "attention_mask", "causal", "keras_masks"])
def test_matches_keras_multi_head_attention(case):
    query, value = _inputs(tv=TQ if case == "causal" else TV)
    layer = MultiHeadAttention(H, KEY_DIM, causal=case == "causal")
    layer(query, value)
    _random_weights(layer)
    keras_layer = _keras_twin(layer, query, value)
    if case == "no_mask":
        ours, theirs = layer(query, value), keras_layer(query, value)
    elif case == "attention_mask":
        mask = _attention_mask_without_empty_rows()
        ours = layer(query, value, attention_mask=mask)
        theirs = keras_layer(query, value, attention_mask=mask)
    elif case == "causal":
        ours = layer(query, value)
        theirs = keras_layer(query, value, use_causal_mask=True)
    else:
        ids = tf.constant([[4, 5, 6, 7, 8], [0, 0, 3, 3, 9]])
        value_t = tf.keras.layers.Embedding(10, D, mask_zero=True)(ids)
        query_t = tf.constant(query)
        ours, theirs = layer(query_t, value_t), keras_layer(query_t, value_t)
        assert not np.allclose(ours.numpy(), layer(query_t, tf.identity(value_t)).numpy())
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5)


def test_matches_numpy_reference_with_masks_and_empty_rows():
    query, value = _inputs()
    layer = MultiHeadAttention(H, KEY_DIM, causal=True)
    layer(query, value)
    _random_weights(layer)
    attention_mask = RNG.random((B, TQ, TV)) > 0.3
    attention_mask[0, 2] = False  # an empty row
    query_mask = np.array([[1, 1, 1, 1], [0, 1, 1, 1]], bool)
    value_mask = np.array([[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]], bool)
    out, weights = layer(query, value, attention_mask=attention_mask, query_mask=query_mask,
                         value_mask=value_mask, return_attention_scores=True)
    full = (attention_mask & query_mask[:, :, None] & value_mask[:, None, :]
            & ref.causal_mask(TQ, TV))
    expected_out, expected_w = ref.multi_head_attention(
        query, value, layer.get_weights(), H, full)
    assert weights.shape == (B, H, TQ, TV)
    np.testing.assert_allclose(weights.numpy(), expected_w, atol=1e-5)
    np.testing.assert_allclose(out.numpy(), expected_out, atol=1e-5)
    assert (~full.any(-1)).sum() >= 2
    np.testing.assert_array_equal(out.numpy()[~full.any(-1)], 0.0)


def test_value_dim_and_output_shape():
    query, value = _inputs()
    layer = MultiHeadAttention(H, KEY_DIM, value_dim=4, output_shape=7)
    out, weights = layer(query, value, key=value[:, :, :3], return_attention_scores=True)
    assert out.shape == (B, TQ, 7)
    assert weights.shape == (B, H, TQ, TV)
    np.testing.assert_allclose(weights.numpy().sum(-1), 1.0, atol=1e-5)
    assert [tuple(w.shape) for w in layer.weights] == [
        (D, H, KEY_DIM), (H, KEY_DIM), (3, H, KEY_DIM), (H, KEY_DIM),
        (D, H, 4), (H, 4), (H, 4, 7), (7,)]
    assert len({w.name for w in layer.weights}) == len(layer.weights)


def test_seeded_initializer_draws_each_kernel_independently():
    query, _ = _inputs()
    seeded = tf.keras.initializers.GlorotUniform(seed=3)
    layer = MultiHeadAttention(H, KEY_DIM, kernel_initializer=seeded)
    layer(query, query)
    wq, _, wk, _, wv, _, _, _ = layer.get_weights()
    assert not np.allclose(wq, wk) and not np.allclose(wk, wv) and not np.allclose(wq, wv)
    # Deterministic given the seed.
    again = MultiHeadAttention(H, KEY_DIM, kernel_initializer=seeded)
    again(query, query)
    np.testing.assert_array_equal(again.get_weights()[0], wq)


def test_padding_invariance():
    query, value = _inputs()
    query_mask = np.array([[0, 1, 1, 1], [0, 0, 1, 1]], bool)
    value_mask = np.array([[0, 1, 1, 1, 1], [0, 0, 0, 1, 1]], bool)
    layer = MultiHeadAttention(H, KEY_DIM)
    out = layer(query, value, query_mask=query_mask, value_mask=value_mask).numpy()
    query2, value2 = query.copy(), value.copy()
    query2[~query_mask] = 50.0
    value2[~value_mask] = -50.0
    out2 = layer(query2, value2, query_mask=query_mask, value_mask=value_mask).numpy()
    np.testing.assert_allclose(out2[query_mask], out[query_mask], atol=1e-5)
    np.testing.assert_array_equal(out2[~query_mask], 0.0)


def test_causality():
    x, _ = _inputs(tq=5)
    layer = MultiHeadAttention(H, KEY_DIM, causal=True)
    out = layer(x, x).numpy()
    for step in range(4):
        changed = x.copy()
        changed[:, step + 1:] += RNG.normal(size=changed[:, step + 1:].shape)
        out2 = layer(changed, changed).numpy()
        np.testing.assert_allclose(out2[:, :step + 1], out[:, :step + 1], atol=1e-5)
        assert not np.allclose(out2[:, step + 1:], out[:, step + 1:])


def test_use_causal_mask_overrides_the_layer_setting_per_call():
    x, _ = _inputs(tq=5)
    causal, free = MultiHeadAttention(H, KEY_DIM, causal=True), MultiHeadAttention(H, KEY_DIM)
    causal(x, x)
    free(x, x)
    free.set_weights(causal.get_weights())
    np.testing.assert_allclose(causal(x, x, use_causal_mask=False).numpy(), free(x, x).numpy(), atol=1e-6)
    np.testing.assert_allclose(free(x, x, use_causal_mask=True).numpy(), causal(x, x).numpy(), atol=1e-6)
    assert not np.allclose(causal(x, x).numpy(), free(x, x).numpy(), atol=1e-4)


def test_attention_bias_reaches_every_head():
    query, value = _inputs()
    layer = MultiHeadAttention(H, KEY_DIM)
    layer(query, value)
    _random_weights(layer)
    # A large negative bias on a key acts like masking it, in every head.
    bias = np.zeros((B, TQ, TV), np.float32)
    bias[:, :, 1] = -1e9
    mask = np.ones((B, TQ, TV), bool)
    mask[:, :, 1] = False
    out, weights = layer(query, value, attention_bias=bias, return_attention_scores=True)
    masked = layer(query, value, attention_mask=mask).numpy()
    np.testing.assert_allclose(out.numpy(), masked, atol=1e-5)
    np.testing.assert_array_equal(weights.numpy()[:, :, :, 1], 0.0)
    assert not np.allclose(layer(query, value).numpy(), masked, atol=1e-4)


def test_gradients_finite_and_nonzero_for_all_weights():
    query, value = _inputs()
    layer = MultiHeadAttention(H, KEY_DIM, causal=True, dropout=0.1)
    value_mask = np.array([[1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], bool)  # batch 1 fully masked
    ref.assert_gradients_finite_and_nonzero(
        layer, lambda l: tf.reduce_sum(
            l(query, value, value_mask=value_mask, training=True) ** 2))


def test_mixed_float16():
    query, value = _inputs()
    with ref.mixed_precision():
        layer = MultiHeadAttention(H, KEY_DIM, causal=True)
        out, weights = layer(query * 100.0, value,
                             value_mask=np.array([[1] * 5, [0] * 5], bool),
                             return_attention_scores=True)
    assert out.dtype == tf.float16 and layer.weights[0].dtype == tf.float32
    assert np.all(np.isfinite(out.numpy())) and np.all(np.isfinite(weights.numpy()))
    np.testing.assert_array_equal(out.numpy()[1], 0.0)


def test_config_round_trip():
    query, value = _inputs()
    layer = MultiHeadAttention(
        H, KEY_DIM, value_dim=2, dropout=0.1, use_bias=False, output_shape=5, causal=True,
        kernel_initializer=tf.keras.initializers.TruncatedNormal(stddev=0.1, seed=4),
        kernel_regularizer="l2")
    ref.assert_config_round_trip(layer, lambda l: l(query, value))
    config = layer.get_config()
    assert config["output_shape"] == 5 and config["use_bias"] is False
    assert config["causal"] is True and config["value_dim"] == 2


def test_functional_model_with_dynamic_batch_and_time():
    ids = tf.keras.Input([None], dtype=tf.int32)
    x = tf.keras.layers.Embedding(20, D, mask_zero=True)(ids)
    out = MultiHeadAttention(H, KEY_DIM, causal=True)(x, x)
    model = tf.keras.Model(ids, out)
    model_fn = tf.function(model, input_signature=[tf.TensorSpec([None, None], tf.int32)])
    for batch_ids in ([[0, 3, 4], [5, 6, 7]], [[0, 0, 1, 2, 9]]):
        batch_ids = tf.constant(batch_ids, tf.int32)
        np.testing.assert_allclose(model_fn(batch_ids).numpy(), model(batch_ids).numpy(),
                                   atol=1e-6)
    clone = tf.keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(batch_ids).numpy(), model(batch_ids).numpy(), atol=1e-6)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="num_heads=0"):
        MultiHeadAttention(0, KEY_DIM)
    query, value = _inputs()
    with pytest.raises(ValueError, match="query_mask= or"):
        MultiHeadAttention(H, KEY_DIM)(query, value, attention_mask=np.ones([B, TV], bool))
    with pytest.raises(ValueError, match="rank 3"):
        MultiHeadAttention(H, KEY_DIM)(query[:, 0], value[:, 0])
