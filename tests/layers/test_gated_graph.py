"""Tests for tf_attnrec.layers.gated_graph (session graphs and the SR-GNN gated graph layer)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tests.layers import _reference as ref
from tf_attnrec.layers.gated_graph import GatedGraphConvolution, session_graph

D = 4
# Left-padded sequences: a repeat (4 5 4 6 -> edges 4>5, 5>4, 4>6), a self loop (7 7 8),
# a single item (no edge), all padding, and a full row with a repeated transition (2>3 twice).
SEQUENCES = np.array([
    [0, 0, 4, 5, 4, 6],
    [0, 0, 0, 7, 7, 8],
    [0, 0, 0, 0, 0, 9],
    [0, 0, 0, 0, 0, 0],
    [2, 3, 2, 3, 5, 1],
], np.int32)


def _numpy_session_graph(sequence):
    """(node items in first-occurrence order, binary adjacency over them, alias per real item)."""
    items = [int(i) for i in sequence if i != 0]
    nodes = list(dict.fromkeys(items))
    adjacency = np.zeros((len(nodes), len(nodes)))
    for a, b in itertools.pairwise(items):
        adjacency[nodes.index(a), nodes.index(b)] = 1.0
    return nodes, adjacency, [nodes.index(i) for i in items]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _numpy_ggnn(layer, h, adjacency, normalize=True):
    """SR-GNN / RecBole GNNCell, float64, on one graph: h [N, D], adjacency [N, N] (u -> v)."""
    w = {v.name.split("/")[-1].split(":")[0]: v.numpy().astype(np.float64) for v in layer.weights}
    h = np.asarray(h, np.float64)
    if normalize:
        indeg, outdeg = adjacency.sum(0), adjacency.sum(1)
        a_in = np.divide(adjacency.T, indeg[:, None], out=np.zeros_like(adjacency), where=indeg[:, None] > 0)
        a_out = np.divide(adjacency, outdeg[:, None], out=np.zeros_like(adjacency), where=outdeg[:, None] > 0)
    else:
        a_in, a_out = adjacency.T, adjacency
    for _ in range(layer.num_steps):
        e_in = a_in @ (h @ w["edge_in_kernel"] + w["edge_in_bias"])
        e_out = a_out @ (h @ w["edge_out_kernel"] + w["edge_out_bias"])
        gi = np.concatenate([e_in, e_out], -1) @ w["input_kernel"] + w["input_bias"]
        gh = h @ w["recurrent_kernel"] + w["recurrent_bias"]
        i_r, i_z, i_n = np.split(gi, 3, -1)
        h_r, h_z, h_n = np.split(gh, 3, -1)
        r, z = _sigmoid(i_r + h_r), _sigmoid(i_z + h_z)
        h = (1 - z) * h + z * np.tanh(i_n + r * h_n)
    return h


def _randomize(layer, seed=1):
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in layer.get_weights()])


def _run(layer, sequences, features):
    graph = session_graph(sequences)
    return layer(features, graph.adjacency, mask=graph.node_ids > 0), graph


def test_session_graph_matches_numpy():
    graph = session_graph(SEQUENCES)
    node_ids, adjacency, alias, edge_times = (t.numpy() for t in graph)
    assert adjacency.dtype == np.float32 and adjacency.shape == (5, 6, 6)
    for row, sequence in enumerate(SEQUENCES):
        nodes, expected, expected_alias = _numpy_session_graph(sequence)
        slots = np.flatnonzero(node_ids[row])  # node slots in first-occurrence order
        assert node_ids[row][slots].tolist() == nodes
        np.testing.assert_array_equal(adjacency[row][np.ix_(slots, slots)], expected)
        assert adjacency[row].sum() == expected.sum(), "edges only between node slots"
        real = sequence != 0
        assert [slots.tolist().index(a) for a in alias[row][real]] == expected_alias
        np.testing.assert_array_equal(alias[row][~real], np.flatnonzero(~real))  # own empty slot
    assert adjacency[4].max() == 1.0  # the repeated transition 2 > 3 counts once
    np.testing.assert_array_equal(adjacency, edge_times < SEQUENCES.shape[1])
    # Row 4 is 2 3 2 3 5 1: 2>3 first at position 1 (again at 3), 3>2 at 2, 3>5 at 4, 5>1 at 5.
    slot = {2: 0, 3: 1, 5: 4, 1: 5}
    assert {(a, b): int(edge_times[4, slot[a], slot[b]]) for a, b in [(2, 3), (3, 2), (3, 5), (5, 1)]} == {
        (2, 3): 1, (3, 2): 2, (3, 5): 4, (5, 1): 5}


@pytest.mark.parametrize("normalize", [True, False])
def test_prefix_states_equal_the_layer_on_each_prefix_graph(normalize):
    rng = np.random.default_rng(5)
    length = SEQUENCES.shape[1]
    features = rng.normal(size=(len(SEQUENCES), length, D)).astype(np.float32)
    features[3] = np.inf  # all padding: must stay out of every result
    layer = GatedGraphConvolution(normalize=normalize)
    graph = session_graph(SEQUENCES)
    node_mask = graph.node_ids > 0
    layer(features, graph.adjacency, mask=node_mask)
    _randomize(layer)
    nodes = np.tile(np.arange(length), [len(SEQUENCES), length])  # every (time, node) pair
    times = np.repeat(np.arange(length), length)[None].repeat(len(SEQUENCES), 0)
    states = layer.prefix_states(features, graph.edge_times, nodes, times, mask=node_mask).numpy()
    assert np.isfinite(states).all()
    for t in range(length):
        prefix_graph = tf.cast(graph.edge_times <= t, tf.float32)
        expected = layer(features, prefix_graph, mask=node_mask).numpy()
        np.testing.assert_allclose(states[:, t * length:(t + 1) * length], expected, rtol=1e-5, atol=1e-5)
    # The prefixes differ (the check can fail): node 4>5's source 4 gains its successor at 3.
    assert not np.allclose(states[0, 2 * length + 2], states[0, 3 * length + 2], atol=1e-4)
    with pytest.raises(ValueError, match="one propagation step"):
        GatedGraphConvolution(num_steps=2).prefix_states(features, graph.edge_times, nodes, times)


@pytest.mark.parametrize("num_steps, normalize", [(1, True), (2, True), (1, False)])
def test_matches_numpy_reference(num_steps, normalize):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(len(SEQUENCES), SEQUENCES.shape[1], D)).astype(np.float32)
    layer = GatedGraphConvolution(num_steps=num_steps, normalize=normalize)
    _run(layer, SEQUENCES, features)
    _randomize(layer)
    output, graph = _run(layer, SEQUENCES, features)
    output, node_ids = output.numpy(), graph.node_ids.numpy()
    assert len(layer.weights) == 8
    for row, sequence in enumerate(SEQUENCES):
        _, adjacency, _ = _numpy_session_graph(sequence)
        slots = np.flatnonzero(node_ids[row])
        expected = _numpy_ggnn(layer, features[row][slots], adjacency, normalize)
        np.testing.assert_allclose(output[row][slots], expected, rtol=1e-5, atol=1e-5)
        empty = np.setdiff1d(np.arange(SEQUENCES.shape[1]), slots)
        np.testing.assert_array_equal(output[row][empty], 0.0)


def test_padding_never_changes_real_nodes():
    """More left padding, and garbage at padded slots, give the same node states (shifted)."""
    rng = np.random.default_rng(3)
    layer = GatedGraphConvolution(num_steps=2)
    short = SEQUENCES[[0, 4]]
    features = rng.normal(size=(2, 6, D)).astype(np.float32)
    expected, _ = _run(layer, short, features)
    padded = np.pad(short, [[0, 0], [3, 0]])
    noisy = np.concatenate([rng.normal(size=(2, 3, D)) * 1e30, features], axis=1).astype(np.float32)
    noisy[0, 3:5] = np.inf  # the padded slots of the first row
    output, _ = _run(layer, padded, noisy)
    assert np.isfinite(output.numpy()).all()
    np.testing.assert_allclose(output.numpy()[:, 3:], expected.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(output.numpy()[:, :3], 0.0)


def test_all_padding_and_isolated_nodes_are_finite_with_gradients():
    layer = GatedGraphConvolution()
    features = tf.constant(np.random.default_rng(0).normal(size=(len(SEQUENCES), 6, D)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(features)
        output, _ = _run(layer, SEQUENCES, features)
        loss = tf.reduce_sum(output ** 2)
    np.testing.assert_array_equal(output.numpy()[3], 0.0)  # all padding
    assert np.isfinite(output.numpy()).all() and np.abs(output.numpy()[2, 5]).sum() > 0
    grads = tape.gradient(loss, layer.trainable_weights + [features])
    assert all(np.isfinite(g.numpy()).all() for g in grads)
    assert all(np.any(g.numpy() != 0) for g in grads[:-1])
    np.testing.assert_array_equal(grads[-1].numpy()[3], 0.0)


def test_initial_weights_are_distinct_draws():
    """A Keras 2 initializer instance repeats its values: every weight must get its own."""
    layer = GatedGraphConvolution(kernel_initializer=tf.keras.initializers.RandomNormal(stddev=0.02))
    layer.build([None, None, D])
    assert not np.allclose(layer.edge_in_kernel.numpy(), layer.edge_out_kernel.numpy())
    assert not np.allclose(layer.input_kernel.numpy()[:D], layer.recurrent_kernel.numpy())
    assert np.abs(layer.recurrent_kernel.numpy()).max() <= 1 / np.sqrt(D)  # SR-GNN's U(+-1/sqrt(D))


@pytest.mark.parametrize("kwargs", [{}, {"num_steps": 3, "normalize": False, "kernel_initializer": "he_normal",
                                         "gate_initializer": "orthogonal"}])
def test_config_round_trip(kwargs):
    features = np.random.default_rng(0).normal(size=(len(SEQUENCES), 6, D)).astype(np.float32)
    layer = GatedGraphConvolution(name="ggnn", **kwargs)
    ref.assert_config_round_trip(layer, lambda lay: _run(lay, SEQUENCES, features)[0])
    assert tf.keras.utils.get_registered_name(GatedGraphConvolution) == "tf_attnrec>GatedGraphConvolution"
    clone = tf.keras.layers.deserialize(tf.keras.layers.serialize(layer))
    assert isinstance(clone, GatedGraphConvolution) and clone.get_config() == layer.get_config()


def test_tf_function_with_dynamic_shapes():
    layer = GatedGraphConvolution()
    _run(layer, SEQUENCES, np.ones((len(SEQUENCES), 6, D), np.float32))  # build eagerly

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None, D])])
    def forward(ids, x):
        graph = session_graph(ids)
        return layer(x, graph.adjacency, mask=graph.node_ids > 0)

    for length in (6, 3, 1):
        ids = SEQUENCES[:, -length:]
        x = np.ones((len(ids), length, D), np.float32)
        np.testing.assert_allclose(forward(ids, x).numpy(), _run(layer, ids, x)[0].numpy(), rtol=1e-6, atol=1e-6)
    assert forward.experimental_get_tracing_count() == 1


def test_bad_arguments_raise_clear_errors():
    for steps in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="`num_steps`"):
            GatedGraphConvolution(num_steps=steps)
    with pytest.raises(ValueError, match="`kernel_initializer`"):
        GatedGraphConvolution(kernel_initializer="no-such-initializer")
    with pytest.raises(ValueError, match="`gate_initializer`"):
        GatedGraphConvolution(gate_initializer="no-such-initializer")
    with pytest.raises(ValueError, match=r"\[batch, nodes, features\]"):
        GatedGraphConvolution()(tf.zeros([3, D]), tf.zeros([3, 3]))
    with pytest.raises(ValueError, match="dense \\[batch, nodes, nodes\\]"):
        GatedGraphConvolution()(tf.zeros([1, 3, D]), tf.zeros([3, 3]))
    with pytest.raises(ValueError, match="session_graph expects"):
        session_graph(tf.zeros([3], tf.int32))
