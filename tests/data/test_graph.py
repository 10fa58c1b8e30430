"""Interaction graph: training edges only, deduplicated, normalised adjacency; neighbour sampling."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

import tf_attnrec  # noqa: F401  (selects Keras 2; must come before TensorFlow)
import tensorflow as tf

from tf_attnrec.data.graph import InteractionGraph, NeighbourSampler, sample_with_replacement
from tf_attnrec.data.splits import leave_one_out_split


def _tiny_split():
    # User 1, in time order: a b c | d (validation) | e (test); e is nobody's training item.
    # User 2: a a b | c | d, with a repeated. User 3 is short (2 items): all of it trains.
    df = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3],
            "item_id": ["a", "b", "c", "d", "e", "a", "a", "b", "c", "d", "c", "b"],
            "timestamp": [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2],
        }
    )
    return leave_one_out_split(df)


def _pairs(graph: InteractionGraph) -> set:
    return set(zip(graph.user_index.tolist(), graph.item_index.tolist()))


def _dense(sparse: tf.SparseTensor) -> np.ndarray:
    return tf.sparse.to_dense(sparse).numpy()


def _assert_canonical(sparse: tf.SparseTensor):
    np.testing.assert_array_equal(sparse.indices.numpy(), tf.sparse.reorder(sparse).indices.numpy())


def _reference_adjacency(users, items, num_users, num_items, normalize):
    """Dense D^-1/2 A D^-1/2 of the bipartite graph, written the slow, obvious way."""
    size = num_users + num_items
    a = np.zeros((size, size))
    for u, i in zip(users, items):
        a[u, num_users + i] = a[num_users + i, u] = 1.0
    if not normalize:
        return a
    degree = a.sum(axis=1)
    inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1.0)), 0.0)
    return inv_sqrt[:, None] * a * inv_sqrt[None, :]


def _random_graph(seed=0, num_users=40, num_items=30, num_pairs=400):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, num_users - 1, num_pairs)  # the last user stays isolated
    items = rng.integers(0, num_items - 1, num_pairs)  # the last item stays isolated
    return InteractionGraph.from_pairs(users, items, num_users, num_items)


def test_from_sequence_split_has_exactly_the_training_pairs():
    split = _tiny_split()
    graph = InteractionGraph.from_sequence_split(split)
    node = {raw: int(split.vocabulary.lookup([raw])[0]) - 2 for raw in "abcde"}  # model id - 2
    assert (graph.num_users, graph.num_items) == (3, 5)
    assert _pairs(graph) == {
        (0, node["a"]), (0, node["b"]), (0, node["c"]),
        (1, node["a"]), (1, node["b"]),
        (2, node["c"]), (2, node["b"]),
    }
    # The held-out items of users 1 and 2 are not their training items, so an edge for any
    # of them could only have come from validation_target / test_target.
    for row in (0, 1):
        for held_out in (split.validation_target[row], split.test_target[row]):
            assert int(held_out) not in split.train[row]
            assert (row, int(held_out) - 2) not in _pairs(graph)
    assert graph.item_degree()[node["e"]] == 0  # e is only ever a test item


def test_from_sequence_split_leaves_out_oov_ids():
    split = _tiny_split()
    split.train[0] = np.array([1, 2, 1], dtype=np.int32)  # two unknown items (OOV = 1)
    graph = InteractionGraph.from_sequence_split(split)
    assert [i for u, i in _pairs(graph) if u == 0] == [0]
    assert graph.item_index.min() >= 0


def test_duplicates_become_one_edge_and_degrees_match_bincount():
    users = [2, 0, 2, 0, 2, 1, 0]
    items = [1, 3, 1, 3, 0, 1, 1]
    graph = InteractionGraph.from_pairs(users, items, num_users=4, num_items=5)
    assert graph.num_edges == 5
    # Deduplicated and sorted by (user, item).
    assert list(zip(graph.user_index.tolist(), graph.item_index.tolist())) == [(0, 1), (0, 3), (1, 1), (2, 0), (2, 1)]
    assert graph.user_index.dtype == np.int32 and graph.item_index.dtype == np.int32
    np.testing.assert_array_equal(graph.user_degree(), np.bincount(graph.user_index, minlength=4))
    np.testing.assert_array_equal(graph.item_degree(), np.bincount(graph.item_index, minlength=5))
    np.testing.assert_array_equal(graph.user_degree(), [2, 1, 2, 0])
    np.testing.assert_array_equal(graph.item_degree(), [1, 3, 0, 1, 0])
    with pytest.raises(ValueError, match="read-only"):
        graph.user_index[0] = 3


@pytest.mark.parametrize("normalize", [True, False])
def test_adjacency_matches_a_dense_reference(normalize):
    # User 3 and item 4 are isolated.
    users, items = [0, 0, 1, 2, 2, 2, 0], [0, 1, 1, 1, 2, 3, 0]
    graph = InteractionGraph.from_pairs(users, items, num_users=4, num_items=5)
    adjacency = graph.adjacency(normalize=normalize)
    assert tuple(adjacency.dense_shape.numpy()) == (9, 9) and adjacency.dtype == tf.float32
    assert adjacency.values.shape[0] == 2 * graph.num_edges
    _assert_canonical(adjacency)
    dense = _dense(adjacency)
    np.testing.assert_allclose(dense, _reference_adjacency(users, items, 4, 5, normalize), rtol=1e-6)
    np.testing.assert_array_equal(dense, dense.T)
    assert np.isfinite(adjacency.values.numpy()).all()
    rows = adjacency.indices.numpy()[:, 0]
    assert 3 not in rows and 4 + 4 not in rows  # isolated user 3 and item 4 have no entries
    if normalize:  # spot check: user 0 (items 0, 1) - item 1 (users 0, 1, 2)
        assert dense[0, 4 + 1] == pytest.approx(1 / np.sqrt(2 * 3))


def test_bipartite_blocks_are_the_off_diagonal_of_the_adjacency():
    graph = _random_graph()
    full = _dense(graph.adjacency())
    user_item, item_user = graph.user_item_adjacency(), graph.item_user_adjacency()
    assert tuple(user_item.dense_shape.numpy()) == (40, 30) and tuple(item_user.dense_shape.numpy()) == (30, 40)
    _assert_canonical(user_item)
    _assert_canonical(item_user)
    np.testing.assert_allclose(_dense(user_item), full[:40, 40:])
    np.testing.assert_allclose(_dense(item_user), full[40:, :40])
    np.testing.assert_array_equal(_dense(graph.user_item_adjacency(normalize=False)), full[:40, 40:] > 0)
    np.testing.assert_array_equal(_dense(graph.item_user_adjacency(normalize=False)), full[40:, :40] > 0)


def test_empty_graph_builds():
    graph = InteractionGraph.from_pairs([], [], num_users=2, num_items=3)
    assert graph.num_edges == 0 and graph.user_degree().tolist() == [0, 0]
    assert _dense(graph.adjacency()).shape == (5, 5) and not _dense(graph.adjacency()).any()
    neighbours, mask = NeighbourSampler(graph, 3, seed=0).sample_items_of_users([0, 1])
    assert neighbours.shape == mask.shape == (2, 3) and not mask.any()


@pytest.mark.parametrize(
    "users, items, message",
    [
        ([0, -1], [0, 0], r"user_index has -1 at position 1 .*\[0, num_users=3\)"),
        ([0, 3], [0, 0], r"user_index has 3 at position 1 .*\[0, num_users=3\)"),
        ([0, 1], [-2, 0], r"item_index has -2 at position 0 .*\[0, num_items=2\)"),
        ([0, 1], [0, 2], r"item_index has 2 at position 1 .*\[0, num_items=2\)"),
        ([0, 1], [0], "one entry per edge; got 2 and 1"),
    ],
)
def test_out_of_range_indices_name_the_field(users, items, message):
    with pytest.raises(ValueError, match=message):
        InteractionGraph.from_pairs(users, items, num_users=3, num_items=2)


def test_bad_inputs_are_refused_clearly():
    with pytest.raises(TypeError, match="item_index must hold integer"):
        InteractionGraph.from_pairs([0], [0.5], num_users=1, num_items=1)
    with pytest.raises(ValueError, match="num_items must be a non-negative integer"):
        InteractionGraph.from_pairs([0], [0], num_users=1, num_items=-1)
    split = _tiny_split()
    split.train[2] = np.array([2, 7], dtype=np.int32)  # id 7 = item node 5, beyond the 5 items
    with pytest.raises(ValueError, match=r"item_index has 5 .*num_items=5"):
        InteractionGraph.from_sequence_split(split)
    sampler = NeighbourSampler(_random_graph(), 4, seed=0)
    with pytest.raises(ValueError, match=r"user_indices has 40 .*num_users=40"):
        sampler.sample_items_of_users([0, 40])
    with pytest.raises(ValueError, match=r"item_indices has -1 .*num_items=30"):
        sampler.sample_users_of_items([-1])
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1"):
        NeighbourSampler(_random_graph(), 0, seed=0)


def test_sampler_is_deterministic_given_the_seed():
    graph = _random_graph()
    users, items = np.arange(40), np.arange(30)

    def draws(seed):
        sampler = NeighbourSampler(graph, 5, seed=seed)
        return [*sampler.sample_items_of_users(users), *sampler.sample_users_of_items(items), *sampler.sample_items_of_users(users)]

    first, again, other = draws(7), draws(7), draws(8)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0]) and not np.array_equal(first[2], other[2])
    # Successive calls advance the generator: the third draw is not a repeat of the first.
    assert not np.array_equal(first[0], first[4])


@pytest.mark.parametrize("side", ["users", "items"])
def test_sampler_draws_distinct_real_neighbours_and_pads_short_rows(side):
    graph = _random_graph(seed=1)
    num_samples = 12  # above some degrees and below others
    sampler = NeighbourSampler(graph, num_samples, seed=0)
    if side == "users":
        nodes, degree = np.arange(graph.num_users), graph.user_degree()
        neighbours, mask = sampler.sample_items_of_users(nodes)
        true = {u: {i for uu, i in _pairs(graph) if uu == u} for u in nodes}
    else:
        nodes, degree = np.arange(graph.num_items), graph.item_degree()
        neighbours, mask = sampler.sample_users_of_items(nodes)
        true = {i: {u for u, ii in _pairs(graph) if ii == i} for i in nodes}
    assert neighbours.shape == mask.shape == (len(nodes), num_samples)
    assert neighbours.dtype == np.int32 and mask.dtype == bool
    assert (degree < num_samples).any() and (degree > num_samples).any()
    for node in nodes:
        row = neighbours[node][mask[node]]
        assert len(row) == min(degree[node], num_samples)
        assert len(set(row.tolist())) == len(row)  # without replacement
        assert set(row.tolist()) <= true[node]
        if degree[node] < num_samples:  # all neighbours, then padding
            assert set(row.tolist()) == true[node]
            assert mask[node].tolist() == [True] * degree[node] + [False] * (num_samples - degree[node])
        assert (neighbours[node][~mask[node]] == 0).all()
    assert not mask[-1].any()  # the isolated last node


def test_sampler_is_uniform():
    # User 0 has 5 items; with S = 2 each item should appear in 2/5 of the draws.
    graph = InteractionGraph.from_pairs([0] * 5 + [1], [0, 1, 2, 3, 4, 0], num_users=2, num_items=5)
    neighbours, mask = NeighbourSampler(graph, 2, seed=3).sample_items_of_users(np.zeros(20_000, dtype=np.int32))
    assert mask.all()
    frequency = np.bincount(neighbours.ravel(), minlength=5) / 20_000
    np.testing.assert_allclose(frequency, 0.4, atol=0.02)
    # Both slots are uniform too (the first one is not, e.g., always the lowest index).
    np.testing.assert_allclose(np.bincount(neighbours[:, 0], minlength=5) / 20_000, 0.2, atol=0.02)


@pytest.mark.slow
def test_ml1m_graph_builds_in_seconds_without_held_out_edges(ml1m_split):
    split = ml1m_split
    start = time.perf_counter()
    graph = InteractionGraph.from_sequence_split(split)
    adjacency = graph.adjacency()
    seconds = time.perf_counter() - start
    assert seconds < 10, f"building the ML-1M graph took {seconds:.1f} s"
    # ML-1M has no repeated user-item pair, so every training interaction is one edge.
    assert (graph.num_users, graph.num_items) == (6040, 3416)
    assert graph.num_edges == 999_611 - 2 * 6040
    assert adjacency.values.shape[0] == 2 * graph.num_edges
    # Edges are sorted by (user, item), so their keys are sorted: look the held-out pairs up.
    edges = graph.user_index.astype(np.int64) * graph.num_items + graph.item_index
    rows = np.arange(split.num_users, dtype=np.int64) * graph.num_items
    for target in (split.validation_target, split.test_target):
        keys = rows + target - 2
        found = edges[np.minimum(np.searchsorted(edges, keys), len(edges) - 1)] == keys
        assert not found.any()
    sampler = NeighbourSampler(graph, 10, seed=0)
    start = time.perf_counter()
    items, mask = sampler.sample_items_of_users(np.arange(1024))
    users, user_mask = sampler.sample_users_of_items(np.arange(1024))
    assert time.perf_counter() - start < 2
    assert mask.all()  # every ML-1M user has at least 16 training items
    assert items.shape == users.shape == (1024, 10) and user_mask.any(axis=1).all()


def test_neighbour_lists_hold_each_edge_once_per_side():
    graph = _random_graph()
    for side, (own, other) in {"users": (graph.user_index, graph.item_index),
                               "items": (graph.item_index, graph.user_index)}.items():
        indptr, neighbours = graph.neighbour_lists(side)
        listed = {(node, int(n)) for node in range(len(indptr) - 1) for n in neighbours[indptr[node]:indptr[node + 1]]}
        assert listed == set(zip(own.tolist(), other.tolist())) and len(neighbours) == graph.num_edges
    with pytest.raises(ValueError, match="'users' or 'items'"):
        graph.neighbour_lists("edges")


def test_sample_with_replacement_draws_only_neighbours_uniformly_and_repeatably():
    # User 0 has 4 items, user 1 one, user 2 (the last node) none.
    graph = InteractionGraph.from_pairs([0, 0, 0, 0, 1], [0, 1, 2, 3, 2], num_users=3, num_items=4)
    indptr, neighbours = graph.neighbour_lists("users")
    args = (tf.constant(indptr), tf.constant(np.append(neighbours, 0)), tf.constant([0, 1, 2, 0]), 2000)

    def draw(seed):
        tf.keras.utils.set_random_seed(seed)
        return [t.numpy() for t in sample_with_replacement(*args)]

    sampled, mask = draw(0)
    assert sampled.shape == mask.shape == (4, 2000)
    assert mask[[0, 1, 3]].all() and not mask[2].any()  # the isolated last node is all padding
    assert set(sampled[0]) == {0, 1, 2, 3} and set(sampled[1]) == {2}
    counts = np.bincount(sampled[0], minlength=4)
    assert counts.min() > 400  # about 500 of 2000 each: uniform over the four
    again, _ = draw(0)
    other, _ = draw(1)
    np.testing.assert_array_equal(sampled, again)
    assert not np.array_equal(sampled, other)
