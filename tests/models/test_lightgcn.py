"""Tests for tf_attnrec.models.lightgcn (LightGCN) and its base tf_attnrec.models.graph_cf."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec.data.graph import InteractionGraph
from tf_attnrec.models.lightgcn import LightGCN
from tf_attnrec.models.registry import create_model
from tf_attnrec.training import compile_for_training

U, I, D = 20, 15, 8
VOCAB = I + 2


def _graph(seed: int = 0) -> InteractionGraph:
    """Random edges; user U-1 and item I-1 are isolated (no edge)."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, U - 1, 90)
    items = rng.integers(0, I - 1, 90)
    return InteractionGraph.from_pairs(users, items, U, I)


def _model(num_layers: int = 3, reg_weight: float = 1e-2, seed: int = 0, graph=None) -> LightGCN:
    tf.keras.utils.set_random_seed(seed)
    model = LightGCN(num_users=U, vocab_size=VOCAB, embedding_dim=D, num_layers=num_layers, reg_weight=reg_weight)
    model.build_variables()
    model.set_graph(_graph() if graph is None else graph)
    return model


def _numpy_final(model: LightGCN, graph: InteractionGraph, num_layers: int):
    """mean_k (Â^k E_0), Â = D^-1/2 A D^-1/2 of the dense symmetric bipartite adjacency."""
    a = np.zeros((U + I, U + I))
    for u, i in zip(graph.user_index, graph.item_index):
        a[u, U + i] = a[U + i, u] = 1.0
    degree = a.sum(axis=1)
    inv = np.zeros_like(degree)
    inv[degree > 0] = degree[degree > 0] ** -0.5
    a_hat = inv[:, None] * a * inv[None, :]
    users, items = (np.asarray(t, np.float64) for t in model.ego_embeddings())
    layer = np.concatenate([users, items])
    total = layer.copy()
    for _ in range(num_layers):
        layer = a_hat @ layer
        total += layer
    final = total / (num_layers + 1)
    return final[:U], final[U:]


def _triples(seed: int = 0, batch: int = 12):
    rng = np.random.default_rng(seed)
    return {"user": rng.integers(0, U, batch).astype(np.int32),
            "positive": rng.integers(2, VOCAB, batch).astype(np.int32),
            "negative": rng.integers(2, VOCAB, batch).astype(np.int32)}


