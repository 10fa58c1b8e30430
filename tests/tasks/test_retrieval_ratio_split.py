"""The retrieval task on the CF protocol (`split: ratio`): item-set models evaluated like the graph models."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec.data.ratio_split import RatioSplit, ratio_split
from tf_attnrec.evaluation.item_sets import evaluate_item_sets
from tf_attnrec.models.registry import get_model_spec
from tf_attnrec.tasks import get_task
from tf_attnrec.tasks.retrieval import evaluate_sequential
from tests.test_zoo import tiny_dataset

pytestmark = [pytest.mark.xdist_group(__name__)]

OPTIONS = {"split": "ratio", "split_seed": 3}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    dataset, task = tiny_dataset(), get_task("retrieval")
    spec = get_model_spec("nais")
    split = task.build_data(dataset, dict(spec.tiny), OPTIONS)
    model = task.build_model(spec, split, dict(spec.tiny))
    run_dir = tmp_path_factory.mktemp("runs") / "nais-ratio"
    result = task.fit(model, split, epochs=2, batch_size=64, seed=0, run_dir=run_dir, verbose=0,
                      extra_config={"model": "nais"})
    return dataset, task, split, model, result, run_dir


def test_the_ratio_split_is_the_collaborative_split(trained):
    dataset, _, split, _, _, _ = trained
    expected = ratio_split(dataset.interactions, seed=3)
    assert isinstance(split, RatioSplit)
    for mine, theirs in zip((split.train, split.validation, split.test),
                            (expected.train, expected.validation, expected.test)):
        assert all(np.array_equal(a, b) for a, b in zip(mine, theirs))


def test_metrics_rank_each_held_out_set_against_the_catalogue(trained):
    _, _, split, model, result, _ = trained
    assert set(result.test) >= {"recall@10", "ndcg@10", "precision@10", "hit@10", "users"}
    assert "hr@10" not in result.test  # not the leave-one-out metrics
    # The same numbers from the model's scores, computed by hand for the test stage.
    rows = split.evaluable_users("test")
    seen = [split.seen("test")[r] for r in rows]
    histories = [s[-model.max_length:] for s in seen]
    padded = np.zeros([len(rows), model.max_length], np.int32)
    for i, history in enumerate(histories):
        padded[i, model.max_length - len(history):] = history
    scores = model.score(tf.constant(padded)).numpy()
    expected = evaluate_item_sets(lambda positions: scores[positions.numpy()], np.arange(len(rows)), seen,
                                  [split.targets("test")[r] for r in rows])
    for key in ("recall@10", "ndcg@10", "recall@20"):
        assert result.test[key] == pytest.approx(expected[key], abs=1e-9), key


def test_run_records_the_split_and_reloads_with_the_same_metrics(trained):
    dataset, task, _, _, result, run_dir = trained
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["split"]["kind"] == "random ratio per user" and metrics["split"]["seed"] == 3
    run = task.load_run(run_dir, {"model": "nais"})
    again = task.build_data(dataset, {}, OPTIONS, run)
    assert isinstance(again, RatioSplit)
    reloaded = task.evaluate(run.model, again, "test")
    assert reloaded["ndcg@10"] == pytest.approx(result.test["ndcg@10"], abs=1e-6)


def test_bad_split_and_sampled_protocol_are_refused(trained):
    dataset, task, split, model, _, _ = trained
    with pytest.raises(ValueError, match="training.split must be one of"):
        task.build_data(dataset, {}, {"split": "random"})
    with pytest.raises(ValueError, match="full catalogue only"):
        evaluate_sequential(model, split, "test", protocol="sampled")
