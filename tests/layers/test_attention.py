"""Tests for ScaledDotProductAttention."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401
import tensorflow as tf

from tests.layers import _reference as ref
from tf_attnrec.layers.attention import ScaledDotProductAttention

RNG = np.random.default_rng(0)
B, TQ, TV, D = 2, 4, 5, 3


def _inputs(tq=TQ, tv=TV, leading=()):
    q = RNG.normal(size=(B, *leading, tq, D)).astype(np.float32)
    k = RNG.normal(size=(B, *leading, tv, D)).astype(np.float32)
    v = RNG.normal(size=(B, *leading, tv, D + 1)).astype(np.float32)
    return q, k, v


# Row 1 of batch 0 masks every key (explicit mask), batch 1 has padded keys and queries.
QUERY_MASK = np.array([[1, 1, 1, 1], [0, 1, 1, 1]], bool)
VALUE_MASK = np.array([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]], bool)
EXPLICIT = RNG.random((B, TQ, TV)) > 0.3
EXPLICIT[0, 1] = False


@pytest.mark.parametrize(
    "kwargs, causal",
    [
        ({}, False),
        ({"query_mask": QUERY_MASK, "value_mask": VALUE_MASK}, False),
        ({"value_mask": VALUE_MASK}, True),
        ({"mask": EXPLICIT, "query_mask": QUERY_MASK, "value_mask": VALUE_MASK}, True),
    ],
    ids=["none", "padding", "causal+padding", "explicit+causal+padding"],
)
def test_matches_numpy_reference(kwargs, causal):
    q, k, v = _inputs()
    full = np.ones([B, TQ, TV], bool)
    if "mask" in kwargs:
        full &= kwargs["mask"]
    if "query_mask" in kwargs:
        full &= kwargs["query_mask"][:, :, None]
    if "value_mask" in kwargs:
        full &= kwargs["value_mask"][:, None, :]
    if causal:
        full &= ref.causal_mask(TQ, TV)
    expected_out, expected_w = ref.attention(q, k, v, full)

    layer = ScaledDotProductAttention(causal=causal)
    out, weights = layer(q, v, key=k, return_attention_scores=True,
                         **{name: tf.constant(m) for name, m in kwargs.items()})
    np.testing.assert_allclose(weights.numpy(), expected_w, atol=1e-5)
    np.testing.assert_allclose(out.numpy(), expected_out, atol=1e-5)
    assert not np.any(np.isnan(out.numpy()))
    fully_masked = ~full.any(-1)
    assert fully_masked.sum() >= (1 if kwargs else 0)
    np.testing.assert_array_equal(out.numpy()[fully_masked], 0.0)


def test_extra_leading_head_dims_with_per_head_mask():
    heads = 2
    q, k, v = _inputs(leading=(heads,))
    per_head = RNG.random((B, heads, TQ, TV)) > 0.4
    out, weights = ScaledDotProductAttention()(
        q, v, key=k, mask=per_head, value_mask=VALUE_MASK, return_attention_scores=True)
    full = per_head & VALUE_MASK[:, None, None, :]
    expected_out, expected_w = ref.attention(q, k, v, full)
    assert out.shape == (B, heads, TQ, D + 1)
    np.testing.assert_allclose(weights.numpy(), expected_w, atol=1e-5)
    np.testing.assert_allclose(out.numpy(), expected_out, atol=1e-5)


def test_fully_masked_row_has_zero_output_and_zero_finite_gradient():
    q, k, v = (tf.constant(t) for t in _inputs())
    value_mask = tf.constant([[0, 0, 0, 0, 0], [1, 1, 0, 0, 0]]) > 0
    layer = ScaledDotProductAttention()
    with tf.GradientTape() as tape:
        tape.watch([q, k, v])
        out = layer(q, v, key=k, value_mask=value_mask)
        loss = tf.reduce_sum(out ** 2) + tf.reduce_sum(out)
    grads = tape.gradient(loss, [q, k, v])
    np.testing.assert_array_equal(out.numpy()[0], 0.0)
    for grad in grads:
        assert np.all(np.isfinite(grad.numpy()))
    np.testing.assert_array_equal(grads[0].numpy()[0], 0.0)  # batch 0 sees no key
    assert np.any(grads[0].numpy()[1] != 0)


def test_padding_invariance():
    q, k, v = _inputs()
    layer = ScaledDotProductAttention()
    out = layer(q, v, key=k, query_mask=QUERY_MASK, value_mask=VALUE_MASK).numpy()
    k2, v2, q2 = k.copy(), v.copy(), q.copy()
    k2[~VALUE_MASK] = 1e4  # huge values at padded keys would dominate if they leaked
    v2[~VALUE_MASK] = -7.0
    q2[~QUERY_MASK] = 3.0
    out2 = layer(q2, v2, key=k2, query_mask=QUERY_MASK, value_mask=VALUE_MASK).numpy()
    np.testing.assert_allclose(out2[QUERY_MASK], out[QUERY_MASK], atol=1e-6)
    np.testing.assert_array_equal(out2[~QUERY_MASK], 0.0)


def test_causality():
    t = 5
    x = RNG.normal(size=(B, t, D)).astype(np.float32)
    layer = ScaledDotProductAttention(causal=True)
    out = layer(x, x).numpy()
    for step in range(t - 1):
        changed = x.copy()
        changed[:, step + 1:] = RNG.normal(size=changed[:, step + 1:].shape)
        out2 = layer(changed, changed).numpy()
        np.testing.assert_allclose(out2[:, :step + 1], out[:, :step + 1], atol=1e-6)
        assert not np.allclose(out2[:, step + 1:], out[:, step + 1:])
    # Without causal masking the first position does see the future.
    bidirectional = ScaledDotProductAttention()
    changed = x.copy()
    changed[:, -1] += 1.0
    assert not np.allclose(bidirectional(changed, changed).numpy()[:, 0],
                           bidirectional(x, x).numpy()[:, 0])


def test_dropout_only_in_training_and_weights_before_dropout():
    q, k, v = _inputs()
    layer = ScaledDotProductAttention(dropout=0.5)
    inference, w_inf = layer(q, v, key=k, training=False, return_attention_scores=True)
    again = layer(q, v, key=k, training=False)
    np.testing.assert_array_equal(inference.numpy(), again.numpy())
    tf.random.set_seed(1)
    trained, w_train = layer(q, v, key=k, training=True, return_attention_scores=True)
    assert not np.allclose(trained.numpy(), inference.numpy())
    np.testing.assert_allclose(w_train.numpy(), w_inf.numpy(), atol=1e-6)


def test_keras_masks_are_picked_up():
    ids = tf.constant([[0, 3, 4, 5], [0, 0, 2, 6]])
    x = tf.keras.layers.Embedding(10, D, mask_zero=True)(ids)
    assert x._keras_mask is not None
    layer = ScaledDotProductAttention()
    implicit = layer(x, x).numpy()
    explicit = layer(tf.identity(x), tf.identity(x),
                     query_mask=ids != 0, value_mask=ids != 0).numpy()
    np.testing.assert_allclose(implicit, explicit, atol=1e-6)
    unmasked = layer(tf.identity(x), tf.identity(x)).numpy()
    assert not np.allclose(unmasked[0, 1:], implicit[0, 1:])
    # In a functional model Keras hands the query mask to `mask=` as a new tensor.
    inputs = tf.keras.Input([None], dtype=tf.int32)
    embedded = tf.keras.layers.Embedding(10, D, mask_zero=True)
    model = tf.keras.Model(inputs, layer(embedded(inputs), embedded(inputs)))
    embedded.set_weights([x_table := np.random.default_rng(5).normal(size=(10, D))])
    expected = layer(tf.gather(x_table, ids), tf.gather(x_table, ids),
                     query_mask=ids != 0, value_mask=ids != 0).numpy()
    np.testing.assert_allclose(model(ids).numpy(), expected, atol=1e-6)


def test_config_round_trip():
    q, k, v = _inputs()
    layer = ScaledDotProductAttention(dropout=0.25, causal=True, name="sdpa")
    ref.assert_config_round_trip(layer, lambda l: l(q, v, key=k, value_mask=VALUE_MASK))
    assert layer.get_config()["causal"] is True
    assert layer.get_config()["dropout"] == 0.25


def test_mixed_float16_is_finite_with_fully_masked_rows():
    q, k, v = _inputs()
    with ref.mixed_precision():
        layer = ScaledDotProductAttention(causal=True)
        out, weights = layer(q * 30.0, v, key=k * 30.0, value_mask=VALUE_MASK,
                             return_attention_scores=True)
    assert out.dtype == tf.float16
    assert np.all(np.isfinite(out.numpy()))
    # Batch 1 row 0 (causal, first two keys padded) sees nothing.
    np.testing.assert_array_equal(out.numpy()[1, 0], 0.0)
    np.testing.assert_allclose(weights.numpy().astype(np.float32).sum(-1)[0], 1.0, atol=1e-2)


def test_traces_once_for_dynamic_batch_and_time():
    layer = ScaledDotProductAttention(causal=True)
    spec = tf.TensorSpec([None, None, D], tf.float32)

    @tf.function(input_signature=[spec, tf.TensorSpec([None, None], tf.bool)])
    def run(x, mask):
        return layer(x, x, value_mask=mask)

    for batch, length in ((2, 3), (1, 6)):
        x = RNG.normal(size=(batch, length, D)).astype(np.float32)
        mask = np.ones([batch, length], bool)
        mask[:, 0] = False
        expected = layer(x, x, value_mask=mask).numpy()
        np.testing.assert_allclose(run(x, mask).numpy(), expected, atol=1e-6)
    assert run.experimental_get_tracing_count() == 1


def test_bad_inputs_raise_clear_errors():
    q, k, v = _inputs()
    layer = ScaledDotProductAttention()
    with pytest.raises(ValueError, match=r"read as a \[batch, Tq\] query mask"):
        layer(q, v, mask=tf.ones([B, TV], tf.bool))
    with pytest.raises(ValueError, match="rank 3..3"):
        layer(q, v, mask=tf.ones([TV], tf.bool))
    with pytest.raises(ValueError, match="rank >= 3"):
        layer(q[:, 0], v[:, 0])
    with pytest.raises(ValueError, match="dropout=1.5"):
        ScaledDotProductAttention(dropout=1.5)


def test_bias_is_added_to_the_scores_before_masking_and_softmax():
    q, k, v = _inputs(leading=(2,))  # a head axis: the [B, Tq, Tv] bias broadcasts over it
    bias = RNG.normal(size=(B, TQ, TV)).astype(np.float32)
    mask = np.broadcast_to(VALUE_MASK[:, None, :], (B, TQ, TV))
    out, weights = ScaledDotProductAttention()(q, v, key=k, mask=tf.constant(mask), bias=tf.constant(bias),
                                               return_attention_scores=True)
    scores = q.astype(np.float64) @ np.swapaxes(k, -1, -2) / np.sqrt(D) + bias[:, None]
    expected = ref.masked_softmax(scores, mask[:, None])
    np.testing.assert_allclose(weights.numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(out.numpy(), expected @ v, atol=1e-5)
    plain = ScaledDotProductAttention()(q, v, key=k, mask=tf.constant(mask)).numpy()
    assert not np.allclose(plain, out.numpy(), atol=1e-4)


def test_log_count_bias_over_distinct_keys_equals_attention_over_repeated_keys():
    """What GC-SAN's per-prefix attention relies on: a key repeated n times == the key once + log n."""
    q, k, v = _inputs()
    repeats = np.array([1, 3, 1, 2, 1])
    expanded = ScaledDotProductAttention()(q, np.repeat(v, repeats, axis=1), key=np.repeat(k, repeats, axis=1))
    biased = ScaledDotProductAttention()(q, v, key=k, bias=np.log(repeats, dtype=np.float32)[None, None, :])
    np.testing.assert_allclose(biased.numpy(), expanded.numpy(), rtol=1e-5, atol=1e-6)
