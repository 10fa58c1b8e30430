"""Tests for tf_attnrec.layers.graph_sage.GraphSAGE (sampled-neighbourhood aggregation)."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tests.layers import _reference as ref
from tf_attnrec.layers.graph_sage import GraphSAGE

B, S, D, UNITS = 3, 4, 5, 3
# Row 0 fully real, row 1 with padding between real neighbours, row 2 isolated (all padding).
MASK = np.array([[1, 1, 1, 1], [1, 0, 1, 0], [0, 0, 0, 0]], dtype=bool)
AGGREGATORS = ("mean", "max_pool", "attention")


def _inputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(B, D)).astype(np.float32),
        rng.normal(size=(B, S, D)).astype(np.float32),
    )


def _built(seed: int = 3, **kwargs) -> GraphSAGE:
    """A built layer whose weights (biases included) are all random, so tests can fail."""
    layer = GraphSAGE(UNITS, **kwargs)
    nodes, neighbours = _inputs()
    layer(nodes, neighbours, mask=MASK)
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(scale=0.7, size=w.shape).astype(np.float32)
                       for w in layer.get_weights()])
    return layer


def _with_garbage(neighbours: np.ndarray) -> np.ndarray:
    """`neighbours` with huge, inf and NaN values at the padded slots of MASK."""
    dirty = neighbours.copy()
    padded = int((~MASK).sum())
    dirty[~MASK] = np.random.default_rng(1).normal(scale=1e4, size=(padded, D))
    dirty[1, 1] = np.inf
    dirty[2, 0] = np.nan
    dirty[2, 3] = -np.inf
    return dirty


def _numpy_graph_sage(layer: GraphSAGE, nodes, neighbours, mask):
    """Reimplementation of the paper's layer with the layer's weights (float64)."""
    nodes, neighbours = np.float64(nodes), np.float64(neighbours)
    weights = {w.name.split("/")[-1].split(":")[0]: np.float64(w.numpy()) for w in layer.weights}
    aggregated = np.zeros((B, layer.pool_units or D) if layer.aggregator == "max_pool" else (B, D))
    attention = None
    if layer.aggregator == "attention":
        hidden = np.tanh(neighbours @ weights["attention_key_kernel"]
                         + (nodes @ weights["attention_query_kernel"])[:, None, :]
                         + weights["attention_bias"])
        attention = ref.masked_softmax((hidden @ weights["attention_vector"])[..., 0], mask)
        # Padding may hold garbage: weight 0 times inf would still be NaN, so sum real ones.
        aggregated = np.stack([attention[b, mask[b]] @ neighbours[b, mask[b]] for b in range(B)])
    for b in range(B):
        real = neighbours[b, mask[b]]
        if not len(real) or layer.aggregator == "attention":
            continue
        if layer.aggregator == "mean":
            aggregated[b] = real.mean(axis=0)
        else:
            aggregated[b] = np.maximum(real @ weights["pool_kernel"] + weights["pool_bias"],
                                       0.0).max(axis=0)
    out = np.concatenate([nodes, aggregated], axis=-1) @ weights["kernel"]
    if layer.use_bias:
        out = out + weights["bias"]
    activation = tf.keras.activations.serialize(layer.activation)
    out = {"relu": lambda z: np.maximum(z, 0.0), "linear": lambda z: z, "tanh": np.tanh}[
        activation](out)
    if layer.normalize:
        norm = np.linalg.norm(out, axis=-1, keepdims=True)
        out = np.divide(out, norm, out=np.zeros_like(out), where=norm > 0)
    return out, attention


@pytest.mark.parametrize(
    "kwargs",
    [
        {"aggregator": "mean"},
        {"aggregator": "max_pool"},
        {"aggregator": "attention"},
        {"aggregator": "mean", "activation": None, "normalize": False, "use_bias": False},
        {"aggregator": "max_pool", "activation": "tanh", "pool_units": 7},
        {"aggregator": "attention", "activation": None, "attention_units": 2},
    ],
    ids=["mean", "max_pool", "attention", "mean-linear-raw", "max_pool-tanh-7",
         "attention-linear-2"],
)
def test_matches_numpy_reference(kwargs):
    nodes, neighbours = _inputs()
    layer = _built(**kwargs)
    expected, expected_weights = _numpy_graph_sage(layer, nodes, neighbours, MASK)
    if layer.aggregator == "attention":
        out, weights = layer(nodes, neighbours, mask=MASK, return_attention_weights=True)
        np.testing.assert_allclose(weights.numpy(), expected_weights, rtol=1e-5, atol=1e-6)
    else:
        out = layer(nodes, neighbours, mask=MASK)
    assert out.shape == (B, UNITS)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)
    # The reference also holds without a mask (every neighbour real).
    np.testing.assert_allclose(layer(nodes, neighbours).numpy(),
                               _numpy_graph_sage(layer, nodes, neighbours, np.ones_like(MASK))[0],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("aggregator", AGGREGATORS)
def test_invariant_to_neighbour_order(aggregator):
    nodes, neighbours = _inputs()
    layer = _built(aggregator=aggregator, activation=None)
    out = layer(nodes, neighbours, mask=MASK).numpy()
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(S)
        permuted = layer(nodes, neighbours[:, order], mask=MASK[:, order]).numpy()
        np.testing.assert_allclose(permuted, out, rtol=1e-5, atol=1e-6)
    if aggregator == "attention":  # each neighbour keeps its own weight
        _, weights = layer(nodes, neighbours, mask=MASK, return_attention_weights=True)
        _, moved = layer(nodes, neighbours[:, order], mask=MASK[:, order],
                         return_attention_weights=True)
        np.testing.assert_allclose(moved.numpy(), weights.numpy()[:, order], rtol=1e-6)


@pytest.mark.parametrize("aggregator", AGGREGATORS)
def test_padding_never_changes_output(aggregator):
    nodes, neighbours = _inputs()
    layer = _built(aggregator=aggregator, activation=None)
    clean = layer(nodes, neighbours, mask=MASK).numpy()
    dirty = layer(nodes, _with_garbage(neighbours), mask=MASK).numpy()
    np.testing.assert_array_equal(dirty, clean)
    assert np.all(np.isfinite(clean[2]))  # the isolated node
    # Padding is really ignored, not the same by chance: treating it as real differs.
    assert not np.allclose(layer(nodes, neighbours).numpy()[1], clean[1], atol=1e-3)


@pytest.mark.parametrize("aggregator", AGGREGATORS)
def test_gradients_finite_and_nonzero_despite_garbage_padding(aggregator):
    nodes, neighbours = _inputs()
    dirty = _with_garbage(neighbours)
    layer = _built(aggregator=aggregator, activation=None)
    direction = np.random.default_rng(2).normal(size=(B, UNITS)).astype(np.float32)
    ref.assert_gradients_finite_and_nonzero(
        layer, lambda l: tf.reduce_sum(l(nodes, dirty, mask=MASK) * direction)
    )


def test_attention_weights_masked_and_normalised():
    nodes, neighbours = _inputs()
    layer = _built(aggregator="attention")
    _, weights = layer(nodes, _with_garbage(neighbours), mask=MASK, return_attention_weights=True)
    weights = weights.numpy()
    assert weights.shape == (B, S)
    assert np.all(weights[~MASK] == 0.0)
    assert np.all(weights[MASK] > 0.0)
    np.testing.assert_allclose(weights[:2].sum(axis=1), [1.0, 1.0], rtol=1e-6)
    np.testing.assert_array_equal(weights[2], np.zeros(S))  # isolated node: no weight at all


def test_keys_projected_once_per_table_row_give_the_same_result():
    # Neighbours gathered from a table: projecting the table once and gathering its keys must
    # equal projecting every gathered sample.
    rng = np.random.default_rng(3)
    table = tf.constant(rng.normal(size=(7, D)), tf.float32)
    rows = tf.constant(rng.integers(0, 7, size=(B, S)))
    nodes, _ = _inputs()
    layer = _built(aggregator="attention")
    plain, plain_weights = layer(nodes, tf.gather(table, rows), mask=MASK, return_attention_weights=True)
    keyed, keyed_weights = layer(nodes, tf.gather(table, rows), mask=MASK, return_attention_weights=True,
                                 neighbour_keys=tf.gather(layer.attention_keys(table), rows))
    np.testing.assert_allclose(keyed.numpy(), plain.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(keyed_weights.numpy(), plain_weights.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="`neighbour_keys` needs aggregator='attention'"):
        _built(aggregator="mean")(nodes, tf.gather(table, rows), neighbour_keys=tf.gather(table, rows))


@pytest.mark.parametrize("aggregator", AGGREGATORS)
def test_rows_reading_shared_neighbourhoods_equal_gathered_rows(aggregator):
    """`rows=`: output row n is node rows[n] with its own mask; outputs and every gradient
    equal the layer on the gathered [N, S, D] inputs."""
    rng = np.random.default_rng(4)
    nodes, neighbours = _inputs()
    rows = np.array([0, 2, 0, 1, 1, 0, 2], np.int32)
    row_mask = rng.random((len(rows), S)) > 0.4
    row_mask[3] = False  # a row that leaves out every neighbour: finite, h_neigh = 0
    dirty = neighbours.copy()
    dirty[2, 1] = np.inf  # read by no row (masked in both rows of node 2)
    row_mask[[1, 6], 1] = False
    layer = _built(aggregator=aggregator, activation="tanh")  # relu could zero whole rows
    x, shared = tf.constant(nodes), tf.constant(dirty)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, shared])
        fast = layer(x, shared, mask=row_mask, rows=rows)
        plain = layer(tf.gather(x, rows), tf.gather(tf.where(tf.math.is_finite(shared), shared, 0.0), rows), mask=row_mask)
        probe = np.random.default_rng(0).normal(size=(len(rows), UNITS))
        fast_loss, plain_loss = tf.reduce_sum(fast * probe), tf.reduce_sum(plain * probe)
    assert np.isfinite(fast.numpy()).all()
    np.testing.assert_allclose(fast.numpy(), plain.numpy(), rtol=1e-5, atol=1e-5)
    targets = [x, shared, *layer.trainable_weights]
    for got, want in zip(tape.gradient(fast_loss, targets), tape.gradient(plain_loss, targets), strict=True):
        np.testing.assert_allclose(tf.convert_to_tensor(got).numpy(), tf.convert_to_tensor(want).numpy(),
                                   rtol=1e-4, atol=1e-5)
    # Each row's own mask counts (the check can fail): rows 0 and 2 are node 0 with other masks.
    if not np.array_equal(row_mask[0], row_mask[2]):
        assert not np.allclose(fast.numpy()[0], fast.numpy()[2], atol=1e-5)
    if aggregator == "attention":
        _, weights = layer(x, shared, mask=row_mask, rows=rows, return_attention_weights=True)
        np.testing.assert_array_equal(weights.numpy()[~row_mask], 0.0)
        np.testing.assert_allclose(weights.numpy().sum(axis=1)[row_mask.any(axis=1)], 1.0, rtol=1e-5)


@pytest.mark.parametrize("aggregator", AGGREGATORS)
def test_isolated_node_is_finite_and_rows_are_unit_or_zero(aggregator):
    nodes, neighbours = _inputs()
    layer = _built(aggregator=aggregator)
    out = layer(nodes, _with_garbage(neighbours), mask=MASK).numpy()
    assert np.all(np.isfinite(out))
    # Row 2 has no real neighbour: its neighbourhood counts as zeros.
    zeros = np.zeros_like(neighbours)
    np.testing.assert_allclose(out[2], layer(nodes, zeros, mask=MASK).numpy()[2], rtol=1e-6)
    norms = np.linalg.norm(out, axis=-1)
    assert np.all((np.abs(norms - 1.0) < 1e-5) | (norms == 0.0))


def test_zero_output_row_stays_zero_when_normalised():
    nodes, neighbours = _inputs()
    layer = _built(aggregator="mean", use_bias=False)
    out = layer(np.zeros_like(nodes), np.zeros_like(neighbours), mask=MASK).numpy()
    np.testing.assert_array_equal(out, np.zeros((B, UNITS)))


def test_mask_defaults_to_keras_mask_then_all_real():
    ids = np.array([[3, 0, 4, 0], [1, 2, 5, 6]], np.int32)
    neighbours = tf.keras.layers.Embedding(10, D, mask_zero=True)(ids)
    nodes = tf.constant(_inputs()[0][:2])
    layer = _built(aggregator="attention", activation=None)
    explicit = layer(nodes, tf.identity(neighbours), mask=ids != 0).numpy()
    np.testing.assert_allclose(layer(nodes, neighbours).numpy(), explicit, rtol=1e-6)
    all_real = layer(nodes, tf.identity(neighbours), mask=np.ones_like(ids, bool)).numpy()
    np.testing.assert_allclose(layer(nodes, tf.identity(neighbours)).numpy(), all_real, rtol=1e-6)
    assert not np.allclose(all_real[0], explicit[0], atol=1e-3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"aggregator": "mean", "normalize": False, "use_bias": False},
        {"aggregator": "max_pool", "pool_units": 6, "activation": "tanh"},
        {"aggregator": "attention", "attention_units": 2,
         "kernel_initializer": tf.keras.initializers.GlorotNormal(seed=4)},
    ],
    ids=list(AGGREGATORS),
)
def test_config_round_trip_identical_outputs(kwargs):
    nodes, neighbours = _inputs()
    layer = _built(**kwargs)
    ref.assert_config_round_trip(layer, lambda l: l(nodes, neighbours, mask=MASK))
    config = layer.get_config()
    assert config["aggregator"] == kwargs["aggregator"] and config["units"] == UNITS
    assert tf.keras.utils.get_registered_name(GraphSAGE) == "tf_attnrec>GraphSAGE"
    clone = tf.keras.layers.deserialize(tf.keras.layers.serialize(layer))
    assert isinstance(clone, GraphSAGE) and clone.get_config() == config


def test_functional_model_with_keras_mask_and_dynamic_shapes():
    node_ids = tf.keras.Input([], dtype=tf.int32)
    neighbour_ids = tf.keras.Input([None], dtype=tf.int32)
    # Shared and mask_zero: the nodes' own embedding carries a [B] Keras mask too, which
    # Keras passes as `mask`; the layer must use the neighbours' [B, S] mask instead.
    embedding = tf.keras.layers.Embedding(20, D, mask_zero=True)
    layer = GraphSAGE(UNITS, aggregator="attention", activation=None)
    out = layer(embedding(node_ids), embedding(neighbour_ids))
    model = tf.keras.Model([node_ids, neighbour_ids], out)
    model_fn = tf.function(model, input_signature=[[tf.TensorSpec([None], tf.int32),
                                                    tf.TensorSpec([None, None], tf.int32)]])
    for nodes, neighbours in (([1, 2], [[3, 0, 4], [5, 6, 7]]), ([9], [[0, 0, 1, 2, 8]])):
        nodes, neighbours = tf.constant(nodes), tf.constant(neighbours)
        expected = layer(embedding(nodes), embedding(neighbours),
                         mask=neighbours.numpy() != 0).numpy()
        np.testing.assert_allclose(model([nodes, neighbours]).numpy(), expected,
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(model_fn([nodes, neighbours]).numpy(), expected,
                                   rtol=1e-5, atol=1e-6)
    # The mask was really used: padding (id 0 has a real embedding) taken as real differs.
    assert not np.allclose(layer(embedding(nodes), embedding(neighbours),
                                 mask=np.ones(neighbours.shape, bool)).numpy(), expected,
                           atol=1e-3)
    clone = tf.keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone([nodes, neighbours]).numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("aggregator", AGGREGATORS)
def test_mixed_float16_is_finite(aggregator):
    nodes, neighbours = _inputs()
    with ref.mixed_precision():
        layer = GraphSAGE(UNITS, aggregator=aggregator)
        out = layer(tf.cast(nodes, tf.float16), tf.cast(_with_garbage(neighbours), tf.float16),
                    mask=MASK)
        assert out.dtype == tf.float16
        assert np.all(np.isfinite(out.numpy()))


def test_keras_mask_survives_cast_to_compute_dtype():
    # float32 neighbours under a float16 policy are cast, which drops `_keras_mask` from the
    # cast copy: the layer must still read the mask of the tensor it was given.
    ids = np.array([[3, 0, 4, 0], [1, 2, 5, 6]], np.int32)
    # A seeded unit-scale table: padding rows then shift an unmasked mean far beyond atol.
    neighbours = tf.keras.layers.Embedding(
        10, D, mask_zero=True, dtype="float32",
        embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=1.0, seed=0))(ids)
    nodes = tf.constant(_inputs()[0][:2], tf.float16)
    with ref.mixed_precision():
        layer = GraphSAGE(UNITS, aggregator="mean", activation=None)
        implicit = layer(nodes, neighbours).numpy()
        explicit = layer(nodes, tf.identity(neighbours), mask=ids != 0).numpy()
    np.testing.assert_array_equal(implicit, explicit)
    assert not np.allclose(layer(nodes, tf.identity(neighbours)).numpy()[0], explicit[0],
                           atol=1e-2)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="`units`"):
        GraphSAGE(0)
    with pytest.raises(ValueError, match=r"`aggregator`.*'mean', 'max_pool', 'attention'"):
        GraphSAGE(UNITS, aggregator="sum")
    with pytest.raises(ValueError, match="`pool_units` only applies to aggregator='max_pool'"):
        GraphSAGE(UNITS, aggregator="mean", pool_units=4)
    with pytest.raises(ValueError, match="`attention_units` must be a positive int"):
        GraphSAGE(UNITS, aggregator="attention", attention_units=0)
    with pytest.raises(ValueError, match="`attention_units` only applies"):
        GraphSAGE(UNITS, aggregator="max_pool", attention_units=4)
    with pytest.raises(ValueError, match="`activation`"):
        GraphSAGE(UNITS, activation="not-an-activation")
    with pytest.raises(ValueError, match="`kernel_initializer`"):
        GraphSAGE(UNITS, kernel_initializer="not-an-initializer")
    nodes, neighbours = _inputs()
    with pytest.raises(ValueError, match="`inputs`"):
        GraphSAGE(UNITS)(neighbours, neighbours)
    with pytest.raises(ValueError, match="`neighbours`"):
        GraphSAGE(UNITS)(nodes, neighbours[..., :3])
    with pytest.raises(ValueError, match="`neighbours`"):
        GraphSAGE(UNITS)(nodes, neighbours[:, 0])
    with pytest.raises(ValueError, match="`mask`"):
        GraphSAGE(UNITS)(nodes, neighbours, mask=MASK[:, :, None])
    with pytest.raises(ValueError, match="`return_attention_weights=True` needs"):
        GraphSAGE(UNITS, aggregator="max_pool")(nodes, neighbours, return_attention_weights=True)
