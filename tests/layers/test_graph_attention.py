"""Tests for tf_attnrec.layers.graph_attention.GraphAttention (GAT on a sparse adjacency)."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tests.layers import _reference as ref
from tf_attnrec.layers.graph_attention import GraphAttention
from tf_attnrec.layers.sparse_ops import edge_weighted_matmul

N, D, UNITS = 5, 4, 3
NT, DT, NS, DS = 3, 2, 4, 5
# Square graph (target, source), unsorted, with a self loop (3, 3); node 4 has no neighbour.
SQUARE_EDGES = np.array([[1, 0], [0, 1], [0, 2], [3, 3], [2, 0], [0, 3], [2, 1], [3, 0]])
# Bipartite graph: 3 targets (e.g. users) over 4 sources (items); target 1 has no neighbour.
BIPARTITE_EDGES = np.array([[2, 3], [0, 0], [2, 1], [0, 2], [0, 3], [2, 0]])


def _features(seed: int = 0):
    rng = np.random.default_rng(seed)
    square = rng.normal(size=(N, D)).astype(np.float32)
    pair = (rng.normal(size=(NT, DT)).astype(np.float32),
            rng.normal(size=(NS, DS)).astype(np.float32))
    return square, pair


def _adjacency(edges: np.ndarray, shape) -> tf.SparseTensor:
    # Values other than 1 (even 0) are still edges: the layer ignores them.
    values = np.linspace(0.0, 2.0, len(edges)).astype(np.float32)
    return tf.SparseTensor(edges.astype(np.int64), values, shape)


def _graph(bipartite: bool, seed: int = 0):
    square, pair = _features(seed)
    if bipartite:
        return pair, BIPARTITE_EDGES, _adjacency(BIPARTITE_EDGES, [NT, NS])
    return square, SQUARE_EDGES, _adjacency(SQUARE_EDGES, [N, N])


def _randomize(layer: GraphAttention, seed: int = 1) -> None:
    """Distinct random values for every weight (the bias starts at zeros)."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in layer.get_weights()])


def _numpy_gat(layer: GraphAttention, inputs, edges: np.ndarray):
    """GAT node by node: a dense softmax over each target's neighbour list, in float64.

    Returns (outputs [Nt, out], weights [E (+ N), H]) in the layer's documented order.
    """
    heads, units = layer.num_heads, layer.units
    if isinstance(inputs, tuple):
        targets, sources = (np.asarray(x, np.float64) for x in inputs)
        wt, ws = layer.target_kernel.numpy(), layer.source_kernel.numpy()
    else:
        targets = sources = np.asarray(inputs, np.float64)
        wt = ws = layer.kernel.numpy()
    ht = (targets @ wt).reshape(len(targets), heads, units)
    hs = (sources @ ws).reshape(len(sources), heads, units)
    a_t, a_s = layer.attention_target.numpy(), layer.attention_source.numpy()
    edges = [tuple(e) for e in edges]
    if layer.add_self_loops:  # explicit self loops are replaced by one added loop per node
        edges = edges + [(i, i) for i in range(len(targets))]
        counted = [t != s or k >= len(edges) - len(targets) for k, (t, s) in enumerate(edges)]
    else:
        counted = [True] * len(edges)
    out = np.zeros((len(targets), heads, units))
    weights = np.zeros((len(edges), heads))
    for i in range(len(targets)):
        incoming = [k for k, (t, _) in enumerate(edges) if t == i and counted[k]]
        for h in range(heads):
            e = np.array([ht[i, h] @ a_t[h] + hs[edges[k][1], h] @ a_s[h] for k in incoming])
            e = np.where(e > 0, e, layer.negative_slope * e)
            if len(e):
                alpha = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
            for alpha_k, k in zip(alpha if len(e) else [], incoming):
                weights[k, h] = alpha_k
                out[i, h] += alpha_k * hs[edges[k][1], h]
    out = out.reshape(len(targets), -1) if layer.concat_heads else out.mean(axis=1)
    if layer.use_bias:
        out = out + layer.bias.numpy()
    if layer.activation is tf.keras.activations.elu:
        out = np.where(out > 0, out, np.expm1(np.minimum(out, 0)))
    return out, weights


