"""The task contract: what every kind of model (retrieval, ranking, ...) does, step by step.

A model's spec names its task (`ModelSpec.task`); the command line dispatches every command
through that task once, so `train`, `evaluate`, `recommend`, `export` and `explain` each
work for every registered model, or refuse in one line that says what to use instead
(`UnsupportedCommand`).

    data   = task.build_data(dataset, model_config, options)    # Dataset -> the task's examples
    model  = task.build_model(spec, data, model_config)
    result = task.fit(model, data, run_dir=..., **training)       # one loop: tf_attnrec.training
    test   = task.evaluate(model, data, "test")
    run    = task.load_run(run_dir)                               # model + what serving needs
    task.export(run, output, ...); task.recommend(run, ...); task.explain(run, dataset, ...)
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
import pathlib
from typing import Any, ClassVar, Mapping, Optional, Sequence

import tensorflow as tf

from tf_attnrec.data.dataset import Dataset
from tf_attnrec.models.registry import ModelSpec
from tf_attnrec.training import FitResult, fit_model


class UnsupportedCommand(ValueError):
    """A command that this kind of model cannot do; the message says what to use instead."""


@dataclasses.dataclass
class TrainingResult:
    """What a task's `fit` returns.

    Attributes:
        model: The trained model (best validation weights restored).
        validation: Final validation metrics (best weights).
        test: Test metrics (None if the test items were not evaluated).
        fit: The training loop's `FitResult` (None for models fitted by counting).
        run_dir: Where the run was saved (None if not saved).
    """

    model: tf.keras.Model
    validation: dict
    test: Optional[dict]
    fit: Optional[FitResult]
    run_dir: Optional[pathlib.Path] = None

    @property
    def history(self) -> dict:
        """Per Keras epoch, the logged values ({} without fit)."""
        return self.fit.history if self.fit else {}

    @property
    def best_epoch(self) -> Optional[int]:
        """1-based pass with the best validation value (None without fit)."""
        return self.fit.best_pass if self.fit else None

    @property
    def seconds_per_pass(self) -> Optional[float]:
        return self.fit.seconds_per_pass if self.fit else None

    @property
    def stopped_by(self) -> Optional[str]:
        return self.fit.stopped_by if self.fit else None

    def metrics(self, **extra: Any) -> dict:
        """The `metrics.json` payload: validation, test, the loop's summary and `extra`."""
        summary = self.fit.summary() if self.fit else FitResult(history={}).summary()
        return {"validation": self.validation, "test": self.test, **summary, **extra}


@dataclasses.dataclass
class Run:
    """A saved run, loaded: the model plus what its task needs to serve and evaluate it.

    Attributes:
        run_dir: The run directory.
        model: The restored model.
        config: The run's `config.yaml`.
        artifacts: Task-specific objects (the item `Vocabulary`, feature tables, ...).
    """

    run_dir: pathlib.Path
    model: tf.keras.Model
    config: dict
    artifacts: dict


