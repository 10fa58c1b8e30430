"""Tests for tf_attnrec.layers.graph_convolution (GCN / LightGCN propagation on a sparse graph)."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tests.layers import _reference as ref
from tf_attnrec.layers.graph_convolution import GraphConvolution, normalize_adjacency
from tf_attnrec.layers.sparse_ops import gather_rows, sparse_matmul

N, D = 5, 4
NT, NS = 3, 4
# Square weighted graph (target, source), unsorted; node 4 has no edge at all (isolated row
# and column) and node 3 only a self loop.
SQUARE_EDGES = np.array([[1, 0], [0, 1], [0, 2], [3, 3], [2, 0], [0, 3], [2, 1], [1, 2]])
# Bipartite: 3 targets (users) over 4 sources (items); target 1 and source 1 have no edge.
BIPARTITE_EDGES = np.array([[2, 3], [0, 0], [2, 2], [0, 2], [0, 3], [2, 0]])


def _graph(bipartite: bool, seed: int = 0):
    """(features [Ns, D], edges, weights, dense shape) with distinct positive edge weights."""
    rng = np.random.default_rng(seed)
    edges, shape = (BIPARTITE_EDGES, [NT, NS]) if bipartite else (SQUARE_EDGES, [N, N])
    weights = rng.uniform(0.5, 2.0, size=len(edges)).astype(np.float32)
    features = rng.normal(size=(shape[1], D)).astype(np.float32)
    return features, edges, weights, shape


def _sparse(edges, weights, shape) -> tf.SparseTensor:
    return tf.SparseTensor(np.asarray(edges, np.int64), np.asarray(weights, np.float32), shape)


def _numpy_normalized(edges, weights, shape) -> np.ndarray:
    """Dense D_r^-1/2 A D_c^-1/2 in float64; a zero degree scales by 0."""
    dense = np.zeros(shape)
    for (i, j), w in zip(edges, weights):
        dense[i, j] += w
    rows, cols = dense.sum(axis=1), dense.sum(axis=0)
    row_scale = np.divide(1.0, np.sqrt(rows), out=np.zeros_like(rows), where=rows > 0)
    col_scale = np.divide(1.0, np.sqrt(cols), out=np.zeros_like(cols), where=cols > 0)
    return row_scale[:, None] * dense * col_scale[None, :]


def _numpy_gcn(layer: GraphConvolution, features, edges, weights, shape) -> np.ndarray:
    out = _numpy_normalized(edges, weights, shape) @ np.asarray(features, np.float64)
    if layer.units is None:
        return out
    out = out @ layer.kernel.numpy()
    if layer.bias is not None:
        out = out + layer.bias.numpy()
    return np.maximum(out, 0.0) if layer.activation is tf.keras.activations.relu else out


def _randomize(layer: GraphConvolution, seed: int = 1) -> None:
    """Distinct random values for every weight (the bias starts at zeros)."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in layer.get_weights()])


@pytest.mark.parametrize("bipartite", [False, True])
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"units": 3}, {"units": 6, "activation": "relu"}, {"units": 2, "use_bias": False}],
    ids=["propagation", "units<D", "units>D-relu", "no-bias"],
)
def test_matches_numpy_reference(bipartite, kwargs):
    features, edges, weights, shape = _graph(bipartite)
    layer = GraphConvolution(**kwargs)
    adjacency = _sparse(edges, weights, shape)
    layer(features, adjacency)
    _randomize(layer)
    output = layer(features, adjacency).numpy()
    assert output.shape == (shape[0], kwargs.get("units", D))
    assert len(layer.weights) == (0 if "units" not in kwargs else 1 + kwargs.get("use_bias", True))
    expected = _numpy_gcn(layer, features, edges, weights, shape)
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-5)
    if "activation" in kwargs:  # the reference really goes through the relu
        assert (output == 0).any() and (output > 0).any()


