"""Multi-task: retrieval, rating and click heads trained together on rating rows.

The protocol of the TFRS multi-task tutorial (`tf_attnrec.data.rating_split`): the rating
rows are shuffled once and cut into train / (validation) / test. Measured on the test rows:

- retrieval: `accuracy@K`, the share of rows whose item is among the user's top K of the
  whole catalogue (the tutorial's `factorized_top_k/top_K_categorical_accuracy`; nothing is
  excluded, and ties count against the item);
- rating: RMSE of the predicted rating;
- click (rating >= threshold): exact AUC, GAUC and log loss (`tf_attnrec.evaluation.ctr`).

`train_multitask` = the shared loop on the weighted sum of the three losses, with early
stopping on that sum over the validation rows (`val_loss`, minimised) when the split has any.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tf_attnrec import runs
from tf_attnrec.data.dataset import Dataset
from tf_attnrec.data.rating_split import RatingSplit, rating_split
from tf_attnrec.data.vocabulary import Vocabulary
from tf_attnrec.evaluation.ctr import ctr_metrics
from tf_attnrec.evaluation.ranking import rank_targets
from tf_attnrec.models.multitask import MultiTaskModel
from tf_attnrec.models.registry import ModelSpec
from tf_attnrec.tasks.base import Run, Task, TrainingResult, UnsupportedCommand
from tf_attnrec.tasks.retrieval import format_metrics
from tf_attnrec.training import fit_model

PathLike = Union[str, os.PathLike]
MONITOR = "val_loss"
ACCURACY_KS = (1, 5, 10, 50, 100)
# Keys of a multi-task run's `training` config that make the split (stored, so `evaluate`
# and `export` rebuild it).
DATA_KEYS = ("split_seed", "split_fractions", "click_threshold")
DATA_DEFAULTS = {"split_seed": 42, "split_fractions": (0.7, 0.1, 0.2), "click_threshold": 4.0}


def predict_multitask(model: MultiTaskModel, split: RatingSplit, stage: str,
                      batch_size: int = 4096) -> dict[str, np.ndarray]:
    """Per row of one stage: the item's catalogue rank, predicted rating and click probability.

    Returns:
        `{"rank": int32 [N] (1-based, pessimistic), "rating", "click_probability", "label_rating",
        "label_click", "user": [N]}`.
    """
    arrays = split.arrays(stage)
    def predict(users: tf.Tensor, items: tf.Tensor) -> tuple[tf.Tensor, dict]:
        vectors = model.user_vectors(users)["task_outputs"]  # once for the catalogue and the heads
        return model.catalogue_scores(vectors), model.heads(vectors, items)

    score = model.cached_function("multitask_predict", lambda: tf.function(predict, reduce_retracing=True))
    parts: dict[str, list] = {"rank": [], "rating": [], "click_probability": []}
    for start in range(0, len(arrays["user"]), batch_size):
        users = tf.constant(arrays["user"][start:start + batch_size])
        items = arrays["item"][start:start + batch_size]
        scores, outputs = score(users, tf.constant(items))
        parts["rank"].append(rank_targets(scores, items))
        parts["rating"].append(outputs["rating"].numpy())
        parts["click_probability"].append(outputs["click_probability"].numpy())
    result = {key: np.concatenate(values) for key, values in parts.items()}
    result.update(label_rating=arrays["rating"], label_click=arrays["click"], user=arrays["user"])
    return result


def evaluate_multitask(model: MultiTaskModel, split: RatingSplit, stage: str = "test",
                       ks: Sequence[int] = ACCURACY_KS, batch_size: int = 4096) -> dict[str, Any]:
    """Retrieval accuracy@K over the catalogue, rating RMSE and click AUC / GAUC / log loss.

    Args:
        model: a trained `MultiTaskModel`.
        split: the `RatingSplit` it was trained on.
        stage: "validation" or "test".
        ks: cut-offs of the top-K accuracy.
        batch_size: rows scored at once.

    Returns:
        `{"accuracy@1", ..., "rmse", "auc", "gauc", "log_loss", "rows", "stage"}`.

    Example:
        ```python
        metrics = evaluate_multitask(model, split, "test")
        metrics["accuracy@100"], metrics["rmse"]
        ```
    """
    predicted = predict_multitask(model, split, stage, batch_size)
    metrics: dict[str, Any] = {f"accuracy@{k}": float(np.mean(predicted["rank"] <= k)) for k in ks}
    metrics["rmse"] = float(np.sqrt(np.mean((predicted["rating"] - predicted["label_rating"]) ** 2)))
    if 0 < predicted["label_click"].mean() < 1:
        ctr = ctr_metrics(predicted["label_click"], predicted["click_probability"], predicted["user"])
        metrics.update(auc=ctr["auc"], gauc=ctr["gauc"], log_loss=ctr["log_loss"])
    metrics.update(rows=int(len(predicted["rank"])), stage=stage)
    return metrics


def save_multitask_run(model: MultiTaskModel, split: RatingSplit, run_dir: PathLike,
                       extra_config: Optional[Mapping[str, Any]] = None) -> pathlib.Path:
    """The model and both vocabularies in a run directory."""
    run_dir = runs.save_model(model, run_dir, split.vocabulary, extra_config)
    runs.write_text_atomic(run_dir / runs.USER_VOCABULARY_FILE, split.user_vocabulary.to_json())
    return run_dir


def train_multitask(
    model: MultiTaskModel,
    split: RatingSplit,
    *,
    batch_size: int = 8192,
    seed: int = 0,
    evaluate_test: bool = True,
    run_dir: Optional[PathLike] = None,
    extra_config: Optional[Mapping[str, Any]] = None,
    verbose: int = 0,
    **loop: Any,
) -> TrainingResult:
    """Trains the three heads on the weighted loss; early stopping on validation loss if any.

    Args:
        model: from `create_model("mmoe", vocab_size=..., num_users=...)` & co.
        split: `rating_split(...)` output.
        batch_size: rows per step (the tutorial's 8192).
        seed: seeds the weights and the shuffles.
        evaluate_test: evaluate the test rows after training.
        run_dir: if given, save the model, vocabularies, metrics and logs here.
        extra_config: JSON-serialisable values stored with the saved model.
        verbose: Keras verbosity.
        **loop: `tf_attnrec.training.fit_model` settings (`optimizer`, `learning_rate`, `epochs`,
            `patience`, `time_limit_minutes`, ...); unset ones take `MultiTaskTask.training_defaults`.

    Returns:
        `TrainingResult` (validation metrics are None without validation rows).

    Raises:
        ValueError: early stopping (`patience`) asked for with no validation rows.
    """
    loop = {**MultiTaskTask.training_defaults, "monitor": MONITOR, "monitor_mode": "min", **loop}
    for key in DATA_KEYS:
        loop.pop(key, None)  # the split is already made
    has_validation = split.num_rows("validation") > 0
    if loop.get("patience") is not None and not has_validation:
        raise ValueError(
            f"patience={loop['patience']}: early stopping needs validation rows, but the split's fractions are "
            f"{split.fractions}; give split_fractions a validation share, or set patience: null with a fixed epochs.")
    tf.keras.utils.set_random_seed(seed)
    train = split.arrays("train")
    model.set_priors(split.item_counts("train"), float(train["rating"].mean()), float(train["click"].mean()))
    fit = fit_model(model, split.dataset("train", batch_size, shuffle=True, seed=seed),
                    validation_data=split.dataset("validation", batch_size) if has_validation else None,
                    run_dir=run_dir, verbose=verbose, **loop)
    result = TrainingResult(model, evaluate_multitask(model, split, "validation") if has_validation else None,
                            evaluate_multitask(model, split, "test") if evaluate_test else None, fit)
    if run_dir is not None:
        result.run_dir = save_multitask_run(model, split, run_dir, extra_config)
        runs.write_metrics(run_dir, result.metrics(split=split.summary()))
    return result


def split_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """`rating_split` keywords from a training config's data keys (defaults filled in)."""
    merged = {**DATA_DEFAULTS, **{k: v for k, v in options.items() if k in DATA_KEYS}}
    return {"seed": int(merged["split_seed"]), "fractions": tuple(merged["split_fractions"]),
            "click_threshold": float(merged["click_threshold"])}


class MultiTaskTask(Task):
    """Retrieval, rating and click heads over one user stack (shared_bottom, mmoe, ple)."""

    name = "multitask"
    monitor = MONITOR
    training_defaults = {"epochs": 100, "patience": 5, **DATA_DEFAULTS}
    data_keys = DATA_KEYS
    export_options = ("k",)

    def build_data(self, dataset: Dataset, model_config: Mapping[str, Any], options: Mapping[str, Any],
                   run: Optional[Run] = None) -> RatingSplit:
        if run is None:
            return rating_split(dataset.interactions, **split_options(options))
        if (Vocabulary.from_ids(dataset.interactions["item_id"]) != run.artifacts["vocabulary"]
                or Vocabulary.from_ids(dataset.interactions["user_id"]) != run.artifacts["user_vocabulary"]):
            raise ValueError(
                f"the {dataset.name or 'dataset'} data read from {dataset.source or 'memory'} does not have the "
                "users and items the run was trained on; pass the data used for training.")
        return rating_split(dataset.interactions, vocabulary=run.artifacts["vocabulary"],
                            user_vocabulary=run.artifacts["user_vocabulary"], **split_options(options))

    def item_vocabulary(self, data: RatingSplit) -> Vocabulary:
        return data.vocabulary

    def build_model(self, spec: ModelSpec, data: RatingSplit, model_config: Mapping[str, Any]) -> tf.keras.Model:
        return spec.build(vocab_size=data.vocabulary.size, num_users=data.num_users, **model_config)

    def fit_function(self) -> Any:
        return train_multitask

    def fit(self, model: tf.keras.Model, data: RatingSplit, **training: Any) -> TrainingResult:
        if training.pop("init_from", None) is not None:
            raise UnsupportedCommand("--init-from is not supported for multi-task models yet; train from scratch.")
        return train_multitask(model, data, **training)

    def evaluate(self, model: tf.keras.Model, data: RatingSplit, stage: str = "test", *, protocol: str = "full",
                 ks: Sequence[int] = (10, 20), num_negatives: int = 100) -> dict:
        if protocol != "full":
            raise UnsupportedCommand(f"--protocol {protocol}: the multi-task retrieval head ranks the full catalogue.")
        return evaluate_multitask(model, data, stage)

    def format_metrics(self, metrics: Mapping[str, Any], title: str) -> str:
        return format_metrics(metrics, title)

    def describe_protocol(self, protocol: str = "full", num_negatives: int = 100) -> str:
        return "random rating rows; retrieval over the full catalogue (nothing excluded), rating RMSE, click AUC"

    def load_run(self, run_dir: pathlib.Path, config: dict) -> Run:
        model, vocabulary, _ = runs.load_model(run_dir)
        users_path = run_dir / runs.USER_VOCABULARY_FILE
        if vocabulary is None or not users_path.is_file():
            raise FileNotFoundError(f"{run_dir}: a multi-task run needs {runs.VOCABULARY_FILE} and "
                                    f"{runs.USER_VOCABULARY_FILE}; this folder lacks one.")
        return Run(run_dir, model, config, {"vocabulary": vocabulary,
                                            "user_vocabulary": Vocabulary.from_json(users_path.read_text())})

    def export(self, run: Run, output: pathlib.Path, *, overwrite: bool = False, **options: Any) -> Any:
        from tf_attnrec.export.multitask import export_multitask

        return export_multitask(run.model, output, vocabulary=run.artifacts["vocabulary"],
                                user_vocabulary=run.artifacts["user_vocabulary"], overwrite=overwrite, **options)

    def recommend(self, run: Run, history: Sequence[Any], k: int = 10, include_seen: bool = False) -> dict:
        raise UnsupportedCommand(
            f"{run.config.get('model')} is a multi-task model: it knows its users by id, not by a history. Export "
            "it (`tf-attnrec export`) and send `user_id` (and `item_id` for the rating and click heads).")

    def check_explainable(self, run: Run) -> None:
        experts = run.model.experts
        if experts.num_shared_experts + experts.num_task_experts <= 1:
            raise UnsupportedCommand(
                f"{run.config.get('model')} has one expert, so every task's gate is 1: nothing to explain; "
                "explain an mmoe or ple run.")

    def explain(self, run: Run, dataset: Dataset, user: Any, item: Optional[Any]) -> dict:
        """Which experts each task's gate attends to for `user` (`tf_attnrec.explain_gates`)."""
        from tf_attnrec.explain_gates import explain_gates

        self.check_explainable(run)
        return explain_gates(run.model, run.artifacts["user_vocabulary"], user)
