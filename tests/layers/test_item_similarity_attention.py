"""ItemSimilarityAttention (FISM / NAIS pooling): NumPy references, masking, smoothing, config."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec.layers.item_similarity import ItemSimilarityAttention

B, L, C, D, A = 3, 5, 4, 6, 3
MASK = np.array([[True, True, False, True, True], [False] * 5, [False, False, False, True, True]])


def inputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=[B, L, D]).astype(np.float32), rng.normal(size=[B, C, D]).astype(np.float32)


def reference(layer: ItemSimilarityAttention, history, candidates, mask) -> tuple[np.ndarray, np.ndarray]:
    """NAIS's formula, pair by pair, in float64."""
    history, candidates = np.float64(history), np.float64(candidates)
    scores, weights = np.zeros([B, C]), np.zeros([B, C, L])
    for b in range(B):
        real = np.flatnonzero(mask[b])
        for c in range(C):
            q = candidates[b, c]
            if layer.attention is None:
                logits = np.zeros(len(real))
            else:
                kernel, bias, projection = (np.float64(w.numpy()) for w in (layer.kernel, layer.bias, layer.projection))
                pairs = history[b, real] * q if layer.attention == "prod" else np.concatenate(
                    [history[b, real], np.repeat(q[None], len(real), 0)], axis=1)
                logits = np.maximum(pairs @ kernel + bias, 0.0) @ projection
            if len(real):
                a = np.exp(logits) / np.exp(logits).sum() ** layer.beta
                weights[b, c, real] = a
                scores[b, c] = (a * (history[b, real] @ q)).sum()
    return scores, weights


