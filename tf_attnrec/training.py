"""One training loop for every task: `fit_model` around Keras `model.fit` and its callbacks.

What every task shares lives here once: the seed, the optimizer (Adam, or Adagrad), early stopping on a
validation metric with the best weights restored, the wall-clock time limit, the
learning-rate plateau, per-epoch timing, the CSV log and TensorBoard logs (losses, validation
metrics, learning rate) in the run directory. A task plugs in what differs: its training
`tf.data.Dataset`, how validation metrics reach the epoch logs (a callback that writes `val_*`,
or Keras `validation_data`), and the metric to monitor (`tf_attnrec.tasks`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import time
from typing import Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tf_attnrec.backup import DEFAULT_BACKUP_STEPS, TrainingBackup, resume_point, truncate_history_csv
from tf_attnrec.runs import BACKUP_DIR, HISTORY_FILE, TENSORBOARD_DIR

PathLike = Union[str, os.PathLike]


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

    def credit(self, seconds: float) -> None:
        """Counts `seconds` an interrupted attempt of the run already spent against the budget."""
        self._deadline -= seconds

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        if time.monotonic() >= self._deadline:
            self.stopped = True
            self.model.stop_training = True


class EpochLog(tf.keras.callbacks.Callback):
    """Adds `train_seconds` (the epoch's training time, before any validation) and
    `learning_rate` (the rate the epoch trained with) to each epoch's logs.

    Put it first: later callbacks (validation) see the values and their time is not counted,
    and the CSV log and TensorBoard record both.
    """

    def __init__(self) -> None:
        super().__init__()
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        if logs is not None:
            logs["train_seconds"] = time.perf_counter() - self._start
            logs["learning_rate"] = float(tf.keras.backend.get_value(self.model.optimizer.learning_rate))


@dataclasses.dataclass
class FitResult:
    """What `fit_model` returns.

    Attributes:
        history: Per Keras epoch, the logged values (loss, val_*, train_seconds, lr, ...).
        best_pass: 1-based pass over the training data with the best monitored value (None
            when nothing was monitored or the model was not fitted).
        passes: Passes over the training data that ran.
        seconds_per_pass: Mean training seconds per pass (validation excluded).
        train_seconds: Wall-clock seconds of the whole `fit` (validation included).
        stopped_by: "early_stopping", "time_limit" or "max_epochs" (None without fit).
    """

    history: dict
    best_pass: Optional[int] = None
    passes: int = 0
    seconds_per_pass: Optional[float] = None
    train_seconds: float = 0.0
    stopped_by: Optional[str] = None

    def summary(self) -> dict:
        """The keys `metrics.json` records about training."""
        return {
            "best_pass": self.best_pass,
            "passes": self.passes,
            "seconds_per_pass": self.seconds_per_pass,
            "train_seconds": self.train_seconds,
            "stopped_by": self.stopped_by,
            "history": self.history,
        }


OPTIMIZERS = {"adam": tf.keras.optimizers.Adam, "adagrad": tf.keras.optimizers.Adagrad}
# Keras dtype policies `tf-attnrec train --precision` accepts: variables stay float32; layers
# compute in bfloat16 or float16 (with loss scaling); scores and losses stay float32.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def make_optimizer(name: str, learning_rate: float) -> tf.keras.optimizers.Optimizer:
    """A Keras optimizer by name ("adam", or "adagrad" as in the TFRS tutorials), Keras defaults otherwise."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}; got {name!r}.")
    return OPTIMIZERS[name](learning_rate)


def compile_for_training(model: tf.keras.Model, learning_rate: float = 1e-3, jit_compile: bool = False,
                         optimizer: str = "adam") -> None:
    """Compiles `model`, creating the model's variables and the optimizer's slots up front.

    `tf.function` traces a function twice when its first trace creates variables (once with
    creation allowed, then again without), and Adam creates its slots lazily in the first
    step. Creating them here halves the train step's tracing (and XLA compilation): seconds
    at every start of `fit`.
    """
    optimizer = make_optimizer(optimizer, learning_rate)
    model.compile(optimizer=optimizer, jit_compile=jit_compile)
    if not model.built and hasattr(model, "build_variables"):
        model.build_variables()
    optimizer.build(model.trainable_variables)


