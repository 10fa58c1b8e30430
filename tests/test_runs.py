"""Run directories of models with side features: save / load round trip and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tf_attnrec.data.datasets import load_dataset
from tf_attnrec.models.registry import create_model
from tf_attnrec.data.ranking_examples import build_ranking_data
from tf_attnrec import runs
from tf_attnrec.tasks.ranking import predict_ranker, train_ranker

pytestmark = [pytest.mark.xdist_group(__name__)]  # one worker builds the module's fixtures


@pytest.fixture(scope="module")
def tiny_ml1m(shared_data_dir):
    data = load_dataset("ml-1m", data_dir=shared_data_dir, download=False)
    data.interactions = data.interactions[data.interactions["user_id"] <= 100].reset_index(drop=True)
    return build_ranking_data(data, max_length=10, train_positions_per_user=3, seed=0)


@pytest.mark.parametrize("name", ["din"])  # every model's reload: tests/test_zoo.py
def test_saved_ranker_reloads_with_identical_predictions(tiny_ml1m, tmp_path, name):
    data = tiny_ml1m
    model = create_model(name, vocab_size=data.vocabularies.item.size, feature_sizes=data.vocabularies.sizes(),
                         max_length=10, embedding_dim=8, hidden_units=(16,))
    result = train_ranker(model, data, epochs=1, batch_size=256, run_dir=tmp_path, extra_config={"model": name})
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["test"]["auc"] == pytest.approx(result.test["auc"])
    assert (tmp_path / "history.csv").read_text().startswith("epoch")

    reloaded, item_vocabulary, config = runs.load_model(tmp_path)
    vocabularies, tables = runs.load_feature_tables(tmp_path)
    assert item_vocabulary == data.vocabularies.item
    assert type(reloaded) is type(model) and config["extra"]["model"] == name
    assert vocabularies.sizes() == data.vocabularies.sizes()
    np.testing.assert_array_equal(tables["item_genres"], data.item_genres)
    np.testing.assert_array_equal(tables["item_year"], data.item_year)
    before = predict_ranker(model, data.dataset("test", shuffle=False))["probability"]
    after = predict_ranker(reloaded, data.dataset("test", shuffle=False))["probability"]
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-7)
    # A trained model is not constant: the comparison above is not vacuous.
    assert np.std(before) > 1e-3


def test_load_names_the_missing_file(tiny_ml1m, tmp_path):
    data = tiny_ml1m
    runs.save_feature_tables(tmp_path, data.vocabularies, data.item_genres, data.item_year)
    runs.load_feature_tables(tmp_path)  # complete: loads
    (tmp_path / "item_features.npz").unlink()
    with pytest.raises(FileNotFoundError, match="item_features.npz"):
        runs.load_feature_tables(tmp_path)
    with pytest.raises(FileNotFoundError, match="model_config.json"):
        runs.load_model(tmp_path / "missing")


def test_save_rejects_tables_of_another_vocabulary(tiny_ml1m, tmp_path):
    data = tiny_ml1m
    with pytest.raises(ValueError, match="item tables"):
        runs.save_feature_tables(tmp_path, data.vocabularies, data.item_genres[:-1], data.item_year)
