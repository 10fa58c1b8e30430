"""Click ranking: the probability that a user picks a candidate item, with side features.

`train_ranker` = the shared loop (`tf_attnrec.training.fit_model`) on the training examples,
with the validation set monitored through the model's Keras AUC (`val_auc`); then validation
and test are scored once with the exact metrics of `tf_attnrec.evaluation.ctr` (AUC,
impression-weighted GAUC, log loss).
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tf_attnrec import runs
from tf_attnrec.data import schema
from tf_attnrec.data.dataset import Dataset
from tf_attnrec.data.item_content import ItemContent
from tf_attnrec.data.ranking_examples import RankingData, build_ranking_data
from tf_attnrec.data.splits import leave_one_out_split
from tf_attnrec.evaluation.ctr import ctr_metrics
from tf_attnrec.layers.fused_item_embedding import content_vocabularies
from tf_attnrec.models.base import count_items
from tf_attnrec.models.ranking import RankingModel
from tf_attnrec.models.registry import ModelSpec
from tf_attnrec.tasks.base import Run, Task, TrainingResult, UnsupportedCommand
from tf_attnrec.training import fit_model

PathLike = Union[str, os.PathLike]
MONITOR = "val_auc"
# Keys of a ranking run's `training` config that configure `build_ranking_data` (the
# examples), not `train_ranker`; "data_seed" is its `seed` (fixed across training seeds, so
# every seed of a table is tested on the same sampled negatives).
DATA_KEYS = ("train_positions_per_user", "num_negatives", "num_eval_negatives", "max_genres", "data_seed",
             "hard_negatives_from", "hard_negative_candidates", "hard_negative_share")
# The side features every ranking model reads (`tf_attnrec.data.schema`), per metadata table.
REQUIRED_FEATURES = {"items": ("genres", "year"), "users": ("gender", "age", "occupation")}


def _retrieval_pools(run_dir: Any, dataset: Dataset, candidates: int) -> list:
    """`retrieval_negative_pools` of a retrieval run on the leave-one-out split of `dataset`."""
    from tf_attnrec.cascade import retrieval_negative_pools  # it imports the export package

    model, vocabulary, _ = runs.load_model(run_dir)
    split = leave_one_out_split(dataset.interactions)
    if vocabulary is None or vocabulary != split.vocabulary or not callable(getattr(model, "score", None)):
        raise ValueError(f"hard_negatives_from: {run_dir} is not a retrieval run of this data (its vocabulary "
                         f"differs from the {split.vocabulary.num_items:,} items here); train one on the same data, "
                         "e.g. `tf-attnrec train --model sasrec` with the same --dataset.")
    return retrieval_negative_pools(model, split, candidates)


def check_side_features(dataset: Dataset) -> None:
    """ValueError naming every side feature the ranking models need and `dataset` lacks."""
    missing = [f"{table[:-1]} {column}" for table, columns in REQUIRED_FEATURES.items() for column in columns
               if getattr(dataset, table) is None or column not in getattr(dataset, table)]
    if missing:
        raise ValueError(
            f"the ranking models read side features that {dataset.name or 'the data'} ({dataset.source}) lacks: "
            f"{', '.join(missing)}. Pass --items FILE (item_id, genres, year) and --users FILE (user_id, "
            "gender, age, occupation), or name them in a dataset YAML."
        )


def predict_ranker(model: RankingModel, dataset: tf.data.Dataset) -> dict[str, np.ndarray]:
    """Click probabilities, labels and user rows for every example of a dataset.

    Args:
        model: a `RankingModel`.
        dataset: batches from `RankingData.dataset(...)`.

    Returns:
        {"probability": float [N], "label": float [N], "user_index": int [N]}.
    """
    predict = model.cached_function("predict_proba", lambda: tf.function(model.predict_proba, reduce_retracing=True))
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
    *,
    batch_size: int = 1024,
    seed: int = 0,
    run_dir: Optional[PathLike] = None,
    extra_config: Optional[Mapping[str, Any]] = None,
    verbose: int = 0,
    **loop: Any,
) -> TrainingResult:
    """Trains with early stopping on validation AUC, then evaluates validation and test.

    Args:
        model: a `RankingModel` (e.g. `create_model("din", ...)`).
        data: the `RankingData`; its max_length must not exceed the model's.
        batch_size: training batch size.
        seed: seeds TensorFlow (initialisation, dropout) and the shuffling.
        run_dir: If given, save the model, its feature tables, `metrics.json` and the logs.
        extra_config: JSON-serialisable values stored with the saved model (zoo name, data
            config).
        verbose: Keras verbosity.
        **loop: `tf_attnrec.training.fit_model` settings (`epochs`, `learning_rate`,
            `patience` (None disables early stopping), `time_limit_minutes`, `callbacks`, ...);
            unset ones take `RankingTask.training_defaults`, then the loop's defaults.

    Returns:
        `TrainingResult`.

    Example:
        ```python
        model = create_model("din", vocab_size=data.vocabularies.item.size,
                             feature_sizes=data.vocabularies.sizes(), max_length=data.max_length)
        result = train_ranker(model, data, epochs=5)
        result.test["gauc"]
        ```
    """
    if data.max_length > model.max_length:
        raise ValueError(
            f"The features have histories of {data.max_length} items but the model was built "
            f"with max_length={model.max_length}; rebuild one of them with the same max_length."
        )
    loop = {**RankingTask.training_defaults, "monitor": MONITOR, **loop}
    tf.keras.utils.set_random_seed(seed)
    fit = fit_model(
        model, data.dataset("train", batch_size=batch_size, seed=seed),
        validation_data=data.dataset("validation", batch_size=4096), run_dir=run_dir, verbose=verbose, **loop,
    )
    result = TrainingResult(model, evaluate_ranker(model, data, "validation"), evaluate_ranker(model, data, "test"), fit)
    if run_dir is not None:
        result.run_dir = runs.save_model(model, run_dir, data.vocabularies.item, extra_config)
        runs.save_feature_tables(run_dir, data.vocabularies, data.item_genres, data.item_year)
        runs.write_metrics(run_dir, result.metrics(num_train_examples=data.num_examples("train")))
    return result


def format_ctr_metrics(metrics: Mapping[str, Any], title: str) -> str:
    """AUC, GAUC and log loss of one stage's metrics (or of {"validation", "test"}) as a table."""
    stages = {stage: metrics[stage] for stage in ("validation", "test") if stage in metrics} or {
        metrics.get("stage", "test"): metrics}
    lines = [title, f"  {'stage':<11}{'AUC':>9}{'GAUC':>9}{'log loss':>10}{'examples':>10}"]
    for stage, m in stages.items():
        lines.append(f"  {stage:<11}{m['auc']:>9.4f}{m['gauc']:>9.4f}{m['log_loss']:>10.4f}{m['num_examples']:>10,}")
    return "\n".join(lines)


