"""GC-SAN encoder: padding invariance, exact per-prefix training states, config, one train step."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.models.conftest import MAX_LENGTH, VOCAB_SIZE
from tf_attnrec.data.pipelines import next_item_dataset
from tf_attnrec.models.gcsan import GCSANEncoder
from tf_attnrec.models.registry import create_model, get_model_spec
from tf_attnrec.training import compile_for_training

TINY = {"hidden_dim": 8, "num_blocks": 1}


def _model(**config):
    tf.keras.utils.set_random_seed(0)
    return create_model("gcsan", vocab_size=VOCAB_SIZE, max_length=MAX_LENGTH, **{**TINY, **config})


def test_left_padding_does_not_change_the_query_or_scores():
    model = _model(num_steps=2, num_blocks=2, initializer_range=None)  # Glorot: outputs vary more
    items = [4, 5, 4, 6, 6]  # a repeat and a self loop
    rows = np.array([[0] * (MAX_LENGTH - len(items)) + items], np.int32)
    query = model(rows, training=False).numpy()
    for length in (len(items), 6):  # less padding, and none at all
        shorter = np.array([[0] * (length - len(items)) + items], np.int32)
        np.testing.assert_allclose(model(shorter, training=False).numpy(), query, rtol=1e-5, atol=1e-6)
    # Different amounts of padding in one batch, and a history cut to its last MAX_LENGTH items.
    batch = np.array([[0] * 3 + items, [9, 9, 9] + items, [0] * MAX_LENGTH], np.int32)
    queries = model(batch, training=False).numpy()
    np.testing.assert_allclose(queries[0], query[0], rtol=1e-5, atol=1e-6)
    longer = np.concatenate([[[7, 8, 9]], batch[:1]], axis=1).astype(np.int32)
    np.testing.assert_allclose(model.score(longer).numpy(), model.score(batch[:1]).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(queries[2], 0.0)  # all padding: a zero query, finite scores
    assert np.isfinite(model.score(batch).numpy()).all()
    # The check above can fail: other items, or the same items in another order, change it.
    assert not np.allclose(queries[1], query[0], atol=1e-4)
    reordered = np.array([[0] * 3 + [6, 4, 5, 4, 6]], np.int32)
    assert not np.allclose(model(reordered, training=False).numpy(), query, atol=1e-4)


def test_whole_history_graph_states_see_later_items():
    """Why `encode_sequence` cannot read per-position outputs of `call`'s graph."""
    encoder = _model().encoder
    history = np.array([[0, 0, 0, 4, 5, 6, 7, 8]], np.int32)
    later = history.copy()
    later[0, -1] = 9  # only the last item changes
    before, _ = encoder._embed(history, training=False)
    after, _ = encoder._embed(later, training=False)
    # Item 7 (position 6) now has the successor 9 instead of 8: its state changes.
    assert not np.allclose(before.numpy()[0, 6], after.numpy()[0, 6], atol=1e-6)
    np.testing.assert_allclose(before.numpy()[0, :6], after.numpy()[0, :6], atol=1e-6)
    # A repeated item has one node: the same state at each of its positions.
    repeated, _ = encoder._embed(np.array([[0, 0, 4, 5, 4, 6, 4, 7]], np.int32), training=False)
    np.testing.assert_array_equal(repeated.numpy()[0, 2], repeated.numpy()[0, 4])
    np.testing.assert_array_equal(repeated.numpy()[0, 2], repeated.numpy()[0, 6])


# Repeats, self loops, a repeated transition, one item, all padding, no padding.
PREFIX_CASES = np.array([
    [0, 0, 4, 5, 4, 6, 6, 7],
    [2, 3, 2, 3, 5, 1, 2, 2],
    [0, 0, 0, 0, 0, 0, 0, 9],
    [0] * MAX_LENGTH,
    [4, 5, 6, 7, 8, 9, 10, 11],
], np.int32)


@pytest.mark.parametrize("config", [{}, {"num_blocks": 2, "norm_first": True}, {"num_blocks": 3, "num_heads": 2}],
                         ids=["recbole", "2-blocks-pre-ln", "3-blocks-2-heads"])
