"""Sequential retrieval: next-item models ranked over the whole catalogue (leave-one-out).

`train_sequential` = the shared loop (`tf_attnrec.training.fit_model`) on next-item batches,
plus a Keras callback that runs full-catalogue validation and writes `val_ndcg@10` etc. into
the epoch logs, so the loop's `EarlyStopping(monitor="val_ndcg@10")` picks the best model.
Then validation and test are evaluated once and, with `run_dir`, the run is saved.
"""

from __future__ import annotations

import os
import pathlib
import time
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tf_attnrec import runs
from tf_attnrec.data.cold_items import ColdItemSplit, cold_item_split
from tf_attnrec.data.dataset import Dataset
from tf_attnrec.data.item_content import ItemContent
from tf_attnrec.data.item_vectors import read_item_vectors
from tf_attnrec.data.pipelines import item_set_dataset, next_item_dataset, pad_sequences
from tf_attnrec.data.ratio_split import RatioSplit, ratio_split
from tf_attnrec.data.splits import SequenceSplit, leave_one_out_split, split_for
from tf_attnrec.data.vocabulary import FIRST_ID, Vocabulary
from tf_attnrec.evaluation.beyond_accuracy import beyond_accuracy_metrics, item_popularity
from tf_attnrec.evaluation.item_sets import evaluate_item_sets
from tf_attnrec.evaluation.ranking import full_catalogue_evaluate, sampled_evaluate
from tf_attnrec.layers.fused_item_embedding import content_vocabularies
from tf_attnrec.models.base import count_items
from tf_attnrec.models.registry import ModelSpec
from tf_attnrec.tasks.base import Run, Task, TrainingResult
from tf_attnrec.training import fit_model

PathLike = Union[str, os.PathLike]
MONITOR = "val_ndcg@10"
# `split`, a data key: "leave_one_out" (the last item of each sequence is the test, the one
# before it the validation), "ratio" (the CF protocol: each user's items at random
# 80/10/10, `split_seed` seeding it, as the collaborative task's models are evaluated) or
# "cold_items" (leave-one-out where a `split_seed`-drawn `cold_fraction` of the items never
# occurs in training or validation; the test reports cold and warm test items apart).
# `item_vectors` (+ `item_vector_ids` for a .npy): a user's own per-item vectors, the "vectors"
# modality of models with `item_features` (`read_item_vectors`).
SPLITS = ("leave_one_out", "ratio", "cold_items")
DATA_KEYS = ("split", "split_seed", "cold_fraction", "item_vectors", "item_vector_ids")
DEFAULT_SPLIT_SEED = 2020


def make_score_fn(model: tf.keras.Model, max_length: int) -> tf.types.experimental.GenericFunction:
    """A compiled `history [B, any L] -> scores [B, vocab_size]` for the evaluator.

    Histories are cut to their most recent `max_length` items and left-padded to exactly
    `max_length`, so one graph serves every batch (and long histories can still be passed
    whole, letting the evaluator exclude every item the user has seen).

    Args:
        model: A retrieval zoo model (a `RecommenderModel` with `score(history)`).
        max_length: The history length the model reads.

    Returns:
        A `tf.function`, one per (model, max_length): later calls return the traced one, so
        validation, test and recommend do not trace the model again.
    """
    return model.cached_function(("score", int(max_length)), lambda: _score_fn(model, int(max_length)))


