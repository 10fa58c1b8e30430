"""Tests for tf_attnrec.models.graphsage_cf (GraphSAGECF, the inductive graph recommender)."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec.data.graph import InteractionGraph
from tf_attnrec.models import graphsage_cf as graphsage_module
from tf_attnrec.models.graphsage_cf import GraphSAGECF, _padded_chunks

U, I, D = 20, 15, 8
VOCAB = I + 2


def _graph(seed: int = 0) -> InteractionGraph:
    """Random edges; user U-1 and item I-1 are isolated (no edge)."""
    rng = np.random.default_rng(seed)
    return InteractionGraph.from_pairs(rng.integers(0, U - 1, 90), rng.integers(0, I - 1, 90), U, I)


def _model(aggregator: str = "attention", seed: int = 0, **config) -> GraphSAGECF:
    tf.keras.utils.set_random_seed(seed)
    model = GraphSAGECF(num_users=U, vocab_size=VOCAB, embedding_dim=D, aggregator=aggregator, num_samples=4,
                        max_length=30, **config)
    model.build_variables()
    model.set_graph(_graph())
    return model


def _history_of(graph: InteractionGraph, user: int) -> np.ndarray:
    return graph.item_index[graph.user_index == user] + 2  # item nodes -> model ids


@pytest.mark.parametrize("aggregator", ["attention", "mean", "max_pool"])
def test_serving_a_history_scores_as_evaluation_scores_that_user(aggregator):
    # Inductive: the served path (a raw history, no user id) and the evaluation path (the
    # training user's row) embed the user the same way, from their items.
    model = _model(aggregator)
    graph = model.graph
    users, items = model.final_embeddings()
    for user in (0, 5, U - 1):  # U-1 has no training item
        history = _history_of(graph, user)
        served = model.score(tf.constant(np.pad(history, (30 - len(history), 0))[None, :], tf.int32)).numpy()[0]
        evaluated = model(tf.constant([user])).numpy()[0]
        np.testing.assert_allclose(served, evaluated, rtol=1e-5, atol=1e-6)
        assert np.all(np.isfinite(served)) and served[0] < -1e8 and served[1] < -1e8


def test_padding_unknown_ids_and_order_never_change_a_users_scores():
    model = _model()
    history = _history_of(model.graph, 3)
    plain = model.score(tf.constant(history[None, :], tf.int32)).numpy()
    padded = np.concatenate([[0, 0, 1], history[::-1], [1]])  # left padding, OOV ids, reversed
    np.testing.assert_allclose(model.score(tf.constant(padded[None, :], tf.int32)).numpy(), plain, rtol=1e-5, atol=1e-6)
    empty = model.score(tf.constant([[0, 0, 1]], tf.int32)).numpy()
    assert np.all(np.isfinite(empty[:, 2:]))  # nothing known: finite scores, never NaN


def test_a_training_step_never_reads_the_users_own_vector():
    # A new user has no vector, so training must not let a user's own e_u into their score:
    # it is left out of their items' neighbourhoods. Its gradient must be exactly zero.
    model = _model(reg_weight=0.0)
    features = {"user": tf.constant([0, 0, 0, 0]), "positive": tf.constant([2, 3, 4, 5]),
                "negative": tf.constant([6, 7, 8, 9])}
    with tf.GradientTape() as tape:
        loss = model.compute_loss(features, training=True)
    gradient = tape.gradient(loss, model.user_embedding.embeddings)
    dense = tf.convert_to_tensor(gradient).numpy()
    assert np.all(dense[0] == 0.0)
    assert np.abs(dense[1:]).sum() > 0  # other users, as neighbours, do learn


def test_evaluation_neighbourhoods_are_fixed_by_the_seed():
    a, b, c = _model(seed=0), _model(seed=0), _model(seed=0, neighbour_seed=1)
    np.testing.assert_array_equal(a.item_table().numpy(), b.item_table().numpy())
    np.testing.assert_array_equal(a.item_table().numpy(), a.item_table().numpy())  # no redraw per call
    assert not np.allclose(a.item_table().numpy(), c.item_table().numpy())


def test_padded_chunks_hold_every_neighbour_once(monkeypatch):
    monkeypatch.setattr(graphsage_module, "_CHUNK_ENTRIES", 16)  # many small chunks
    graph = _graph(seed=2)
    indptr, neighbours = graph.neighbour_lists("users")
    chunks = _padded_chunks(indptr, neighbours)
    assert len(chunks) > 2
    seen = {}
    for nodes, lists, mask in chunks:
        assert lists.shape == mask.shape and lists.shape[0] == len(nodes)
        assert lists.size <= 16 or len(nodes) == 1
        for node, row, keep in zip(nodes, lists, mask):
            seen[int(node)] = sorted(row[keep].tolist())
    assert sorted(seen) == list(range(U))
    for node in range(U):
        assert seen[node] == sorted(neighbours[indptr[node]:indptr[node + 1]].tolist())


def test_training_lowers_the_loss_and_the_config_round_trips():
    model = _model()
    graph = model.graph
    rng = np.random.default_rng(0)
    edges = rng.integers(0, graph.num_edges, 256)
    features = {"user": graph.user_index[edges], "positive": graph.item_index[edges] + 2,
                "negative": rng.integers(2, VOCAB, 256).astype(np.int32)}
    step = tf.function(lambda: model.compute_loss(features, training=True))
    first = float(step())
    optimizer = tf.keras.optimizers.Adam(0.05)
    for _ in range(30):
        with tf.GradientTape() as tape:
            loss = step()
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    assert float(step()) < first - 0.1
    clone = GraphSAGECF.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    with pytest.raises(ValueError, match="num_samples"):
        GraphSAGECF(num_users=U, vocab_size=VOCAB, num_samples=0)
    with pytest.raises(RuntimeError, match="set_graph"):
        GraphSAGECF(num_users=U, vocab_size=VOCAB).item_table()
