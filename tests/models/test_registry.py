"""The registry: every family registered beside its definition, defaults from one source.

What every model must do end to end is checked once for all of them in tests/test_zoo.py;
here: what the registry promises, the zoo configs, and the retrieval head's losses.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import tensorflow as tf
import yaml

import tf_attnrec
from tests.models.conftest import MAX_LENGTH, VOCAB_SIZE
from tests.ranking_data import FEATURE_SIZES
from tf_attnrec.data.pipelines import next_item_dataset
from tf_attnrec.models.mean_pooling import MeanPoolingEncoder
from tf_attnrec.models.popularity import PopularityModel
from tf_attnrec.models.registry import create_model, get_model_spec, list_models, signature_defaults
from tf_attnrec.models.sasrec import SASRecEncoder
from tf_attnrec.models.sequential_retrieval import LOSSES, SequentialRetrievalModel
from tf_attnrec.tasks import get_task
from tf_attnrec.training import compile_for_training

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
ZOO_CARDS = sorted(path.parent.name for path in (REPO_ROOT / "models").glob("*/config.yaml"))


def test_import_tf_attnrec_registers_every_family_by_task():
    assert set(tf_attnrec.list_models(task="retrieval")) >= {
        "sasrec", "lstm_attention", "attention_pooling", "mean_pooling", "popularity"}
    assert set(tf_attnrec.list_models(task="ranking")) >= {
        "din", "bst", "autoint", "self_attention_ranker", "embedding_mlp", "dcn"}
    assert set(tf_attnrec.list_models(task="collaborative")) >= {"lightgcn", "gat_cf"}
    from tf_attnrec.models.registry import TASKS

    assert sorted(name for task in TASKS for name in tf_attnrec.list_models(task=task)) == list_models()
    with pytest.raises(ValueError, match="task must be one of"):
        list_models(task="graph")
    din = tf_attnrec.create_model("din", vocab_size=FEATURE_SIZES["item"], feature_sizes=FEATURE_SIZES)
    assert din.name == "din" and din.max_length == get_model_spec("din").default_config()["max_length"]


def data_arguments(spec) -> dict:
    """What a builder of `spec`'s task receives from the data."""
    if spec.task == "ranking":
        return {"vocab_size": FEATURE_SIZES["item"], "feature_sizes": FEATURE_SIZES}
    if spec.task in ("collaborative", "multitask"):
        return {"vocab_size": VOCAB_SIZE, "num_users": 7}
    if spec.default_config().get("item_features"):  # models that read item content by default
        return {"vocab_size": VOCAB_SIZE, "item_content": {
            "genre_vocabulary": ["Drama", "Comedy"], "title_vocabulary": ["red", "blue"], "year_range": [1990, 1999]}}
    return {"vocab_size": VOCAB_SIZE}


def test_unknown_name_and_key_are_explained():
    with pytest.raises(KeyError, match="registered models"):
        create_model("no_such_model", vocab_size=VOCAB_SIZE)
    with pytest.raises(ValueError, match="hidden_size"):
        create_model("sasrec", vocab_size=VOCAB_SIZE, hidden_size=8)
    with pytest.raises(ValueError, match="feature_sizes"):
        create_model("din", vocab_size=VOCAB_SIZE)


def test_defaults_have_one_source_the_constructors():
    spec = get_model_spec("sasrec")
    defaults = spec.default_config()
    assert defaults == signature_defaults(SASRecEncoder, SequentialRetrievalModel)
    # The class's own default is the zoo default: nothing else restates it.
    assert defaults["dropout"] == SASRecEncoder(vocab_size=VOCAB_SIZE).dropout
    model = create_model("sasrec", vocab_size=VOCAB_SIZE)
    assert model.encoder.dropout == defaults["dropout"] and model.loss_name == defaults["loss"]


@pytest.mark.parametrize("name", list_models())
def test_every_spec_has_a_description_and_a_tiny_config_that_builds(name):
    spec = get_model_spec(name)
    assert spec.description and spec.tiny
    model = create_model(name, **data_arguments(spec), **spec.tiny)
    model.build_variables()
    # A collaborative or multi-task model reads no history (max_length 0): it knows its users by id.
    assert model.name == name and model.max_length == spec.tiny.get("max_length", 0)


@pytest.mark.parametrize("name", list_models(task="retrieval"))
def test_padding_and_oov_are_never_recommended(name):
    spec = get_model_spec(name)
    model = create_model(name, **data_arguments(spec), **spec.tiny)
    scores = model.score(tf.constant([[0, 0, 0, 5, 6, 7, 8, 9], [0] * 7 + [3]], tf.int32)).numpy()
    assert scores.shape == (2, VOCAB_SIZE) and np.isfinite(scores).all()
    assert (scores[:, :2] < scores[:, 2:].min()).all()


