"""Export a ranking model as a TF Serving SavedModel: raw features in, click probability out.

The graph owns everything between a request and its probability: the raw-value lookups of
the item, gender, age and occupation vocabularies (asset files, unknown -> OOV id 1), the
compaction of ""-padded histories into the model's left-padded form (most recent
`max_length` items kept), the candidate's and the history items' genres and years (gathered
by item id from the run's `item_features.npz` tables, exactly as `RankingData` does), and the
model itself. Only stock TensorFlow ops are used, so TF Serving (and a process that imports
nothing but TensorFlow) loads it.

Signatures (B = batch, L = the model's `max_length`):

* `serving_default`: inputs `user_id` string [B], `gender` string [B], `age` string [B],
  `occupation` string [B], `history` string [B, None], `item_id` string [B];
  output `probability` float32 [B].
* `explain` (models with `attention_weights`: `din`, `bst`): the same inputs; outputs
  `probability` float32 [B] and `attention_weights` float32 [B, L], aligned with the
  history as the model sees it (left-padded: the last column is the most recent item;
  0 at padding).

Every categorical value is sent as a string: integer codes as their decimal spelling
("25", "7"), names as they are ("M", "technician"). `history` holds raw item ids, most
recent last; "" is padding and may appear anywhere. `user_id` is accepted so requests can
carry it, but no ranking model reads it (users are described by their attributes).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Mapping

import numpy as np
import tensorflow as tf

from tf_attnrec.export import common
from tf_attnrec.export.summary import ExportSummary
from tf_attnrec.data import schema
from tf_attnrec.models.ranking import RankingModel
from tf_attnrec.runs import ITEM_FEATURES_FILE, VOCABULARIES_FILE, load_feature_tables, load_model
from tf_attnrec.data.features import FeatureVocabularies

ID_FILES = {  # vocabulary -> asset file (line i = raw value of id i + 2)
    "item": "item_ids.txt",
    "gender": "gender_values.txt",
    "age": "age_values.txt",
    "occupation": "occupation_values.txt",
}
USER_INPUT_SIGNATURE = [  # a request's user side (the cascade's whole request)
    tf.TensorSpec([None], tf.string, name="user_id"),
    tf.TensorSpec([None], tf.string, name="gender"),
    tf.TensorSpec([None], tf.string, name="age"),
    tf.TensorSpec([None], tf.string, name="occupation"),
    tf.TensorSpec([None, None], tf.string, name="history"),
]
_INPUT_SIGNATURE = [*USER_INPUT_SIGNATURE, tf.TensorSpec([None], tf.string, name="item_id")]
SERVING_INPUTS = tuple(spec.name for spec in _INPUT_SIGNATURE)


class _RankingModule(tf.Module):
    """What gets saved: lookup tables, item feature tables, the model's variables, signatures.

    The Keras model is reached through closures, not tracked as an attribute, so the
    SavedModel holds plain TensorFlow functions and variables and loads without Keras or
    tf_attnrec.
    """

    def __init__(
        self,
        model: RankingModel,
        id_files: Mapping[str, pathlib.Path],
        item_genres: np.ndarray,
        item_year: np.ndarray,
    ) -> None:
        super().__init__(name="ranking")
        self.model_variables = list(model.variables)
        self.item_table = common.raw_id_table(id_files["item"])
        self.gender_table = common.raw_id_table(id_files["gender"])
        self.age_table = common.raw_id_table(id_files["age"])
        self.occupation_table = common.raw_id_table(id_files["occupation"])
        self.item_genres = tf.Variable(item_genres, trainable=False, name="item_genres")
        self.item_year = tf.Variable(item_year, trainable=False, name="item_year")
        self._max_length = int(model.max_length)
        self._predict_proba = model.predict_proba
        self._attention_weights = getattr(model, "attention_weights", None)
        if callable(self._attention_weights):  # only models with history attention explain
            self.explain = tf.function(self._explain, input_signature=_INPUT_SIGNATURE)

    def features(
        self,
        gender: tf.Tensor,
        age: tf.Tensor,
        occupation: tf.Tensor,
        history: tf.Tensor,
        item_id: tf.Tensor,
    ) -> dict:
        """Raw request tensors -> the model's feature dict (`schema.MODEL_FEATURES`)."""
        batch = tf.shape(item_id)[0]
        for name, tensor in (("gender", gender), ("age", age), ("occupation", occupation),
                             ("history", history)):
            tf.debugging.assert_equal(
                tf.shape(tensor)[0], batch,
                message=f"`{name}` and `item_id` must have the same batch size (one row per example)",
            )
        user = self.user_ids(gender, age, occupation, history)
        return self.model_features(user, common.lookup_ids(self.item_table, item_id, empty_is_padding=False))

    def user_ids(self, gender: tf.Tensor, age: tf.Tensor, occupation: tf.Tensor, history: tf.Tensor) -> dict:
        """A request's user side as model ids: `[B]` attributes and the left-padded `[B, L]` history."""
        return {
            schema.USER_GENDER: common.lookup_ids(self.gender_table, gender, empty_is_padding=False),
            schema.USER_AGE: common.lookup_ids(self.age_table, age, empty_is_padding=False),
            schema.USER_OCCUPATION: common.lookup_ids(self.occupation_table, occupation, empty_is_padding=False),
            schema.HISTORY_ITEM_IDS: common.left_padded(
                common.lookup_ids(self.item_table, history, empty_is_padding=True), self._max_length),
        }

    def model_features(self, user: Mapping[str, tf.Tensor], item_ids: tf.Tensor) -> dict:
        """`user_ids` rows and `[B]` candidate item ids -> the model's feature dict (genres, years added)."""
        history_ids = user[schema.HISTORY_ITEM_IDS]
        return {
            **user,
            schema.ITEM_ID: item_ids,
            schema.ITEM_GENRES: tf.gather(self.item_genres, item_ids),
            schema.ITEM_YEAR: tf.gather(self.item_year, item_ids),
            schema.HISTORY_GENRES: tf.gather(self.item_genres, history_ids),
            schema.HISTORY_YEAR: tf.gather(self.item_year, history_ids),
        }

    def candidate_probabilities(self, gender: tf.Tensor, age: tf.Tensor, occupation: tf.Tensor,
                                history: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor:
        """The probability `[B, C]` of each user's `[B, C]` raw candidate ids (the cascade's ranking stage).

        The user side is looked up once per user and repeated per candidate as ids, so a
        request of B users and C candidates scores B * C model rows.
        """
        num_candidates = tf.shape(candidates)[1]
        user = {name: tf.repeat(ids, num_candidates, axis=0)
                for name, ids in self.user_ids(gender, age, occupation, history).items()}
        item_ids = common.lookup_ids(self.item_table, tf.reshape(candidates, [-1]), empty_is_padding=False)
        return tf.reshape(self._probability(self.model_features(user, item_ids)), tf.shape(candidates))

    def _probability(self, features: dict) -> tf.Tensor:
        return tf.reshape(tf.cast(self._predict_proba(features), tf.float32), [-1])

    @tf.function(input_signature=_INPUT_SIGNATURE)
    def serve(self, user_id, gender, age, occupation, history, item_id) -> dict:
        del user_id  # accepted for clients, read by no ranking model
        features = self.features(gender, age, occupation, history, item_id)
        return {"probability": self._probability(features)}

    def _explain(self, user_id, gender, age, occupation, history, item_id) -> dict:
        del user_id
        features = self.features(gender, age, occupation, history, item_id)
        weights = self._attention_weights(features)
        return {
            "probability": self._probability(features),
            "attention_weights": tf.reshape(tf.cast(weights, tf.float32), [-1, self._max_length]),
        }


def _check_fits(model: RankingModel, vocabularies: FeatureVocabularies, item_genres: np.ndarray,
                item_year: np.ndarray) -> None:
    if not isinstance(model, RankingModel):
        raise TypeError(
            f"export_ranking_model: expected a tf_attnrec RankingModel (din, bst, ...); got "
            f"{type(model).__name__}. Export retrieval models with tf_attnrec.export.export_retrieval."
        )
    if not isinstance(vocabularies, FeatureVocabularies):
        raise TypeError(
            "export_ranking_model: `vocabularies` must be the FeatureVocabularies the model was "
            f"trained with (tf_attnrec.runs.load_feature_tables returns them); got {type(vocabularies).__name__}."
        )
    expected, actual = dict(model.feature_sizes), vocabularies.sizes()
    wrong = {key: (expected.get(key), size) for key, size in actual.items() if expected.get(key) != size}
    if wrong:
        raise ValueError(
            f"export_ranking_model: model table sizes and vocabulary sizes differ ({{feature: "
            f"(model, vocabulary)}} = {wrong}); pass the vocabularies the model was trained with."
        )
    shape = (vocabularies.item.size, vocabularies.max_genres)
    if item_genres.shape != shape or item_year.shape != shape[:1]:
        raise ValueError(
            f"export_ranking_model: item tables of shape {item_genres.shape} / {item_year.shape} "
            f"do not match the vocabularies (expected {shape} / {shape[:1]}); pass "
            "RankingData.item_genres and RankingData.item_year (or the run's item_features.npz)."
        )


@dataclasses.dataclass(frozen=True)
class PreparedRanking:
    """A checked ranking export, before anything is written (`prepare_ranking`)."""

    raw_values: dict  # vocabulary name -> its raw values, in id order (the asset files' lines)
    item_genres: np.ndarray
    item_year: np.ndarray

    def module(self, model: RankingModel, scratch: pathlib.Path) -> _RankingModule:
        """The `tf.Module` to save (or to nest in a larger one); writes its raw-value assets to `scratch`."""
        id_files = {key: common.write_id_file(scratch / name, self.raw_values[key]) for key, name in ID_FILES.items()}
        return _RankingModule(model, id_files, self.item_genres, self.item_year)


def prepare_ranking(model: RankingModel, vocabularies: FeatureVocabularies, item_genres: np.ndarray,
                    item_year: np.ndarray) -> PreparedRanking:
    """Checks that a ranking model, its vocabularies and item tables fit, before any file is touched.

    Raises:
        TypeError / ValueError: as `export_ranking_model`.
    """
    item_genres = np.asarray(item_genres, np.int32)
    item_year = np.asarray(item_year, np.int32)
    _check_fits(model, vocabularies, item_genres, item_year)
    raw_values = {key: common.raw_id_strings(getattr(vocabularies, key), f"{key} values") for key in ID_FILES}
    if not model.built:  # variables are created by the first call
        model.build_variables()
    return PreparedRanking(raw_values, item_genres, item_year)


def export_ranking_model(
    model: RankingModel,
    export_dir: common.PathLike,
    *,
    vocabularies: FeatureVocabularies,
    item_genres: np.ndarray,
    item_year: np.ndarray,
    overwrite: bool = False,
) -> ExportSummary:
    """Writes a TF Serving SavedModel mapping raw request features to a click probability.

    See the module docstring for the signatures (`serving_default`, and `explain` for models
    with `attention_weights`). Unknown values of any input map to the OOV id 1 and never
    fail; an empty (or all-"") history is valid.

    Args:
        model: A trained `RankingModel` (any of the ranking zoo).
        export_dir: `serving/<model_name>/<version>`, version an integer folder.
        vocabularies: The `FeatureVocabularies` the model was trained with.
        item_genres: int32 `[item.size, G]` genre ids per item id (`RankingData.item_genres`).
        item_year: int32 `[item.size]` year id per item id (`RankingData.item_year`).
        overwrite: Replace a non-empty `export_dir`.

    Returns:
        An `ExportSummary` (`print` it for the signatures).

    Raises:
        TypeError / ValueError: a model, vocabularies or tables that do not fit together, or an
            `export_dir` without an integer version folder.
        FileExistsError: `export_dir` is not empty and `overwrite` is False.

    Example:
        ```python
        model, _, _ = load_model("runs/din")
        vocabularies, tables = load_feature_tables("runs/din")
        export_ranking_model(model, "serving/din/1", vocabularies=vocabularies, **tables)
        ```
    """
    prepared = prepare_ranking(model, vocabularies, item_genres, item_year)
    item_genres, item_year = prepared.item_genres, prepared.item_year
    export_dir = pathlib.Path(export_dir)
    model_name, version = common.validate_export_dir(export_dir, overwrite)
    with common.staged_export(export_dir, overwrite) as (staging, scratch):
        module = prepared.module(model, scratch)
        signatures = {"serving_default": module.serve.get_concrete_function()}
        if hasattr(module, "explain"):
            signatures["explain"] = module.explain.get_concrete_function()
        tf.saved_model.save(module, str(staging), signatures=signatures)
        (staging / "assets" / VOCABULARIES_FILE).write_text(vocabularies.to_json(), encoding="utf-8")
        np.savez(staging / "assets" / ITEM_FEATURES_FILE, item_genres=item_genres, item_year=item_year)

    assets = export_dir / "assets"
    files = {key: assets / name for key, name in ID_FILES.items()}
    files["vocabularies"] = assets / VOCABULARIES_FILE
    files["item_features"] = assets / ITEM_FEATURES_FILE
    return ExportSummary(
        export_dir=export_dir,
        model_name=model_name,
        version=version,
        signatures=common.signature_infos(signatures),
        files=files,
        details={"model_class": type(model).__name__, "max_length": int(model.max_length),
                 "num_items": vocabularies.item.num_items, "note": "user_id is accepted but not used by the model"},
    )


def export_ranker(
    run_dir: common.PathLike,
    output: common.PathLike,
    overwrite: bool = False,
) -> ExportSummary:
    """`export_ranking_model` for a ranking run directory (`tf-attnrec train --model din ...`).

    Args:
        run_dir: Directory written by `train_ranker(run_dir=...)` or `tf-attnrec train`.
        output: `serving/<model_name>/<version>`, version an integer folder.
        overwrite: Replace a non-empty `output`.

    Returns:
        The `ExportSummary`.

    Raises:
        FileNotFoundError: `run_dir` is not a ranking run directory (the message names the
            missing file).

    Example:
        ```python
        print(export_ranker("runs/din_ml1m", "serving/din/1"))
        served = tf.saved_model.load("serving/din/1").signatures["serving_default"]
        served(user_id=tf.constant(["42"]), gender=tf.constant(["F"]), age=tf.constant(["25"]),
               occupation=tf.constant(["7"]), history=tf.constant([["1193", "661", ""]]),
               item_id=tf.constant(["2355"]))["probability"]
        ```
    """
    model, _, _ = load_model(run_dir)
    vocabularies, tables = load_feature_tables(run_dir)
    return export_ranking_model(model, output, vocabularies=vocabularies, overwrite=overwrite, **tables)


__all__ = [
    "ID_FILES",
    "SERVING_INPUTS",
    "export_ranker",
    "export_ranking_model",
]
