"""Collaborative filtering: a known user's top items over the whole catalogue (the CF protocol).

The protocol of the LightGCN / NGCF literature and RecBole: each user's interactions are split
at random 80/10/10 (`tf_attnrec.data.ratio_split`, seed stored in the run), the user-item
graph is built from the training part only, and every user with held-out items is ranked
against the whole catalogue with their earlier parts excluded, scored by Recall@K and NDCG@K
(`tf_attnrec.evaluation.item_sets`).

`train_collaborative` = the shared loop (`tf_attnrec.training.fit_model`) on BPR triples
(`tf_attnrec.data.pair_batches`), with a Keras callback that writes full-ranking `val_ndcg@10`
and friends into the epoch logs, so early stopping keeps the best validation weights.
"""

from __future__ import annotations

import os
import pathlib
import time
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tf_attnrec import runs
from tf_attnrec.data.dataset import Dataset
from tf_attnrec.data.graph import InteractionGraph
from tf_attnrec.data.pair_batches import bpr_triples
from tf_attnrec.data.ratio_split import RatioSplit, ratio_split
from tf_attnrec.data.vocabulary import FIRST_ID, Vocabulary
from tf_attnrec.evaluation.item_sets import evaluate_item_sets
from tf_attnrec.models.graph_cf import GraphCFModel
from tf_attnrec.models.registry import ModelSpec
from tf_attnrec.tasks.base import Run, Task, TrainingResult, UnsupportedCommand
from tf_attnrec.tasks.retrieval import format_metrics, recommend_from_history
from tf_attnrec.training import fit_model

PathLike = Union[str, os.PathLike]
MONITOR = "val_ndcg@10"
# The ratio split's seed: a data key, so `evaluate` and `export` rebuild the run's split.
DATA_KEYS = ("split_seed",)
DEFAULT_SPLIT_SEED = 2020  # RecBole's default seed


def user_score_function(model: GraphCFModel) -> Any:
    """`user rows [B] -> scores [B, V]` for the model's current weights.

    The graph is propagated once here (one traced function per model, reused by every
    validation), and each batch is then one matmul against the final item embeddings.
    """
    propagate = model.cached_function(
        "final_embeddings", lambda: tf.function(lambda: model.final_embeddings(training=False), autograph=False))
    user_final, item_final = propagate()

    def score(rows: tf.Tensor) -> tf.Tensor:
        return model.scores(tf.gather(user_final, rows), item_final)

    return score


def evaluate_collaborative(
    model: GraphCFModel, split: RatioSplit, stage: str = "test", ks: Sequence[int] = (10, 20),
    batch_size: int = 1024, max_users: Optional[int] = None,
) -> dict:
    """Full-ranking Recall / NDCG / Precision / Hit @K on the validation or test items.

    Args:
        model: a graph CF model with its graph set.
        split: the `RatioSplit` it was trained on.
        stage: "validation" (train items excluded) or "test" (train and validation excluded).
        ks: cut-offs.
        batch_size: users scored at once.
        max_users: evaluate only the first `max_users` users that have `stage` items.

    Returns:
        `{"protocol": "full", "recall@10", "ndcg@10", ..., "users"}`.
    """
    rows = split.evaluable_users(stage)[:max_users]
    seen, targets = split.seen(stage), split.targets(stage)
    return evaluate_item_sets(user_score_function(model), rows, [seen[r] for r in rows], [targets[r] for r in rows],
                              ks=ks, batch_size=batch_size)


