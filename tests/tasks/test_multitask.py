"""The multi-task task (tf_attnrec.tasks.multitask), its models and export, on small synthetic ratings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tf_attnrec.data.rating_split import rating_split
from tf_attnrec.evaluation.ctr import ctr_metrics
from tf_attnrec.export.multitask import export_multitask
from tf_attnrec.models.registry import create_model
from tf_attnrec.tasks import UnsupportedCommand, task_of
from tf_attnrec.tasks.multitask import evaluate_multitask, predict_multitask, train_multitask

pytestmark = [pytest.mark.xdist_group(__name__)]

NUM_USERS, NUM_ITEMS = 40, 25


def _ratings(n: int = 1200, seed: int = 0) -> pd.DataFrame:
    """Ratings = a user bias + an item bias + noise, clipped to 1..5: learnable structure."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, NUM_USERS, n)
    items = rng.integers(0, NUM_ITEMS, n)
    user_bias = np.linspace(-1.5, 1.5, NUM_USERS)
    item_bias = np.linspace(-1.0, 1.0, NUM_ITEMS)
    rating = np.clip(np.rint(3 + user_bias[users] + item_bias[items] + rng.normal(0, 0.3, n)), 1, 5)
    return pd.DataFrame({"user_id": [f"u{u}" for u in users], "item_id": 1000 + items, "rating": rating.astype(int)})


@pytest.fixture(scope="module")
def split():
    return rating_split(_ratings(), fractions=(0.7, 0.1, 0.2), seed=0)


def _model(split, name="mmoe", **config):
    tf.keras.utils.set_random_seed(0)
    tiny = {"embedding_dim": 8, "rating_units": [8], "click_units": [8]}
    if name == "mmoe":
        tiny.update(num_experts=3, expert_units=[8])
    return create_model(name, vocab_size=split.vocabulary.size, num_users=split.num_users, **{**tiny, **config})


def test_accuracy_at_k_is_tfrs_factorized_top_k(split):
    """Our exact accuracy@K is TFRS's `FactorizedTopK` over the whole catalogue.

    With `true_candidate_ids` TFRS checks the item's id among the top-K ids; without them it
    compares the item's score recomputed as a sum with the index's matmul scores, where a float
    rounding difference can put the item's own copy just above it (the tutorial's numbers).
    """
    model = _model(split)
    model.build_variables()
    ours = evaluate_multitask(model, split, "test", ks=(1, 5, 10))
    arrays = split.arrays("test")
    items = tf.range(2, split.vocabulary.size)
    candidates = tf.data.Dataset.from_tensor_slices(items).batch(8).map(lambda i: (i, model.item_embedding(i)))
    metric = tfrs.metrics.FactorizedTopK(
        candidates=tfrs.layers.factorized_top_k.BruteForce(k=10).index_from_dataset(candidates), ks=(1, 5, 10))
    query = model.query(model.user_vectors(tf.constant(arrays["user"]))["task_outputs"])
    metric.update_state(query, model.item_embedding(tf.constant(arrays["item"])),
                        true_candidate_ids=tf.constant(arrays["item"]))
    theirs = {m.name.split("/")[-1]: float(m.result()) for m in metric.metrics}
    for k in (1, 5, 10):
        assert ours[f"accuracy@{k}"] == pytest.approx(theirs[f"top_{k}_categorical_accuracy"], abs=1e-6), k


def test_rmse_and_click_metrics_are_exact(split):
    model = _model(split)
    model.build_variables()
    metrics = evaluate_multitask(model, split, "test")
    predicted = predict_multitask(model, split, "test")
    assert metrics["rmse"] == pytest.approx(
        float(np.sqrt(np.mean((predicted["rating"] - split.arrays("test")["rating"]) ** 2))), rel=1e-6)
    ctr = ctr_metrics(split.arrays("test")["click"], predicted["click_probability"], split.arrays("test")["user"])
    assert metrics["auc"] == pytest.approx(ctr["auc"]) and metrics["rows"] == split.num_rows("test")
    # Ranks are over the catalogue (1..num_items), nothing excluded.
    assert predicted["rank"].min() >= 1 and predicted["rank"].max() <= split.vocabulary.num_items


def test_training_learns_the_ratings(split):
    model = _model(split)
    result = train_multitask(model, split, epochs=40, batch_size=256, learning_rate=0.02, patience=None)
    train_mean = split.arrays("train")["rating"].mean()
    baseline = float(np.sqrt(np.mean((split.arrays("test")["rating"] - train_mean) ** 2)))
    assert result.test["rmse"] < 0.8 * baseline, (result.test["rmse"], baseline)
    assert result.test["auc"] > 0.75
    assert float(model.rating_prior.numpy()) == pytest.approx(train_mean)


def test_a_zero_weight_trains_nothing_of_its_head(split):
    model = _model(split, rating_weight=0.0, click_weight=0.0)
    model.build_variables()
    before = [w.numpy().copy() for w in model.rating_head.weights + model.click_head.weights]
    train_multitask(model, split, epochs=2, batch_size=256, patience=None, evaluate_test=False)
    after = [w.numpy() for w in model.rating_head.weights + model.click_head.weights]
    for b, a in zip(before, after):
        np.testing.assert_array_equal(b, a)