def test_normalize_adjacency_matches_numpy_and_sorts():
    _, edges, weights, shape = _graph(bipartite=False)
    normalized = normalize_adjacency(_sparse(edges, weights, shape))
    indices = normalized.indices.numpy()
    assert normalized.values.dtype == tf.float32 and list(normalized.dense_shape.numpy()) == shape
    order = np.lexsort((edges[:, 1], edges[:, 0]))
    np.testing.assert_array_equal(indices, edges[order])  # canonical row-major order
    np.testing.assert_allclose(
        tf.sparse.to_dense(normalized).numpy(), _numpy_normalized(edges, weights, shape),
        rtol=1e-6, atol=1e-7,
    )


@pytest.mark.parametrize("bipartite", [False, True])
@pytest.mark.parametrize("units", [None, 3])
def test_edge_order_does_not_matter(bipartite, units):
    features, edges, weights, shape = _graph(bipartite)
    layer = GraphConvolution(units=units)
    expected = layer(features, _sparse(edges, weights, shape)).numpy()
    for seed in range(3):
        permutation = np.random.default_rng(seed).permutation(len(edges))
        shuffled = _sparse(edges[permutation], weights[permutation], shape)
        # Normalisation works in canonical order, so the result is identical, not just close.
        np.testing.assert_array_equal(layer(features, shuffled).numpy(), expected)
    # Weights follow their edges: pairing them with other edges changes the output.
    rolled = _sparse(edges, np.roll(weights, 1), shape)
    assert not np.allclose(layer(features, rolled).numpy(), expected, atol=1e-3)


@pytest.mark.parametrize("bipartite", [False, True])
def test_isolated_nodes_are_finite(bipartite):
    features, edges, weights, shape = _graph(bipartite)
    isolated_row, isolated_col = (1, 1) if bipartite else (4, 4)
    assert isolated_row not in edges[:, 0] and isolated_col not in edges[:, 1]
    features[isolated_col] = 1e30  # a source without edges must not reach any target
    adjacency = _sparse(edges, weights, shape)
    propagated = GraphConvolution()(features, adjacency).numpy()
    assert np.isfinite(propagated).all()
    np.testing.assert_array_equal(propagated[isolated_row], np.zeros(D))
    assert np.abs(propagated).max() < 1e3
    layer = GraphConvolution(units=3, activation="relu")
    layer(features, adjacency)
    _randomize(layer)
    output = layer(features, adjacency).numpy()
    assert np.isfinite(output).all()
    # Nothing propagates into the isolated target: only the bias (through the relu) remains.
    np.testing.assert_allclose(output[isolated_row], np.maximum(layer.bias.numpy(), 0.0))
    # Stored edges of weight 0 give a degree of 0 to a node that does have entries: the
    # 1/sqrt(0) of its scale is actually used, and must not turn 0 * inf into NaN.
    zero_edges = np.concatenate([edges, [[isolated_row, 0], [0, isolated_col]]])
    zero_weights = np.concatenate([weights, [0.0, 0.0]]).astype(np.float32)
    with_zeros = GraphConvolution()(features, _sparse(zero_edges, zero_weights, shape)).numpy()
    np.testing.assert_array_equal(with_zeros, propagated)
    # The same with an empty graph, where every degree is 0.
    empty = tf.SparseTensor(tf.zeros([0, 2], tf.int64), tf.zeros([0]), shape)
    np.testing.assert_array_equal(
        GraphConvolution()(features, empty).numpy(), np.zeros((shape[0], D))
    )


def test_gradients_finite_with_isolated_node():
    features, edges, weights, shape = _graph(bipartite=False)
    layer = GraphConvolution(units=3)
    features_t = tf.constant(features)
    with tf.GradientTape() as tape:
        tape.watch(features_t)
        loss = tf.reduce_sum(layer(features_t, _sparse(edges, weights, shape)) ** 2)
    grads = tape.gradient(loss, layer.trainable_variables + [features_t])
    assert all(np.isfinite(g.numpy()).all() for g in grads)
    assert all(np.any(g.numpy() != 0) for g in grads[:-1])
    np.testing.assert_array_equal(grads[-1].numpy()[4], np.zeros(D))  # isolated source