class ItemSetValidation(tf.keras.callbacks.Callback):
    """Full-ranking validation each epoch: writes `val_recall@10`, `val_ndcg@10`, ... into the logs.

    Args:
        split: the `RatioSplit` (its validation items are evaluated).
        ks: cut-offs.
        max_users: validate on the first n users only (None = all).
        verbose: print one line per validation.
        passes_per_epoch: passes over the training data per Keras epoch (`eval_every`).
    """

    def __init__(self, split: RatioSplit, ks: Sequence[int] = (10, 20), max_users: Optional[int] = None,
                 verbose: int = 1, passes_per_epoch: int = 1) -> None:
        super().__init__()
        self.split, self.ks, self.max_users, self.verbose = split, tuple(ks), max_users, verbose
        self.passes_per_epoch = max(1, int(passes_per_epoch))

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        logs = {} if logs is None else logs
        start = time.perf_counter()
        metrics = evaluate_collaborative(self.model, self.split, "validation", self.ks, max_users=self.max_users)
        values = {f"val_{k}": float(v) for k, v in metrics.items() if "@" in k}
        logs.update(values)
        logs["val_seconds"] = time.perf_counter() - start
        if self.verbose:
            shown = " ".join(f"{k}={v:.4f}" for k, v in values.items() if k in ("val_recall@10", "val_ndcg@10"))
            print(f"pass {(epoch + 1) * self.passes_per_epoch}: loss={logs.get('loss', float('nan')):.4f} {shown} "
                  f"train {logs.get('train_seconds', float('nan')) / self.passes_per_epoch:.1f}s/pass "
                  f"val {logs['val_seconds']:.1f}s", flush=True)


def save_collaborative_run(model: GraphCFModel, split: RatioSplit, run_dir: PathLike,
                           extra_config: Optional[Mapping[str, Any]] = None) -> pathlib.Path:
    """The model, both vocabularies and the training graph, in a run directory."""
    run_dir = runs.save_model(model, run_dir, split.vocabulary, extra_config)
    runs.write_text_atomic(run_dir / runs.USER_VOCABULARY_FILE, split.user_vocabulary.to_json())
    model.graph.save(run_dir / runs.GRAPH_FILE)
    return run_dir


def load_users_and_graph(run_dir: PathLike) -> tuple[Vocabulary, InteractionGraph]:
    """The user vocabulary and training graph a collaborative run saved."""
    run_dir = pathlib.Path(run_dir)
    users_path = run_dir / runs.USER_VOCABULARY_FILE
    if not users_path.is_file():
        raise FileNotFoundError(f"{users_path} not found: {run_dir} is not a collaborative run.")
    return Vocabulary.from_json(users_path.read_text()), InteractionGraph.load(run_dir / runs.GRAPH_FILE)


def check_same_graph(run_dir: PathLike, split: RatioSplit, graph: InteractionGraph,
                     stored: Optional[tuple[Vocabulary, InteractionGraph]] = None) -> None:
    """ValueError unless the run at `run_dir` was trained on `split`'s users and training graph.

    `stored` is what `load_users_and_graph(run_dir)` returns, when the caller already has it.
    """
    users, stored_graph = stored or load_users_and_graph(run_dir)
    if (users != split.user_vocabulary
            or not np.array_equal(stored_graph.user_index, graph.user_index)
            or not np.array_equal(stored_graph.item_index, graph.item_index)):
        raise ValueError(
            f"{run_dir}: its users or training graph differ from this data's (another dataset or split_seed); "
            "continue a run with the data and split it was trained on."
        )


