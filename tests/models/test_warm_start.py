"""Continuing a run: warm start from a saved run (init_from) and the wall-clock TimeLimit."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tf_attnrec.data.readers import read_movielens_100k
from tf_attnrec.data.splits import leave_one_out_split
from tf_attnrec.data.vocabulary import Vocabulary
from tf_attnrec.models.registry import create_model
from tf_attnrec.runs import load_model, load_weights_from_run
from tf_attnrec.tasks.retrieval import train_sequential

pytestmark = [pytest.mark.xdist_group(__name__)]  # one worker builds the module's fixtures

CONFIG = {"max_length": 20, "hidden_dim": 16, "num_blocks": 1}


@pytest.fixture(scope="module")
def trained_run(shared_data_dir, tmp_path_factory):
    split = leave_one_out_split(read_movielens_100k(shared_data_dir / "ml-100k").interactions)
    run_dir = tmp_path_factory.mktemp("warm") / "run"
    model = create_model("sasrec", vocab_size=split.vocabulary.size, **CONFIG)
    train_sequential(model, split, epochs=1, batch_size=256, evaluate_test=False, run_dir=run_dir, verbose=0)
    return split, run_dir


def test_warm_start_copies_the_saved_weights(trained_run):
    split, run_dir = trained_run
    saved, _, _ = load_model(run_dir)
    fresh = create_model("sasrec", vocab_size=split.vocabulary.size, **CONFIG)
    load_weights_from_run(fresh, run_dir, split.vocabulary)
    histories = tf.constant([[0] * 15 + [5, 9, 2, 40, 7]], tf.int32)
    np.testing.assert_allclose(fresh.score(histories).numpy(), saved.score(histories).numpy(), rtol=1e-6)


def test_warm_start_refuses_another_architecture(trained_run):
    split, run_dir = trained_run
    wider = create_model("sasrec", vocab_size=split.vocabulary.size, **{**CONFIG, "hidden_dim": 32})
    with pytest.raises(ValueError, match="config differs"):
        load_weights_from_run(wider, run_dir, split.vocabulary)


def test_warm_start_on_another_vocabulary_of_the_same_size_maps_items_by_raw_id(trained_run):
    split, run_dir = trained_run
    saved, _, _ = load_model(run_dir)
    ids = [int(i) for i in split.vocabulary.raw_ids(np.arange(2, split.vocabulary.size))]
    other = Vocabulary.from_ids(ids[:-1] + [max(ids) + 1000])  # same size, the last item replaced
    assert other.size == split.vocabulary.size
    model = create_model("sasrec", vocab_size=other.size, **CONFIG)
    model.build_variables()
    fresh = model.item_embeddings.numpy().copy()
    load_weights_from_run(model, run_dir, other)
    table, saved_table = model.item_embeddings.numpy(), saved.item_embeddings.numpy()
    shared = other.lookup(ids[:-1])
    np.testing.assert_array_equal(table[shared], saved_table[split.vocabulary.lookup(ids[:-1])])
    new_item = other.lookup([max(ids) + 1000])[0]
    np.testing.assert_array_equal(table[new_item], fresh[new_item])


def test_time_limit_stops_after_the_first_validation(trained_run, tmp_path):
    split, run_dir = trained_run
    model = create_model("sasrec", vocab_size=split.vocabulary.size, **CONFIG)
    result = train_sequential(
        model, split, epochs=5, eval_every=1, batch_size=256, evaluate_test=False, init_from=run_dir,
        time_limit_minutes=1e-6, validation_users=100, run_dir=tmp_path, verbose=0,
    )
    assert result.stopped_by == "time_limit"
    assert len(result.history["loss"]) == 1


def test_learning_rate_is_reduced_on_a_validation_plateau(trained_run, tmp_path):
    split, run_dir = trained_run
    model = create_model("sasrec", vocab_size=split.vocabulary.size, **CONFIG)
    # A rate this small leaves validation NDCG unchanged: every pass after the first is a plateau.
    result = train_sequential(
        model, split, epochs=3, eval_every=1, batch_size=256, learning_rate=1e-9, patience=3,
        reduce_lr_patience=1, reduce_lr_factor=0.5, min_learning_rate=1e-12, init_from=run_dir,
        validation_users=100, evaluate_test=False, verbose=0,
    )
    np.testing.assert_allclose(result.history["lr"], [1e-9, 1e-9, 5e-10], rtol=1e-5)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(2.5e-10, rel=1e-5)


def test_learning_rate_patience_must_be_below_early_stopping_patience(trained_run):
    split, _ = trained_run
    model = create_model("sasrec", vocab_size=split.vocabulary.size, **CONFIG)
    with pytest.raises(ValueError, match="reduce_lr_patience"):
        train_sequential(model, split, epochs=1, patience=4, reduce_lr_patience=4, verbose=0)


def test_a_run_of_another_model_pretrains_the_shared_weights(trained_run, tmp_path):
    """nais from a fism run (the NAIS paper's pretraining): item tables copied, attention fresh."""
    split, _ = trained_run
    config = {"max_length": 20, "embedding_dim": 8}
    fism = create_model("fism", vocab_size=split.vocabulary.size, **config)
    train_sequential(fism, split, epochs=1, batch_size=4096, evaluate_test=False, run_dir=tmp_path / "fism", verbose=0)
    nais = create_model("nais", vocab_size=split.vocabulary.size, attention_dim=4, **config)
    nais.build_variables()
    attention = [w.numpy() for w in nais.similarity.weights]
    copied = load_weights_from_run(nais, tmp_path / "fism", split.vocabulary)
    assert copied == 3  # history and candidate tables, item bias
    for name in ("history_embedding", "candidate_embedding", "item_bias"):
        np.testing.assert_array_equal(getattr(nais, name).embeddings.numpy(), getattr(fism, name).embeddings.numpy())
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(attention, nais.similarity.weights))
    sasrec = create_model("sasrec", vocab_size=split.vocabulary.size, **CONFIG)
    with pytest.raises(ValueError, match="shares no weight"):
        load_weights_from_run(sasrec, tmp_path / "fism", split.vocabulary)