@pytest.mark.parametrize("num_layers", [0, 1, 3])
def test_final_embeddings_match_dense_numpy(num_layers):
    graph = _graph()
    model = _model(num_layers, graph=graph)
    users, items = model.final_embeddings()
    expected_users, expected_items = _numpy_final(model, graph, num_layers)
    assert users.shape == (U, D) and items.shape == (I, D)
    assert np.isfinite(users.numpy()).all() and np.isfinite(items.numpy()).all()
    np.testing.assert_allclose(users.numpy(), expected_users, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(items.numpy(), expected_items, rtol=1e-5, atol=1e-6)
    # An isolated node only keeps its own share: E_0 / (K + 1).
    ego_users, ego_items = (t.numpy() for t in model.ego_embeddings())
    np.testing.assert_allclose(users.numpy()[U - 1], ego_users[U - 1] / (num_layers + 1), rtol=1e-6)
    np.testing.assert_allclose(items.numpy()[I - 1], ego_items[I - 1] / (num_layers + 1), rtol=1e-6)


def test_call_scores_every_item_with_reserved_columns_excluded():
    graph = _graph()
    model = _model(2, graph=graph)
    rows = np.array([3, 0, U - 1, 3], np.int32)
    scores = model(tf.constant(rows)).numpy()
    assert scores.shape == (len(rows), VOCAB)
    user_final, item_final = _numpy_final(model, graph, 2)
    np.testing.assert_allclose(scores[:, 2:], user_final[rows] @ item_final.T, rtol=1e-4, atol=1e-6)
    assert (scores[:, :2] <= -1e8).all()
    assert (scores[:, :2].max() < scores[:, 2:].min())
    np.testing.assert_allclose(model({"user": tf.constant(rows)}).numpy(), scores)


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


@pytest.mark.parametrize("reg_weight", [0.0, 0.5])
def test_compute_loss_is_bpr_plus_regularisation(reg_weight):
    graph = _graph()
    model = _model(2, reg_weight=reg_weight, graph=graph)
    batch = _triples()
    loss = float(model.compute_loss({k: tf.constant(v) for k, v in batch.items()}))
    user_final, item_final = _numpy_final(model, graph, 2)
    ego_users, ego_items = (np.asarray(t, np.float64) for t in model.ego_embeddings())
    u, p, n = batch["user"], batch["positive"] - 2, batch["negative"] - 2
    margin = np.sum(user_final[u] * (item_final[p] - item_final[n]), axis=1)
    bpr = -np.mean(_log_sigmoid(margin))
    reg = (np.linalg.norm(ego_users[u]) + np.linalg.norm(ego_items[p]) + np.linalg.norm(ego_items[n])) / len(u)
    assert loss == pytest.approx(bpr + reg_weight * reg, rel=1e-5)


def test_a_few_train_steps_lower_the_loss():
    model = _model(2, reg_weight=1e-4)
    compile_for_training(model, learning_rate=0.05)
    batch = {k: tf.constant(v) for k, v in _triples(1, batch=32).items()}
    before = float(model.compute_loss(batch))
    for _ in range(10):
        model.train_step(batch)
    after = float(model.compute_loss(batch))
    assert after < before - 0.05, (before, after)


def test_get_config_round_trip():
    model = _model(3, reg_weight=0.25)
    config = model.get_config()
    assert config["num_users"] == U and config["vocab_size"] == VOCAB
    assert config["embedding_dim"] == D and config["num_layers"] == 3 and config["reg_weight"] == 0.25
    clone = LightGCN.from_config(config)
    clone.build_variables()
    assert clone.get_config() == config
    assert sorted(w.shape.as_list() for w in clone.weights) == sorted(w.shape.as_list() for w in model.weights)
    assert sorted(w.shape.as_list() for w in clone.weights) == [[I, D], [U, D]]


def test_registry_builds_lightgcn():
    model = create_model("lightgcn", vocab_size=VOCAB, num_users=U, embedding_dim=4, num_layers=1)
    assert isinstance(model, LightGCN)
    assert (model.num_users, model.num_items, model.embedding_dim, model.num_layers) == (U, I, 4, 1)


def test_no_graph_is_a_runtime_error_naming_set_graph():
    tf.keras.utils.set_random_seed(0)
    model = LightGCN(num_users=U, vocab_size=VOCAB, embedding_dim=D)
    model.build_variables()
    with pytest.raises(RuntimeError, match="set_graph"):
        model(tf.constant([0]))
    with pytest.raises(RuntimeError, match="set_graph"):
        model.compute_loss({k: tf.constant(v) for k, v in _triples().items()})


@pytest.mark.parametrize("num_users, num_items", [(U + 1, I), (U, I - 1)])
def test_a_graph_of_the_wrong_size_is_a_value_error(num_users, num_items):
    model = LightGCN(num_users=U, vocab_size=VOCAB, embedding_dim=D)
    with pytest.raises(ValueError, match="graph"):
        model.set_graph(InteractionGraph.from_pairs([0], [0], num_users, num_items))
    with pytest.raises(TypeError, match="InteractionGraph"):
        model.set_graph("not a graph")


@pytest.mark.parametrize("kwargs", [{"num_layers": -1}, {"embedding_dim": 0}, {"reg_weight": -1.0},
                                    {"vocab_size": 2}])
def test_bad_arguments_raise(kwargs):
    arguments = {"num_users": U, "vocab_size": VOCAB, **kwargs}
    with pytest.raises(ValueError):
        LightGCN(**arguments)
