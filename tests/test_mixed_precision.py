"""`tf-attnrec train --precision`: layers compute in 16 bits, variables, scores and losses stay float32."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec import cli, runs
from tf_attnrec.models import create_model

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("float32_policy_afterwards")]

TINY = {
    "sasrec": ["--max-length", "20", "--set", "hidden_dim=8", "--set", "num_blocks=1", "--batch-size", "64"],
    "din": ["--set", "embedding_dim=4", "--set", "max_length=10", "--set", "hidden_units=[8]",
            "--set", "attention_units=[8]", "--batch-size", "512", "--set", "train_positions_per_user=2",
            "--set", "num_negatives=1"],
    "bst": ["--set", "embedding_dim=4", "--set", "max_length=10", "--set", "hidden_units=[8]",
            "--batch-size", "512", "--set", "train_positions_per_user=2", "--set", "num_negatives=1"],
}


@pytest.mark.parametrize("model, precision", [("sasrec", "mixed_bfloat16"), ("sasrec", "mixed_float16"),
                                              ("din", "mixed_bfloat16"), ("bst", "mixed_bfloat16")])
def test_a_mixed_precision_run_trains_and_records_its_policy(model, precision, shared_data_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    status = cli.main(["train", "--model", model, "--dataset", "ml-100k", "--data-dir", str(shared_data_dir),
                       "--epochs", "1", "--quiet", "--precision", precision, "--output", str(run_dir), *TINY[model]])
    assert status == 0, capsys.readouterr().err
    metrics = json.loads((run_dir / runs.METRICS_FILE).read_text())
    assert all(math.isfinite(value) for value in metrics["history"]["loss"])
    assert all(math.isfinite(value) for value in metrics["test"].values() if isinstance(value, float))
    assert json.loads((run_dir / runs.CONFIG_FILE).read_text())["extra"]["precision"] == precision
    assert runs.read_run_config(run_dir)["precision"] == precision  # config.yaml: rerunning it reproduces it


def test_layers_compute_in_16_bits_while_variables_and_scores_stay_float32():
    tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = create_model("sasrec", vocab_size=30, max_length=6, hidden_dim=8, num_blocks=1)
    model.build_variables()
    history = tf.constant([[0, 0, 3, 4, 5, 6]])
    assert model(history).dtype == tf.bfloat16
    assert {weight.dtype for weight in model.weights} == {tf.float32}
    scores = model.score(history)
    assert scores.dtype == tf.float32 and np.isfinite(scores.numpy()[:, 2:]).all()


def test_float16_training_scales_the_loss():
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    model = create_model("sasrec", vocab_size=30, max_length=6, hidden_dim=8, num_blocks=1)
    model.build_variables()
    model.compile(tf.keras.optimizers.Adam(1e-3))
    assert isinstance(model.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
    history = tf.constant([[0, 0, 3, 4, 5, 6]] * 4)
    logs = model.train_step({"history": history, "targets": tf.roll(history, -1, axis=1)})
    assert np.isfinite(logs["loss"].numpy())
