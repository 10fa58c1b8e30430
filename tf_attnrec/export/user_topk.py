"""TF Serving export of a collaborative model: raw `user_id` in, top-k raw item ids out.

A transductive graph model (`lightgcn`, `gat_cf`) knows its users by id. Propagation over the
training graph is done once, at export: the SavedModel holds the final user and item
embeddings, each user's training items (a ragged table, to exclude them) and the training
popularity of each item. An unknown user (or "") gets the most popular items, marked
`known_user=False`, never an error. Only stock TensorFlow ops are used.
"""

from __future__ import annotations

import os
import pathlib
from typing import Union

import numpy as np
import tensorflow as tf

from tf_attnrec.data.vocabulary import Vocabulary
from tf_attnrec.export.common import (index_to_raw_table, raw_id_strings, raw_id_table, signature_infos, staged_export,
                                      validate_export_dir, write_id_file)
from tf_attnrec.export.summary import ExportSummary
from tf_attnrec.models.graph_cf import GraphCFModel

PathLike = Union[str, os.PathLike]
ITEM_IDS_FILE = "item_ids.txt"
USER_IDS_FILE = "user_ids.txt"
_USER_SPEC = tf.TensorSpec([None], tf.string, name="user_id")


class _UserTopKModule(tf.Module):
    """Constants and tables of the export; no Keras object, so it loads with TensorFlow alone."""

    def __init__(self, user_vectors: np.ndarray, item_vectors: np.ndarray, seen: tf.RaggedTensor,
                 popularity: np.ndarray, item_ids_path: str, user_ids_path: str, k: int,
                 exclude_history: bool) -> None:
        super().__init__(name="user_topk")
        self.user_vectors = tf.Variable(user_vectors, trainable=False, name="user_vectors")
        self.item_vectors = tf.Variable(item_vectors, trainable=False, name="item_vectors")
        self.seen_values = tf.Variable(seen.values, trainable=False, name="seen_items")
        self.seen_splits = tf.Variable(seen.row_splits, trainable=False, name="seen_row_splits")
        self.popularity = tf.Variable(popularity, trainable=False, name="popularity")
        self.users = raw_id_table(user_ids_path)
        self.index_to_raw = index_to_raw_table(item_ids_path)
        self._k = k
        self._exclude_history = exclude_history

    @tf.function(input_signature=[_USER_SPEC])
    def serve(self, user_id: tf.Tensor) -> dict:
        rows = self.users.lookup(user_id)  # -1: unknown user
        known = rows >= 0
        safe = tf.maximum(rows, 0)
        personal = tf.matmul(tf.gather(self.user_vectors, safe), self.item_vectors, transpose_b=True)
        scores = tf.where(known[:, tf.newaxis], personal, self.popularity[tf.newaxis, :])
        if self._exclude_history:
            seen = tf.RaggedTensor.from_row_splits(self.seen_values, self.seen_splits, validate=False)
            seen = tf.gather(seen, safe)
            # Unknown users have seen nothing: empty their rows (the rows stay, so row b is user b).
            seen = tf.ragged.boolean_mask(seen, tf.logical_and(tf.ones_like(seen, tf.bool), known[:, tf.newaxis]))
            positions = tf.stack([tf.cast(seen.value_rowids(), tf.int64), tf.cast(seen.flat_values, tf.int64)], 1)
            scores = tf.tensor_scatter_nd_update(scores, positions, tf.fill(tf.shape(positions)[:1], -np.inf))
        top_scores, top_items = tf.math.top_k(scores, k=self._k)
        valid = top_scores > -np.inf
        item_ids = self.index_to_raw.lookup(tf.cast(top_items, tf.int64))
        return {"item_ids": tf.where(valid, item_ids, ""), "scores": tf.where(valid, top_scores, tf.float32.min),
                "known_user": known}


def export_user_topk(
    model: GraphCFModel,
    export_dir: PathLike,
    k: int = 10,
    exclude_history: bool = True,
    *,
    vocabulary: Vocabulary,
    user_vocabulary: Vocabulary,
    overwrite: bool = False,
) -> ExportSummary:
    """Writes a SavedModel whose `serving_default` maps raw user ids to their top-k items.

    Signature `serving_default`: `user_id` string `[batch]` -> `item_ids` string `[batch, k]`,
    `scores` float32 `[batch, k]` and `known_user` bool `[batch]` (False: the user was not in
    training and got the most popular items, scored by log(1 + training interactions)).

    Args:
        model: a trained `GraphCFModel` with its training graph set.
        export_dir: `serving/<model_name>/<version>`.
        k: items per user.
        exclude_history: leave each known user's training items out.
        vocabulary: the item `Vocabulary` of the run.
        user_vocabulary: the user `Vocabulary` of the run (user row = id - 2).
        overwrite: replace a non-empty `export_dir`.

    Returns:
        The printable `ExportSummary`.

    Example:
        ```python
        export_user_topk(model, "serving/lightgcn/1", vocabulary=items, user_vocabulary=users)
        tf.saved_model.load("serving/lightgcn/1").signatures["serving_default"](user_id=tf.constant(["1"]))
        ```
    """
    graph = model.graph
    if vocabulary.size != model.vocab_size or user_vocabulary.num_items != model.num_users:
        raise ValueError(
            f"export_user_topk: the model has {model.num_users} users and {model.vocab_size} item ids but the "
            f"vocabularies have {user_vocabulary.num_items} and {vocabulary.size}; pass the run's vocabularies.")
    if not isinstance(k, int) or not 1 <= k <= vocabulary.num_items:
        raise ValueError(f"export_user_topk: k must be an int in [1, {vocabulary.num_items}]; got {k!r}.")
    user_final, item_final = model.final_embeddings(training=False)
    seen = tf.RaggedTensor.from_row_lengths(graph.item_index.astype(np.int64), graph.user_degree())
    popularity = np.log1p(graph.item_degree()).astype(np.float32)
    item_raw, user_raw = raw_id_strings(vocabulary), raw_id_strings(user_vocabulary, "user ids")
    export_dir = pathlib.Path(export_dir)
    model_name, version = validate_export_dir(export_dir, overwrite)
    with staged_export(export_dir, overwrite) as (staging, scratch):
        module = _UserTopKModule(
            np.asarray(user_final, np.float32), np.asarray(item_final, np.float32), seen, popularity,
            str(write_id_file(scratch / ITEM_IDS_FILE, item_raw)), str(write_id_file(scratch / USER_IDS_FILE, user_raw)),
            k, exclude_history)
        signatures = {"serving_default": module.serve.get_concrete_function()}
        tf.saved_model.save(module, str(staging), signatures=signatures)
    return ExportSummary(
        export_dir=export_dir, model_name=model_name, version=version, signatures=signature_infos(signatures),
        files={"item_ids": export_dir / "assets" / ITEM_IDS_FILE, "user_ids": export_dir / "assets" / USER_IDS_FILE},
        details={"k": k, "exclude_history": exclude_history, "num_items": vocabulary.num_items,
                 "num_users": model.num_users, "unknown_user": "most popular items"},
    )


__all__ = ["export_user_topk"]
