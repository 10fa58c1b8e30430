"""Export a retrieval model as a TF Serving SavedModel: raw item ids in, top-k raw ids out.

The graph owns everything between the request and the answer: raw-id lookup (from the
run's `Vocabulary`, via an asset file), compaction of ""-padded histories (right or left
padded) into the model's left-padded form, truncation to the most recent `max_length`
items, scoring (exact matmul + `tf.math.top_k`, or a ScaNN index), exclusion of seen items,
and the map back to raw ids. Unknown ids become the out-of-vocabulary id; nothing fails. The
item table may be stored compressed, float16 or per-row int8 (`tf_attnrec.export.quantize`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import os
import pathlib
from typing import Any, Mapping, Optional, Union

import numpy as np
import tensorflow as tf

from tf_attnrec.data.vocabulary import FIRST_ID, Vocabulary
from tf_attnrec.export.common import (
    index_to_raw_table,
    left_padded,
    lookup_ids,
    raw_id_strings,
    raw_id_table,
    signature_infos,
    staged_export,
    validate_export_dir,
    write_id_file,
)
from tf_attnrec.export.quantize import QUANTIZE_MODES, CompressedItemTable
from tf_attnrec.export.summary import ExportSummary

PathLike = Union[str, os.PathLike]

INDEXES = ("brute_force", "scann")
ITEM_IDS_FILE = "item_ids.txt"  # line i = raw id of model id i + 2 (an asset the graph reads)
ITEM_EMBEDDINGS_FILE = "item_embeddings.npy"  # row i = embedding of line i of item_ids.txt
_PARTITION_FROM = 100_000  # catalogues at least this large get a partitioned ScaNN tree
_HISTORY_SPEC = tf.TensorSpec([None, None], tf.string, name="history")


def _model_max_length(model: tf.keras.Model) -> int:
    encoder = getattr(model, "encoder", None)
    return int(encoder.max_length if encoder is not None else model.max_length)


def _candidate_embeddings(model: tf.keras.Model) -> Optional[tf.Variable]:
    """The `[vocab_size, D]` item table, or None for models without one (popularity)."""
    return model.item_embeddings if getattr(model, "encoder", None) is not None else None


def default_scann_options(num_items: int, num_neighbors: int) -> dict[str, Any]:
    """`tfrs.layers.factorized_top_k.ScaNN` settings scaled to the catalogue.

    Follows ScaNN's rules of thumb: below 100,000 items no partitioning (one leaf: every item
    is scored with asymmetric hashing, then re-scored exactly), which on ML-1M-sized
    catalogues is what keeps recall near 1; from 100,000 items about sqrt(N) leaves (at most
    2,000) with 10% of them searched. Asymmetric hashing uses 2 dimensions per block, and the
    best `max(4 * num_neighbors, 100)` candidates are re-scored exactly.

    Args:
        num_items: Catalogue size.
        num_neighbors: Neighbours each search returns (k, plus the history length when seen
            items are excluded).

    Returns:
        Keyword arguments for the tfrs ScaNN layer (override any via `scann_options`).

    Example:
        >>> default_scann_options(3416, 210)["num_leaves"]
        1
        >>> default_scann_options(1_000_000, 10)["num_leaves_to_search"]
        100
    """
    if num_items < _PARTITION_FROM:
        num_leaves, num_leaves_to_search = 1, 1
    else:
        num_leaves = int(min(round(math.sqrt(num_items)), 2000))
        num_leaves_to_search = max(1, math.ceil(num_leaves * 0.1))
    return {
        "num_leaves": num_leaves,
        "num_leaves_to_search": num_leaves_to_search,
        "dimensions_per_block": 2,
        "num_reordering_candidates": max(4 * num_neighbors, 100),
        "training_iterations": 12,
    }


class _RetrievalModule(tf.Module):
    """What gets saved: lookup tables, the model's variables and the two signatures.

    The Keras model is reached through a closure, not tracked as an attribute, so the
    SavedModel holds plain TensorFlow functions and variables (no Keras objects) and loads
    with nothing but TensorFlow.
    """

    def __init__(
        self,
        model: tf.keras.Model,
        item_ids_path: str,
        k: int,
        exclude_history: bool,
        max_length: int,
        scann_layer: Optional[tf.keras.layers.Layer] = None,
        scann_num_neighbors: int = 0,
        with_encode: bool = True,
        quantize: Optional[str] = None,
    ) -> None:
        super().__init__(name="retrieval")
        self.model_variables = list(model.variables)
        # Both tables read the same asset file, so the served ids are exactly those lines.
        self.raw_to_index = raw_id_table(item_ids_path)
        self.index_to_raw = index_to_raw_table(item_ids_path)
        self.scann = scann_layer
        self._k = k
        self._exclude_history = exclude_history
        self._max_length = max_length
        self._scann_num_neighbors = scann_num_neighbors
        self._score = model.score
        # Models whose history weights depend on the candidate (nais) also serve, per returned
        # item, the weight of each history item: `history_attention` [B, k, max_length].
        self._history_attention = getattr(model, "history_attention", None)
        call = functools.partial(model.__call__, training=False)
        self._encode = call
        tower = getattr(getattr(model, "encoder", None), "item_tower", None)
        if quantize is not None:
            # The compressed table (with an item tower, the fused one) stands in for the float32 table
            # on both sides, the history's items and the candidates, so the float32 id table is not
            # saved: kept, it would cost more than compressing saves.
            self.item_table = CompressedItemTable(np.asarray(model.item_embeddings), quantize)
            self.model_variables = _without_id_table(model)
            self._score = functools.partial(_compressed_scores, call, self.item_table)
            self._encode = functools.partial(_compressed_query, call, self.item_table)
        elif tower is not None:
            # The fused catalogue is fixed once trained: computed here once, a request reads it
            # like an id table instead of running the tower over every item (twice).
            self.fused_item_table = tf.Variable(model.item_embeddings, trainable=False, name="fused_item_table")
            # Requests read the fused table for history and candidates alike, never the id table.
            self.model_variables = _without_id_table(model)
            self._score = functools.partial(model.score, item_table=self.fused_item_table)
            self._encode = functools.partial(model.__call__, training=False, item_table=self.fused_item_table)
        if tower is not None:
            # Tracked, so the tower's in-graph vocabularies (title words, genres) are saved.
            self.item_tower = tower
            self.embed_items = tf.function(functools.partial(_embed_items, tower),
                                           input_signature=_content_specs(tower))
        self._popular = popular_items(model, k)
        if with_encode:
            # Only then an attribute: saving traces every tf.function of the module, and a model
            # without a query encoder (popularity, graphsage_cf) has no `encode` to trace.
            self.encode = tf.function(self.query_embedding, input_signature=[_HISTORY_SPEC])

    # --------------------------------------------------------------- in-graph helpers
    def model_ids(self, history: tf.Tensor) -> tf.Tensor:
        """Raw ids [B, T] -> model ids [B, T]: "" -> 0, unknown -> 1, known -> 2..."""
        return lookup_ids(self.raw_to_index, history, empty_is_padding=True)

    def left_padded(self, ids: tf.Tensor) -> tf.Tensor:
        """Drops padding wherever it is, keeps the last `max_length` items, left-pads to it."""
        return left_padded(ids, self._max_length)

    def finish(self, scores: tf.Tensor, indices: Optional[tf.Tensor], ids: tf.Tensor,
               model_input: tf.Tensor) -> dict:
        """Excludes seen items, takes the top k, maps candidate indices to raw ids.

        `scores` [B, C] are over candidates whose item indices (model id - 2) are `indices`
        [B, C] (None: column j is item index j). Slots with no valid candidate left (history
        covers almost the whole catalogue) get item id "" and the lowest float32 score.
        `model_input` is the left-padded history the model read.
        """
        if self._exclude_history:
            seen = tf.where(ids >= FIRST_ID, ids - FIRST_ID, -1)  # [B, T] item indices
            if indices is None:
                positions = tf.where(seen >= 0)  # [N, 2] (row, position)
                columns = tf.gather_nd(tf.cast(seen, tf.int64), positions)
                scores = tf.tensor_scatter_nd_update(
                    scores,
                    tf.stack([positions[:, 0], columns], axis=1),
                    tf.fill(tf.shape(columns), -np.inf),
                )
            else:
                is_seen = tf.reduce_any(
                    tf.equal(indices[:, :, None], tf.cast(seen, indices.dtype)[:, None, :]), axis=-1
                )
                scores = tf.where(is_seen, tf.constant(-np.inf, scores.dtype), scores)
        top_scores, top_columns = tf.math.top_k(scores, k=self._k)
        top_indices = (
            top_columns if indices is None else tf.gather(indices, top_columns, batch_dims=1)
        )
        valid = top_scores > -np.inf
        item_ids = self.index_to_raw.lookup(tf.cast(top_indices, tf.int64))
        outputs = {
            "item_ids": tf.where(valid, item_ids, ""),
            "scores": tf.where(valid, top_scores, tf.float32.min),
        }
        if self._history_attention is not None:
            weights = self._history_attention(model_input, tf.cast(top_indices, tf.int32) + FIRST_ID)
            outputs["history_attention"] = tf.where(valid[:, :, tf.newaxis], weights, tf.zeros_like(weights))
        return outputs

    def popular_when_unknown(self, outputs: dict, ids: tf.Tensor) -> dict:
        """Rows whose history holds no item the model knows get the most popular training items.

        A model queried with nothing it knows returns an arbitrary order (SASRec's all-padding
        query scores every item 0); popularity is the honest answer for a new user.
        """
        if self._popular is None:
            return outputs
        indices, scores = self._popular
        unknown = tf.logical_not(tf.reduce_any(ids >= FIRST_ID, axis=1))[:, tf.newaxis]
        outputs = dict(outputs)
        outputs["item_ids"] = tf.where(unknown, self.index_to_raw.lookup(indices)[tf.newaxis, :],
                                       outputs["item_ids"])
        outputs["scores"] = tf.where(unknown, scores[tf.newaxis, :], outputs["scores"])
        return outputs

    # --------------------------------------------------------------- signatures
    @tf.function(input_signature=[_HISTORY_SPEC])
    def serve(self, history: tf.Tensor) -> dict:
        ids = self.model_ids(history)
        model_input = self.left_padded(ids)
        if self.scann is None:
            scores = self._score(model_input)[:, FIRST_ID:]  # rows 0, 1 are never candidates
            return self.popular_when_unknown(self.finish(scores, None, ids, model_input), ids)
        query = self._encode(model_input)
        scores, indices = self.scann(query, k=self._scann_num_neighbors)
        # The ScaNN op leaves shapes unknown; fix them so the signature says [batch, k].
        scores = tf.reshape(scores, [-1, self._scann_num_neighbors])
        indices = tf.reshape(indices, [-1, self._scann_num_neighbors])
        return self.popular_when_unknown(self.finish(scores, indices, ids, model_input), ids)

    def query_embedding(self, history: tf.Tensor) -> dict:
        return {"query_embedding": self._encode(self.left_padded(self.model_ids(history)))}


def _without_id_table(model: tf.keras.Model) -> list:
    """The model's variables but its id table, which an export that serves another table never reads.

    Were a traced function still to read it, saving would fail (an untracked variable) rather
    than keep it.
    """
    id_table = model.encoder.embedding.item_embeddings.embeddings
    return [variable for variable in model.variables if variable is not id_table]


def _compressed_query(call: Any, table: CompressedItemTable, history: tf.Tensor) -> tf.Tensor:
    """The query `[B, D]` of a history whose items are read from the dequantized table."""
    return call(history, item_table=table.dequantized())


def _compressed_scores(call: Any, table: CompressedItemTable, history: tf.Tensor) -> tf.Tensor:
    """Scores `[B, vocab_size]` against the dequantized table, which also embeds the history.

    Rows 0 and 1 (padding, OOV) are scored too, with no bias against them: `serve` drops them.
    """
    items = table.dequantized()
    return tf.matmul(call(history, item_table=items), items, transpose_b=True)


def _reads_given_item_table(model: tf.keras.Model) -> bool:
    """Whether the model's encoder embeds a history from an `item_table` it is given (SASRec)."""
    encoder = getattr(model, "encoder", None)
    return encoder is not None and "item_table" in inspect.signature(encoder.call).parameters


