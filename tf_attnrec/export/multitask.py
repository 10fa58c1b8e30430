"""TF Serving export of a multi-task model: raw `user_id` and `item_id` in, every task's answer out.

One SavedModel, one signature, a named output per task: the user's top-k items (retrieval),
the predicted rating and the click probability of the given item, and the gate weights that
say which experts each task attended to. An unknown user (or "") gets the most popular
training items and the training rows' mean rating and click rate, marked `known_user=False`;
a known user with an unknown item gets the same priors for that item (`known_item=False`).
Nothing fails on an id it has not seen.
"""

from __future__ import annotations

import os
import pathlib
from typing import Union

import numpy as np
import tensorflow as tf

from tf_attnrec.data.vocabulary import FIRST_ID, Vocabulary
from tf_attnrec.export.common import (index_to_raw_table, lookup_ids, raw_id_strings, raw_id_table, signature_infos,
                                      staged_export, validate_export_dir, write_id_file)
from tf_attnrec.export.summary import ExportSummary
from tf_attnrec.models.multitask import MultiTaskModel

PathLike = Union[str, os.PathLike]
ITEM_IDS_FILE = "item_ids.txt"
USER_IDS_FILE = "user_ids.txt"
_SPECS = [tf.TensorSpec([None], tf.string, name="user_id"), tf.TensorSpec([None], tf.string, name="item_id")]


class _MultiTaskModule(tf.Module):
    def __init__(self, model: MultiTaskModel, item_ids_path: str, user_ids_path: str, k: int) -> None:
        super().__init__(name="multitask")
        self.model = model
        self.users = raw_id_table(user_ids_path)
        self.items = raw_id_table(item_ids_path)
        self.index_to_raw = index_to_raw_table(item_ids_path)
        self._k = k

    @tf.function(input_signature=_SPECS)
    def serve(self, user_id: tf.Tensor, item_id: tf.Tensor) -> dict:
        model = self.model
        users = lookup_ids(self.users, user_id, empty_is_padding=False)
        items = lookup_ids(self.items, item_id, empty_is_padding=False)
        known_user, known_item = users >= FIRST_ID, items >= FIRST_ID
        vectors = model.user_vectors(users)
        outputs = model.heads(vectors["task_outputs"], items)

        personal = model.catalogue_scores(vectors["task_outputs"])
        popular = tf.math.log1p(model.item_counts)[tf.newaxis, :]
        scores = tf.where(known_user[:, tf.newaxis], personal, popular)
        scores = scores[:, FIRST_ID:]  # padding and OOV are never recommended
        top_scores, top_index = tf.math.top_k(scores, k=self._k)

        known_pair = known_user & known_item
        rating = tf.where(known_pair, outputs["rating"], model.rating_prior)
        click = tf.where(known_pair, outputs["click_probability"], model.click_prior)
        gates = tf.where(known_user[:, tf.newaxis, tf.newaxis], vectors["task_gates"], 0.0)
        return {"top_k_item_ids": self.index_to_raw.lookup(tf.cast(top_index, tf.int64)), "top_k_scores": top_scores,
                "rating": rating, "click_probability": click, "task_gates": gates,
                "known_user": known_user, "known_item": known_item}


def export_multitask(
    model: MultiTaskModel,
    export_dir: PathLike,
    k: int = 10,
    *,
    vocabulary: Vocabulary,
    user_vocabulary: Vocabulary,
    overwrite: bool = False,
) -> ExportSummary:
    """Writes a SavedModel whose `serving_default` answers all three tasks for raw ids.

    Signature `serving_default`: `user_id`, `item_id` string `[batch]` -> `top_k_item_ids`
    string `[batch, k]` and `top_k_scores` float32 `[batch, k]` (the user's retrieval top-k over
    the whole catalogue, nothing excluded), `rating` and `click_probability` float32 `[batch]`
    (for the given item), `task_gates` float32 `[batch, 3, experts per gate]` (retrieval,
    rating, click; zeros for an unknown user), `known_user` and `known_item` bool `[batch]`.

    Args:
        model: a trained `MultiTaskModel` (its priors set by `train_multitask`).
        export_dir: `serving/<model_name>/<version>`.
        k: items per user.
        vocabulary: the item `Vocabulary` of the run.
        user_vocabulary: the user `Vocabulary` of the run.
        overwrite: replace a non-empty `export_dir`.

    Returns:
        The printable `ExportSummary`.

    Example:
        ```python
        export_multitask(model, "serving/mmoe/1", vocabulary=items, user_vocabulary=users)
        served = tf.saved_model.load("serving/mmoe/1").signatures["serving_default"]
        served(user_id=tf.constant(["1"]), item_id=tf.constant(["50"]))["rating"]
        ```
    """
    if vocabulary.size != model.vocab_size or user_vocabulary.num_items != model.num_users:
        raise ValueError(
            f"export_multitask: the model has {model.num_users} users and {model.vocab_size} item ids but the "
            f"vocabularies have {user_vocabulary.num_items} and {vocabulary.size}; pass the run's vocabularies.")
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= vocabulary.num_items:
        raise ValueError(f"export_multitask: k must be an int in [1, {vocabulary.num_items}]; got {k!r}.")
    item_raw, user_raw = raw_id_strings(vocabulary), raw_id_strings(user_vocabulary, "user ids")
    export_dir = pathlib.Path(export_dir)
    model_name, version = validate_export_dir(export_dir, overwrite)
    with staged_export(export_dir, overwrite) as (staging, scratch):
        module = _MultiTaskModule(model, str(write_id_file(scratch / ITEM_IDS_FILE, item_raw)),
                                  str(write_id_file(scratch / USER_IDS_FILE, user_raw)), k)
        signatures = {"serving_default": module.serve.get_concrete_function()}
        tf.saved_model.save(module, str(staging), signatures=signatures)
    return ExportSummary(
        export_dir=export_dir, model_name=model_name, version=version, signatures=signature_infos(signatures),
        files={"item_ids": export_dir / "assets" / ITEM_IDS_FILE, "user_ids": export_dir / "assets" / USER_IDS_FILE},
        details={"k": k, "num_items": vocabulary.num_items, "num_users": model.num_users,
                 "unknown_user": "most popular items; mean training rating and click rate",
                 "unknown_item": "mean training rating and click rate"},
    )


__all__ = ["export_multitask"]
