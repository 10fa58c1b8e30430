"""Kill and resume: the backup of a training run, restored by rerunning the same command.

`TrainingBackup` is Keras' `BackupAndRestore`, saving every `save_steps` steps and at the end
of every epoch (after validation, early stopping and the learning-rate plateau have acted). Its
checkpoint holds the model, the optimizer (slots, step count and learning rate) and the epoch
and step reached. What Keras leaves out of that checkpoint goes into a JSON file written just
before it, named by the same epoch and step:

- the state of early stopping (its wait, best value and best weights), of the plateau schedule
  and of the time limit (minutes already spent);
- the per-epoch logs so far (`history.csv` is cut back to them on resume);
- the state of every random generator that Keras keeps out of checkpoints (dropout masks);
- within an epoch, the running training metrics (a Keras AUC over the epoch's steps so far).

The data position is restored by `fit_model`, which feeds `fit` one repeated stream of the
training passes and skips the steps the checkpoint has already trained on. With the same seed
and op determinism on, a resumed run then ends with the weights, and the metrics, of a run that
was never stopped.

The JSON is written before the checkpoint and the two newest are kept, so a kill between the
two leaves the previous checkpoint with its own JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import time
from typing import Optional, Union

import numpy as np
import tensorflow as tf

from tf_attnrec.runs import write_text_atomic

PathLike = Union[str, os.PathLike]

# Steps between mid-epoch backups, unless a run's training config sets `backup_steps`.
DEFAULT_BACKUP_STEPS = 500
_STATE_PREFIX = "state-"
_BEST_WEIGHTS_PREFIX = "best-weights-"
_KEPT_STATES = 2
# WorkerTrainingState keeps its checkpoints in this subfolder of the backup folder.
_CHECKPOINT_SUBDIR = "chief"


@dataclasses.dataclass(frozen=True)
class ResumePoint:
    """Where a backed-up run stopped: the Keras epoch and the step within it last trained."""

    epoch: int
    batch: int

    def steps_done(self, steps_per_epoch: int) -> int:
        """Training steps the checkpoint holds, counted over the whole run."""
        return self.epoch * steps_per_epoch + self.batch + 1

    def epochs_done(self, steps_per_epoch: int) -> int:
        """Epochs completed (an epoch-end backup is at its last step)."""
        return self.steps_done(steps_per_epoch) // steps_per_epoch


def resume_point(backup_dir: PathLike) -> Optional[ResumePoint]:
    """The `ResumePoint` of the newest checkpoint in `backup_dir`, or None when there is none."""
    latest = tf.train.latest_checkpoint(str(pathlib.Path(backup_dir) / _CHECKPOINT_SUBDIR))
    if latest is None:
        return None
    reader = tf.train.load_checkpoint(latest)
    epoch = int(reader.get_tensor("ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE"))
    batch = int(reader.get_tensor("ckpt_saved_batch/.ATTRIBUTES/VARIABLE_VALUE"))
    return ResumePoint(epoch, batch) if epoch >= 0 else None


def random_generators(model: tf.keras.Model) -> list:
    """The random generators of Keras' random layers (dropout), created here if still lazy.

    Keras keeps them out of checkpoints (for backward compatibility of weights), so the backup
    stores their state itself. They exist only with `tf.keras.backend.experimental.
    enable_tf_random_generator()`, which `tf_attnrec` turns on at import; creating them before
    `fit` fixes their seeds in layer order, not in the order of the first trace.
    """
    generators = []
    for layer in model._flatten_layers(include_self=True):  # pylint: disable=protected-access
        if not isinstance(layer, tf.keras.__internal__.layers.BaseRandomLayer):
            continue
        layer._random_generator._maybe_init()  # pylint: disable=protected-access
        generator = layer._random_generator._generator  # pylint: disable=protected-access
        if generator is not None:
            generators.append(generator)
    return generators


class TrainingBackup(tf.keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that also saves at every epoch end, with the state Keras leaves out.

    Put it last among `fit`'s callbacks: its epoch-end backup must follow validation, early
    stopping and the plateau schedule, and its restore must follow their `on_train_begin` resets.

    Args:
        backup_dir: Folder of the backup (created; kept after `fit` only if it did not finish).
        save_steps: Also back up every this many steps within an epoch.
        resume_from: `resume_point(backup_dir)`, when the backup holds a run to resume (the
            caller reads it first: it also decides where the data stream starts).
        early_stopping: The run's `EarlyStopping`, if any.
        reduce_lr: The run's `ReduceLROnPlateau`, if any.
        time_limit: The run's `TimeLimit`, if any: a resumed run gets what its budget has left.
    """

    def __init__(self, backup_dir: PathLike, save_steps: int = DEFAULT_BACKUP_STEPS, *,
                 resume_from: Optional[ResumePoint] = None,
                 early_stopping: Optional[tf.keras.callbacks.EarlyStopping] = None,
                 reduce_lr: Optional[tf.keras.callbacks.ReduceLROnPlateau] = None,
                 time_limit: Optional[tf.keras.callbacks.Callback] = None) -> None:
        if int(save_steps) < 1:
            raise ValueError(f"backup_steps must be a positive number of steps; got {save_steps}.")
        super().__init__(str(backup_dir), save_freq=int(save_steps), delete_checkpoint=True)
        self.directory = pathlib.Path(backup_dir)
        self.resume_from = resume_from
        self.early_stopping = early_stopping
        self.reduce_lr = reduce_lr
        self.time_limit = time_limit
        self.history: dict = {}
        self.seconds_before = 0.0  # spent by earlier attempts of the run
        self._generators: list = []
        self._metric_values: Optional[list] = None  # restored at the resumed epoch's start
        self._started = 0.0

    # ------------------------------------------------------------------ Keras hooks
    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._generators = random_generators(self.model)
        super().on_train_begin(logs)  # restores the model and the optimizer, if backed up
        self._started = time.monotonic()
        if self.resume_from is not None:
            self._restore(self.resume_from)

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        super().on_epoch_begin(epoch, logs)
        if self._metric_values is not None:  # after Keras reset the metrics for this epoch
            for variable, value in zip(self._metric_variables(), self._metric_values):
                variable.assign(value)
            self._metric_values = None

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        # The epoch-end backup covers the last step: a step backup there would mark the epoch
        # done before its validation ran.
        if batch + 1 < self.params["steps"]:
            super().on_train_batch_end(batch, logs)

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        super().on_train_end(logs)  # deletes the checkpoints
        shutil.rmtree(self.directory, ignore_errors=True)

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self._backup(epoch=epoch, batch=self.params["steps"] - 1)

    def _backup(self, epoch: int, batch: int = 0) -> None:
        # Keras has set the checkpoint's step to `batch` at the step's start: the epoch-end call
        # passes the epoch's last step, a step backup the step it ended.
        self._write_state(epoch, batch, mid_epoch=batch + 1 < self.params["steps"])
        super()._backup(epoch=epoch, batch=batch)
        self._prune()

    # ------------------------------------------------------------------ state
    def _state_path(self, epoch: int, batch: int) -> pathlib.Path:
        return self.directory / f"{_STATE_PREFIX}{epoch:06d}-{batch:08d}.json"

    def _metric_variables(self) -> list:
        return [variable for metric in self.model.metrics for variable in metric.variables]

    def _write_state(self, epoch: int, batch: int, mid_epoch: bool) -> None:
        state = {
            "history": self.history,
            # An epoch-end backup resumes at a new epoch, whose metrics start from zero.
            "metrics": [variable.numpy().tolist() for variable in self._metric_variables()] if mid_epoch else None,
            "seconds": self.seconds_before + time.monotonic() - self._started,
            "random_states": [generator.state.numpy().tolist() for generator in self._generators],
        }
        if self.early_stopping is not None:
            stopping = self.early_stopping
            state["early_stopping"] = {"wait": stopping.wait, "best": float(stopping.best),
                                       "best_epoch": stopping.best_epoch,
                                       "best_weights": self._save_best_weights(stopping)}
        if self.reduce_lr is not None:
            plateau = self.reduce_lr
            state["reduce_lr"] = {"wait": plateau.wait, "best": float(plateau.best),
                                  "cooldown_counter": plateau.cooldown_counter}
        write_text_atomic(self._state_path(epoch, batch), json.dumps(state))

    def _save_best_weights(self, stopping: tf.keras.callbacks.EarlyStopping) -> Optional[str]:
        """The file of early stopping's best weights (written once per best epoch)."""
        if stopping.best_weights is None:
            return None
        name = f"{_BEST_WEIGHTS_PREFIX}{stopping.best_epoch:06d}.npz"
        path = self.directory / name
        if not path.is_file():
            temporary = self.directory / f".{name}"
            with open(temporary, "wb") as file:
                np.savez(file, *stopping.best_weights)
            os.replace(temporary, path)
        return name

    def _restore(self, point: ResumePoint) -> None:
        path = self._state_path(point.epoch, point.batch)
        if not path.is_file():
            raise FileNotFoundError(
                f"{self.directory} holds a checkpoint at epoch {point.epoch + 1}, step {point.batch + 1} but not its "
                f"state file {path.name}; the backup is incomplete: delete {self.directory} to train afresh."
            )
        state = json.loads(path.read_text())
        self.history = {key: list(values) for key, values in state["history"].items()}
        self.seconds_before = float(state["seconds"])
        if len(state["random_states"]) != len(self._generators):
            raise ValueError(f"{path}: {len(state['random_states'])} random generator states, but the model has "
                             f"{len(self._generators)}; the backup is of another model: delete {self.directory}.")
        for generator, values in zip(self._generators, state["random_states"]):
            generator.reset(tf.constant(values, dtype=generator.state.dtype))
        self._metric_values = state["metrics"]
        if self.early_stopping is not None and "early_stopping" in state:
            saved = state["early_stopping"]
            self.early_stopping.wait = saved["wait"]
            self.early_stopping.best = saved["best"]
            self.early_stopping.best_epoch = saved["best_epoch"]
            if saved["best_weights"] is not None:
                with np.load(self.directory / saved["best_weights"]) as arrays:
                    self.early_stopping.best_weights = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
        if self.reduce_lr is not None and "reduce_lr" in state:
            for key, value in state["reduce_lr"].items():
                setattr(self.reduce_lr, key, value)
        if self.time_limit is not None:
            self.time_limit.credit(self.seconds_before)

    def _prune(self) -> None:
        """Keeps the two newest state files and the best weights they name."""
        states = sorted(self.directory.glob(f"{_STATE_PREFIX}*.json"))
        for old in states[:-_KEPT_STATES]:
            old.unlink(missing_ok=True)
        named = {json.loads(path.read_text()).get("early_stopping", {}).get("best_weights")
                 for path in states[-_KEPT_STATES:]}
        for weights in self.directory.glob(f"{_BEST_WEIGHTS_PREFIX}*.npz"):
            if weights.name not in named:
                weights.unlink(missing_ok=True)


def truncate_history_csv(path: PathLike, epochs: int) -> None:
    """Cuts a CSV log back to its header and first `epochs` rows (the epochs a backup holds)."""
    path = pathlib.Path(path)
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    write_text_atomic(path, "".join(lines[: 1 + epochs]) if epochs > 0 else "")


__all__ = ["DEFAULT_BACKUP_STEPS", "ResumePoint", "TrainingBackup", "random_generators", "resume_point",
           "truncate_history_csv"]
