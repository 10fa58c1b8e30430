"""fism and nais: item-set training data, exact chunked full ranking, set semantics, attention weights."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec.data.pipelines import item_set_dataset
from tf_attnrec.models import item_similarity
from tf_attnrec.models.item_similarity import FISM, NAIS
from tf_attnrec.models.registry import create_model, get_model_spec
from tf_attnrec.training import compile_for_training

VOCAB = 30
HISTORIES = tf.constant([[0, 0, 5, 9, 1, 12], [0, 0, 0, 0, 0, 0], [3, 4, 5, 6, 7, 8]], tf.int32)


def trained(cls, **config) -> tf.keras.Model:
    """A model with non-trivial weights (random tables, and attention kernels away from init)."""
    tf.keras.utils.set_random_seed(0)
    model = cls(VOCAB, embedding_dim=8, max_length=6, **config)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


# ------------------------------------------------------------------------------ training data
def test_item_set_dataset_holds_each_item_once_with_the_others_as_history():
    sequences = [np.array([2, 3, 4, 5]), np.array([6, 7]), np.array([8])]
    batches = list(item_set_dataset(sequences, max_length=3, batch_size=100, shuffle=True, seed=1))
    assert len(batches) == 1
    history, positive = batches[0]["history"].numpy(), batches[0]["positive"].numpy()
    assert sorted(positive.tolist()) == [2, 3, 4, 5, 6, 7], "each item of a 2+ item sequence once; [8] has none"
    for row, target in zip(history, positive):
        user = next(s for s in sequences if target in s)
        assert target not in row, "the target is never in its own history"
        window = user[-3:]
        assert sorted(row[row > 0].tolist()) == sorted(window[window != target].tolist())



def test_item_set_dataset_can_keep_the_target_in_its_history_as_recbole_trains():
    sequences = [np.array([2, 3, 4, 5]), np.array([6, 7])]
    batch = next(iter(item_set_dataset(sequences, max_length=3, batch_size=100, seed=1, include_target=True)))
    for row, target in zip(batch["history"].numpy(), batch["positive"].numpy()):
        user = next(s for s in sequences if target in s)
        np.testing.assert_array_equal(row[row > 0], user[-3:])  # the whole window, the target too


def test_history_includes_target_is_refused_for_sequence_models():
    from tf_attnrec.data.splits import leave_one_out_split
    from tf_attnrec.models import create_model
    from tf_attnrec.tasks.retrieval import train_sequential
    import pandas as pd

    frame = pd.DataFrame({"user_id": [1] * 4, "item_id": [1, 2, 3, 4], "timestamp": [1, 2, 3, 4]})
    split = leave_one_out_split(frame)
    model = create_model("sasrec", vocab_size=split.vocabulary.size, max_length=4, hidden_dim=4, num_blocks=1)
    with pytest.raises(ValueError, match="item sets"):
        train_sequential(model, split, history_includes_target=True, epochs=1)
    nais = create_model("nais", vocab_size=split.vocabulary.size, max_length=4, embedding_dim=4, attention_dim=2)
    with pytest.raises(ValueError, match="length_buckets is for models that train on sequences"):
        train_sequential(nais, split, length_buckets=4, epochs=1)


def test_item_set_dataset_refuses_data_without_a_history():
    with pytest.raises(ValueError, match="2 or more items"):
        item_set_dataset([np.array([2]), np.array([3])], max_length=3, batch_size=4)


# ------------------------------------------------------------------------------ scoring
@pytest.mark.parametrize("cls, config", [(FISM, {}), (NAIS, {"attention": "prod"}), (NAIS, {"attention": "concat"})])
def test_full_ranking_equals_scoring_every_candidate(cls, config, monkeypatch):
    """The chunked catalogue scores are exact: small chunks (with a ragged last one) change nothing."""
    model = trained(cls, **config)
    every_item = tf.tile(tf.range(2, VOCAB)[tf.newaxis], [HISTORIES.shape[0], 1])
    expected = model.score_candidates(HISTORIES, every_item).numpy()
    monkeypatch.setattr(item_similarity, "_CHUNK_ELEMENTS", 5 * 6 * 16 * 3)  # 5 candidates per chunk: 28 = 5 * 5 + 3
    scores = model.score(HISTORIES).numpy()
    np.testing.assert_allclose(scores[:, 2:], expected, rtol=1e-5, atol=1e-6)
    assert (scores[:, :2] == -1e9).all()


def test_fism_is_the_normalised_sum_of_item_similarities():
    model = trained(FISM, alpha=0.5)
    p, q = model.history_embedding.embeddings.numpy(), model.candidate_embedding.embeddings.numpy()
    bias = model.item_bias.embeddings.numpy()[:, 0]
    items = np.array([5, 9, 12])  # row 0 without padding and the unknown id 1
    expected = p[items].sum(0) / np.sqrt(len(items)) @ q.T + bias
    np.testing.assert_allclose(model.score(HISTORIES).numpy()[0, 2:], expected[2:], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [FISM, NAIS])
def test_a_set_model_ignores_order_padding_and_unknown_items(cls):
    model = trained(cls)
    scores = model.score(HISTORIES).numpy()
    shuffled = tf.constant([[12, 0, 1, 9, 0, 5]], tf.int32)  # same items, other order, padding inside
    np.testing.assert_allclose(model.score(shuffled).numpy()[0], scores[0], rtol=1e-5, atol=1e-6)
    # An empty history: only the item bias is left, and nothing is NaN.
    np.testing.assert_allclose(model.score(HISTORIES).numpy()[1, 2:], model.item_bias.embeddings.numpy()[2:, 0])


def test_nais_attention_weights_depend_on_the_candidate_and_align_with_the_history():
    model = trained(NAIS, beta=1.0)
    weights = model.attention_weights(HISTORIES, candidates=[7, 7, 7]).numpy()
    other = model.attention_weights(HISTORIES, candidates=[20, 20, 20]).numpy()
    assert weights.shape == (3, 6) and not np.allclose(weights[2], other[2])
    real = HISTORIES.numpy() >= 2
    assert (weights[~real] == 0).all(), "padding and the unknown id get weight 0"
    np.testing.assert_allclose(weights.sum(1), [1.0, 0.0, 1.0], rtol=1e-5)  # beta = 1: a softmax per row
    longer = tf.pad(HISTORIES, [[0, 0], [3, 0]])  # wider than max_length: older slots read as absent
    np.testing.assert_allclose(model.attention_weights(longer, candidates=[7, 7, 7]).numpy()[:, 3:], weights,
                               rtol=1e-6)
    assert model.attention_weights(HISTORIES, candidates=[7, 7, 7], per_head=True).shape == (3, 1, 6)
    with pytest.raises(ValueError, match="depends on the candidate"):
        model.attention_weights(HISTORIES)


# ------------------------------------------------------------------------------ training
@pytest.mark.parametrize("name", ["fism", "nais"])
def test_training_learns_co_occurrence(name):
    """Two disjoint item groups: after training, a user of group A ranks A's unseen item first."""
    tf.keras.utils.set_random_seed(0)
    group_a, group_b = np.arange(2, 8), np.arange(8, 14)
    rng = np.random.default_rng(0)
    sequences = [rng.choice(group, size=4, replace=False) for group in (group_a, group_b) for _ in range(40)]
    model = create_model(name, vocab_size=14, embedding_dim=8, max_length=4, num_negatives=4)
    compile_for_training(model, 0.05)
    model.fit(item_set_dataset(sequences, 4, batch_size=64, seed=0), epochs=30, verbose=0)
    scores = model.score(tf.constant([[2, 3, 4, 5]])).numpy()[0]
    assert scores[[6, 7]].min() > scores[group_b].max(), scores


