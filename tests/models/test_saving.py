"""A saved run directory reloads with identical rankings (fresh processes: tests/test_console_script.py)."""

from __future__ import annotations

import numpy as np

from tests.models.conftest import MAX_LENGTH, VOCAB_SIZE
from tf_attnrec.data.pipelines import next_item_dataset
from tf_attnrec.data.vocabulary import Vocabulary
from tf_attnrec.models.registry import create_model
from tf_attnrec.runs import load_model, save_model
from tf_attnrec.training import compile_for_training


def _top_items(model, history, k=10):
    return np.argsort(-model.score(history).numpy(), axis=1, kind="stable")[:, :k]


def test_save_load_gives_same_rankings(tmp_path, sequences):
    model = create_model("sasrec", vocab_size=VOCAB_SIZE, max_length=MAX_LENGTH, hidden_dim=8)
    model.adapt(sequences)
    compile_for_training(model, 1e-2)
    model.fit(next_item_dataset(sequences, MAX_LENGTH, batch_size=8).take(3), verbose=0)
    vocabulary = Vocabulary.from_ids(np.arange(100, 100 + VOCAB_SIZE - 2))
    history = np.array([[0, 0, 5, 6, 7, 8, 9, 10], [0] * 6 + [3, 4]], np.int32)
    expected_scores = model.score(history).numpy()
    run_dir = save_model(model, tmp_path / "run", vocabulary, {"model": "sasrec"})

    loaded, loaded_vocabulary, config = load_model(run_dir)
    np.testing.assert_allclose(loaded.score(history).numpy(), expected_scores, rtol=1e-6)
    assert loaded_vocabulary.raw_ids([2]).tolist() == vocabulary.raw_ids([2]).tolist()
    assert config["extra"]["model"] == "sasrec"


def test_popularity_round_trip(tmp_path, sequences):
    model = create_model("popularity", vocab_size=VOCAB_SIZE)
    model.adapt(sequences)
    history = np.zeros([1, 4], np.int32)
    loaded, _, _ = load_model(save_model(model, tmp_path / "pop"))
    assert _top_items(loaded, history).tolist() == _top_items(model, history).tolist()


def test_load_model_names_missing_files(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="model_config.json"):
        load_model(tmp_path)