def recommend_from_history(model: tf.keras.Model, vocabulary: Vocabulary, history: Sequence[Any], k: int = 10,
                           include_seen: bool = False) -> dict:
    """Top-k unseen items for raw item ids (most recent last); unknown ids are reported.

    For every model that scores a history (`model.score`), whatever its task.
    """
    ids = np.array([int(vocabulary.lookup(raw)) for raw in history], np.int32)
    known = ids[ids >= FIRST_ID].astype(np.int32)
    unknown = [raw for raw, item in zip(history, ids) if item < FIRST_ID]
    if not len(known):
        examples = ", ".join(map(str, vocabulary.raw_ids(np.arange(FIRST_ID, min(FIRST_ID + 3, vocabulary.size)))))
        raise ValueError(f"none of the history ids {list(history)} is an item the model knows; item ids look like {examples}.")
    scores = make_score_fn(model, model.max_length)(tf.constant(known[None, :])).numpy()[0]
    scores[:FIRST_ID] = -np.inf  # padding, OOV
    if not include_seen:
        scores[known] = -np.inf
    k = min(k, int(np.isfinite(scores).sum()))
    top = np.argsort(-scores, kind="stable")[:k]
    return {"history": known, "unknown": unknown, "items": top, "scores": scores[top],
            "raw_ids": vocabulary.raw_ids(top)}


