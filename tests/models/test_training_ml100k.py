"""Learning works: a short SASRec run on real MovieLens-100K beats the popularity baseline."""

from __future__ import annotations

import json

import pytest

from tf_attnrec.data.readers import read_movielens_100k
from tf_attnrec.data.splits import leave_one_out_split
from tf_attnrec.models.registry import create_model
from tf_attnrec.runs import load_model
from tf_attnrec.tasks.retrieval import evaluate_sequential, train_sequential

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def split(shared_data_dir):
    return leave_one_out_split(read_movielens_100k(shared_data_dir / "ml-100k").interactions)


def test_sasrec_beats_popularity_on_validation(split, tmp_path):
    popularity = create_model("popularity", vocab_size=split.vocabulary.size)
    baseline = train_sequential(popularity, split, evaluate_test=False, verbose=0)

    sasrec = create_model(
        "sasrec", vocab_size=split.vocabulary.size, max_length=50, hidden_dim=32,
        num_blocks=1, dropout=0.2,
    )
    result = train_sequential(
        sasrec, split, batch_size=64, learning_rate=5e-3, epochs=8, patience=8, eval_every=2,
        evaluate_test=False, run_dir=tmp_path / "run", verbose=0,
    )
    assert result.seconds_per_pass > 0
    assert "val_ndcg@10" in result.history and len(result.history["val_ndcg@10"]) >= 1
    # Same users, same protocol: the learned model must be clearly better.
    assert baseline.validation["num_users"] == result.validation["num_users"]
    assert result.validation["ndcg@10"] > 1.1 * baseline.validation["ndcg@10"], (
        result.validation, baseline.validation)

    # The saved run reproduces the reported validation metrics.
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["validation"]["ndcg@10"] == pytest.approx(result.validation["ndcg@10"])
    reloaded, vocabulary, _ = load_model(tmp_path / "run")
    again = evaluate_sequential(reloaded, split, "validation")
    assert again["ndcg@10"] == pytest.approx(result.validation["ndcg@10"], abs=1e-6)
    assert vocabulary.size == split.vocabulary.size