@pytest.mark.parametrize("loss", LOSSES)
def test_fit_one_step_every_loss(loss, sequences):
    model = create_model("mean_pooling", vocab_size=VOCAB_SIZE, max_length=MAX_LENGTH, loss=loss, embedding_dim=8)
    model.adapt(sequences)
    compile_for_training(model, 1e-2)
    dataset = next_item_dataset(sequences, MAX_LENGTH, batch_size=8, seed=0)
    model.build_variables()
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(dataset.take(1), verbose=0)
    loss_value = history.history["loss"][0]
    assert np.isfinite(loss_value) and loss_value > 0
    changed = [not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert any(changed), "a training step must update the weights"


def test_softmax_loss_matches_manual_cross_entropy(sequences):
    model = create_model("mean_pooling", vocab_size=VOCAB_SIZE, max_length=MAX_LENGTH,
                         embedding_dim=8, dropout=0.0)
    batch = next(iter(next_item_dataset(sequences, MAX_LENGTH, batch_size=16, shuffle=False)))
    loss = float(model.compute_loss(batch, training=False))
    states = model.encoder.encode_sequence(batch["history"]).numpy()
    table = model.item_embeddings.numpy()
    targets = batch["targets"].numpy()
    picked = targets > 0
    logits = states[picked] @ table[2:].T
    logits -= logits.max(axis=1, keepdims=True)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -log_softmax[np.arange(picked.sum()), targets[picked] - 2].mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-4)


def test_sampled_losses_need_item_counts(sequences):
    model = create_model("mean_pooling", vocab_size=VOCAB_SIZE, max_length=MAX_LENGTH,
                         loss="in_batch", embedding_dim=8)
    batch = next(iter(next_item_dataset(sequences, MAX_LENGTH, batch_size=8)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="model.adapt"):
        model.compute_loss(batch, training=True)


class QueryOnlyEncoder(MeanPoolingEncoder):
    """An encoder without per-position states: the head trains it on sampled prefixes."""

    supports_all_positions = False


def test_prefix_sampling_cuts_real_prefixes():
    model = SequentialRetrievalModel(
        QueryOnlyEncoder(vocab_size=VOCAB_SIZE, max_length=6, embedding_dim=8), prefixes_per_sequence=20
    )
    history = tf.constant([[0, 0, 2, 3, 4, 5], [0, 0, 0, 0, 0, 0], [6, 7, 8, 9, 10, 11]])
    targets = tf.constant([[0, 0, 3, 4, 5, 12], [0, 0, 0, 0, 0, 0], [7, 8, 9, 10, 11, 13]])
    prefixes, prefix_targets = model._sample_prefixes(history, targets)
    prefixes, prefix_targets = prefixes.numpy(), prefix_targets.numpy()
    assert prefixes.shape == (40, 6)  # the row without targets is left out
    full = {0: [2, 3, 4, 5, 12], 2: [6, 7, 8, 9, 10, 11, 13]}
    for prefix, target in zip(prefixes, prefix_targets):
        items = prefix[prefix > 0].tolist()
        assert (prefix[: 6 - len(items)] == 0).all(), "prefixes stay left-padded"
        sequence = full[0] if items[0] == 2 else full[2]
        assert sequence[: len(items) + 1] == items + [target]
    loss = model.compute_loss({"history": history, "targets": targets}, training=True)
    assert np.isfinite(float(loss)) and float(loss) > 0


@pytest.mark.parametrize("name", ZOO_CARDS)
def test_zoo_card_config_builds(name):
    path = REPO_ROOT / "models" / name / "config.yaml"
    card = yaml.safe_load(path.read_text())
    assert card["model"] == name and name in list_models(), f"{path}: not a registered model"
    spec = get_model_spec(name)
    model = create_model(name, **data_arguments(spec), **card.get("model_config", {}))
    assert model.get_config()
    get_task(spec.task).check_training_keys(card.get("training", {}))


def test_popularity_ranks_by_count():
    model = create_model("popularity", vocab_size=6)
    assert isinstance(model, PopularityModel)
    model.adapt([np.array([2, 3, 3, 4, 4, 4])])
    ranking = np.argsort(-model.score(tf.zeros([1, 3], tf.int32)).numpy()[0])
    assert ranking[:3].tolist() == [4, 3, 2]


@pytest.mark.slow  # XLA compilation
@pytest.mark.parametrize("loss", ["softmax", "bce"])
def test_train_step_compiles_with_xla(loss):
    """jit_compile=True needs static shapes: BCE draws its negatives on the [B * L] grid."""
    tf.keras.utils.set_random_seed(0)  # the learning check must not depend on the tests run before
    # Learnable: the next item is always the current one + 1.
    sequences = [list(range(start, min(start + 8, VOCAB_SIZE))) for start in range(2, VOCAB_SIZE - 3)] * 4
    model = create_model("sasrec", vocab_size=VOCAB_SIZE, max_length=MAX_LENGTH, hidden_dim=8,
                         num_blocks=1, loss=loss)
    compile_for_training(model, 1e-2, jit_compile=True)
    dataset = next_item_dataset(sequences, MAX_LENGTH, batch_size=8, drop_remainder=True)
    history = model.fit(dataset, epochs=5, verbose=0).history["loss"]
    assert np.isfinite(history).all()
    # One sampled negative makes the BCE loss noisy from epoch to epoch: compare the last two.
    assert min(history[-2:]) < history[0], f"the compiled step must learn: {history}"
