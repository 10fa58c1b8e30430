"""The shared training loop: early stopping, the time limit and the run directory's logs."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tensorflow as tf

from tests.models.conftest import MAX_LENGTH, VOCAB_SIZE, tiny_sequences
from tf_attnrec.data.pipelines import next_item_dataset
from tf_attnrec.models.registry import create_model
from tf_attnrec.training import fit_model


class FakeValidation(tf.keras.callbacks.Callback):
    """Writes a scripted `val_score` per epoch: best at epoch 2, then worse."""

    def __init__(self, values):
        super().__init__()
        self.values = list(values)

    def on_epoch_end(self, epoch, logs=None):
        logs["val_score"] = self.values[epoch]


def _model():
    return create_model("mean_pooling", vocab_size=VOCAB_SIZE, max_length=MAX_LENGTH, embedding_dim=8)


def test_early_stopping_restores_the_best_epoch_and_logs_go_to_the_run_dir(tmp_path):
    tf.keras.utils.set_random_seed(0)
    model = _model()
    train = next_item_dataset(tiny_sequences(), MAX_LENGTH, batch_size=64, seed=0)
    snapshots = []

    class Snapshot(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(model.item_embeddings.numpy().copy())

    result = fit_model(model, train, monitor="val_score", epochs=10, patience=2,
                       validation_callbacks=[FakeValidation([0.1, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0])],
                       callbacks=[Snapshot()], run_dir=tmp_path)
    assert result.stopped_by == "early_stopping" and result.best_pass == 2 and result.passes == 4
    np.testing.assert_array_equal(model.item_embeddings.numpy(), snapshots[1])  # best weights restored
    assert result.history["learning_rate"] == pytest.approx([1e-3] * 4)
    assert result.seconds_per_pass > 0

    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert [float(row["val_score"]) for row in rows] == [0.1, 0.5, 0.4, 0.3]
    tags = set()
    for event_file in (tmp_path / "logs").rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(value.tag for value in event.summary.value)
    assert {"epoch_loss", "epoch_learning_rate", "epoch_score"} <= tags, tags  # val_score -> validation/epoch_score


def test_a_minimised_monitor_stops_on_its_lowest_value():
    tf.keras.utils.set_random_seed(0)
    train = next_item_dataset(tiny_sequences(), MAX_LENGTH, batch_size=64, seed=0)
    result = fit_model(_model(), train, monitor="val_score", monitor_mode="min", epochs=10, patience=2,
                       validation_callbacks=[FakeValidation([0.5, 0.2, 0.3, 0.4, 0.1, 0.0, 0, 0, 0, 0])])
    assert result.best_pass == 2 and result.passes == 4 and result.stopped_by == "early_stopping"
    with pytest.raises(ValueError, match="monitor_mode"):
        fit_model(_model(), train, monitor="val_score", monitor_mode="lowest")


def test_the_optimizer_is_chosen_by_name():
    train = next_item_dataset(tiny_sequences(), MAX_LENGTH, batch_size=64, seed=0)
    model = _model()
    fit_model(model, train, monitor="val_score", optimizer="adagrad", learning_rate=0.1, epochs=1, patience=None)
    assert isinstance(model.optimizer, tf.keras.optimizers.Adagrad)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"optimizer must be one of \['adagrad', 'adam'\]; got 'sgd'"):
        fit_model(_model(), train, monitor="val_score", optimizer="sgd", epochs=1)


def test_plateau_needs_patience_above_it():
    train = next_item_dataset(tiny_sequences(), MAX_LENGTH, batch_size=64, seed=0)
    with pytest.raises(ValueError, match="reduce_lr_patience"):
        fit_model(_model(), train, monitor="val_score", patience=3, reduce_lr_patience=3)


@pytest.mark.parametrize("name", ["mean_pooling", "attention_pooling"])
def test_the_train_step_is_traced_once(name):
    """Variables and Adam's slots exist before the first step, so tf.function need not retrace."""
    tf.keras.utils.set_random_seed(0)
    model = create_model(name, vocab_size=VOCAB_SIZE, max_length=MAX_LENGTH, embedding_dim=8)
    # Full batches only: a smaller last batch would be a second input shape, so a second trace.
    train = next_item_dataset(tiny_sequences(), MAX_LENGTH, batch_size=8, seed=0, drop_remainder=True)
    fit_model(model, train, monitor="loss", epochs=2, patience=None)
    assert model.optimizer.variables and model.train_function.experimental_get_tracing_count() == 1


def test_the_package_is_not_rewritten_by_autograph_inside_traced_functions():
    """Layer calls and losses run as written, unconverted (tf_attnrec/_autograph.py)."""
    from tensorflow.python.autograph.impl import conversion

    from tf_attnrec._autograph import skip_autograph_for
    from tf_attnrec.layers.attention import ScaledDotProductAttention

    assert conversion.is_allowlisted(ScaledDotProductAttention.call)
    assert skip_autograph_for("tf_attnrec")  # a second call adds no second rule
    from tensorflow.python.autograph.core import config
    assert sum("tf_attnrec" in str(rule) for rule in config.CONVERSION_RULES) == 1



def test_a_training_set_of_unknown_length_is_refused_by_name():
    train = next_item_dataset(tiny_sequences(), MAX_LENGTH, batch_size=64, seed=0).filter(lambda batch: True)
    with pytest.raises(ValueError, match="cardinality is -2.*assert_cardinality"):
        fit_model(_model(), train, monitor="val_score", epochs=1)