def _score_fn(model: tf.keras.Model, max_length: int) -> tf.types.experimental.GenericFunction:
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
    split: Union[SequenceSplit, RatioSplit],
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
        split: The split the model was trained on: leave-one-out, or a ratio split (the CF
            protocol: Recall / NDCG over each user's held-out set, `evaluate_item_set_split`).
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
    if isinstance(split, RatioSplit):
        if protocol != "full":
            raise ValueError("the ratio split is evaluated over the full catalogue only (protocol 'full').")
        return evaluate_item_set_split(model, split, stage, max_length, ks, batch_size, max_users)
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
    padded = pad_sequences(histories, max(max(len(h) for h in histories), 1))
    score_fn = make_score_fn(model, max_length)
    if protocol == "sampled":
        return sampled_evaluate(
            score_fn, padded, targets, ks=ks, num_negatives=num_negatives, seed=seed
        )
    if not beyond_accuracy:
        metrics = full_catalogue_evaluate(score_fn, padded, targets, ks=ks, batch_size=batch_size)
    else:
        metrics, top_k = full_catalogue_evaluate(
            score_fn, padded, targets, ks=ks, batch_size=batch_size, return_top_k=True
        )
        counts = item_popularity(np.concatenate(split.train), split.vocabulary.size)
        metrics.update(beyond_accuracy_metrics(top_k, counts, ks=ks))
    if isinstance(split, ColdItemSplit) and stage == "test":
        # The protocol's point: users whose test item is cold, and the others, apart.
        cold = split.is_cold(targets)
        for group, rows in (("cold", cold), ("warm", ~cold)):
            if rows.any():
                part = full_catalogue_evaluate(score_fn, padded[rows], targets[rows], ks=ks, batch_size=batch_size)
                metrics.update({f"{group}_{key}": value for key, value in part.items() if key != "protocol"})
    return metrics


def evaluate_item_set_split(
    model: tf.keras.Model,
    split: RatioSplit,
    stage: str = "test",
    max_length: Optional[int] = None,
    ks: Sequence[int] = (10, 20),
    batch_size: int = 512,
    max_users: Optional[int] = None,
) -> dict:
    """A history model on the CF protocol: each user's earlier parts are the history, the held-out set the targets.

    For "validation" the history is the user's training items, for "test" the training and
    validation items (in file order, the model reading the last `max_length`); those items are
    excluded from the ranking, and Recall / NDCG / Precision / Hit @K are computed over the
    whole catalogue (`tf_attnrec.evaluation.item_sets`), as for the collaborative task's models.

    Args:
        model: A retrieval zoo model (`score(history)`).
        split: A `ratio_split(...)`.
        stage: "validation" or "test".
        max_length: History length read (default: the model's).
        ks: Cut-offs.
        batch_size: Users scored at once.
        max_users: Evaluate the first `max_users` users with `stage` items only.

    Returns:
        `{"protocol": "full", "recall@10", "ndcg@10", ..., "users"}`.
    """
    rows = split.evaluable_users(stage)[:max_users]
    seen, targets = split.seen(stage), split.targets(stage)
    max_length = max_length or model.max_length
    histories = pad_sequences([seen[row] for row in rows], max_length)
    score_fn = make_score_fn(model, max_length)

    def score_rows(positions: tf.Tensor) -> tf.Tensor:  # positions into `rows`
        return score_fn(tf.constant(histories[positions.numpy()]))

    return evaluate_item_sets(score_rows, np.arange(len(rows), dtype=np.int32), [seen[row] for row in rows],
                              [targets[row] for row in rows], ks=ks, batch_size=batch_size)


class FullCatalogueValidation(tf.keras.callbacks.Callback):
    """Runs full-catalogue validation every epoch and logs `val_*` metrics.

    Adds e.g. `val_ndcg@10`, `val_hr@10` to the epoch `logs` (so `EarlyStopping`,
    `CSVLogger`, `History` and TensorBoard see them). Put it before `EarlyStopping` in the
    callbacks list (`fit_model` does).

    Args:
        split: The leave-one-out split, or a ratio split (its validation items are evaluated).
        max_length: History length the model reads.
        ks: Cut-offs.
        batch_size: Users scored at once.
        max_users: Evaluate the first `max_users` users only (None = all).
        verbose: Print one line per evaluation.
        passes_per_epoch: Passes over the training data per Keras epoch (for the printed
            pass count when `fit` spans several passes per epoch).

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
        split: Union[SequenceSplit, RatioSplit],
        max_length: int,
        ks: Sequence[int] = (10, 20),
        batch_size: int = 512,
        max_users: Optional[int] = None,
        verbose: int = 1,
        passes_per_epoch: int = 1,
    ) -> None:
        super().__init__()
        self.passes_per_epoch = max(1, int(passes_per_epoch))
        self.split, self.max_users = split, max_users
        if not isinstance(split, RatioSplit):
            inputs = split.validation_inputs()
            histories, targets = inputs.histories, inputs.targets
            if max_users is not None:
                histories, targets = histories[:max_users], targets[:max_users]
            self.histories = pad_sequences(histories, max(max(len(h) for h in histories), 1))
            self.targets = targets
        self.max_length = max_length
        self.ks = tuple(ks)
        self.batch_size = batch_size
        self.verbose = verbose
        self._score_fn = None

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        logs = {} if logs is None else logs
        if self._score_fn is None:
            self._score_fn = make_score_fn(self.model, self.max_length)
        start = time.perf_counter()
        if isinstance(self.split, RatioSplit):
            metrics = evaluate_item_set_split(self.model, self.split, "validation", self.max_length, self.ks,
                                              self.batch_size, self.max_users)
        else:
            metrics = full_catalogue_evaluate(
                self._score_fn, self.histories, self.targets, ks=self.ks, batch_size=self.batch_size
            )
        values = {f"val_{k}": float(v) for k, v in metrics.items() if "@" in k or k == "mrr"}
        logs.update(values)
        logs["val_seconds"] = time.perf_counter() - start
        if self.verbose:
            shown = " ".join(f"{k}={v:.4f}" for k, v in values.items() if "@10" in k)
            rate = float(tf.keras.backend.get_value(self.model.optimizer.learning_rate))
            train_seconds = logs.get("train_seconds", float("nan"))
            print(
                f"pass {(epoch + 1) * self.passes_per_epoch}: loss={logs.get('loss', float('nan')):.4f} "
                f"{shown} lr={rate:.3g} train {train_seconds / self.passes_per_epoch:.1f}s/pass "
                f"val {logs['val_seconds']:.1f}s",
                flush=True,
            )


def train_sequential(
    model: tf.keras.Model,
    split: Union[SequenceSplit, RatioSplit],
    *,
    batch_size: int = 128,
    max_length: Optional[int] = None,
    ks: Sequence[int] = (10, 20),
    split_long_sequences: bool = False,
    length_buckets: int = 1,
    history_includes_target: bool = False,
    validation_users: Optional[int] = None,
    evaluate_test: bool = True,
    seed: int = 0,
    run_dir: Optional[PathLike] = None,
    extra_config: Optional[dict] = None,
    init_from: Optional[PathLike] = None,
    verbose: int = 1,
    **loop: Any,
) -> TrainingResult:
    """Trains a retrieval model with early stopping on full-catalogue validation NDCG@10.

    Args:
        model: From `create_model(...)`. A `PopularityModel` is only adapted (no fit).
        split: `leave_one_out_split(...)` output, or a `ratio_split(...)` (the CF protocol; for
            models that train on item sets, `fism` and `nais`).
        batch_size: Training sequences per step.
        max_length: History length (default: the model's `max_length`).
        ks: Cut-offs of the reported metrics.
        split_long_sequences: Cut sequences longer than `max_length` into windows (all
            items become targets) instead of keeping only the most recent ones (SASRec).
        length_buckets: n > 1 batches histories of similar length together (n buckets at the
            length quantiles), so a step skips the padding its batch shares
            (`next_item_dataset`). 1: batches of any lengths.
        history_includes_target: For models that train on item sets (fism, nais): each training
            item stays in its own history, as RecBole's FISM and NAIS train, instead of being
            left out, as the papers do (`item_set_dataset`'s `include_target`).
        validation_users: Validate on the first n users only (faster; None = all).
        evaluate_test: Evaluate the test items after training (with beyond-accuracy metrics).
        seed: Seed for weights, dropout and shuffling.
        run_dir: If given, save model, vocabulary, metrics and logs here.
        extra_config: JSON-serialisable values stored with the saved model (e.g. zoo name).
        init_from: A saved run directory to warm-start from (same model config): to continue a
            run that stopped, or to update a trained model with new data (new items grow the
            vocabulary, the others keep their trained vectors; `runs.load_weights_from_run`);
            the optimizer starts afresh.
        verbose: 0 silent, 1 one line per validation, 2 also Keras progress per epoch.
        **loop: `tf_attnrec.training.fit_model` settings: `learning_rate`, `epochs`,
            `patience`, `eval_every`, `jit_compile`, `reduce_lr_patience`, `reduce_lr_factor`,
            `min_learning_rate`, `time_limit_minutes`, `callbacks`, `monitor`.

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
    loop = {**RetrievalTask.training_defaults, "monitor": MONITOR, **loop}
    if history_includes_target and getattr(model, "trains_on", None) != "item_set":
        raise ValueError(f"history_includes_target is for models that train on item sets (fism, nais); "
                         f"{model.name} trains on sequences, whose histories never hold their targets.")
    if length_buckets != 1 and getattr(model, "trains_on", None) == "item_set":
        raise ValueError(f"length_buckets is for models that train on sequences; {model.name} trains on item sets.")
    tf.keras.utils.set_random_seed(seed)
    max_length = max_length or model.max_length
    if init_from is not None:
        runs.load_weights_from_run(model, init_from, split.vocabulary)
    model.adapt(split.train)  # after the warm start: this data's item counts, not the saved run's
    fit = None
    if model.requires_training:
        if model.trains_on == "item_set":
            dataset = item_set_dataset(split.train, max_length, batch_size, shuffle=True, seed=seed,
                                       include_target=history_includes_target)
        else:
            dataset = next_item_dataset(
                split.train, max_length=max_length, batch_size=batch_size, shuffle=True, seed=seed,
                split_long_sequences=split_long_sequences, drop_remainder=bool(loop.get("jit_compile")),
                length_buckets=length_buckets,
            )
        validation = FullCatalogueValidation(
            split, max_length, ks=ks, max_users=validation_users, verbose=verbose,
            passes_per_epoch=int(loop.get("eval_every", 1)),
        )
        fit = fit_model(model, dataset, validation_callbacks=[validation], run_dir=run_dir,
                        verbose=2 if verbose >= 2 else 0, **loop)
    validation_metrics = evaluate_sequential(model, split, "validation", max_length, ks)
    test = evaluate_sequential(model, split, "test", max_length, ks, beyond_accuracy=True) if evaluate_test else None
    result = TrainingResult(model, validation_metrics, test, fit)
    if run_dir is not None:
        result.run_dir = runs.save_model(model, run_dir, split.vocabulary, extra_config)
        if isinstance(split, RatioSplit):
            split_summary = {"kind": "random ratio per user", "ratios": list(split.ratios), "seed": split.seed,
                             **split.num_interactions()}
        elif isinstance(split, ColdItemSplit):
            split_summary = {"kind": "leave one out, cold items", "cold_fraction": split.fraction, "seed": split.seed,
                             "cold_items": len(split.cold_items), **split.num_interactions()}
        else:
            split_summary = {"kind": "leave one out"}
        runs.write_metrics(run_dir, result.metrics(init_from=str(init_from) if init_from else None,
                                                   split=split_summary))
    return result


def format_metrics(metrics: Mapping[str, Any], title: str) -> str:
    """A metrics dict as a text table: one row per metric, one column per cut-off K."""
    prefix = next((k.split("_", 1)[0] + "_" for k in metrics if k.startswith("sampled")), "")
    rows: dict[str, dict[int, float]] = {}
    scalars = {}
    for key, value in metrics.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        name = key[len(prefix):] if prefix and key.startswith(prefix) else key
        if "@" in name:
            metric, k = name.rsplit("@", 1)
            rows.setdefault(metric, {})[int(k)] = float(value)
        else:
            scalars[name] = value
    ks = sorted({k for row in rows.values() for k in row})
    width = max([len(name) for name in rows] + [len(name) + 12 for name in scalars] + [6])
    lines = [title, f"  {'metric':<{width}}" + "".join(f"{'@' + str(k):>11}" for k in ks)]
    for name, row in rows.items():
        cells = "".join(f"{row[k]:>11.4f}" if k in row else f"{'-':>11}" for k in ks)
        lines.append(f"  {name:<{width}}{cells}")
    for name, value in scalars.items():
        text = f"{value:,}" if isinstance(value, int) else f"{value:.4f}"
        label = f"{name} (all ranks)" if name in rows else name  # e.g. MRR without a cut-off
        lines.append(f"  {label:<{width}}{text:>11}")
    return "\n".join(lines)


class RetrievalTask(Task):
    """Next-item retrieval over the whole catalogue (sasrec, lstm_attention, popularity, ...)."""

    name = "retrieval"
    monitor = MONITOR
    training_defaults = {"eval_every": 2}
    data_keys = DATA_KEYS
    export_options = ("k", "index", "exclude_history", "max_length", "scann_options", "new_items", "quantize")

    def build_data(self, dataset: Dataset, model_config: Mapping[str, Any], options: Mapping[str, Any],
                   run: Optional[Run] = None) -> Union[SequenceSplit, RatioSplit]:
        kind = options.get("split", "leave_one_out")
        if kind not in SPLITS:
            raise ValueError(f"training.split must be one of {SPLITS}; got {kind!r}.")
        if "cold_fraction" in options and kind != "cold_items":
            raise ValueError(f"training.cold_fraction applies to split: cold_items only; the split is {kind!r}.")
        vocabulary = None if run is None else run.artifacts["vocabulary"]
        seed = int(options.get("split_seed", DEFAULT_SPLIT_SEED))
        if kind == "ratio":
            return ratio_split(dataset.interactions, seed=seed, vocabulary=vocabulary)
        if kind == "cold_items":
            fraction = {"fraction": float(options["cold_fraction"])} if "cold_fraction" in options else {}
            split = cold_item_split(dataset.interactions, seed=seed, vocabulary=vocabulary, **fraction)
        elif run is None:
            split = leave_one_out_split(dataset.interactions)
        else:
            split = split_for(dataset, vocabulary)
        vectors = None
        if options.get("item_vectors"):
            vectors = read_item_vectors(options["item_vectors"], split.vocabulary, options.get("item_vector_ids"))
        if dataset.items is not None and {"title", "genres", "year"} <= set(dataset.items.columns):
            split.item_content = ItemContent.from_items(dataset.items, split.vocabulary, vectors)
        elif vectors is not None:
            raise ValueError("training.item_vectors needs the dataset's item metadata (title, genres, year) too.")
        return split

    def item_vocabulary(self, data: Any) -> Any:
        return data.vocabulary

    def build_model(self, spec: ModelSpec, data: SequenceSplit, model_config: Mapping[str, Any]) -> tf.keras.Model:
        features = {**spec.default_config(), **model_config}.get("item_features")
        if not features:
            return spec.build(vocab_size=data.vocabulary.size, **model_config)
        content = getattr(data, "item_content", None)
        if content is None:
            raise ValueError(
                f"{spec.name} reads item content (item_features {list(features)}), but the data has no item "
                "metadata with title, genres and year; use a dataset with item metadata or set item_features: [].")
        # Vocabularies of the content come from the training items only (see content_vocabularies).
        trained = np.flatnonzero(count_items(data.train, data.vocabulary.size) > 0)
        model = spec.build(vocab_size=data.vocabulary.size,
                           item_content=content_vocabularies(content, trained, features), **model_config)
        model.set_item_content(content)
        return model

    def fit_function(self) -> Any:
        return train_sequential

    def fit(self, model: tf.keras.Model, data: SequenceSplit, **training: Any) -> TrainingResult:
        return train_sequential(model, data, **training)

    def evaluate(self, model: tf.keras.Model, data: SequenceSplit, stage: str = "test", *, protocol: str = "full",
                 ks: Sequence[int] = (10, 20), num_negatives: int = 100) -> dict:
        return evaluate_sequential(model, data, stage, ks=ks, protocol=protocol,
                                   beyond_accuracy=protocol == "full", num_negatives=num_negatives)

    def format_metrics(self, metrics: Mapping[str, Any], title: str) -> str:
        return format_metrics(metrics, title)

    def describe_protocol(self, protocol: str = "full", num_negatives: int = 100) -> str:
        return "full catalogue, seen items excluded" if protocol == "full" else f"{num_negatives} sampled negatives"

    def load_run(self, run_dir: pathlib.Path, config: dict) -> Run:
        model, vocabulary, _ = runs.load_model(run_dir)
        if vocabulary is None:
            raise FileNotFoundError(f"{run_dir / runs.VOCABULARY_FILE} not found; cannot map raw item ids.")
        return Run(run_dir, model, config, {"vocabulary": vocabulary})

    def export(self, run: Run, output: pathlib.Path, *, overwrite: bool = False, **options: Any) -> Any:
        from tf_attnrec.export.topk import export_retrieval

        model, vocabulary = run.model, run.artifacts["vocabulary"]
        new_items = options.pop("new_items", None)
        if new_items is not None:  # a grown catalogue: the new items embedded from their content
            from tf_attnrec.models.new_items import add_items, read_new_items

            model, vocabulary = add_items(model, vocabulary, read_new_items(new_items))
        return export_retrieval(model, output, vocabulary=vocabulary, overwrite=overwrite, **options)

    def recommend(self, run: Run, history: Sequence[Any], k: int = 10, include_seen: bool = False) -> dict:
        return recommend_from_history(run.model, run.artifacts["vocabulary"], history, k, include_seen)

    def explain(self, run: Run, dataset: Dataset, user: Any, item: Optional[Any]) -> dict:
        from tf_attnrec import explain, explain_modalities

        explain.check_explainable(run.model)
        training = run.config.get("training") or {}
        split = self.build_data(dataset, {}, {key: training[key] for key in self.data_keys if key in training}, run)
        explanation = explain.explain_history(run.model, run.artifacts["vocabulary"], split, user, item)
        if explain_modalities.item_tower(run.model) is not None:  # and which modality made each top item
            explanation["modalities"] = explain_modalities.explain_modalities(
                run.model, run.artifacts["vocabulary"], split, user)
        return explanation
