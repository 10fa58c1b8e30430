"""Tests for tf_attnrec.data.pair_batches.bpr_triples (BPR batches over the training graph)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec.data.graph import InteractionGraph
from tf_attnrec.data.pair_batches import bpr_triples

NUM_USERS, NUM_ITEMS = 20, 15


def _graph(seed: int = 0) -> InteractionGraph:
    """Each user has 1..7 of the 15 items (so a negative always exists); with repeats."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(NUM_USERS - 1):  # the last user has no edge
        chosen = rng.choice(NUM_ITEMS, int(rng.integers(1, 8)), replace=False)
        users += [u] * len(chosen) + [u]
        items += chosen.tolist() + [int(chosen[0])]  # one repeated interaction per user
    return InteractionGraph.from_pairs(users, items, NUM_USERS, NUM_ITEMS)


def _one_pass(dataset) -> list:
    return [{k: v.numpy() for k, v in batch.items()} for batch in dataset]


def _edges(graph) -> Counter:
    return Counter(zip(graph.user_index.tolist(), graph.item_index.tolist()))


@pytest.mark.parametrize("batch_size", [7, 1000])
def test_one_pass_yields_every_edge_once_with_a_true_negative(batch_size):
    graph = _graph()
    tf.keras.utils.set_random_seed(0)
    dataset = bpr_triples(graph, batch_size=batch_size, seed=3)
    expected_batches = math.ceil(graph.num_edges / batch_size)
    assert int(dataset.cardinality().numpy()) == expected_batches
    batches = _one_pass(dataset)
    assert len(batches) == expected_batches
    positives = {(u, i) for u, i in zip(graph.user_index.tolist(), graph.item_index.tolist())}
    seen = Counter()
    for batch in batches:
        assert set(batch) == {"user", "positive", "negative"}
        for key in batch:
            assert batch[key].dtype == np.int32 and batch[key].shape == batch["user"].shape
        assert len(batch["user"]) <= batch_size
        # Model ids: item node + 2, inside [2, I + 2).
        for key in ("positive", "negative"):
            assert batch[key].min() >= 2 and batch[key].max() < NUM_ITEMS + 2
        for u, p, n in zip(batch["user"].tolist(), batch["positive"].tolist(), batch["negative"].tolist()):
            seen[(u, p - 2)] += 1
            assert (u, n - 2) not in positives, (u, n - 2)
    assert seen == _edges(graph)  # each deduplicated edge exactly once
    assert len(batches[-1]["user"]) == graph.num_edges - (expected_batches - 1) * batch_size


def test_same_seed_gives_the_same_batches():
    graph = _graph(1)

    def run(global_seed, seed):
        tf.keras.utils.set_random_seed(global_seed)
        return _one_pass(bpr_triples(graph, batch_size=8, seed=seed))

    first, again = run(0, 5), run(0, 5)
    assert len(first) == len(again)
    for a, b in zip(first, again):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    other = run(1, 6)
    assert any(not np.array_equal(a["user"], b["user"]) or not np.array_equal(a["negative"], b["negative"])
               for a, b in zip(first, other))


def test_no_shuffle_keeps_edge_order_and_passes_reshuffle():
    graph = _graph(2)
    tf.keras.utils.set_random_seed(0)
    batches = _one_pass(bpr_triples(graph, batch_size=5, shuffle=False))
    users = np.concatenate([b["user"] for b in batches])
    positives = np.concatenate([b["positive"] for b in batches])
    np.testing.assert_array_equal(users, graph.user_index)
    np.testing.assert_array_equal(positives, graph.item_index + 2)
    dataset = bpr_triples(graph, batch_size=1000, seed=0)
    first, second = (next(iter(dataset))["user"].numpy() for _ in range(2))
    assert sorted(first.tolist()) == sorted(second.tolist())
    assert not np.array_equal(first, second)  # each pass is a new shuffle


def test_negatives_cover_the_unseen_items():
    # One user who has seen items 0..3 of 6: negatives are uniform over 4 and 5.
    graph = InteractionGraph.from_pairs([0] * 4, [0, 1, 2, 3], num_users=1, num_items=6)
    tf.keras.utils.set_random_seed(0)
    dataset = bpr_triples(graph, batch_size=4, seed=0).repeat(30)
    negatives = np.concatenate([batch["negative"].numpy() for batch in dataset])
    assert len(negatives) == 4 * 30
    assert set(negatives.tolist()) == {4 + 2, 5 + 2}


def test_cardinality_is_the_number_of_batches():
    graph = _graph(3)
    for batch_size in (1, 3, graph.num_edges, graph.num_edges + 1):
        dataset = bpr_triples(graph, batch_size=batch_size, shuffle=False)
        assert int(dataset.cardinality().numpy()) == math.ceil(graph.num_edges / batch_size)


def test_empty_graph_raises():
    graph = InteractionGraph.from_pairs([], [], num_users=3, num_items=4)
    with pytest.raises(ValueError, match="no edge"):
        bpr_triples(graph)


def test_single_item_graph_raises():
    graph = InteractionGraph.from_pairs([0, 1], [0, 0], num_users=2, num_items=1)
    with pytest.raises(ValueError, match="2 items"):
        bpr_triples(graph)
