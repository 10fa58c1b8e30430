"""train_ranker / evaluate_ranker on a tiny ML-1M slice."""

from __future__ import annotations

import numpy as np
import pytest

from tf_attnrec.data.datasets import load_dataset
from tf_attnrec.evaluation.ctr import ctr_metrics
from tf_attnrec.models.registry import create_model
from tf_attnrec.data.ranking_examples import build_ranking_data
from tf_attnrec.tasks.ranking import evaluate_ranker, predict_ranker, train_ranker

pytestmark = [pytest.mark.xdist_group(__name__)]  # one worker builds the module's fixtures


@pytest.fixture(scope="module")
def small_ml1m(shared_data_dir):
    data = load_dataset("ml-1m", data_dir=shared_data_dir, download=False)
    data.interactions = data.interactions[data.interactions["user_id"] <= 200].reset_index(drop=True)
    return build_ranking_data(data, max_length=10, train_positions_per_user=20, seed=0)


def test_train_ranker_reports_validation_and_test_metrics(small_ml1m):
    data = small_ml1m
    model = create_model("din", vocab_size=data.vocabularies.item.size, feature_sizes=data.vocabularies.sizes(),
                         max_length=10, embedding_dim=8, hidden_units=(16,), attention_units=(8,))
    result = train_ranker(model, data, epochs=2, batch_size=256, learning_rate=3e-3, patience=1)
    for metrics in (result.validation, result.test):
        assert metrics["num_examples"] == 200 * 5
        assert metrics["gauc_num_users"] == 200
        assert np.isfinite([metrics["auc"], metrics["gauc"], metrics["log_loss"]]).all()
    # Uniform negatives are much less popular than clicked items: a model that learns at
    # all separates them (an untrained one sits near 0.5).
    assert result.test["auc"] > 0.6, result.test
    assert 1 <= result.best_epoch <= result.fit.passes <= 2
    # The report is the exact metric of the test predictions, not the thresholded Keras AUC.
    predictions = predict_ranker(model, data.dataset("test", shuffle=False))
    expected = ctr_metrics(predictions["label"], predictions["probability"], predictions["user_index"])
    assert evaluate_ranker(model, data, "test")["auc"] == pytest.approx(expected["auc"])


def test_history_longer_than_the_model_is_an_error(small_ml1m):
    data = small_ml1m
    model = create_model("embedding_mlp", vocab_size=data.vocabularies.item.size,
                         feature_sizes=data.vocabularies.sizes(), max_length=5)
    with pytest.raises(ValueError, match="max_length"):
        train_ranker(model, data, epochs=1)