def _content_specs(tower: tf.keras.layers.Layer) -> list:
    """The `embed_items` inputs: one `[batch]` (or `[batch, E]`) tensor per content modality."""
    specs = {"title": tf.TensorSpec([None], tf.string, name="title"),
             "genres": tf.TensorSpec([None], tf.string, name="genres"),
             "year": tf.TensorSpec([None], tf.int64, name="year"),
             "vectors": tf.TensorSpec([None, tower.vector_dim], tf.float32, name="vector")}
    return [specs[feature] for feature in tower.item_features]


def _embed_items(tower: tf.keras.layers.Layer, *inputs: tf.Tensor) -> dict:
    """Raw content -> item vectors in the candidate space, and each item's modality weights."""
    content = dict(zip(tower.item_features, inputs))
    vectors = content.get("vectors")
    # A request marks a missing vector with an all-zero row (the modality is then masked).
    present = None if vectors is None else tf.cast(tf.reduce_any(vectors != 0, axis=-1), tf.float32)
    embeddings, weights = tower.embed_raw(content.get("title"), content.get("genres"), content.get("year"),
                                          vectors, present)
    return {"item_embedding": embeddings, "modality_weights": weights}


def popularity_scores(model: tf.keras.Model) -> Optional[np.ndarray]:
    """`log(1 + training count)` of every id (`[vocab_size]`), for models that counted their
    training items (`adapt`); None for the others, or before training."""
    counts = getattr(model, "item_counts", None)
    if counts is None:
        return None
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 1 or counts[FIRST_ID:].sum() <= 0:
        return None
    scores = np.log1p(counts)
    scores[:FIRST_ID] = -np.inf
    return scores