def test_every_position_is_the_query_of_its_own_prefix(config):
    """`encode_sequence` at t == `call` on the history cut after t: exact, causal per-position training."""
    assert PREFIX_CASES.shape[1] == MAX_LENGTH
    model = _model(initializer_range=None, **config)  # Glorot: outputs vary more
    model.build_variables()
    assert model.encoder.supports_all_positions is True
    states = model.encoder.encode_sequence(PREFIX_CASES, training=False).numpy()
    assert np.isfinite(states).all()
    for t in range(MAX_LENGTH):
        prefix = np.zeros_like(PREFIX_CASES)
        prefix[:, MAX_LENGTH - 1 - t:] = PREFIX_CASES[:, : t + 1]
        expected = model(prefix, training=False).numpy() * (PREFIX_CASES[:, t : t + 1] != 0)
        np.testing.assert_allclose(states[:, t], expected, rtol=1e-5, atol=1e-5, err_msg=f"position {t}")
    # Causal: a later item never changes an earlier state; it does change its own.
    changed = PREFIX_CASES.copy()
    changed[:, 5] = 3
    other = model.encoder.encode_sequence(changed, training=False).numpy()
    np.testing.assert_allclose(other[:, :5], states[:, :5], rtol=1e-6, atol=1e-6)
    assert not np.allclose(other[[0, 1, 4], 5], states[[0, 1, 4], 5], atol=1e-4)


def test_more_graph_steps_train_on_sampled_prefixes():
    encoder = _model(num_steps=2).encoder
    assert encoder.supports_all_positions is False
    with pytest.raises(NotImplementedError, match="supports_all_positions=False"):
        encoder.encode_sequence(np.zeros([1, MAX_LENGTH], np.int32))


def test_query_mixes_attention_and_last_graph_state():
    history = np.array([[0, 0, 0, 4, 5, 4, 6, 7], [0] * 7 + [3]], np.int32)
    graph_only = _model(graph_weight=0.0)
    states, _ = graph_only.encoder._embed(history, training=False)
    np.testing.assert_allclose(graph_only(history).numpy(), states.numpy()[:, -1], rtol=1e-6, atol=1e-6)
    mixed, attention = _model(graph_weight=0.6), _model(graph_weight=1.0)
    mixed.build_variables()
    attention.build_variables()
    mixed.set_weights(attention.get_weights())
    x, mask = attention.encoder._embed(history, training=False)
    attended = attention.encoder.blocks[0](x, mask=mask, training=False).numpy()[:, -1]
    np.testing.assert_allclose(attention(history).numpy(), attended, rtol=1e-5, atol=1e-6)
    expected = 0.6 * attended + 0.4 * x.numpy()[:, -1]
    np.testing.assert_allclose(mixed(history).numpy(), expected, rtol=1e-5, atol=1e-6)
    # Explain: the last position's attention over the graph states, 0 at padding.
    weights = mixed.attention_weights(history).numpy()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(weights[0, :3], 0.0)
    np.testing.assert_array_equal(weights[1, :7], 0.0)


def test_get_config_round_trip_gives_the_same_queries():
    model = _model(num_steps=2, ff_dim=16, dropout=0.1, graph_weight=0.5)
    history = np.array([[0, 0, 0, 4, 5, 4, 6, 7]], np.int32)
    expected = model(history, training=False).numpy()
    config = model.get_config()
    assert config["encoder"]["config"]["num_steps"] == 2 and config["encoder"]["config"]["graph_weight"] == 0.5
    clone = type(model).from_config(config)
    clone.build_variables()
    assert clone.get_config() == config
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone(history, training=False).numpy(), expected)
    encoder = GCSANEncoder.from_config(model.encoder.get_config())
    assert encoder.get_config() == model.encoder.get_config()


def test_zoo_defaults_follow_recbole():
    defaults = get_model_spec("gcsan").default_config()
    assert {k: defaults[k] for k in ("hidden_dim", "num_steps", "num_blocks", "num_heads", "dropout",
                                     "graph_weight", "norm_first", "initializer_range")} == {
        "hidden_dim": 64, "num_steps": 1, "num_blocks": 1, "num_heads": 1, "dropout": 0.2,
        "graph_weight": 0.6, "norm_first": False, "initializer_range": 0.02}
    with pytest.raises(ValueError, match="graph_weight"):
        _model(graph_weight=1.5)


def test_one_train_step_has_a_finite_loss(sequences):
    model = _model()
    compile_for_training(model, learning_rate=1e-2)
    batch = next(iter(next_item_dataset(sequences, MAX_LENGTH, batch_size=8, split_long_sequences=True)))
    before = [w.numpy().copy() for w in model.encoder.gated_graph.weights]
    loss = float(model.train_step(batch)["loss"])  # eager: the fit loop's step without tracing it
    assert np.isfinite(loss) and loss > 0
    after = model.encoder.gated_graph.weights
    assert all(not np.array_equal(b, a.numpy()) for b, a in zip(before, after, strict=True)), "the graph layer trains"