@pytest.mark.parametrize("bipartite", [False, True])
def test_normalize_false_uses_values_as_given(bipartite):
    features, edges, weights, shape = _graph(bipartite)
    adjacency = _sparse(edges, weights, shape)
    normalized = normalize_adjacency(adjacency)
    propagate = GraphConvolution()
    raw = GraphConvolution(normalize=False)
    np.testing.assert_allclose(
        raw(features, normalized).numpy(), propagate(features, adjacency).numpy(),
        rtol=1e-6, atol=1e-7,
    )
    # normalize=False really skips the normalisation: on the raw graph it is plain A X.
    dense = tf.sparse.to_dense(tf.sparse.reorder(adjacency)).numpy()
    np.testing.assert_allclose(raw(features, adjacency).numpy(), dense @ features, rtol=1e-6)
    assert not np.allclose(raw(features, adjacency).numpy(), propagate(features, adjacency).numpy())
    # And with a kernel, the two layers agree once they share weights.
    with_units = GraphConvolution(units=3, activation="tanh")
    without_norm = GraphConvolution(units=3, activation="tanh", normalize=False)
    expected = with_units(features, adjacency).numpy()
    without_norm(features, normalized)
    without_norm.set_weights(with_units.get_weights())
    np.testing.assert_allclose(
        without_norm(features, normalized).numpy(), expected, rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("kwargs", [{}, {"units": 3, "activation": "relu", "use_bias": False,
                                         "normalize": False, "kernel_initializer": "he_normal"}])
def test_config_round_trip(kwargs):
    features, edges, weights, shape = _graph(bipartite=True)
    adjacency = _sparse(edges, weights, shape)
    layer = GraphConvolution(name="gcn", **kwargs)
    expected = layer(features, adjacency).numpy()
    config = layer.get_config()
    assert config["units"] == kwargs.get("units")
    assert config["normalize"] == kwargs.get("normalize", True)
    assert tf.keras.utils.get_registered_name(GraphConvolution) == "tf_attnrec>GraphConvolution"
    clone = tf.keras.layers.deserialize(tf.keras.layers.serialize(layer))
    assert isinstance(clone, GraphConvolution) and clone.get_config() == config
    assert GraphConvolution.from_config(config).get_config() == config
    clone(features, adjacency)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(features, adjacency).numpy(), expected)


@pytest.mark.parametrize("units", [None, 3])
def test_tf_function_with_dynamic_number_of_edges(units):
    features, edges, weights, shape = _graph(bipartite=False)
    layer = GraphConvolution(units=units)
    layer(features, _sparse(edges, weights, shape))  # build eagerly

    @tf.function(input_signature=[tf.TensorSpec([None, D], tf.float32),
                                  tf.SparseTensorSpec([None, None], tf.float32)])
    def forward(x, adjacency):
        return layer(x, adjacency)

    for count in (len(edges), 3, 0):
        sub = _sparse(edges[:count].reshape(-1, 2), weights[:count], shape)
        np.testing.assert_allclose(
            forward(features, sub).numpy(), layer(features, sub).numpy(), rtol=1e-6, atol=1e-7
        )
    assert forward.experimental_get_tracing_count() == 1


def test_mixed_float16():
    features, edges, weights, shape = _graph(bipartite=False)
    with ref.mixed_precision():
        layer = GraphConvolution(units=3)
        output = layer(features, _sparse(edges, weights, shape))
        propagated = GraphConvolution()(features, _sparse(edges, weights, shape))
    assert output.dtype == tf.float16 and propagated.dtype == tf.float16
    assert layer.kernel.dtype == tf.float32
    expected = _numpy_gcn(layer, features, edges, weights, shape)
    np.testing.assert_allclose(output.numpy(), expected, rtol=1e-2, atol=1e-2)