def popular_items(model: tf.keras.Model, k: int) -> Optional[tuple[tf.Tensor, tf.Tensor]]:
    """The `k` most popular items' indices (model id - 2, int64) and their `popularity_scores`."""
    scores = popularity_scores(model)
    if scores is None:
        return None
    order = np.argsort(-scores[FIRST_ID:], kind="stable")[:k]  # ties: the lower id first, as top_k
    return tf.constant(order, tf.int64), tf.constant(scores[FIRST_ID:][order], tf.float32)


@dataclasses.dataclass(frozen=True)
class PreparedRetrieval:
    """A checked retrieval export, before anything is written (`prepare_retrieval`)."""

    k: int
    exclude_history: bool
    max_length: int
    raw_ids: list
    table: Optional[tf.Variable]  # the candidate table (None: a model without item embeddings)
    scann_layer: Optional[tf.keras.layers.Layer] = None
    scann_num_neighbors: int = 0
    quantize: Optional[str] = None  # how the saved item table is stored (None: float32)

    def module(self, model: tf.keras.Model, id_file: pathlib.Path) -> "_RetrievalModule":
        """The `tf.Module` to save (or to nest in a larger one); writes the raw-id asset `id_file`."""
        return _RetrievalModule(model, str(write_id_file(id_file, self.raw_ids)), self.k, self.exclude_history,
                                self.max_length, self.scann_layer, self.scann_num_neighbors,
                                with_encode=self.table is not None, quantize=self.quantize)

    def save_options(self) -> tf.saved_model.SaveOptions:
        return tf.saved_model.SaveOptions(namespace_whitelist=["Scann"] if self.scann_layer is not None else None)