@pytest.mark.parametrize(
    "bipartite,kwargs",
    [
        (False, {}),
        (False, {"num_heads": 3}),
        (False, {"num_heads": 3, "concat_heads": False}),
        (False, {"num_heads": 2, "add_self_loops": True, "activation": "elu"}),
        (True, {}),
        (True, {"num_heads": 3, "negative_slope": 0.05}),
        (True, {"num_heads": 3, "concat_heads": False, "use_bias": False}),
    ],
    ids=["square-1", "square-3-concat", "square-3-mean", "square-loops-elu", "bipartite-1",
         "bipartite-3-concat", "bipartite-3-mean-nobias"],
)
def test_matches_numpy_reference(bipartite, kwargs):
    inputs, edges, adjacency = _graph(bipartite)
    layer = GraphAttention(UNITS, **kwargs)
    layer(inputs, adjacency)  # build
    _randomize(layer)
    out, weights = layer(inputs, adjacency, return_attention_weights=True)
    expected_out, expected_weights = _numpy_gat(layer, inputs, edges)
    heads = layer.num_heads
    assert out.shape == (NT if bipartite else N, UNITS * heads if layer.concat_heads else UNITS)
    assert weights.shape == expected_weights.shape
    np.testing.assert_allclose(weights.numpy(), expected_weights, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.numpy(), expected_out, rtol=1e-5, atol=1e-5)
    # The reference really exercises attention: weights are neither uniform nor one-hot.
    assert len(np.unique(np.round(expected_weights[expected_weights > 0], 4))) > heads