def test_gates_are_a_named_output_and_sum_to_one(split):
    model = _model(split)
    outputs = model({"user": tf.constant([2, 3]), "item": tf.constant([2, 4])})
    assert set(outputs) >= {"rating", "click_probability", "retrieval_score", "task_gates"}
    gates = outputs["task_gates"].numpy()
    assert gates.shape == (2, 3, 3)
    np.testing.assert_allclose(gates.sum(-1), 1.0, rtol=1e-6)


def test_early_stopping_without_validation_rows_is_refused():
    split = rating_split(_ratings(), fractions=(0.8, 0.0, 0.2), seed=0)
    with pytest.raises(ValueError, match="early stopping needs validation rows"):
        train_multitask(_model(split), split, epochs=1, patience=3)


def test_config_errors_name_the_argument(split):
    with pytest.raises(ValueError, match="every task weight is 0"):
        _model(split, retrieval_weight=0.0, rating_weight=0.0, click_weight=0.0)
    with pytest.raises(ValueError, match="rating_weight"):
        _model(split, rating_weight=-1.0)


def test_export_serves_known_and_unknown_ids(split, tmp_path):
    model = _model(split)
    train_multitask(model, split, epochs=1, batch_size=256, patience=None, evaluate_test=False)
    export_multitask(model, tmp_path / "mt" / "1", k=5, vocabulary=split.vocabulary,
                     user_vocabulary=split.user_vocabulary)
    served = tf.saved_model.load(str(tmp_path / "mt" / "1")).signatures["serving_default"]
    out = served(user_id=tf.constant(["u3", "nobody", "u3", ""]), item_id=tf.constant(["1004", "1004", "77", "1004"]))
    assert out["known_user"].numpy().tolist() == [True, False, True, False]
    assert out["known_item"].numpy().tolist() == [True, True, False, True]

    # A known pair is the model's own answer.
    user, item = split.user_vocabulary.lookup(["u3"]), split.vocabulary.lookup([1004])
    expected = model({"user": tf.constant(user), "item": tf.constant(item)})
    assert out["rating"].numpy()[0] == pytest.approx(float(expected["rating"][0]), rel=1e-5)
    assert out["click_probability"].numpy()[0] == pytest.approx(float(expected["click_probability"][0]), rel=1e-5)
    top = split.vocabulary.raw_ids(np.argsort(-model.retrieval_scores(tf.constant(user)).numpy()[0, 2:])[:5] + 2)
    assert [int(x) for x in out["top_k_item_ids"].numpy()[0].astype(str)] == [int(x) for x in top]

    # Unknown user, or unknown item: the training priors, never an error.
    train = split.arrays("train")
    for row in (1, 2, 3):
        assert out["rating"].numpy()[row] == pytest.approx(train["rating"].mean(), rel=1e-5)
        assert out["click_probability"].numpy()[row] == pytest.approx(train["click"].mean(), rel=1e-5)
    counts = split.item_counts("train")
    served_counts = counts[split.vocabulary.lookup(out["top_k_item_ids"].numpy()[1].astype(str).astype(int))]
    np.testing.assert_array_equal(served_counts, np.sort(counts)[::-1][:5])  # the most popular, in order
    np.testing.assert_array_equal(out["task_gates"].numpy()[1], 0.0)


def test_task_dispatch_and_refusals(split):
    task = task_of("ple")
    assert task.name == "multitask" and task.monitor == "val_loss"
    with pytest.raises(UnsupportedCommand, match="init-from"):
        task.fit(_model(split), split, init_from="somewhere", epochs=1)


def test_the_query_is_the_embedding_without_experts_and_a_projection_with_them(split):
    """Identity experts (the tutorial's model) query with the user embedding itself; ReLU experts
    go through a linear projection, so a query can have negative coordinates."""
    tutorial = _model(split, "shared_bottom")
    users = tf.constant([2, 5])
    np.testing.assert_array_equal(tutorial.query(tutorial.user_vectors(users)["task_outputs"]),
                                  tutorial.user_embedding(users))
    assert tutorial.query_projection is None
    mmoe = _model(split)
    query = mmoe.query(mmoe.user_vectors(users)["task_outputs"]).numpy()
    assert mmoe.query_projection is not None and query.shape == (2, 8) and (query < 0).any()


def test_logq_correction_subtracts_the_log_item_frequency_from_the_in_batch_logits(split):
    """The retrieval loss with `logq_correction` is the softmax cross-entropy of
    `q_b . v_c - log p(c)` over the batch's items, p the item's share of the training rows."""
    model = _model(split, logq_correction=True, rating_weight=0.0, click_weight=0.0)
    model.build_variables()
    counts = split.item_counts("train")
    model.set_priors(counts, 3.0, 0.5)
    batch = next(iter(split.dataset("train", batch_size=32)))
    loss = float(model.compute_loss(batch, training=True))
    users = model.user_vectors(batch["user"])
    query = model.query(users["task_outputs"]).numpy()
    items = model.item_embedding(batch["item"]).numpy()
    logits = query @ items.T - np.log(np.maximum(counts[batch["item"].numpy()], 1) / counts.sum())[None, :]
    logits -= logits.max(axis=1, keepdims=True)
    expected = -np.sum(np.diag(logits) - np.log(np.exp(logits).sum(axis=1)))  # TFRS sums over the batch
    assert loss == pytest.approx(expected, rel=1e-4)
    plain = _model(split, rating_weight=0.0, click_weight=0.0)
    plain.build_variables()
    plain.set_weights(model.get_weights())
    assert float(plain.compute_loss(batch, training=True)) != pytest.approx(loss, rel=1e-4)