def prepare_retrieval(
    model: tf.keras.Model,
    k: int,
    index: str,
    exclude_history: bool,
    vocabulary: Vocabulary,
    max_length: Optional[int] = None,
    scann_options: Optional[Mapping[str, Any]] = None,
    caller: str = "export_retrieval",
    k_name: str = "k",
    quantize: Optional[str] = None,
) -> PreparedRetrieval:
    """Checks a retrieval export's arguments and builds its index, before any file is touched.

    Args: as `export_retrieval`; `caller` and `k_name` name the public function and its
        argument `k` in error messages.

    Returns:
        A `PreparedRetrieval`, whose `module` builds the `tf.Module` to save.

    Raises:
        ValueError / TypeError / ImportError: as `export_retrieval`.
    """
    if index not in INDEXES:
        raise ValueError(f"{caller}: index must be one of {INDEXES}; got {index!r}.")
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise ValueError(f"{caller}: quantize must be None (a float32 item table) or one of {QUANTIZE_MODES}; "
                         f"got {quantize!r}.")
    if quantize is not None and index == "scann":
        raise ValueError(f"{caller}: quantize applies to index='brute_force' only (a ScaNN index keeps its own "
                         "float32 copy of the table to re-score candidates); drop quantize or the ScaNN index.")
    if not isinstance(vocabulary, Vocabulary):
        raise TypeError(
            f"{caller}: `vocabulary` must be the tf_attnrec Vocabulary the model was "
            f"trained with (load_model returns it); got {type(vocabulary).__name__}."
        )
    vocab_size = int(getattr(model, "vocab_size", -1))
    if vocab_size != vocabulary.size:
        raise ValueError(
            f"{caller}: the model scores {vocab_size} ids but the vocabulary has "
            f"{vocabulary.size} (num_items + 2); pass the vocabulary the model was trained with."
        )
    num_items = vocabulary.num_items
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= num_items:
        raise ValueError(f"{caller}: {k_name} must be an int in [1, {num_items}]; got {k!r}.")
    max_length = int(max_length or _model_max_length(model))
    if not model.built:  # a model that was never called has no variables to export yet
        model.score(tf.zeros([1, max_length], tf.int32))
    table = _candidate_embeddings(model)
    if index == "scann" and table is None:
        raise ValueError(
            f"{caller}: index='scann' needs a model with item embeddings; "
            f"{type(model).__name__} has none. Use index='brute_force'."
        )
    if quantize is not None and not _reads_given_item_table(model):
        why = (f"{type(model).__name__} has no item table" if table is None else
               f"{type(model.encoder).__name__} embeds the history from its own float32 table, which would be "
               "saved too")
        raise ValueError(f"{caller}: quantize={quantize!r} needs an encoder that reads the history's items from the "
                         f"compressed table (one taking `item_table`, as sasrec's); {why}. Export without quantize.")
    scann_layer, num_neighbors = None, 0
    if index == "scann":
        scann_layer, num_neighbors = _scann_index(
            table, k, max_length if exclude_history else 0, num_items, scann_options
        )
    return PreparedRetrieval(k, exclude_history, max_length, raw_id_strings(vocabulary), table,
                             scann_layer, num_neighbors, quantize)


