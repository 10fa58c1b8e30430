"""Fit a ranking model on `RankingData` and report AUC, GAUC and log loss per stage.

`train_ranker` = `model.fit` on the training examples with the validation set monitored
through the task's AUC metric and `tf.keras.callbacks.EarlyStopping(monitor="val_auc",
restore_best_weights=True)`; then validation and test are scored once with the exact
metrics of `tf_attnrec.evaluation.ctr` (AUC, impression-weighted GAUC, log loss).
"""

from __future__ import annotations

import json
import os
import pathlib
import time
from typing import Any, Mapping, Optional, Union

import numpy as np
import tensorflow as tf

from tf_attnrec.evaluation.ctr import ctr_metrics
from tf_attnrec.ranking import schema
from tf_attnrec.ranking.base import RankingModel
from tf_attnrec.ranking.features import RankingData
from tf_attnrec.ranking.saving import save_ranker

# Keys of a ranking run's `training` config that configure `build_ranking_data` (the
# examples), not `train_ranker`; "data_seed" is its `seed` (fixed across training seeds, so
# every seed of a table is tested on the same sampled negatives).
DATA_KEYS = ("train_positions_per_user", "num_negatives", "num_eval_negatives", "max_genres", "data_seed")
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"


def predict_ranker(model: RankingModel, dataset: tf.data.Dataset) -> dict[str, np.ndarray]:
    """Click probabilities, labels and user rows for every example of a dataset.

    Args:
        model: a `RankingModel`.
        dataset: batches from `RankingData.dataset(...)`.

    Returns:
        {"probability": float [N], "label": float [N], "user_index": int [N]}.
    """
    predict = tf.function(model.predict_proba, reduce_retracing=True)
    parts: dict[str, list] = {"probability": [], "label": [], "user_index": []}
    for batch in dataset:
        parts["probability"].append(predict(batch).numpy())
        parts["label"].append(batch[schema.LABEL].numpy())
        parts["user_index"].append(batch[schema.USER_INDEX].numpy())
    return {key: np.concatenate(values) for key, values in parts.items()}


def evaluate_ranker(
    model: RankingModel, data: RankingData, stage: str = "test", batch_size: int = 4096
) -> dict[str, Any]:
    """Exact AUC, GAUC (per-user, impression-weighted) and log loss on one stage.

    Args:
        model: a trained `RankingModel`.
        data: the `RankingData`.
        stage: "validation" or "test" ("train" works too, for diagnostics only).
        batch_size: examples per prediction batch.

    Returns:
        {"auc", "gauc", "log_loss", "gauc_num_users", "gauc_num_skipped_users",
        "num_examples", "stage"}.

    Example:
        ```python
        metrics = evaluate_ranker(model, data, "test")
        ```
    """
    predictions = predict_ranker(model, data.dataset(stage, batch_size=batch_size, shuffle=False))
    metrics = ctr_metrics(predictions["label"], predictions["probability"], predictions["user_index"])
    metrics.update({"num_examples": int(len(predictions["label"])), "stage": stage})
    return metrics


def train_ranker(
    model: RankingModel,
    data: RankingData,
    epochs: int = 20,
    batch_size: int = 1024,
    learning_rate: float = 1e-3,
    patience: Optional[int] = 2,
    seed: int = 0,
    verbose: int = 0,
    run_dir: Optional[Union[str, os.PathLike]] = None,
    extra_config: Optional[Mapping[str, Any]] = None,
    callbacks: tuple = (),
) -> dict[str, Any]:
    """Trains with early stopping on validation AUC, then evaluates validation and test.

    Args:
        model: a `RankingModel` (e.g. `create_model("din", ...)`).
        data: the `RankingData`; its max_length must not exceed the model's.
        epochs: most epochs.
        batch_size: training batch size.
        learning_rate: Adam learning rate.
        patience: epochs without validation-AUC improvement before stopping (the best
            weights are restored); None disables early stopping.
        seed: seeds TensorFlow (initialisation, dropout) and the shuffling.
        verbose: Keras verbosity.
        run_dir: If given, save the model (`save_ranker`), `metrics.json` (the returned dict)
            and the per-epoch `history.csv` here.
        extra_config: JSON-serialisable values stored with the saved model (zoo name, data
            config).
        callbacks: Extra Keras callbacks.

    Returns:
        {"validation": metrics, "test": metrics, "history": Keras history dict,
        "epochs_run": int, "best_epoch": int, "train_seconds": float}.

    Example:
        ```python
        model = create_model("din", vocab_size=data.vocabularies.item.size,
                             feature_sizes=data.vocabularies.sizes(), max_length=data.max_length)
        results = train_ranker(model, data, epochs=5)
        results["test"]["gauc"]
        ```
    """
    if data.max_length > model.max_length:
        raise ValueError(
            f"The features have histories of {data.max_length} items but the model was built "
            f"with max_length={model.max_length}; rebuild one of them with the same max_length."
        )
    tf.keras.utils.set_random_seed(seed)
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate))
    callbacks = list(callbacks)
    if patience is not None:
        callbacks.append(tf.keras.callbacks.EarlyStopping(
            monitor="val_auc", mode="max", patience=patience, restore_best_weights=True))
    if run_dir is not None:
        pathlib.Path(run_dir).mkdir(parents=True, exist_ok=True)
        callbacks.append(tf.keras.callbacks.CSVLogger(str(pathlib.Path(run_dir) / HISTORY_FILE)))
    start = time.perf_counter()
    history = model.fit(
        data.dataset("train", batch_size=batch_size, seed=seed),
        validation_data=data.dataset("validation", batch_size=4096),
        epochs=epochs,
        callbacks=callbacks,
        verbose=verbose,
    )
    train_seconds = time.perf_counter() - start
    logged = {key: [float(v) for v in values] for key, values in history.history.items()}
    val_auc = logged.get("val_auc", [])
    results = {
        "validation": evaluate_ranker(model, data, "validation"),
        "test": evaluate_ranker(model, data, "test"),
        "history": logged,
        "epochs_run": len(logged.get("loss", [])),
        "best_epoch": int(np.argmax(val_auc)) + 1 if val_auc else len(logged.get("loss", [])),
        "train_seconds": train_seconds,
        "num_train_examples": data.num_examples("train"),
    }
    if run_dir is not None:
        save_ranker(model, run_dir, data.vocabularies, data.item_genres, data.item_year, extra_config)
        (pathlib.Path(run_dir) / METRICS_FILE).write_text(json.dumps(results, indent=2, default=float))
    return results