class Task(abc.ABC):
    """One kind of model: how its data, model, training, evaluation and serving are done.

    Subclasses set `name` (the `ModelSpec.task` they serve), `monitor` (the validation
    metric early stopping maximises), `training_defaults` (the task's defaults for the
    training keys, which a model's spec and then its zoo config override) and `data_keys`
    (training keys that configure `build_data`, not the loop).
    """

    name: ClassVar[str]
    monitor: ClassVar[str]
    training_defaults: ClassVar[Mapping[str, Any]] = {}
    data_keys: ClassVar[tuple] = ()
    #: Keyword options `export` accepts besides `overwrite` (e.g. `k` for top-k retrieval).
    export_options: ClassVar[tuple] = ()

    # ------------------------------------------------------------------- training
    @abc.abstractmethod
    def build_data(
        self, dataset: Dataset, model_config: Mapping[str, Any], options: Mapping[str, Any],
        run: Optional[Run] = None,
    ) -> Any:
        """The task's examples from a `Dataset`.

        Args:
            dataset: Interactions (and side features) as read.
            model_config: The resolved model config (e.g. its `max_length`).
            options: The `data_keys` of the training config.
            run: A saved run whose vocabularies the data must match (evaluate, explain).

        Raises:
            ValueError: the dataset lacks what the task needs (the message names it), or is not
                the data `run` was trained on.
        """

    @abc.abstractmethod
    def item_vocabulary(self, data: Any) -> Any:
        """The item `Vocabulary` of the task's data (raw item id <-> model id)."""

    @abc.abstractmethod
    def build_model(self, spec: ModelSpec, data: Any, model_config: Mapping[str, Any]) -> tf.keras.Model:
        """The zoo model `spec` sized for `data`, with `model_config` over its defaults."""

    @abc.abstractmethod
    def fit(self, model: tf.keras.Model, data: Any, **training: Any) -> TrainingResult:
        """Trains `model` on `data` with the shared loop (`tf_attnrec.training.fit_model`).

        Keyword arguments are the training config plus `run_dir`, `extra_config`,
        `callbacks`, `verbose`, `init_from` and `time_limit_minutes`.
        """

    def training_keys(self) -> set:
        """Training-config keys this task accepts: its fit function's and the shared loop's."""
        parameters = {*inspect.signature(self.fit_function()).parameters, *inspect.signature(fit_model).parameters}
        reserved = {"model", "data", "split", "train", "loop", "run_dir", "extra_config", "callbacks", "verbose",
                    "monitor", "monitor_mode", "validation_callbacks", "validation_data"}
        return (parameters - reserved) | set(self.data_keys)

    @abc.abstractmethod
    def fit_function(self) -> Any:
        """The library function `fit` calls (its signature lists the training keys)."""

    def check_training_keys(self, training: Mapping[str, Any]) -> None:
        """ValueError naming the unknown keys of a training config."""
        unknown = sorted(set(training) - self.training_keys())
        if unknown:
            raise ValueError(f"unknown training keys {unknown}; `training` accepts {sorted(self.training_keys())}.")

    # ------------------------------------------------------------------ evaluation
    @abc.abstractmethod
    def evaluate(
        self, model: tf.keras.Model, data: Any, stage: str = "test", *, protocol: str = "full",
        ks: Sequence[int] = (10, 20), num_negatives: int = 100,
    ) -> dict:
        """Metrics of `model` on the validation or test examples of `data`."""

    @abc.abstractmethod
    def format_metrics(self, metrics: Mapping[str, Any], title: str) -> str:
        """A metrics dict as a printable table."""

    @abc.abstractmethod
    def describe_protocol(self, protocol: str = "full", num_negatives: int = 100) -> str:
        """What the evaluated examples are, for a table's title."""

    # ------------------------------------------------------------------ saved runs
    @abc.abstractmethod
    def load_run(self, run_dir: pathlib.Path, config: dict) -> Run:
        """The saved model and artifacts of a run of this task."""

    @abc.abstractmethod
    def export(self, run: Run, output: pathlib.Path, *, overwrite: bool = False, **options: Any) -> Any:
        """Writes a TF Serving SavedModel; returns its printable `ExportSummary`.

        `options` are some of `export_options`; the caller refuses others before calling.
        """

    def recommend(self, run: Run, history: Sequence[Any], k: int = 10, include_seen: bool = False) -> dict:
        """Top-k items for a history of raw item ids."""
        raise UnsupportedCommand(f"{run.config.get('model')} ({self.name}) cannot recommend from a history.")

    def check_explainable(self, run: Run) -> None:
        """Raises (naming the models that can) when `run`'s model has no attention to explain.

        Called before the run's data is read, so a refusal costs nothing.
        """
        from tf_attnrec import explain

        explain.check_explainable(run.model)

    def explain(self, run: Run, dataset: Dataset, user: Any, item: Optional[Any]) -> dict:
        """The attention behind one recommendation or score (see `tf_attnrec.explain`)."""
        raise UnsupportedCommand(f"{run.config.get('model')} ({self.name}) has nothing to explain.")