def export_retrieval(
    model: tf.keras.Model,
    export_dir: PathLike,
    k: int = 10,
    index: str = "brute_force",
    exclude_history: bool = True,
    *,
    vocabulary: Vocabulary,
    max_length: Optional[int] = None,
    scann_options: Optional[Mapping[str, Any]] = None,
    quantize: Optional[str] = None,
    overwrite: bool = False,
) -> ExportSummary:
    """Writes a TF Serving SavedModel that maps raw-id histories to the top-k raw item ids.

    Signatures:
        * `serving_default`: input `history` string `[batch, None]` (raw ids, most recent
          last, "" = padding on either side; int raw ids are sent as their decimal strings)
          -> `item_ids` string `[batch, k]`, `scores` float32 `[batch, k]` (a history without
          any item the model knows, empty or unknown ids only, gets the k most popular training
          items, scored log(1 + count), for models that counted them); for `nais` also
          `history_attention` float32 `[batch, k, max_length]`, each returned item's weight of
          the most recent `max_length` non-empty history entries (right-aligned; 0 at padding).
        * `encode` (models with an item table): `history` -> `query_embedding` float32
          `[batch, D]`, for users who bring their own vector index over
          `assets/item_embeddings.npy` (row i = item on line i of `assets/item_ids.txt`).
        * `embed_items` (models with `item_features`): the raw content of items, one input per
          modality (`title` string, `genres` string "A|B", `year` int64, `vector` float32
          `[batch, E]`, an all-zero row = missing) -> `item_embedding` float32 `[batch, D]`, in
          the space of `query_embedding`, and `modality_weights` `[batch, M]` (id first, 0:
          a new item has no trained id). A new item's vector, added to an index over
          `item_embeddings.npy`, makes it recommendable without retraining.

    Args:
        model: A trained `SequentialRetrievalModel` (any model with `score(history)` for
            "brute_force"; `PopularityModel` exports without `encode`).
        export_dir: `serving/<model_name>/<version>`, version an integer folder.
        k: Items returned per history.
        index: "brute_force" (exact: matmul + `tf.math.top_k`, plain TensorFlow ops) or
            "scann" (approximate; needs the `ann` extra here and a ScaNN-enabled TF Serving).
        exclude_history: Leave the items of the (whole, untruncated) history out.
        vocabulary: The `Vocabulary` the model was trained with.
        max_length: History length the model reads (default: the model's own).
        scann_options: Overrides of the `tfrs.layers.factorized_top_k.ScaNN` settings
            (num_leaves, num_leaves_to_search, dimensions_per_block,
            num_reordering_candidates, training_iterations).
        quantize: Store the item table compressed: "float16", or "int8" (per-row symmetric:
            `scale = max|row| / 127`, int8 `round(row / scale)` plus a float32 scale per row).
            The graph reads it back as float32 for the history's items and the candidates alike,
            so the float32 table is not saved; the signatures are unchanged. Needs an encoder
            that takes `item_table` (sasrec) and `index="brute_force"`. A quantized export writes
            no `item_embeddings.npy` (a float32 copy is what it leaves out). None: float32.
        overwrite: Replace a non-empty `export_dir`.

    Returns:
        An `ExportSummary` (`print` it for the signatures, as `saved_model_cli` lists them).

    Raises:
        ValueError: bad `k`, `index`, `quantize`, `export_dir`, or a vocabulary that does not fit
            the model.
        ImportError: `index="scann"` without the scann package.

    Example:
        ```python
        summary = export_retrieval(model, "serving/sasrec/1", k=10, vocabulary=vocab)
        print(summary)
        served = tf.saved_model.load("serving/sasrec/1").signatures["serving_default"]
        served(history=tf.constant([["1193", "661", ""]]))["item_ids"]
        ```
    """
    prepared = prepare_retrieval(model, k, index, exclude_history, vocabulary, max_length, scann_options,
                                 quantize=quantize)
    export_dir = pathlib.Path(export_dir)
    model_name, version = validate_export_dir(export_dir, overwrite)
    with staged_export(export_dir, overwrite) as (staging, scratch):
        module = prepared.module(model, scratch / ITEM_IDS_FILE)
        signatures = {"serving_default": module.serve.get_concrete_function()}
        if prepared.table is not None:
            signatures["encode"] = module.encode.get_concrete_function()
        if hasattr(module, "embed_items"):
            signatures["embed_items"] = module.embed_items.get_concrete_function()
        tf.saved_model.save(module, str(staging), signatures=signatures, options=prepared.save_options())
        writes_embeddings = prepared.table is not None and quantize is None
        if writes_embeddings:
            np.save(staging / "assets" / ITEM_EMBEDDINGS_FILE,
                    np.asarray(prepared.table)[FIRST_ID:].astype(np.float32))

    files = {"item_ids": export_dir / "assets" / ITEM_IDS_FILE}
    if writes_embeddings:
        files["item_embeddings"] = export_dir / "assets" / ITEM_EMBEDDINGS_FILE
    compressed = {} if quantize is None else {"quantize": quantize, "item_table_bytes": module.item_table.stored_bytes}
    return ExportSummary(
        export_dir=export_dir,
        model_name=model_name,
        version=version,
        signatures=signature_infos(signatures),
        files=files,
        details={"index": index, "k": k, "exclude_history": exclude_history,
                 "max_length": prepared.max_length, "num_items": vocabulary.num_items, **compressed},
    )