@pytest.mark.parametrize("bipartite", [False, True])
def test_edge_order_does_not_matter(bipartite):
    inputs, edges, adjacency = _graph(bipartite)
    layer = GraphAttention(UNITS, num_heads=2)
    layer(inputs, adjacency)
    _randomize(layer)
    out, weights = layer(inputs, adjacency, return_attention_weights=True)
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(len(edges))
        permuted = _adjacency(edges[order], adjacency.dense_shape)
        out2, weights2 = layer(inputs, permuted, return_attention_weights=True)
        np.testing.assert_allclose(out2.numpy(), out.numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(weights2.numpy(), weights.numpy()[order], rtol=1e-6,
                                   atol=1e-7)


@pytest.mark.parametrize("bipartite", [False, True])
def test_weights_sum_to_one_and_isolated_targets_are_zero(bipartite):
    inputs, edges, adjacency = _graph(bipartite)
    layer = GraphAttention(UNITS, num_heads=3, use_bias=False)
    layer(inputs, adjacency)
    _randomize(layer)
    out, weights = layer(inputs, adjacency, return_attention_weights=True)
    num_targets = NT if bipartite else N
    sums = np.zeros((num_targets, 3))
    np.add.at(sums, edges[:, 0], weights.numpy())
    has_edges = np.isin(np.arange(num_targets), edges[:, 0])
    np.testing.assert_allclose(sums[has_edges], 1.0, rtol=1e-6)
    assert np.all(weights.numpy() > 0)
    assert np.all(np.isfinite(out.numpy()))
    np.testing.assert_array_equal(out.numpy()[~has_edges], 0.0)
    assert np.all(np.abs(out.numpy()[has_edges]) > 0)
    # A graph with no edge at all.
    empty = tf.SparseTensor(np.zeros([0, 2], np.int64), np.zeros([0], np.float32),
                            adjacency.dense_shape)
    out, weights = layer(inputs, empty, return_attention_weights=True)
    assert weights.shape == (0, 3)
    np.testing.assert_array_equal(out.numpy(), np.zeros((num_targets, 3 * UNITS)))


def _autodiff_gat(layer: GraphAttention, inputs, adjacency: tf.SparseTensor):
    """The layer's earlier formulation in plain TensorFlow ops, differentiated by autodiff.

    Unsorted segment softmax over the edges in the given order, `[E, H, U]` messages summed
    per target: outputs and weights (adjacency order, added self loops last) from the
    layer's own variables, so a tape sees the same weights.
    """
    heads, units = layer.num_heads, layer.units
    if isinstance(inputs, tuple):
        targets, sources = inputs
        ht = tf.reshape(tf.matmul(targets, layer.target_kernel), [-1, heads, units])
        hs = tf.reshape(tf.matmul(sources, layer.source_kernel), [-1, heads, units])
    else:
        targets = sources = inputs
        ht = hs = tf.reshape(tf.matmul(inputs, layer.kernel), [-1, heads, units])
    num_targets = tf.shape(targets)[0]
    rows, cols = adjacency.indices[:, 0], adjacency.indices[:, 1]
    keep = None
    if layer.add_self_loops:
        loops = tf.range(tf.cast(num_targets, tf.int64))
        keep = tf.concat([rows != cols, tf.ones_like(loops, tf.bool)], 0)
        rows, cols = tf.concat([rows, loops], 0), tf.concat([cols, loops], 0)
    scores = tf.nn.leaky_relu(
        tf.gather(tf.reduce_sum(ht * layer.attention_target, -1), rows)
        + tf.gather(tf.reduce_sum(hs * layer.attention_source, -1), cols), alpha=layer.negative_slope)
    if keep is not None:
        scores = tf.where(keep[:, None], scores, -1e9)
    exp = tf.exp(scores - tf.gather(tf.math.unsorted_segment_max(scores, rows, num_targets), rows))
    weights = exp / tf.gather(tf.math.unsorted_segment_sum(exp, rows, num_targets), rows)
    out = tf.math.unsorted_segment_sum(weights[:, :, None] * tf.gather(hs, cols), rows, num_targets)
    out = tf.reshape(out, [-1, heads * units]) if layer.concat_heads else tf.reduce_mean(out, axis=1)
    if layer.use_bias:
        out = out + layer.bias
    return layer.activation(out), weights


def _row_major_edges(edges: np.ndarray) -> np.ndarray:
    return edges[np.lexsort([edges[:, 1], edges[:, 0]])]


@pytest.mark.parametrize(
    "bipartite,row_major,kwargs",
    [
        (False, False, {}),
        (False, True, {}),
        (False, False, {"num_heads": 3}),
        (False, True, {"num_heads": 3, "concat_heads": False}),
        (False, False, {"num_heads": 2, "add_self_loops": True, "activation": "elu"}),
        (False, True, {"num_heads": 2, "add_self_loops": True, "concat_heads": False}),
        (False, True, {"attention_dropout": 0.4, "concat_heads": False, "use_bias": False}),
        (True, False, {}),
        (True, True, {"num_heads": 3, "negative_slope": 0.05}),
        (True, False, {"num_heads": 3, "concat_heads": False, "attention_dropout": 0.4}),
    ],
    ids=["square-1", "square-1-sorted", "square-3-concat", "square-3-mean-sorted", "square-loops-elu",
         "square-loops-mean-sorted", "square-dropout-inference-sorted", "bipartite-1",
         "bipartite-3-concat-sorted", "bipartite-3-mean-dropout-inference"],
)
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("training", [False, True], ids=["inference", "training-xla"])
def test_outputs_and_gradients_match_autodiff_formulation(bipartite, row_major, kwargs, compiled, training):
    """The fused softmax, the sorted edges and the custom gradients change no number: outputs,
    attention weights and every gradient (inputs and weights) match the plain-ops formulation,
    isolated nodes included (square node 4, bipartite target 1), attention dropout in
    inference mode (training=False) included. In training mode the forward runs under XLA
    (dropout is set to 0 there, so the comparison stays deterministic)."""
    if training:
        kwargs = {**kwargs, "attention_dropout": 0.0}
    inputs, edges, _ = _graph(bipartite)
    if row_major:
        edges = _row_major_edges(edges)
    adjacency = _adjacency(edges, [NT, NS] if bipartite else [N, N])
    inputs = tuple(tf.constant(x) for x in inputs) if bipartite else tf.constant(inputs)
    layer = GraphAttention(UNITS, **kwargs)
    layer(inputs, adjacency)
    _randomize(layer)
    rng = np.random.default_rng(3)
    num_edges = len(edges) + (N if layer.add_self_loops else 0)
    out_direction = tf.constant(rng.normal(size=(NT if bipartite else N, layer.output_dim)), tf.float32)
    weight_direction = tf.constant(rng.normal(size=(num_edges, layer.num_heads)), tf.float32)
    flat_inputs = list(inputs) if bipartite else [inputs]

    def loss_and_gradients(forward):
        with tf.GradientTape() as tape:
            tape.watch(flat_inputs)
            out, weights = forward()
            loss = tf.reduce_sum(out * out_direction) + tf.reduce_sum(weights * weight_direction)
        return (out, weights), tape.gradient(loss, flat_inputs + layer.trainable_variables)

    def ours():
        return loss_and_gradients(
            lambda: layer(inputs, adjacency, training=training, return_attention_weights=True))

    def theirs():
        return loss_and_gradients(lambda: _autodiff_gat(layer, inputs, adjacency))

    if compiled:
        ours, theirs = tf.function(ours), tf.function(theirs)
    (out, weights), grads = ours()
    (expected_out, expected_weights), expected_grads = theirs()
    np.testing.assert_allclose(out.numpy(), expected_out.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights.numpy(), expected_weights.numpy(), rtol=1e-5, atol=1e-7)
    assert len(grads) == len(expected_grads) == len(flat_inputs) + len(layer.trainable_variables)
    for grad, expected in zip(grads, expected_grads):
        assert grad is not None and expected is not None
        np.testing.assert_allclose(tf.convert_to_tensor(grad).numpy(), tf.convert_to_tensor(expected).numpy(),
                                   rtol=1e-4, atol=1e-5)
    # Not vacuous: the attention vectors get gradients through the softmax.
    names = [v.name for v in layer.trainable_variables]
    attention_grads = grads[len(flat_inputs) + names.index(layer.attention_source.name)]
    assert np.abs(attention_grads.numpy()).max() > 1e-3


@pytest.mark.parametrize("row_major", [False, True])
def test_edge_weighted_matmul_matches_dense_product_and_gradients(row_major):
    """`GraphAttention` passes sorted edges (`row_major=True`); any order works without it."""
    edges = _row_major_edges(BIPARTITE_EDGES) if row_major else BIPARTITE_EDGES
    rng = np.random.default_rng(4)
    weights = tf.constant(rng.normal(size=len(edges)), tf.float32)
    features = tf.constant(rng.normal(size=(NS, 3)), tf.float32)
    direction = tf.constant(rng.normal(size=(NT, 3)), tf.float32)
    dense_shape = tf.constant([NT, NS], tf.int64)
    scatter = lambda w: tf.scatter_nd(edges, w, [NT, NS])  # noqa: E731  (no duplicate edges)
    results = []
    for product in (lambda w, x: edge_weighted_matmul(edges, w, dense_shape, x, row_major=row_major),
                    lambda w, x: tf.matmul(scatter(w), x)):
        with tf.GradientTape() as tape:
            tape.watch([weights, features])
            out = product(weights, features)
            loss = tf.reduce_sum(out * direction)
        results.append([out, *tape.gradient(loss, [weights, features])])
    for ours, expected in zip(*results):  # a reordered weight's gradient is IndexedSlices
        np.testing.assert_allclose(tf.convert_to_tensor(ours).numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_attention_dropout_only_in_training():
    inputs, _, adjacency = _graph(False)
    layer = GraphAttention(UNITS, num_heads=2, attention_dropout=0.5)
    plain = GraphAttention(UNITS, num_heads=2)
    layer(inputs, adjacency)
    plain(inputs, adjacency)
    _randomize(layer)
    plain.set_weights(layer.get_weights())
    expected, expected_weights = plain(inputs, adjacency, return_attention_weights=True)
    for training in (None, False):
        out, weights = layer(inputs, adjacency, training=training, return_attention_weights=True)
        np.testing.assert_array_equal(out.numpy(), expected.numpy())
        np.testing.assert_array_equal(weights.numpy(), expected_weights.numpy())
    tf.random.set_seed(0)
    trained = [layer(inputs, adjacency, training=True).numpy() for _ in range(3)]
    assert not np.allclose(trained[0], expected.numpy())
    assert not np.allclose(trained[0], trained[1]) or not np.allclose(trained[1], trained[2])
    # The returned weights are the normalised coefficients, before dropout.
    _, weights = layer(inputs, adjacency, training=True, return_attention_weights=True)
    np.testing.assert_allclose(weights.numpy(), expected_weights.numpy(), rtol=1e-6)


@pytest.mark.parametrize("bipartite", [False, True])
def test_config_round_trip(bipartite):
    inputs, _, adjacency = _graph(bipartite)
    layer = GraphAttention(
        UNITS, num_heads=2, concat_heads=False, attention_dropout=0.1, negative_slope=0.1,
        activation="elu", use_bias=True, add_self_loops=not bipartite,
        kernel_initializer=tf.keras.initializers.GlorotNormal(seed=3))

    def call(gat):
        out = gat(inputs, adjacency)
        if not getattr(gat, "_randomized", False):  # move the zero bias before comparing
            _randomize(gat)
            gat._randomized = True
            out = gat(inputs, adjacency)
        return out

    ref.assert_config_round_trip(layer, call)
    config = layer.get_config()
    assert config["units"] == UNITS and config["num_heads"] == 2
    assert config["concat_heads"] is False and config["activation"] == "elu"
    assert config["add_self_loops"] is (not bipartite)
    assert tf.keras.utils.get_registered_name(GraphAttention) == "tf_attnrec>GraphAttention"
    clone = tf.keras.layers.deserialize(tf.keras.layers.serialize(layer))
    assert isinstance(clone, GraphAttention) and clone.get_config() == config
    # A seeded initializer gives each same-shaped weight its own draw.
    fresh = GraphAttention(UNITS, kernel_initializer=tf.keras.initializers.GlorotNormal(seed=3))
    fresh(inputs, adjacency)
    assert not np.allclose(fresh.attention_target.numpy(), fresh.attention_source.numpy())


@pytest.mark.parametrize("add_self_loops", [False, True])
def test_tf_function_with_dynamic_number_of_edges(add_self_loops):
    layer = GraphAttention(UNITS, num_heads=2, add_self_loops=add_self_loops)
    square, _, adjacency = _graph(False)
    layer(square, adjacency)
    _randomize(layer)

    @tf.function(input_signature=[tf.TensorSpec([None, D], tf.float32),
                                  tf.SparseTensorSpec([None, None], tf.float32)])
    def serve(features, graph):
        return layer(features, graph, return_attention_weights=True)

    graphs = [(square, adjacency),
              (square[:3], tf.SparseTensor([[2, 0], [0, 1]], [1.0, 1.0], [3, 3]))]
    for features, graph in graphs:
        out, weights = serve(features, graph)
        expected, expected_weights = layer(features, graph, return_attention_weights=True)
        np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(weights.numpy(), expected_weights.numpy(), rtol=1e-6)
    assert serve.experimental_get_tracing_count() == 1
    assert out.shape[-1] == 2 * UNITS
    # The traced function checks the graph against the features: no silent dropped edges.
    with pytest.raises(tf.errors.InvalidArgumentError, match="dense shape"):
        serve(square[:3], adjacency)


def _xla_functions(concrete: tf.types.experimental.ConcreteFunction) -> list:
    """Names of the functions in `concrete`'s graph (its library included) that XLA must compile."""
    graph_def = concrete.graph.as_graph_def()
    nodes = [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]
    flagged = [n.name for n in nodes if n.attr["_XlaMustCompile"].b]
    flagged += [f.signature.name for f in graph_def.library.function if f.attr["_XlaMustCompile"].b]
    return flagged


def test_inference_graph_holds_no_xla_and_training_graph_does():
    """Stock TF Serving runs XLA only behind an experimental flag: an inference trace (what a
    SavedModel serves) must not contain it. The training step uses it (the fused softmax)."""
    layer = GraphAttention(UNITS, num_heads=2, add_self_loops=True)
    square, _, adjacency = _graph(False)
    layer(square, adjacency)
    spec = [tf.TensorSpec([None, D], tf.float32), tf.SparseTensorSpec([None, None], tf.float32)]
    inference = tf.function(lambda x, a: layer(x, a, training=False), input_signature=spec)
    training = tf.function(lambda x, a: layer(x, a, training=True), input_signature=spec)
    assert _xla_functions(inference.get_concrete_function()) == []
    assert _xla_functions(training.get_concrete_function()) != []


def test_gradients_finite_and_nonzero_with_isolated_node():
    inputs, _, adjacency = _graph(True)
    layer = GraphAttention(UNITS, num_heads=2)
    layer(inputs, adjacency)
    # Fixed weights, no dropout: softmax is shift-invariant, so the target kernel only gets a
    # gradient where a target's edge scores straddle the LeakyReLU kink, which these do.
    _randomize(layer)
    direction = np.random.default_rng(2).normal(size=(NT, 2 * UNITS)).astype(np.float32)
    ref.assert_gradients_finite_and_nonzero(
        layer, lambda gat: tf.reduce_sum(gat(inputs, adjacency, training=True) * direction))


def test_mixed_float16():
    inputs, _, adjacency = _graph(False)
    with ref.mixed_precision():
        layer = GraphAttention(UNITS, num_heads=2, use_bias=False)
        out, weights = layer(inputs * 100.0, adjacency, return_attention_weights=True)
    assert out.dtype == tf.float16 and weights.dtype == tf.float32
    assert layer.kernel.dtype == tf.float32
    assert np.all(np.isfinite(out.numpy())) and np.all(np.isfinite(weights.numpy()))
    np.testing.assert_array_equal(out.numpy()[4], 0.0)  # the isolated node


def test_bad_arguments_raise_clear_errors():
    square, pair = _features()
    adjacency = _adjacency(SQUARE_EDGES, [N, N])
    for kwargs, name in [({"units": 0}, "`units`"), ({"num_heads": 1.5}, "`num_heads`"),
                         ({"attention_dropout": 1.0}, "`attention_dropout`"),
                         ({"negative_slope": -0.2}, "`negative_slope`"),
                         ({"activation": "not-an-activation"}, "`activation`"),
                         ({"kernel_initializer": "nope"}, "`kernel_initializer`")]:
        with pytest.raises(ValueError, match=name):
            GraphAttention(**{"units": UNITS, **kwargs})
    with pytest.raises(ValueError, match="`adjacency` must be a tf.SparseTensor"):
        GraphAttention(UNITS)(square, np.ones([N, N], np.float32))
    with pytest.raises(ValueError, match=r"`adjacency` has dense shape \[5, 5\]"):
        GraphAttention(UNITS)(square[:4], adjacency)
    with pytest.raises(ValueError, match="`add_self_loops=True` needs one node set"):
        GraphAttention(UNITS, add_self_loops=True)(pair, _adjacency(BIPARTITE_EDGES, [NT, NS]))
    with pytest.raises(ValueError, match=r"`inputs` node features of shape \[nodes, features\]"):
        GraphAttention(UNITS)(square[None], adjacency)
    with pytest.raises(ValueError, match="`target_features`"):
        GraphAttention(UNITS)((pair[0][None], pair[1]), _adjacency(BIPARTITE_EDGES, [NT, NS]))
    built = GraphAttention(UNITS)
    built(square, adjacency)
    with pytest.raises(ValueError, match="`inputs` must keep the structure"):
        built(pair, _adjacency(BIPARTITE_EDGES, [NT, NS]))