@pytest.mark.parametrize("attention", ["prod", "concat", None])
@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_matches_numpy_reference(attention, beta):
    layer = ItemSimilarityAttention(attention, attention_dim=A, beta=beta)
    history, candidates = inputs()
    scores, weights = layer(history, candidates, mask=MASK, return_attention=True)
    expected_scores, expected_weights = reference(layer, history, candidates, MASK)
    np.testing.assert_allclose(weights.numpy(), expected_weights, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(scores.numpy(), expected_scores, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("attention", ["prod", "concat", None])
def test_shared_candidates_equal_per_row_candidates(attention):
    layer = ItemSimilarityAttention(attention, attention_dim=A)
    history, candidates = inputs()
    shared = layer(history, candidates[0], mask=MASK).numpy()
    per_row = layer(history, np.repeat(candidates[:1], B, axis=0), mask=MASK).numpy()
    np.testing.assert_allclose(shared, per_row, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attention", ["prod", "concat", None])
def test_padding_never_changes_a_result(attention):
    layer = ItemSimilarityAttention(attention, attention_dim=A)
    history, candidates = inputs()
    scores = layer(history, candidates, mask=MASK).numpy()
    noisy = np.where(MASK[:, :, None], history, 1e3 * np.random.default_rng(1).normal(size=history.shape))
    np.testing.assert_allclose(layer(noisy.astype(np.float32), candidates, mask=MASK).numpy(), scores, rtol=1e-6)
    # Padding removed altogether: row 2 keeps only its last two positions.
    short = layer(history[2:, 3:], candidates[2:], mask=MASK[2:, 3:]).numpy()
    np.testing.assert_allclose(short, scores[2:], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attention", ["prod", "concat", None])
def test_fully_masked_row_scores_zero_without_nan(attention):
    layer = ItemSimilarityAttention(attention, attention_dim=A)
    history, candidates = inputs()
    scores, weights = layer(history, candidates, mask=MASK, return_attention=True)
    assert np.isfinite(scores.numpy()).all() and np.isfinite(weights.numpy()).all()
    assert (scores.numpy()[1] == 0).all() and (weights.numpy()[1] == 0).all()


def test_weights_are_a_softmax_at_beta_one_and_fism_normalises_by_length():
    history, candidates = inputs()
    _, weights = ItemSimilarityAttention("prod", A, beta=1.0)(history, candidates, mask=MASK, return_attention=True)
    np.testing.assert_allclose(weights.numpy().sum(-1), MASK.any(1)[:, None] * np.ones([B, C]), rtol=1e-5)
    _, fism = ItemSimilarityAttention(None, beta=0.5)(history, candidates, mask=MASK, return_attention=True)
    lengths = MASK.sum(1)
    expected = np.where(MASK, 1.0 / np.sqrt(np.maximum(lengths, 1))[:, None], 0.0)
    np.testing.assert_allclose(fism.numpy(), np.repeat(expected[:, None], C, 1), rtol=1e-6)


def test_smoothing_gives_long_histories_more_mass():
    """beta < 1: n equal items' weights sum to n^(1 - beta) times one item's (NAIS's point)."""
    layer = ItemSimilarityAttention("prod", A, beta=0.5)
    totals = {}
    for n in (1, 4, 16):
        _, weights = layer(np.ones([1, n, D], np.float32), np.ones([1, 1, D], np.float32), return_attention=True)
        totals[n] = weights.numpy().sum()
    assert totals[4] / totals[1] == pytest.approx(2.0, rel=1e-5)
    assert totals[16] / totals[1] == pytest.approx(4.0, rel=1e-5)


def test_weights_stay_finite_past_exp_overflow():
    """Logits above 88 overflow a float32 exp; the weights, computed in the log domain, do not."""
    layer = ItemSimilarityAttention("prod", A, beta=0.5)
    logits = np.array([[[90.0, 100.0, 150.0, -50.0, 0.0]]], np.float32)
    mask = np.array([[True, True, True, True, False]])
    weights = layer.weights_from_logits(tf.constant(logits), tf.constant(mask)).numpy()[0, 0]
    real = np.float64(logits[0, 0, :4])
    expected = np.exp(real - 0.5 * (real.max() + np.log(np.exp(real - real.max()).sum())))
    np.testing.assert_allclose(weights[:3], expected[:3], rtol=1e-5)
    assert 0 <= weights[3] < 1e-30 and weights[4] == 0  # exp(-125) underflows float32; padding is 0


def test_gradients_finite_and_nonzero():
    layer = ItemSimilarityAttention("prod", A, beta=0.5)
    history, candidates = (3.0 * x for x in inputs())
    history = tf.constant(history)
    with tf.GradientTape() as tape:
        tape.watch(history)
        scores = layer(history, candidates, mask=MASK)
    gradients = tape.gradient(scores, [history, *layer.trainable_weights])
    assert np.isfinite(scores.numpy()).all()
    assert all(np.isfinite(g.numpy()).all() and np.abs(g.numpy()).sum() > 0 for g in gradients)
    assert (gradients[0].numpy()[~MASK] == 0).all(), "padding gets no gradient"


@pytest.mark.parametrize("attention", ["prod", "concat", None])
def test_config_round_trip(attention):
    layer = ItemSimilarityAttention(attention, attention_dim=A, beta=0.3, name="sim")
    history, candidates = inputs()
    expected = layer(history, candidates, mask=MASK).numpy()
    clone = ItemSimilarityAttention.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone(history, candidates, mask=MASK)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(history, candidates, mask=MASK).numpy(), expected, rtol=1e-6)


def test_regularizer_round_trips_and_penalises_w_and_h_only():
    layer = ItemSimilarityAttention("prod", attention_dim=A, regularizer=tf.keras.regularizers.L2(0.1), name="sim")
    history, candidates = inputs()
    layer(history, candidates, mask=MASK)
    expected = 0.1 * (np.square(layer.kernel.numpy()).sum() + np.square(layer.projection.numpy()).sum())
    np.testing.assert_allclose(float(tf.add_n(layer.losses)), expected, rtol=1e-5)
    clone = ItemSimilarityAttention.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone(history, candidates, mask=MASK)
    assert len(clone.losses) == 2


@pytest.mark.parametrize("kwargs, match", [
    ({"attention": "dot"}, "`attention` must be one of"),
    ({"beta": 1.5}, "`beta`"),
    ({"beta": True}, "`beta`"),
    ({"attention_dim": 0}, "`attention_dim`"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ItemSimilarityAttention(**kwargs)