def train_collaborative(
    model: GraphCFModel,
    split: RatioSplit,
    *,
    batch_size: int = 2048,
    ks: Sequence[int] = (10, 20),
    validation_users: Optional[int] = None,
    evaluate_test: bool = True,
    seed: int = 0,
    run_dir: Optional[PathLike] = None,
    extra_config: Optional[dict] = None,
    init_from: Optional[PathLike] = None,
    verbose: int = 1,
    **loop: Any,
) -> TrainingResult:
    """Trains a graph CF model with BPR, early stopping on full-ranking validation NDCG@10.

    Args:
        model: from `create_model(...)` (a `GraphCFModel`).
        split: `ratio_split(...)` output; the graph is built from `split.train` only.
        batch_size: (user, positive, negative) triples per step (RecBole's default 2048).
        ks: cut-offs of the reported metrics.
        validation_users: validate on the first n users only (None = all).
        evaluate_test: evaluate the test items after training.
        seed: seed of the weights, the shuffles and the negative draws.
        run_dir: if given, save the model, vocabularies, graph, metrics and logs here.
        extra_config: JSON-serialisable values stored with the saved model.
        init_from: a saved collaborative run to continue (same model config, users, items and
            training graph); the optimizer starts afresh.
        verbose: 0 silent, 1 one line per validation, 2 also Keras progress.
        **loop: `tf_attnrec.training.fit_model` settings (`learning_rate`, `epochs`, `patience`,
            `eval_every`, `time_limit_minutes`, `callbacks`, ...).

    Returns:
        `TrainingResult`.

    Example:
        ```python
        split = ratio_split(read_sasrec_txt("ml-1m.txt"), seed=2020)
        model = create_model("lightgcn", vocab_size=split.vocabulary.size, num_users=split.num_users)
        result = train_collaborative(model, split, learning_rate=0.002, epochs=300)
        ```
    """
    loop = {**CollaborativeTask.training_defaults, "monitor": MONITOR, **loop}
    loop.pop("split_seed", None)  # a data key: the split is already made
    tf.keras.utils.set_random_seed(seed)
    model.set_graph(InteractionGraph.from_sequence_split(split))
    if init_from is not None:
        check_same_graph(init_from, split, model.graph)
        runs.load_weights_from_run(model, init_from, split.vocabulary)
    validation = ItemSetValidation(split, ks, validation_users, verbose, int(loop.get("eval_every", 1)))
    fit = fit_model(model, bpr_triples(model.graph, batch_size, seed), validation_callbacks=[validation],
                    run_dir=run_dir, verbose=2 if verbose >= 2 else 0, **loop)
    result = TrainingResult(model, evaluate_collaborative(model, split, "validation", ks),
                            evaluate_collaborative(model, split, "test", ks) if evaluate_test else None, fit)
    if run_dir is not None:
        result.run_dir = save_collaborative_run(model, split, run_dir, extra_config)
        runs.write_metrics(run_dir, result.metrics(
            init_from=str(init_from) if init_from else None,
            split={"kind": "random ratio per user", "ratios": list(split.ratios), "seed": split.seed,
                   **split.num_interactions()},
            graph={"users": model.graph.num_users, "items": model.graph.num_items, "edges": model.graph.num_edges}))
    return result