def _scann_index(
    table: tf.Variable,
    k: int,
    extra: int,
    num_items: int,
    scann_options: Optional[Mapping[str, Any]],
) -> tuple[tf.keras.layers.Layer, int]:
    """A tfrs ScaNN layer over items 2.. returning `k + extra` neighbours (extra = seen items)."""
    try:
        import tensorflow_recommenders as tfrs
        from tensorflow_recommenders.layers.factorized_top_k import _HAVE_SCANN
    except ImportError as error:  # pragma: no cover - tfrs is a hard dependency
        raise ImportError("index='scann' needs tensorflow-recommenders.") from error
    if not _HAVE_SCANN:
        raise ImportError(
            "index='scann' needs the ScaNN library: pip install 'tf-attnrec[ann]' "
            "(scann==1.4.2), or export with index='brute_force'."
        )
    num_neighbors = min(k + extra, num_items)
    options = default_scann_options(num_items, num_neighbors)
    unknown = sorted(set(scann_options or {}) - set(options))
    if unknown:
        raise ValueError(
            f"export_retrieval: unknown scann_options {unknown}; expected some of "
            f"{sorted(options)}."
        )
    options.update(scann_options or {})
    layer = tfrs.layers.factorized_top_k.ScaNN(k=num_neighbors, **options)
    layer.index(tf.convert_to_tensor(table)[FIRST_ID:])  # result indices = model id - 2
    return layer, num_neighbors