class RankingTask(Task):
    """Click probability of a candidate given user, item and history features (din, bst, ...)."""

    name = "ranking"
    monitor = MONITOR
    training_defaults = {"epochs": 20, "patience": 2}
    data_keys = DATA_KEYS

    def build_data(self, dataset: Dataset, model_config: Mapping[str, Any], options: Mapping[str, Any],
                   run: Optional[Run] = None) -> RankingData:
        check_side_features(dataset)
        options = dict(options)
        options["seed"] = options.pop("data_seed", 0)
        pool_run = options.pop("hard_negatives_from", None)
        candidates = options.pop("hard_negative_candidates", 200)
        # Hard negatives change training examples only; a reloaded run rebuilds its
        # validation and test sets, identical either way, without the retrieval run.
        if pool_run is not None and run is None:
            options["negative_pools"] = _retrieval_pools(pool_run, dataset, int(candidates))
        data = build_ranking_data(dataset, max_length=int(model_config["max_length"]), **options)
        if {"title", "genres", "year"} <= set(dataset.items.columns):  # for models with item_features
            data.split.item_content = ItemContent.from_items(dataset.items, data.vocabularies.item)
        if run is not None and data.vocabularies != run.artifacts["vocabularies"]:
            raise ValueError(
                f"the {dataset.name or 'dataset'} data read from {dataset.source} does not have the items, "
                "genres, years or user attributes the run was trained on; pass the data used for training."
            )
        return data

    def item_vocabulary(self, data: Any) -> Any:
        return data.vocabularies.item

    def build_model(self, spec: ModelSpec, data: RankingData, model_config: Mapping[str, Any]) -> tf.keras.Model:
        sizes = data.vocabularies.sizes()
        features = {**spec.default_config(), **model_config}.get("item_features")
        if not features:
            return spec.build(vocab_size=sizes["item"], feature_sizes=sizes, **model_config)
        content = data.split.item_content
        if content is None:
            raise ValueError(f"{spec.name} reads item content (item_features {list(features)}), but the data has "
                             "no item titles; use a dataset with item metadata or set item_features: [].")
        counts = count_items(data.split.train, sizes["item"])  # content vocabularies: training items only
        model = spec.build(vocab_size=sizes["item"], feature_sizes=sizes, **model_config,
                           item_content=content_vocabularies(content, np.flatnonzero(counts > 0), features))
        model.set_item_content(content, counts)
        return model

    def fit_function(self) -> Any:
        return train_ranker

    def fit(self, model: tf.keras.Model, data: RankingData, **training: Any) -> TrainingResult:
        training.pop("init_from", None)
        return train_ranker(model, data, **training)

    def evaluate(self, model: tf.keras.Model, data: RankingData, stage: str = "test", *, protocol: str = "full",
                 ks: Sequence[int] = (10, 20), num_negatives: int = 100) -> dict:
        if protocol != "full":
            raise UnsupportedCommand(
                f"--protocol {protocol} ranks next items among sampled negatives, a retrieval protocol; a "
                "ranking run is evaluated on its click examples (AUC, GAUC, log loss): drop --protocol."
            )
        return evaluate_ranker(model, data, stage)

    def format_metrics(self, metrics: Mapping[str, Any], title: str) -> str:
        return format_ctr_metrics(metrics, title)

    def describe_protocol(self, protocol: str = "full", num_negatives: int = 100) -> str:
        return "click examples: the held-out item and sampled never-seen items"

    def load_run(self, run_dir: pathlib.Path, config: dict) -> Run:
        model, _, _ = runs.load_model(run_dir)
        vocabularies, item_tables = runs.load_feature_tables(run_dir)
        return Run(run_dir, model, config, {"vocabularies": vocabularies, "item_tables": item_tables})

    def export(self, run: Run, output: pathlib.Path, *, overwrite: bool = False, **options: Any) -> Any:
        from tf_attnrec.export.score import export_ranking_model

        return export_ranking_model(run.model, output, vocabularies=run.artifacts["vocabularies"],
                                    overwrite=overwrite, **run.artifacts["item_tables"])

    def recommend(self, run: Run, history: Sequence[Any], k: int = 10, include_seen: bool = False) -> dict:
        raise UnsupportedCommand(
            f"{run.config.get('model')} is a ranking model: it scores a given (user, item) pair with the "
            "user's features instead of ranking the catalogue from a history; use `tf-attnrec explain RUN "
            "--user U --item I` for one pair, `tf-attnrec export` to serve it, or `recommend` on a "
            "retrieval run (e.g. sasrec)."
        )

    def explain(self, run: Run, dataset: Dataset, user: Any, item: Optional[Any]) -> dict:
        from tf_attnrec import explain

        if item is None:
            raise UnsupportedCommand("a ranking model explains the score of one candidate: pass --item ITEM_ID.")
        explain.check_explainable(run.model)
        return explain.explain_example(run.model, run.artifacts["vocabularies"], run.artifacts["item_tables"],
                                       dataset, user, item)