def fit_model(
    model: tf.keras.Model,
    train: tf.data.Dataset,
    *,
    monitor: str,
    monitor_mode: str = "max",
    optimizer: str = "adam",
    learning_rate: float = 1e-3,
    epochs: int = 200,
    patience: Optional[int] = 10,
    eval_every: int = 1,
    jit_compile: bool = False,
    reduce_lr_patience: Optional[int] = None,
    reduce_lr_factor: float = 0.3,
    min_learning_rate: float = 1e-5,
    time_limit_minutes: Optional[float] = None,
    validation_callbacks: Sequence[tf.keras.callbacks.Callback] = (),
    validation_data: Optional[tf.data.Dataset] = None,
    run_dir: Optional[PathLike] = None,
    backup_steps: int = DEFAULT_BACKUP_STEPS,
    callbacks: Sequence[tf.keras.callbacks.Callback] = (),
    verbose: int = 0,
) -> FitResult:
    """Compiles and fits `model`, stopping early on `monitor`, best weights kept.

    One "pass" is one pass over `train`. Validation runs every `eval_every` passes: a Keras
    epoch is then `eval_every` passes of the repeated dataset, so every epoch logs `val_*`.
    Seed TensorFlow (`tf.keras.utils.set_random_seed`) before building `train`.

    Args:
        model: A compiled-or-not `tfrs.Model`.
        train: Training batches (one pass; repeated here when `eval_every > 1`).
        monitor: Logged validation metric, e.g. "val_ndcg@10" or "val_auc".
        monitor_mode: "max" (the default) or "min" (a loss): which way `monitor` improves.
        optimizer: "adam" (the default) or "adagrad".
        learning_rate: The optimizer's learning rate.
        epochs: Maximum passes.
        patience: Passes without improvement of `monitor` before stopping; None never stops.
        eval_every: Validate every n passes.
        jit_compile: Compile the train step with XLA.
        reduce_lr_patience: If set, multiply the learning rate by `reduce_lr_factor` after
            this many passes without improvement (Keras `ReduceLROnPlateau`); must be smaller
            than `patience`, so the lower rate gets a chance before early stopping.
        reduce_lr_factor: Learning-rate multiplier at each plateau.
        min_learning_rate: The rate is never reduced below this.
        time_limit_minutes: Stop after the first validation past this budget.
        validation_callbacks: Callbacks that write `val_*` into the epoch logs (they run
            before early stopping sees the logs).
        validation_data: Or Keras validation data (metrics of the model's task, `val_` prefix).
        run_dir: If given, `history.csv` and TensorBoard logs (`logs/`) are written here, and
            a backup (`backup/`, `tf_attnrec.backup`) that a rerun into the same folder
            resumes from; it is deleted when `fit` ends.
        backup_steps: With `run_dir`, back up every this many steps as well as every epoch.
        callbacks: Extra Keras callbacks (e.g. a progress bar).
        verbose: Keras `fit` verbosity.

    Returns:
        `FitResult`.

    Example:
        ```python
        tf.keras.utils.set_random_seed(0)
        result = fit_model(model, train_ds, monitor="val_auc", validation_data=val_ds, epochs=5)
        ```
    """
    if reduce_lr_patience is not None and (patience is None or reduce_lr_patience >= patience):
        raise ValueError(
            f"reduce_lr_patience ({reduce_lr_patience}) must be smaller than patience "
            f"({patience}), or early stopping ends the run before the rate is reduced; raise "
            "patience or lower reduce_lr_patience."
        )
    if monitor_mode not in ("max", "min"):
        raise ValueError(f"monitor_mode must be 'max' or 'min'; got {monitor_mode!r}.")
    eval_every = max(1, int(eval_every))
    compile_for_training(model, learning_rate, jit_compile, optimizer)
    all_callbacks: list = [EpochLog(), *validation_callbacks]
    early_stopping = None
    if patience is not None:
        early_stopping = tf.keras.callbacks.EarlyStopping(
            monitor=monitor, mode=monitor_mode, patience=max(1, math.ceil(patience / eval_every)),
            restore_best_weights=True,
        )
        all_callbacks.append(early_stopping)
    reduce_lr = None
    if reduce_lr_patience is not None:
        reduce_lr = tf.keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, mode=monitor_mode, factor=reduce_lr_factor,
            patience=max(1, math.ceil(reduce_lr_patience / eval_every)), min_lr=min_learning_rate,
            min_delta=0.0, verbose=0,
        )
        all_callbacks.append(reduce_lr)
    time_limit = TimeLimit(time_limit_minutes) if time_limit_minutes else None
    if time_limit is not None:
        all_callbacks.append(time_limit)
    all_callbacks.extend(callbacks)
    steps_per_pass = int(train.cardinality().numpy())
    if steps_per_pass < 1:
        raise ValueError(
            f"fit_model needs one finite pass of training batches with a known length; this dataset's cardinality is "
            f"{steps_per_pass} (-1: infinite, -2: unknown). Drop .repeat(), or state the length with "
            "dataset.apply(tf.data.experimental.assert_cardinality(n))."
        )
    steps_per_epoch = steps_per_pass * eval_every
    # One repeated stream of passes: its order depends on the seed alone, so a resumed run
    # skips the steps its backup holds and reads on where the stopped one would have.
    stream = train.repeat()
    backup = None
    if run_dir is not None:
        run_dir = pathlib.Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        resumed = resume_point(run_dir / BACKUP_DIR)
        if resumed is not None:
            truncate_history_csv(run_dir / HISTORY_FILE, resumed.epochs_done(steps_per_epoch))
            stream = stream.skip(resumed.steps_done(steps_per_epoch))
        all_callbacks.append(tf.keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE), append=resumed is not None))
        # Epoch summaries only (losses, val_* and the learning rate): no graph, no profiling.
        all_callbacks.append(tf.keras.callbacks.TensorBoard(
            str(run_dir / TENSORBOARD_DIR), write_graph=False, profile_batch=0, update_freq="epoch",
        ))
        backup = TrainingBackup(run_dir / BACKUP_DIR, backup_steps, resume_from=resumed,
                                early_stopping=early_stopping, reduce_lr=reduce_lr, time_limit=time_limit)
        all_callbacks.append(backup)  # last: see TrainingBackup
    start = time.perf_counter()
    fit = model.fit(
        stream,
        epochs=max(1, math.ceil(epochs / eval_every)),
        steps_per_epoch=steps_per_epoch,
        validation_data=validation_data,
        callbacks=all_callbacks,
        verbose=verbose,
    )
    train_seconds = time.perf_counter() - start + (backup.seconds_before if backup is not None else 0.0)
    # A resumed run's backup holds the epochs of every attempt; Keras' history only this one's.
    history = backup.history if backup is not None else {k: [float(x) for x in v] for k, v in fit.history.items()}
    best = np.argmax if monitor_mode == "max" else np.argmin
    best_pass = (int(best(history[monitor])) + 1) * eval_every if history.get(monitor) else None
    if early_stopping is not None and early_stopping.stopped_epoch > 0:
        stopped_by = "early_stopping"
    elif time_limit is not None and time_limit.stopped:
        stopped_by = "time_limit"
    else:
        stopped_by = "max_epochs"
    seconds = history.get("train_seconds")
    return FitResult(
        history=history,
        best_pass=best_pass,
        passes=len(history.get("loss", [])) * eval_every,
        seconds_per_pass=float(np.mean(seconds)) / eval_every if seconds else None,
        train_seconds=train_seconds,
        stopped_by=stopped_by,
    )


__all__ = ["EpochLog", "FitResult", "OPTIMIZERS", "PRECISIONS", "TimeLimit", "compile_for_training", "fit_model", "make_optimizer"]