def export_run(
    run_dir: PathLike,
    export_dir: PathLike,
    k: int = 10,
    index: str = "brute_force",
    exclude_history: bool = True,
    **kwargs: Any,
) -> ExportSummary:
    """`export_retrieval` for a run directory written by `save_model` / `train_sequential`.

    Args:
        run_dir: Directory with `model_config.json`, `weights/` and `vocabulary.json`.
        export_dir: `serving/<model_name>/<version>`.
        k: Items returned per history.
        index: "brute_force" or "scann".
        exclude_history: Leave the items of the history out of the results.
        **kwargs: `max_length`, `scann_options`, `quantize`, `overwrite` (see `export_retrieval`).

    Returns:
        The `ExportSummary`.

    Example:
        ```python
        print(export_run("runs/sasrec_ml1m", "serving/sasrec/1", k=20))
        ```
    """
    from tf_attnrec.runs import load_model  # the models package imports every family

    model, vocabulary, config = load_model(run_dir)
    if vocabulary is None:
        raise FileNotFoundError(
            f"{pathlib.Path(run_dir) / 'vocabulary.json'} not found: export needs the vocabulary "
            "to map raw ids; save the run with save_model(model, run_dir, vocabulary)."
        )
    kwargs.setdefault("max_length", config.get("max_length"))
    return export_retrieval(
        model, export_dir, k=k, index=index, exclude_history=exclude_history,
        vocabulary=vocabulary, **kwargs,
    )
