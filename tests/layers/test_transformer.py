"""Tests for TransformerBlock."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401
import tensorflow as tf

from tests.layers import _reference as ref
from tf_attnrec.layers.transformer import TransformerBlock

RNG = np.random.default_rng(2)
B, T, D, HEADS = 2, 5, 8, 2
MASK = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], bool)  # left padding


def _x():
    return RNG.normal(size=(B, T, D)).astype(np.float32)


def _randomize(layer):
    """Non-trivial LayerNorm scales/offsets and biases so every weight matters."""
    layer.set_weights([RNG.normal(scale=0.3, size=w.shape).astype(np.float32) + (
        1.0 if "gamma" in v.name else 0.0) for w, v in zip(layer.get_weights(), layer.weights)])


def _reference_block(layer, x, mask):
    """NumPy forward pass of the block from its own weights (pre- or post-LN)."""
    weights = {v.name.split("/", 1)[1]: w for v, w in zip(layer.weights, layer.get_weights())}
    mha = [weights[f"self_attention/{n}"] for n in (
        "query/kernel:0", "query/bias:0", "key/kernel:0", "key/bias:0",
        "value/kernel:0", "value/bias:0", "attention_output/kernel:0",
        "attention_output/bias:0")]
    eps = layer.layer_norm_epsilon

    def norm(z, which):
        return ref.layer_norm(z, weights[f"{which}/gamma:0"], weights[f"{which}/beta:0"], eps)

    def attend(z):
        full = mask[:, :, None] & mask[:, None, :]
        if layer.causal:
            full = full & ref.causal_mask(T, T)
        return ref.multi_head_attention(z, z, mha, layer.num_heads, full)[0]

    def feed_forward(z):
        inner = z @ weights["feed_forward_inner/kernel:0"] + weights["feed_forward_inner/bias:0"]
        inner = np.maximum(inner, 0.0)  # tests use relu
        return inner @ weights["feed_forward_outer/kernel:0"] + weights["feed_forward_outer/bias:0"]

    if layer.norm_first:
        h = x + attend(norm(x, "attention_norm"))
        y = h + feed_forward(norm(h, "feed_forward_norm"))
    else:
        h = norm(x + attend(x), "attention_norm")
        y = norm(h + feed_forward(h), "feed_forward_norm")
    return y * mask[..., None]


@pytest.mark.parametrize("norm_first, causal", [(True, True), (False, False)])
def test_matches_numpy_reference(norm_first, causal):
    x = _x()
    layer = TransformerBlock(HEADS, D, ff_dim=12, ff_activation="relu",
                             norm_first=norm_first, causal=causal)
    layer(x, mask=MASK)
    _randomize(layer)
    out = layer(x, mask=MASK).numpy()
    np.testing.assert_allclose(out, _reference_block(layer, x, MASK), atol=1e-4)
    assert layer.feed_forward_inner.kernel.shape == (D, 12)


@pytest.mark.parametrize("norm_first", [True, False])
def test_padding_never_leaks_and_padded_outputs_are_zero(norm_first):
    x = _x()
    layer = TransformerBlock(HEADS, D, norm_first=norm_first)
    out = layer(x, mask=MASK).numpy()
    changed = x.copy()
    changed[~MASK] = 1e3
    out2 = layer(changed, mask=MASK).numpy()
    np.testing.assert_allclose(out2[MASK], out[MASK], atol=1e-4)
    np.testing.assert_array_equal(out2[~MASK], 0.0)
    assert np.all(out[MASK].any(-1))


def test_causal_block_never_sees_the_future_and_bidirectional_does():
    x = _x()
    causal = TransformerBlock(HEADS, D, causal=True)
    bidirectional = TransformerBlock(HEADS, D, causal=False)
    out_c, out_b = causal(x).numpy(), bidirectional(x).numpy()
    for step in range(T - 1):
        changed = x.copy()
        # Random change (a constant shift would be removed by LayerNorm).
        changed[:, step + 1:] += RNG.normal(size=changed[:, step + 1:].shape)
        np.testing.assert_allclose(causal(changed).numpy()[:, :step + 1],
                                   out_c[:, :step + 1], atol=1e-5)
        assert not np.allclose(bidirectional(changed).numpy()[:, :step + 1],
                               out_b[:, :step + 1], atol=1e-5)


@pytest.mark.parametrize("norm_first", [True, False])
def test_one_query_over_its_masked_context_equals_causal_self_attention(norm_first):
    """`context=`: row (b, t) attends over `x[b]` masked to `<= t`, the causal output at t."""
    layer = TransformerBlock(HEADS, D, ff_activation="relu", norm_first=norm_first, causal=True)
    x = _x()
    layer(x, mask=MASK)
    _randomize(layer)
    expected = layer(x, mask=MASK).numpy()
    visible = MASK[:, None, :] & np.tril(np.ones([T, T], bool))[None]  # [B, t, j]
    rows = layer(
        x.reshape(B * T, 1, D), mask=MASK.reshape(B * T, 1),
        context=np.repeat(x, T, axis=0), context_mask=visible.reshape(B * T, T),
    ).numpy()
    np.testing.assert_allclose(rows.reshape(B, T, D), expected, rtol=1e-5, atol=1e-5)
    # One row per sequence with a per-query [B, T, S] context mask gives the same.
    per_query = layer(x, mask=MASK, context=x, context_mask=visible).numpy()
    np.testing.assert_allclose(per_query, expected, rtol=1e-5, atol=1e-5)
    # The context decides what is seen: the whole sequence for every row is not causal.
    unmasked = layer(x.reshape(B * T, 1, D), context=np.repeat(x, T, axis=0)).numpy()
    assert not np.allclose(unmasked.reshape(B, T, D)[1, 0], expected[1, 0], atol=1e-4)


def test_pre_and_post_layer_norm_differ_and_post_ln_is_normalized():
    x = _x() * 3.0 + 1.0
    pre = TransformerBlock(HEADS, D, norm_first=True)
    post = TransformerBlock(HEADS, D, norm_first=False)
    pre(x)
    post(x)
    post.set_weights(pre.get_weights())
    out_pre, out_post = pre(x).numpy(), post(x).numpy()
    assert not np.allclose(out_pre, out_post, atol=1e-3)
    # Post-LN ends with LayerNorm (gamma=1, beta=0 at init): zero mean, unit variance.
    np.testing.assert_allclose(out_post.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(out_post.std(-1), 1.0, atol=1e-3)


def test_dropout_only_in_training():
    x = _x()
    layer = TransformerBlock(HEADS, D, dropout=0.3, attention_dropout=0.3)
    inference = layer(x, training=False).numpy()
    np.testing.assert_array_equal(layer(x, training=False).numpy(), inference)
    assert not np.allclose(layer(x, training=True).numpy(), inference)


def test_gradients_finite_and_nonzero_for_all_weights():
    x = _x()
    mask = MASK.copy()
    for norm_first in (True, False):
        layer = TransformerBlock(HEADS, D, norm_first=norm_first, causal=True, dropout=0.1)
        ref.assert_gradients_finite_and_nonzero(
            layer, lambda l: tf.reduce_sum(l(x, mask=mask, training=True) ** 2))


def test_mixed_float16():
    x = _x() * 10.0
    with ref.mixed_precision():
        layer = TransformerBlock(HEADS, D, causal=True)
        out = layer(x, mask=MASK)
    assert out.dtype == tf.float16
    assert np.all(np.isfinite(out.numpy()))
    np.testing.assert_array_equal(out.numpy()[~MASK], 0.0)


def test_config_round_trip():
    x = _x()
    layer = TransformerBlock(HEADS, D, ff_dim=16, ff_activation="relu", dropout=0.2,
                             attention_dropout=0.1, norm_first=False, causal=True,
                             layer_norm_epsilon=1e-5)
    ref.assert_config_round_trip(layer, lambda l: l(x, mask=MASK))
    config = layer.get_config()
    assert config["ff_dim"] == 16 and config["ff_activation"] == "relu"
    assert config["norm_first"] is False and config["causal"] is True
    assert TransformerBlock(HEADS, D).get_config()["ff_dim"] == 4 * D


def test_keras_mask_flows_through_stacked_blocks_with_dynamic_shapes():
    ids = tf.keras.Input([None], dtype=tf.int32)
    h = tf.keras.layers.Embedding(30, D, mask_zero=True)(ids)
    h = TransformerBlock(HEADS, D, causal=True)(h)
    h = TransformerBlock(HEADS, D, causal=True)(h)
    model = tf.keras.Model(ids, h)
    run = tf.function(model, input_signature=[tf.TensorSpec([None, None], tf.int32)])
    batch = tf.constant([[0, 0, 4, 5], [6, 7, 8, 9]], tf.int32)
    out = run(batch).numpy()
    np.testing.assert_array_equal(out[0, :2], 0.0)
    # Same history with less left padding (another time length, same trace): same outputs.
    shorter = run(tf.constant([[4, 5]], tf.int32)).numpy()
    np.testing.assert_allclose(shorter[0], out[0, 2:], atol=1e-5)
    assert run.experimental_get_tracing_count() == 1
    assert model(batch)._keras_mask.numpy().tolist() == [[False, False, True, True]] + [[True] * 4]


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        TransformerBlock(3, D)
    with pytest.raises(ValueError, match=r"\[batch, time, 8\]"):
        TransformerBlock(HEADS, D)(np.zeros([B, T, 6], np.float32))