class CollaborativeTask(Task):
    """A known user's top-k over the catalogue from the training graph (lightgcn, gat_cf, ...)."""

    name = "collaborative"
    monitor = MONITOR
    training_defaults = {"eval_every": 1, "patience": 10, "epochs": 300, "split_seed": DEFAULT_SPLIT_SEED}
    data_keys = DATA_KEYS
    # "index" applies to the history exports of inductive models only (`export` refuses it otherwise).
    export_options = ("k", "exclude_history", "index")

    def build_data(self, dataset: Dataset, model_config: Mapping[str, Any], options: Mapping[str, Any],
                   run: Optional[Run] = None) -> RatioSplit:
        seed = int(options.get("split_seed", DEFAULT_SPLIT_SEED))
        if run is None:
            return ratio_split(dataset.interactions, seed=seed)
        if Vocabulary.from_ids(dataset.interactions["item_id"]) != run.artifacts["vocabulary"]:
            raise ValueError(
                f"the {dataset.name or 'dataset'} data read from {dataset.source or 'memory'} does not have the "
                "items the run was trained on; pass the data used for training."
            )
        split = ratio_split(dataset.interactions, seed=seed, vocabulary=run.artifacts["vocabulary"])
        check_same_graph(run.run_dir, split, InteractionGraph.from_sequence_split(split),
                         (run.artifacts["user_vocabulary"], run.artifacts["graph"]))  # loaded once, by load_run
        return split

    def item_vocabulary(self, data: RatioSplit) -> Vocabulary:
        return data.vocabulary

    def build_model(self, spec: ModelSpec, data: RatioSplit, model_config: Mapping[str, Any]) -> tf.keras.Model:
        return spec.build(vocab_size=data.vocabulary.size, num_users=data.num_users, **model_config)

    def fit_function(self) -> Any:
        return train_collaborative

    def fit(self, model: tf.keras.Model, data: RatioSplit, **training: Any) -> TrainingResult:
        return train_collaborative(model, data, **training)

    def evaluate(self, model: tf.keras.Model, data: RatioSplit, stage: str = "test", *, protocol: str = "full",
                 ks: Sequence[int] = (10, 20), num_negatives: int = 100) -> dict:
        if protocol != "full":
            raise UnsupportedCommand(f"--protocol {protocol}: the collaborative protocol ranks the full catalogue.")
        return evaluate_collaborative(model, data, stage, ks)

    def format_metrics(self, metrics: Mapping[str, Any], title: str) -> str:
        return format_metrics(metrics, title)

    def describe_protocol(self, protocol: str = "full", num_negatives: int = 100) -> str:
        return "random 80/10/10 per user, full catalogue, earlier parts excluded"

    def load_run(self, run_dir: pathlib.Path, config: dict) -> Run:
        model, vocabulary, _ = runs.load_model(run_dir)
        if vocabulary is None:
            raise FileNotFoundError(f"{run_dir / runs.VOCABULARY_FILE} not found; cannot map raw item ids.")
        users, graph = load_users_and_graph(run_dir)
        model.set_graph(graph)
        return Run(run_dir, model, config, {"vocabulary": vocabulary, "graph": graph, "user_vocabulary": users})

    def export(self, run: Run, output: pathlib.Path, *, overwrite: bool = False, **options: Any) -> Any:
        if run.model.serves == "history":  # inductive: the retrieval models' raw-history signature
            from tf_attnrec.export.topk import export_retrieval

            return export_retrieval(run.model, output, vocabulary=run.artifacts["vocabulary"], overwrite=overwrite,
                                    **options)
        if "index" in options:
            raise UnsupportedCommand(
                f"--index does not apply to {run.config.get('model')}: it serves user ids from its training graph "
                "(an index applies to history exports: graphsage_cf, sasrec, ...); drop the flag.")
        from tf_attnrec.export.user_topk import export_user_topk

        return export_user_topk(run.model, output, vocabulary=run.artifacts["vocabulary"],
                                user_vocabulary=run.artifacts["user_vocabulary"], overwrite=overwrite, **options)

    def recommend(self, run: Run, history: Sequence[Any], k: int = 10, include_seen: bool = False) -> dict:
        if run.model.serves == "history":
            return recommend_from_history(run.model, run.artifacts["vocabulary"], history, k, include_seen)
        raise UnsupportedCommand(
            f"{run.config.get('model')} is a collaborative model: it knows its users by id, not by a history. "
            "Export it (`tf-attnrec export`) and send `user_id`, or use graphsage_cf / sasrec for histories."
        )

    def check_explainable(self, run: Run) -> None:
        if not hasattr(run.model, "edge_attention"):
            raise UnsupportedCommand(
                f"{run.config.get('model')} has no attention to explain (its edge weights are fixed); "
                "explain a gat_cf run.")

    def explain(self, run: Run, dataset: Dataset, user: Any, item: Optional[Any]) -> dict:
        """The attention over the user's and the item's neighbours (`tf_attnrec.explain_graph`)."""
        from tf_attnrec.explain_graph import explain_graph_recommendation

        self.check_explainable(run)
        model = run.model
        users: Vocabulary = run.artifacts["user_vocabulary"]
        row = int(users.lookup(user)) - FIRST_ID
        scores = None
        if row >= 0:
            scores = user_score_function(model)(tf.constant([row], tf.int32)).numpy()[0].astype(np.float64)
            graph: InteractionGraph = run.artifacts["graph"]
            scores[graph.item_index[graph.user_index == row] + FIRST_ID] = -np.inf  # seen in training
            scores[:FIRST_ID] = -np.inf
        return explain_graph_recommendation(model, run.artifacts["vocabulary"], users, user, item, scores)