def test_attention_l2_adds_the_attention_networks_squared_norm_to_the_loss():
    features = {"history": HISTORIES, "positive": tf.constant([5, 7, 9])}
    plain, penalised = (trained(NAIS, attention_dim=4, attention_l2=weight) for weight in (0.0, 0.5))
    penalised.set_weights(plain.get_weights())
    similarity = plain.similarity
    expected = 0.5 * (np.square(similarity.kernel.numpy()).sum() + np.square(similarity.projection.numpy()).sum())
    tf.keras.utils.set_random_seed(1)
    base = float(plain.compute_loss(features))
    tf.keras.utils.set_random_seed(1)
    np.testing.assert_allclose(float(penalised.compute_loss(features)) - base, expected, rtol=1e-4)
    assert NAIS.from_config(penalised.get_config()).attention_l2 == 0.5


def test_loss_names_the_expected_features():
    model = create_model("nais", vocab_size=VOCAB, **get_model_spec("nais").tiny)
    with pytest.raises(KeyError, match="item_set_dataset"):
        model.compute_loss({"history": HISTORIES, "targets": HISTORIES})


@pytest.mark.parametrize("kwargs, match", [
    ({"attention": None}, "use fism"),
    ({"num_negatives": 0}, "`num_negatives`"),
    ({"l2_weight": -1.0}, "`l2_weight`"),
    ({"attention_l2": -0.1}, "`attention_l2`"),
    ({"beta": 2.0}, "`beta`"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NAIS(VOCAB, **kwargs)


def test_fism_takes_no_attention_settings():
    with pytest.raises(ValueError, match="unknown config keys"):
        create_model("fism", vocab_size=VOCAB, attention="prod")
