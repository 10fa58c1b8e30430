"""Every ranking model: config round trip, padding invariance, finite loss, learning."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.ranking_data import FEATURE_SIZES, MAX_LENGTH
from tf_attnrec.evaluation.ctr import auc
from tf_attnrec.models.registry import create_model, get_model_spec, list_models
from tf_attnrec.data import schema
from tf_attnrec.training import compile_for_training

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(__name__)]  # one worker builds the module's fixtures

NAMES = list_models(task="ranking")


def build(name: str, **overrides):
    config = {**get_model_spec(name).tiny, "feature_sizes": FEATURE_SIZES, "max_length": MAX_LENGTH,
              "embedding_dim": 8, "hidden_units": (16,), "dropout": 0.0, **overrides}
    return create_model(name, vocab_size=FEATURE_SIZES["item"], **config)


def model_inputs(features: dict, rows=slice(None)) -> dict:
    return {k: tf.constant(v[rows]) for k, v in features.items() if k in schema.MODEL_FEATURES}


@pytest.fixture(scope="module")
def trained(synthetic_train):
    """Each model fitted once on the synthetic data (shared by the tests below)."""
    models, histories = {}, {}
    for name in NAMES:
        tf.keras.utils.set_random_seed(0)
        model = build(name)
        compile_for_training(model, 0.003)
        dataset = tf.data.Dataset.from_tensor_slices(synthetic_train).shuffle(4096, seed=0).batch(128)
        histories[name] = model.fit(dataset, epochs=4, verbose=0).history
        models[name] = model
    return models, histories


def test_zoo_lists_every_ranking_model():
    assert set(NAMES) >= {"din", "bst", "autoint", "self_attention_ranker", "embedding_mlp", "dcn"}
    assert set(NAMES) <= set(list_models())


@pytest.mark.parametrize("name", NAMES)
def test_learns_history_candidate_interaction(name, trained, synthetic_test):
    models, histories = trained
    losses = histories[name]["loss"]
    assert np.all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], losses
    probabilities = models[name].predict_proba(model_inputs(synthetic_test)).numpy()
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    held_out_auc = auc(synthetic_test[schema.LABEL], probabilities)
    assert held_out_auc > 0.8, f"{name}: held-out AUC {held_out_auc:.3f}"


@pytest.mark.parametrize("name", NAMES)
def test_padding_never_changes_the_probability(name, trained, synthetic_test):
    model = trained[0][name]
    features = {k: v[:64].copy() for k, v in synthetic_test.items()}
    expected = model.predict_proba(model_inputs(features)).numpy()
    padded = features[schema.HISTORY_ITEM_IDS] == 0
    assert padded.any() and (~padded).any()
    rng = np.random.default_rng(3)
    # 1) Garbage side features at padded history slots.
    noisy = dict(features)
    noisy[schema.HISTORY_GENRES] = np.where(
        padded[..., None], rng.integers(1, FEATURE_SIZES["genre"], features[schema.HISTORY_GENRES].shape),
        features[schema.HISTORY_GENRES]).astype(np.int32)
    noisy[schema.HISTORY_YEAR] = np.where(
        padded, rng.integers(1, FEATURE_SIZES["year"], padded.shape), features[schema.HISTORY_YEAR]
    ).astype(np.int32)
    np.testing.assert_allclose(model.predict_proba(model_inputs(noisy)).numpy(), expected, atol=1e-6)
    # 2) Less left padding (histories here have at most MAX_LENGTH - 2 items).
    shorter = {k: (v[:, 2:] if k.startswith("history") else v) for k, v in features.items()}
    np.testing.assert_allclose(model.predict_proba(model_inputs(shorter)).numpy(), expected, atol=1e-5)
    # 3) Different values in the padding rows of the embedding tables.
    tables = model.embedding.tables
    saved = {key: tables[key].embeddings.numpy() for key in ("item", "genre", "year")}
    try:
        for key, value in saved.items():
            changed = value.copy()
            changed[0] = rng.normal(size=value.shape[1])
            tables[key].embeddings.assign(changed)
        np.testing.assert_allclose(model.predict_proba(model_inputs(features)).numpy(), expected, atol=1e-6)
    finally:
        for key, value in saved.items():
            tables[key].embeddings.assign(value)


@pytest.mark.parametrize("name", NAMES)
def test_get_config_round_trip(name, trained, synthetic_test):
    model = trained[0][name]
    inputs = model_inputs(synthetic_test, slice(0, 16))
    serialized = tf.keras.utils.serialize_keras_object(model)
    clone = tf.keras.utils.deserialize_keras_object(serialized)
    assert type(clone) is type(model)
    assert clone.get_config() == model.get_config()
    clone(inputs)
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict_proba(inputs).numpy(), model.predict_proba(inputs).numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["din", "bst"])
def test_attention_weights_for_one_example(name, trained, synthetic_test):
    model = trained[0][name]
    inputs = model_inputs(synthetic_test, slice(0, 1))
    weights = model.attention_weights(inputs).numpy()
    assert weights.shape == (1, MAX_LENGTH)
    assert np.all(np.isfinite(weights))
    padded = synthetic_test[schema.HISTORY_ITEM_IDS][:1] == 0
    np.testing.assert_array_equal(weights[padded], 0.0)
    assert np.any(weights[~padded] != 0.0)
    if name == "bst":  # softmax over history + candidate: history share in (0, 1]
        assert 0.0 < weights.sum() <= 1.0 + 1e-6


def test_din_attention_prefers_history_items_of_the_candidates_group(trained, synthetic_test):
    """The learned DIN weights depend on the candidate: same history, two candidates."""
    model = trained[0]["din"]
    inputs = model_inputs(synthetic_test, slice(0, 32))
    other = dict(inputs)
    flipped = np.where(synthetic_test[schema.ITEM_GENRES][:32] == 2, 3,
                       np.where(synthetic_test[schema.ITEM_GENRES][:32] == 3, 2, 0))
    other[schema.ITEM_GENRES] = tf.constant(flipped.astype(np.int32))
    assert not np.allclose(model.attention_weights(inputs).numpy(), model.attention_weights(other).numpy())


@pytest.mark.parametrize("name", NAMES)
def test_create_model_needs_feature_sizes(name):
    with pytest.raises(ValueError, match="feature_sizes"):
        create_model(name, vocab_size=FEATURE_SIZES["item"])
    with pytest.raises(ValueError, match="vocab_size"):
        create_model(name, vocab_size=FEATURE_SIZES["item"] + 1, feature_sizes=FEATURE_SIZES)


def test_missing_feature_is_a_clear_error(synthetic_test):
    model = build("embedding_mlp")
    inputs = model_inputs(synthetic_test, slice(0, 4))
    del inputs[schema.HISTORY_GENRES]
    with pytest.raises(KeyError, match="history_genres"):
        model(inputs)


def test_feature_sizes_are_validated():
    with pytest.raises(ValueError, match="occupation"):
        build("din", feature_sizes={k: v for k, v in FEATURE_SIZES.items() if k != "occupation"})
