"""Fit and evaluate a sequential zoo model on a leave-one-out split (what the CLI calls).

`train_sequential` = `model.fit` on next-item batches + a Keras callback that runs
full-catalogue validation and writes `val_ndcg@10` etc. into the epoch logs, so the standard
`tf.keras.callbacks.EarlyStopping(monitor="val_ndcg@10", mode="max",
restore_best_weights=True)` picks the best model. Then the test item is evaluated once and,
with `run_dir`, the model, vocabulary, metrics and history are saved.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import time
from typing import Any, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tf_attnrec.data.pipelines import next_item_dataset, pad_sequences
from tf_attnrec.data.splits import SequenceSplit
from tf_attnrec.evaluation.beyond_accuracy import beyond_accuracy_metrics, item_popularity
from tf_attnrec.evaluation.ranking import full_catalogue_evaluate, sampled_evaluate
from tf_attnrec.models.saving import load_weights_from_run, save_model

PathLike = Union[str, os.PathLike]


def make_score_fn(model: tf.keras.Model, max_length: int) -> tf.types.experimental.GenericFunction:
    """A compiled `history [B, any L] -> scores [B, vocab_size]` for the evaluator.

    Histories are cut to their most recent `max_length` items and left-padded to exactly
    `max_length`, so one graph serves every batch (and long histories can still be passed
    whole, letting the evaluator exclude every item the user has seen).

    Args:
        model: A model with a `score(history)` method.
        max_length: The history length the model reads.

    Returns:
        A `tf.function`.
    """

    # autograph=False: no Python control flow here, and AutoGraph warns on the closure.
    @tf.function(
        input_signature=[tf.TensorSpec([None, None], tf.int32)], reduce_retracing=True, autograph=False
    )
    def score_fn(history: tf.Tensor) -> tf.Tensor:
        history = history[:, -max_length:]
        pad = max_length - tf.shape(history)[1]
        history = tf.pad(history, [[0, 0], [pad, 0]])
        history = tf.ensure_shape(history, [None, max_length])
        return model.score(history)

    return score_fn


def evaluate_sequential(
    model: tf.keras.Model,
    split: SequenceSplit,
    stage: str = "test",
    max_length: Optional[int] = None,
    ks: Sequence[int] = (10, 20),
    batch_size: int = 512,
    max_users: Optional[int] = None,
    protocol: str = "full",
    beyond_accuracy: bool = False,
    num_negatives: int = 100,
    seed: int = 0,
) -> dict:
    """Ranking metrics (seen items excluded) on the validation or test items of a split.

    Args:
        model: A trained zoo model.
        split: The leave-one-out split the model was trained on.
        stage: "validation" (history = train sequence) or "test" (history = train +
            validation item).
        max_length: History length read by the model (default: the model's own).
        ks: Cut-offs.
        batch_size: Users scored at once.
        max_users: Evaluate only the first `max_users` evaluable users (None = all).
        protocol: "full" ranks each target against the whole catalogue; "sampled" against
            `num_negatives` uniformly sampled unseen items (keys prefixed "sampled100_").
        beyond_accuracy: With "full", also coverage@K, novelty@K, mean_popularity@K and gini@K
            of the top-K lists (popularity counted on the training sequences).
        num_negatives: Negatives per user for the sampled protocol.
        seed: Seed of the sampled negatives.

    Returns:
        The metrics dict ("protocol": "full" or "sampled-N", "hr@10", "ndcg@10", ...).

    Example:
        ```python
        metrics = evaluate_sequential(model, split, "test", beyond_accuracy=True)
        ```
    """
    if stage not in ("validation", "test"):
        raise ValueError(f"stage must be 'validation' or 'test'; got {stage!r}.")
    if protocol not in ("full", "sampled"):
        raise ValueError(f"protocol must be 'full' or 'sampled'; got {protocol!r}.")
    inputs = split.validation_inputs() if stage == "validation" else split.test_inputs()
    histories, targets = inputs.histories, inputs.targets
    if max_users is not None:
        histories, targets = histories[:max_users], targets[:max_users]
    if not len(targets):
        raise ValueError(
            f"the split has no user with a {stage} item (every user has < 3 interactions)."
        )
    max_length = max_length or model.max_length
    # Pad to the longest history so that every seen item (not only the last max_length) is
    # excluded from the candidates; the score function reads the last max_length.
    longest = max(max(len(h) for h in histories), 1)
    padded = pad_sequences(histories, longest)
    score_fn = make_score_fn(model, max_length)
    if protocol == "sampled":
        return sampled_evaluate(
            score_fn, padded, targets, ks=ks, num_negatives=num_negatives, seed=seed
        )
    if not beyond_accuracy:
        return full_catalogue_evaluate(score_fn, padded, targets, ks=ks, batch_size=batch_size)
    metrics, top_k = full_catalogue_evaluate(
        score_fn, padded, targets, ks=ks, batch_size=batch_size, return_top_k=True
    )
    counts = item_popularity(np.concatenate(split.train), split.vocabulary.size)
    metrics.update(beyond_accuracy_metrics(top_k, counts, ks=ks))
    return metrics


class FullCatalogueValidation(tf.keras.callbacks.Callback):
    """Runs full-catalogue validation every `every_n_epochs` epochs and logs `val_*` metrics.

    Adds e.g. `val_ndcg@10`, `val_hr@10` to the epoch `logs` (so `EarlyStopping`,
    `CSVLogger`, `History` and TensorBoard see them). Put it before `EarlyStopping` in the
    callbacks list.

    Args:
        split: The leave-one-out split (its validation items are evaluated).
        max_length: History length the model reads.
        ks: Cut-offs.
        every_n_epochs: Evaluate only every n-th epoch (and never log stale values).
        batch_size: Users scored at once.
        max_users: Evaluate the first `max_users` users only (None = all).
        verbose: Print one line per evaluation.
        passes_per_epoch: Passes over the training data per Keras epoch (for the printed
            pass count when `fit` uses `steps_per_epoch` to span several passes).

    Example:
        ```python
        callbacks = [FullCatalogueValidation(split, 200),
                     tf.keras.callbacks.EarlyStopping("val_ndcg@10", mode="max", patience=5,
                                                      restore_best_weights=True)]
        model.fit(train_ds, epochs=100, callbacks=callbacks)
        ```
    """

    def __init__(
        self,
        split: SequenceSplit,
        max_length: int,
        ks: Sequence[int] = (10, 20),
        every_n_epochs: int = 1,
        batch_size: int = 512,
        max_users: Optional[int] = None,
        verbose: int = 1,
        passes_per_epoch: int = 1,
    ) -> None:
        super().__init__()
        self.passes_per_epoch = max(1, int(passes_per_epoch))
        inputs = split.validation_inputs()
        histories, targets = inputs.histories, inputs.targets
        if max_users is not None:
            histories, targets = histories[:max_users], targets[:max_users]
        self.histories = pad_sequences(histories, max(max(len(h) for h in histories), 1))
        self.targets = targets
        self.max_length = max_length
        self.ks = tuple(ks)
        self.every_n_epochs = max(1, int(every_n_epochs))
        self.batch_size = batch_size
        self.verbose = verbose
        self._score_fn = None
        self._epoch_start = 0.0

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        train_seconds = time.perf_counter() - self._epoch_start
        if logs is not None:
            logs["train_seconds"] = train_seconds
        if (epoch + 1) % self.every_n_epochs:
            return
        if self._score_fn is None:
            self._score_fn = make_score_fn(self.model, self.max_length)
        start = time.perf_counter()
        metrics = full_catalogue_evaluate(
            self._score_fn, self.histories, self.targets, ks=self.ks, batch_size=self.batch_size
        )
        values = {f"val_{k}": float(v) for k, v in metrics.items() if "@" in k or k == "mrr"}
        if logs is not None:
            logs.update(values)
            logs["val_seconds"] = time.perf_counter() - start
        if self.verbose:
            shown = " ".join(f"{k}={v:.4f}" for k, v in values.items() if "@10" in k)
            loss = (logs or {}).get("loss", float("nan"))
            rate = float(tf.keras.backend.get_value(self.model.optimizer.learning_rate))
            print(
                f"pass {(epoch + 1) * self.passes_per_epoch}: loss={loss:.4f} {shown} "
                f"lr={rate:.3g} train {train_seconds / self.passes_per_epoch:.1f}s/pass "
                f"val {time.perf_counter() - start:.1f}s",
                flush=True,
            )


class TimeLimit(tf.keras.callbacks.Callback):
    """Stops `fit` after the first epoch that ends past a wall-clock budget.

    With `EarlyStopping(restore_best_weights=True)` the best weights seen so far are kept, so
    a run cut by the budget ends like an early-stopped one (weights saved, test evaluated).

    Args:
        minutes: Training budget in minutes (validation time included).
    """

    def __init__(self, minutes: float) -> None:
        super().__init__()
        if minutes <= 0:
            raise ValueError(f"time limit must be positive minutes, got {minutes}.")
        self.minutes = float(minutes)
        self.stopped = False
        self._deadline = 0.0

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        self._deadline = time.monotonic() + 60.0 * self.minutes

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        if time.monotonic() >= self._deadline:
            self.stopped = True
            self.model.stop_training = True


@dataclasses.dataclass
class TrainingResult:
    """What `train_sequential` returns.

    Attributes:
        model: The trained model (best validation weights restored).
        history: Per Keras epoch, the logged values (loss, val_ndcg@10, train_seconds, ...).
        validation: Final full-catalogue validation metrics (best weights).
        test: Full-catalogue test metrics (None if `evaluate_test=False`).
        best_epoch: 1-based data pass with the best validation NDCG@10 (None without fit).
        seconds_per_pass: Mean training seconds per pass over the training data.
        run_dir: Where the run was saved (None if not saved).
        stopped_by: "early_stopping", "time_limit" or "max_epochs" (None without fit).
    """

    model: tf.keras.Model
    history: dict
    validation: dict
    test: Optional[dict]
    best_epoch: Optional[int]
    seconds_per_pass: Optional[float]
    run_dir: Optional[pathlib.Path]
    stopped_by: Optional[str] = None


def train_sequential(
    model: tf.keras.Model,
    split: SequenceSplit,
    *,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    epochs: int = 200,
    patience: int = 10,
    eval_every: int = 1,
    max_length: Optional[int] = None,
    ks: Sequence[int] = (10, 20),
    monitor: str = "val_ndcg@10",
    jit_compile: bool = False,
    split_long_sequences: bool = False,
    validation_users: Optional[int] = None,
    evaluate_test: bool = True,
    seed: int = 0,
    run_dir: Optional[PathLike] = None,
    extra_config: Optional[dict] = None,
    init_from: Optional[PathLike] = None,
    time_limit_minutes: Optional[float] = None,
    reduce_lr_patience: Optional[int] = None,
    reduce_lr_factor: float = 0.3,
    min_learning_rate: float = 1e-5,
    callbacks: Sequence[tf.keras.callbacks.Callback] = (),
    verbose: int = 1,
) -> TrainingResult:
    """Trains a zoo model with early stopping on full-catalogue validation NDCG, then tests.

    One "pass" is one pass over the training sequences. Validation runs every `eval_every`
    passes (a Keras epoch is `eval_every` passes, so every Keras epoch logs `val_*`);
    training stops after `patience` passes without improvement of `monitor`, and the best
    weights are restored.

    Args:
        model: From `create_model(...)`. A `PopularityModel` is only adapted (no fit).
        split: `leave_one_out_split(...)` output.
        batch_size: Training sequences per step.
        learning_rate: Adam learning rate.
        epochs: Maximum passes over the training data.
        patience: Passes without improvement before stopping.
        eval_every: Validate every n passes.
        max_length: History length (default: the encoder's `max_length`).
        ks: Cut-offs of the reported metrics.
        monitor: Logged metric for early stopping.
        jit_compile: Compile the train step with XLA.
        split_long_sequences: Cut sequences longer than `max_length` into windows (all
            items become targets) instead of keeping only the most recent ones (SASRec).
        validation_users: Validate on the first n users only (faster; None = all).
        evaluate_test: Evaluate the test items after training.
        seed: Seed for weights, dropout and shuffling.
        run_dir: If given, save model, vocabulary, metrics and history here.
        extra_config: JSON-serialisable values stored with the saved model (e.g. zoo name).
        init_from: A saved run directory to warm-start from (same model config and item
            vocabulary), to continue a run that stopped; the optimizer starts afresh.
        time_limit_minutes: Stop after the first validation past this budget (best weights
            kept, then tested and saved as usual).
        reduce_lr_patience: If set, multiply the learning rate by `reduce_lr_factor` after
            this many passes without improvement of `monitor` (Keras
            `ReduceLROnPlateau`); keep it below `patience` so the lower rate gets a chance
            before early stopping. The rate is logged as `lr` in the history.
        reduce_lr_factor: Learning-rate multiplier at each plateau.
        min_learning_rate: The rate is never reduced below this.
        callbacks: Extra Keras callbacks (run after validation and early stopping).
        verbose: 0 silent, 1 one line per validation, 2 also Keras progress per epoch.

    Returns:
        `TrainingResult`.

    Example:
        ```python
        split = leave_one_out_split(read_sasrec_txt("ml-1m.txt"))
        model = create_model("sasrec", vocab_size=split.vocabulary.size)
        result = train_sequential(model, split, epochs=200, eval_every=2, run_dir="runs/sasrec")
        result.test["ndcg@10"]
        ```
    """
    if reduce_lr_patience is not None and reduce_lr_patience >= patience:
        raise ValueError(
            f"reduce_lr_patience ({reduce_lr_patience}) must be smaller than patience "
            f"({patience}), or early stopping ends the run before the rate is reduced; raise "
            "patience or lower reduce_lr_patience."
        )
    tf.keras.utils.set_random_seed(seed)
    max_length = max_length or model.max_length
    model.adapt(split.train)
    if init_from is not None:
        load_weights_from_run(model, init_from, split.vocabulary)
    history: dict = {}
    best_epoch = None
    seconds_per_pass = None
    stopped_by = None
    if getattr(model, "requires_training", True):
        dataset = next_item_dataset(
            split.train,
            max_length=max_length,
            batch_size=batch_size,
            shuffle=True,
            seed=seed,
            split_long_sequences=split_long_sequences,
            drop_remainder=jit_compile,
        )
        steps_per_pass = int(dataset.cardinality().numpy())
        eval_every = max(1, int(eval_every))
        model.compile(
            optimizer=tf.keras.optimizers.Adam(learning_rate), jit_compile=jit_compile
        )
        validation = FullCatalogueValidation(
            split, max_length, ks=ks, max_users=validation_users, verbose=verbose,
            passes_per_epoch=eval_every,
        )
        early_stopping = tf.keras.callbacks.EarlyStopping(
            monitor=monitor,
            mode="max",
            patience=max(1, math.ceil(patience / eval_every)),
            restore_best_weights=True,
        )
        all_callbacks = [validation, early_stopping]
        if reduce_lr_patience is not None:
            all_callbacks.append(
                tf.keras.callbacks.ReduceLROnPlateau(
                    monitor=monitor,
                    mode="max",
                    factor=reduce_lr_factor,
                    patience=max(1, math.ceil(reduce_lr_patience / eval_every)),
                    min_lr=min_learning_rate,
                    min_delta=0.0,
                    verbose=0,
                )
            )
        time_limit = TimeLimit(time_limit_minutes) if time_limit_minutes else None
        if time_limit is not None:
            all_callbacks.append(time_limit)
        all_callbacks.extend(callbacks)
        if run_dir is not None:
            pathlib.Path(run_dir).mkdir(parents=True, exist_ok=True)
            all_callbacks.append(tf.keras.callbacks.CSVLogger(str(pathlib.Path(run_dir) / "history.csv")))
        fit = model.fit(
            dataset.repeat() if eval_every > 1 else dataset,
            epochs=max(1, math.ceil(epochs / eval_every)),
            steps_per_epoch=steps_per_pass * eval_every if eval_every > 1 else None,
            callbacks=all_callbacks,
            verbose=2 if verbose >= 2 else 0,
        )
        history = {k: [float(x) for x in v] for k, v in fit.history.items()}
        if monitor in history:
            best_epoch = (int(np.argmax(history[monitor])) + 1) * eval_every
        if early_stopping.stopped_epoch > 0:
            stopped_by = "early_stopping"
        elif time_limit is not None and time_limit.stopped:
            stopped_by = "time_limit"
        else:
            stopped_by = "max_epochs"
        if history.get("train_seconds"):
            seconds_per_pass = float(np.mean(history["train_seconds"])) / eval_every
    final_validation = evaluate_sequential(model, split, "validation", max_length, ks)
    test = evaluate_sequential(model, split, "test", max_length, ks) if evaluate_test else None
    run_path = None
    if run_dir is not None:
        run_path = save_model(model, run_dir, split.vocabulary, extra_config)
        summary = {
            "validation": final_validation,
            "test": test,
            "best_pass": best_epoch,
            "seconds_per_pass": seconds_per_pass,
            "stopped_by": stopped_by,
            "init_from": str(init_from) if init_from is not None else None,
            "history": history,
        }
        (run_path / "metrics.json").write_text(json.dumps(summary, indent=2, default=float))
    return TrainingResult(
        model, history, final_validation, test, best_epoch, seconds_per_pass, run_path, stopped_by
    )