def test_bad_arguments_raise_clear_errors():
    features, edges, weights, shape = _graph(bipartite=False)
    for units in (0, -2, 2.5, True, "8"):
        with pytest.raises(ValueError, match="`units`"):
            GraphConvolution(units=units)
    with pytest.raises(ValueError, match="`activation`"):
        GraphConvolution(units=3, activation="no-such-activation")
    with pytest.raises(ValueError, match="`activation` 'relu' needs `units`"):
        GraphConvolution(activation="relu")
    with pytest.raises(ValueError, match="`kernel_initializer`"):
        GraphConvolution(units=3, kernel_initializer="no-such-initializer")
    layer = GraphConvolution(units=3)
    with pytest.raises(ValueError, match="`adjacency` must be a tf.SparseTensor"):
        layer(features, np.eye(N, dtype=np.float32))
    with pytest.raises(ValueError, match="`adjacency` must be rank 2"):
        layer(features, tf.SparseTensor([[0, 0, 0]], [1.0], [N, N, 1]))
    with pytest.raises(ValueError, match="`adjacency` values .* floating point"):
        layer(features, tf.SparseTensor(edges, np.ones(len(edges), np.int32), shape))
    with pytest.raises(ValueError, match="`adjacency` has 4 columns"):
        layer(features, _sparse(BIPARTITE_EDGES, np.ones(len(BIPARTITE_EDGES)), [NT, NS]))
    with pytest.raises(ValueError, match=r"\[nodes, features\]"):
        GraphConvolution()(features[None], _sparse(edges, weights, shape))
    with pytest.raises(ValueError, match="normalize_adjacency: `adjacency` must be a tf.Sparse"):
        normalize_adjacency(tf.eye(3))


@pytest.mark.parametrize("shuffled", [False, True])
def test_sparse_matmul_matches_coo_product_and_gradient(shuffled):
    """The CSR product and its hand-written gradient equal TensorFlow's COO op, in any edge order."""
    rng = np.random.default_rng(3)
    dense = (rng.random((5, 4)) < 0.5) * rng.random((5, 4))
    adjacency = tf.sparse.from_dense(dense.astype(np.float32))
    if shuffled:
        order = rng.permutation(len(adjacency.indices))
        adjacency = tf.SparseTensor(tf.gather(adjacency.indices, order), tf.gather(adjacency.values, order),
                                    adjacency.dense_shape)
    features = tf.constant(rng.normal(size=(4, 3)), tf.float32)
    upstream = tf.constant(rng.normal(size=(5, 3)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(features)
        ours = sparse_matmul(adjacency, features)
        reference = tf.sparse.sparse_dense_matmul(tf.sparse.reorder(adjacency), features)
        ours_loss, reference_loss = tf.reduce_sum(ours * upstream), tf.reduce_sum(reference * upstream)
    np.testing.assert_allclose(ours.numpy(), dense @ features.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tape.gradient(ours_loss, features).numpy(),
                               tape.gradient(reference_loss, features).numpy(), rtol=1e-5, atol=1e-6)


def test_gather_rows_matches_tf_gather_and_its_gradient():
    rng = np.random.default_rng(0)
    table = tf.constant(rng.normal(size=(7, 3)), tf.float32)
    indices = tf.constant(rng.integers(0, 7, size=(5, 4)))  # repeats, a 2-D index, row 6 maybe untouched
    weights = tf.constant(rng.normal(size=(5, 4, 3)), tf.float32)
    gradients = []
    for gather in (tf.gather, gather_rows):
        with tf.GradientTape() as tape:
            tape.watch(table)
            rows = gather(table, indices)
            loss = tf.reduce_sum(rows * weights)
        gradients.append(tf.convert_to_tensor(tape.gradient(loss, table)).numpy())
        np.testing.assert_array_equal(rows.numpy(), tf.gather(table, indices).numpy())
    np.testing.assert_allclose(gradients[1], gradients[0], rtol=1e-5, atol=1e-6)
    # Inside a compiled function too, with the index shape unknown.
    compiled = tf.function(lambda t, i: tf.gradients(tf.reduce_sum(gather_rows(t, i) ** 2), t)[0],
                           input_signature=[tf.TensorSpec([None, 3]), tf.TensorSpec([None], tf.int64)])
    flat = tf.reshape(indices, [-1])
    expected = np.zeros((7, 3), np.float32)
    np.add.at(expected, flat.numpy(), 2 * table.numpy()[flat.numpy()])
    np.testing.assert_allclose(compiled(table, flat).numpy(), expected, rtol=1e-5, atol=1e-6)
