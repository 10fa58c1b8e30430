"""Updating a trained model with new data: new items grow the vocabulary, known items keep their vectors."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec import cli, runs
from tf_attnrec.data.vocabulary import Vocabulary
from tf_attnrec.models import create_model

TINY = {"max_length": 5, "hidden_dim": 4, "num_blocks": 1}


@pytest.fixture
def saved_run(tmp_path):
    tf.keras.utils.set_random_seed(0)
    vocabulary = Vocabulary(["a", "b", "c"])
    model = create_model("sasrec", vocab_size=vocabulary.size, **TINY)
    model.build_variables()
    runs.save_model(model, tmp_path / "base", vocabulary)
    return tmp_path / "base", model, vocabulary


def test_known_items_keep_their_rows_by_raw_id_and_new_items_start_fresh(saved_run):
    run_dir, saved, saved_vocabulary = saved_run
    vocabulary = Vocabulary(["c", "d", "a", "b", "e"])  # renumbered, two new items
    tf.keras.utils.set_random_seed(1)
    model = create_model("sasrec", vocab_size=vocabulary.size, **TINY)
    model.build_variables()
    fresh = model.item_embeddings.numpy().copy()
    runs.load_weights_from_run(model, run_dir, vocabulary)
    old_table, new_table = saved.item_embeddings.numpy(), model.item_embeddings.numpy()
    for item in ("a", "b", "c"):
        new_id, old_id = vocabulary.lookup([item])[0], saved_vocabulary.lookup([item])[0]
        np.testing.assert_array_equal(new_table[new_id], old_table[old_id])
    np.testing.assert_array_equal(new_table[:2], old_table[:2])  # padding and unknown rows
    for item in ("d", "e"):
        new_id = vocabulary.lookup([item])[0]
        np.testing.assert_array_equal(new_table[new_id], fresh[new_id])
    # Every weight that does not depend on the vocabulary is copied as it is.
    for old, new in zip(saved.weights, model.weights):
        if old.shape == new.shape:
            np.testing.assert_array_equal(old.numpy(), new.numpy())


def test_another_model_config_is_refused_even_with_new_items(saved_run):
    run_dir, _, _ = saved_run
    vocabulary = Vocabulary(["a", "b", "c", "d"])
    model = create_model("sasrec", vocab_size=vocabulary.size, **{**TINY, "hidden_dim": 8})
    with pytest.raises(ValueError, match="config differs"):
        runs.load_weights_from_run(model, run_dir, vocabulary)


def test_train_init_from_a_run_on_new_data_grows_the_vocabulary(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = [(user, item, 10 * user + step) for user in range(1, 41)
            for step, item in enumerate(rng.choice(np.arange(1, 31), size=8, replace=False))]
    old = [row for row in rows if row[1] <= 25]  # items 26..30 arrive with the new data
    for name, part in (("old.csv", old), ("new.csv", rows)):
        (tmp_path / name).write_text("user_id,item_id,time\n" + "".join(f"{u},{i},{t}\n" for u, i, t in part))
    tiny = ["--model", "sasrec", "--max-length", "8", "--set", "hidden_dim=8", "--set", "num_blocks=1",
            "--epochs", "2", "--batch-size", "16", "--quiet", "--time-col", "time"]
    assert cli.main(["train", "--data", str(tmp_path / "old.csv"), "--output", str(tmp_path / "old"), *tiny]) == 0
    assert cli.main(["train", "--data", str(tmp_path / "new.csv"), "--output", str(tmp_path / "new"), *tiny,
                     "--init-from", str(tmp_path / "old")]) == 0
    capsys.readouterr()
    _, old_vocabulary, _ = runs.load_model(tmp_path / "old")
    model, vocabulary, _ = runs.load_model(tmp_path / "new")
    assert old_vocabulary.num_items == 25 and vocabulary.num_items == 30
    assert runs.read_run_config(tmp_path / "new")["init_from"] == str(tmp_path / "old")
