"""Tests for PositionEmbedding and ItemSequenceEmbedding."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tf_attnrec  # noqa: F401
import tensorflow as tf

from tests.layers import _reference as ref
from tf_attnrec.layers.embeddings import ItemSequenceEmbedding, PositionEmbedding

MAX_LEN, D, VOCAB = 6, 4, 12
IDS = np.array([[0, 0, 0, 5, 2, 7], [3, 4, 11, 1, 8, 9]], np.int32)


def test_sinusoidal_values_and_left_padded_alignment():
    layer = PositionEmbedding(MAX_LEN, kind="sinusoidal")
    full = layer(tf.zeros([2, MAX_LEN, D])).numpy()
    positions = np.arange(MAX_LEN)[:, None]
    expected = np.zeros([MAX_LEN, D])
    for i in range(0, D, 2):
        expected[:, i] = np.sin(positions[:, 0] / 10000 ** (i / D))
        expected[:, i + 1] = np.cos(positions[:, 0] / 10000 ** (i / D))
    np.testing.assert_allclose(full[0], expected, atol=1e-6)
    np.testing.assert_array_equal(full[0], full[1])
    # A shorter input ends at the same (most recent) position.
    short = layer(tf.zeros([1, 2, D])).numpy()
    np.testing.assert_array_equal(short[0], full[0, -2:])
    assert not layer.trainable_weights


def test_learned_positions_align_at_the_end_and_train():
    layer = PositionEmbedding(MAX_LEN, output_dim=D)
    full = layer(IDS).numpy()  # [B, T] ids work with output_dim
    np.testing.assert_array_equal(full[0], layer.position_embeddings.numpy())
    short = layer(IDS[:, -3:]).numpy()
    np.testing.assert_array_equal(short[1], full[1, -3:])
    ref.assert_gradients_finite_and_nonzero(
        layer, lambda l: tf.reduce_sum(l(tf.zeros([2, MAX_LEN, D])) ** 2))


def test_start_aligned_positions_count_the_real_items():
    layer = PositionEmbedding(MAX_LEN, output_dim=D, alignment="start")
    out = layer(IDS, mask=IDS != 0).numpy()
    table = layer.position_embeddings.numpy()
    np.testing.assert_array_equal(out[0, :3], 0.0)  # padding
    np.testing.assert_array_equal(out[0, 3:], table[:3])  # first real item gets index 0
    np.testing.assert_array_equal(out[1], table)
    # Without a mask every position is real: the plain index from the start.
    np.testing.assert_array_equal(layer(IDS[:, :2]).numpy()[0], table[:2])


@pytest.mark.parametrize("alignment", ["end", "start"])
def test_state_of_a_prefix_keeps_its_positions_only_when_start_aligned(alignment):
    layer = ItemSequenceEmbedding(VOCAB, D, MAX_LEN, position_alignment=alignment)
    full = layer(IDS[1:]).numpy()
    prefix = layer(IDS[1:, :3]).numpy()  # the first three items alone
    same = np.allclose(prefix[0], full[0, :3])
    assert same == (alignment == "start")


def test_position_embedding_rejects_too_long_sequences():
    layer = PositionEmbedding(MAX_LEN, kind="learned")
    with pytest.raises(ValueError, match="max_length=6"):
        layer(tf.zeros([1, MAX_LEN + 1, D]))

    @tf.function(input_signature=[tf.TensorSpec([None, None, D])])
    def run(x):
        return layer(x)

    with pytest.raises(tf.errors.InvalidArgumentError, match="max_length=6"):
        run(tf.zeros([1, MAX_LEN + 2, D]))
    with pytest.raises(ValueError, match="kind='rotary'"):
        PositionEmbedding(MAX_LEN, kind="rotary")


def test_item_sequence_embedding_values_mask_and_tied_table():
    layer = ItemSequenceEmbedding(VOCAB, D, MAX_LEN, position="learned")
    out = layer(IDS)
    table = layer.item_embeddings.embeddings
    assert tuple(table.shape) == (VOCAB, D)
    assert isinstance(layer.item_embeddings, tf.keras.layers.Embedding)
    positions = layer.position_embeddings.position_embeddings.numpy()
    expected = table.numpy()[IDS] * math.sqrt(D) + positions[None]
    expected *= (IDS != 0)[..., None]
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-6)
    np.testing.assert_array_equal(out._keras_mask.numpy(), IDS != 0)
    np.testing.assert_array_equal(out.numpy()[IDS == 0], 0.0)


def test_unscaled_without_positions():
    layer = ItemSequenceEmbedding(VOCAB, D, MAX_LEN, position=None, scale=False)
    out = layer(IDS).numpy()
    np.testing.assert_array_equal(out, layer.item_embeddings.embeddings.numpy()[IDS]
                                  * (IDS != 0)[..., None])


@pytest.mark.parametrize("position", ["learned", "sinusoidal"])
def test_more_left_padding_gives_the_same_real_outputs(position):
    layer = ItemSequenceEmbedding(VOCAB, D, MAX_LEN, position=position)
    padded = layer(np.array([[0, 0, 0, 5, 2, 7]], np.int32)).numpy()
    unpadded = layer(np.array([[5, 2, 7]], np.int32)).numpy()
    np.testing.assert_allclose(padded[0, 3:], unpadded[0], atol=1e-6)


def test_dropout_only_in_training():
    layer = ItemSequenceEmbedding(VOCAB, D, MAX_LEN, dropout=0.5)
    inference = layer(IDS, training=False).numpy()
    np.testing.assert_array_equal(layer(IDS).numpy(), inference)
    assert not np.allclose(layer(IDS, training=True).numpy(), inference)


def test_gradients_finite_and_nonzero():
    layer = ItemSequenceEmbedding(VOCAB, D, MAX_LEN, position="learned", dropout=0.1)
    ref.assert_gradients_finite_and_nonzero(
        layer, lambda l: tf.reduce_sum(l(IDS, training=True) ** 2))


def test_mixed_float16():
    with ref.mixed_precision():
        layer = ItemSequenceEmbedding(VOCAB, D, MAX_LEN, position="sinusoidal")
        out = layer(IDS)
        positions = PositionEmbedding(MAX_LEN, output_dim=D, kind="sinusoidal")(IDS)
    assert out.dtype == tf.float16 and positions.dtype == tf.float16
    assert layer.item_embeddings.embeddings.dtype == tf.float32
    assert np.all(np.isfinite(out.numpy()))


@pytest.mark.parametrize("layer_fn", [
    lambda: PositionEmbedding(MAX_LEN, output_dim=D, kind="learned",
                              embeddings_initializer="random_normal", name="pos"),
    lambda: ItemSequenceEmbedding(VOCAB, D, MAX_LEN, position="learned", dropout=0.1,
                                  scale=False, embeddings_regularizer="l2"),
    lambda: ItemSequenceEmbedding(VOCAB, D, MAX_LEN, position_alignment="start"),
])
def test_config_round_trip(layer_fn):
    ref.assert_config_round_trip(layer_fn(), lambda l: l(IDS))


def test_seeded_initializer_gives_item_and_position_tables_different_draws():
    init = tf.keras.initializers.RandomUniform(seed=7)
    layer = ItemSequenceEmbedding(MAX_LEN, D, MAX_LEN, embeddings_initializer=init)
    layer(IDS[:, :MAX_LEN] % MAX_LEN)
    assert not np.allclose(layer.item_embeddings.embeddings.numpy(),
                           layer.position_embeddings.position_embeddings.numpy())


def test_functional_model_with_dynamic_shapes_and_serialization():
    ids = tf.keras.Input([None], dtype=tf.int32)
    out = ItemSequenceEmbedding(VOCAB, D, MAX_LEN, position="sinusoidal")(ids)
    model = tf.keras.Model(ids, out)
    run = tf.function(model, input_signature=[tf.TensorSpec([None, None], tf.int32)])
    for batch in (IDS, IDS[:1, -2:]):
        np.testing.assert_allclose(run(batch).numpy(), model(batch).numpy(), atol=1e-6)
    assert run.experimental_get_tracing_count() == 1
    clone = tf.keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone(IDS).numpy(), model(IDS).numpy())


def test_bad_ids_and_arguments_raise_clear_errors():
    layer = ItemSequenceEmbedding(VOCAB, D, MAX_LEN)
    with pytest.raises(tf.errors.InvalidArgumentError, match="vocab_size=12"):
        layer(np.array([[0, 12]], np.int32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="negative item id"):
        layer(np.array([[0, -1]], np.int32))
    with pytest.raises(TypeError, match="integer item ids"):
        layer(np.array([[0.0, 2.0]], np.float32))
    with pytest.raises(ValueError, match="max_length=6"):
        layer(np.ones([1, MAX_LEN + 1], np.int32))
    with pytest.raises(ValueError, match="position='absolute'"):
        ItemSequenceEmbedding(VOCAB, D, MAX_LEN, position="absolute")
    with pytest.raises(ValueError, match="vocab_size=2"):
        ItemSequenceEmbedding(2, D, MAX_LEN)
    with pytest.raises(ValueError, match="position_alignment='left'"):
        ItemSequenceEmbedding(VOCAB, D, MAX_LEN, position_alignment="left")
    with pytest.raises(ValueError, match="alignment='left'"):
        PositionEmbedding(MAX_LEN, alignment="left")
