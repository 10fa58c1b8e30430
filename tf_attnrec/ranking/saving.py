"""Save / load a trained ranking model as a run directory: config + weights + feature tables.

A ranking run directory holds everything needed to score raw requests without the dataset:

* `model_config.json`: `{"class_name", "config", "max_length", "extra"}` (as for sequential
  runs, so one `model_config.json` reader tells the two kinds apart by `class_name`);
* `weights/model.*`: a TensorFlow checkpoint of the model's variables;
* `feature_vocabularies.json`: the `FeatureVocabularies` (raw value -> id per feature);
* `item_features.npz`: per item id its genre ids `[item.size, G]` and year id `[item.size]`,
  the tables that turn a raw item id into the model's item fields at serving time.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Mapping, Optional, Union

import numpy as np
import tensorflow as tf

from tf_attnrec.ranking import schema
from tf_attnrec.ranking.base import RankingModel
from tf_attnrec.ranking.vocabularies import FeatureVocabularies

PathLike = Union[str, os.PathLike]
CONFIG_FILE = "model_config.json"
WEIGHTS_PREFIX = "weights/model"
VOCABULARIES_FILE = "feature_vocabularies.json"
ITEM_FEATURES_FILE = "item_features.npz"


def _ranking_classes() -> dict[str, type]:
    from tf_attnrec.ranking.zoo import RANKING_MODELS

    return {model_class.__name__: model_class for model_class in RANKING_MODELS.values()}


def is_ranking_run(run_dir: PathLike) -> bool:
    """True when `run_dir/model_config.json` describes a ranking model."""
    path = pathlib.Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        return False
    return json.loads(path.read_text()).get("class_name") in _ranking_classes()


def build_ranker(model: RankingModel, max_genres: int) -> None:
    """Creates the variables by scoring one all-padding example."""
    length, genres = model.max_length, int(max_genres)
    dummy = {name: tf.zeros([1], tf.int32) for name in (*schema.USER_FEATURES, schema.ITEM_ID, schema.ITEM_YEAR)}
    dummy[schema.ITEM_GENRES] = tf.zeros([1, genres], tf.int32)
    dummy[schema.HISTORY_ITEM_IDS] = tf.zeros([1, length], tf.int32)
    dummy[schema.HISTORY_GENRES] = tf.zeros([1, length, genres], tf.int32)
    dummy[schema.HISTORY_YEAR] = tf.zeros([1, length], tf.int32)
    model(dummy, training=False)


def save_ranker(
    model: RankingModel,
    run_dir: PathLike,
    vocabularies: FeatureVocabularies,
    item_genres: np.ndarray,
    item_year: np.ndarray,
    extra: Optional[Mapping[str, Any]] = None,
) -> pathlib.Path:
    """Writes a ranking run directory (see the module docstring).

    Args:
        model: A trained `RankingModel` (`din`, `bst`, ...).
        run_dir: Directory to write (created if missing; files are overwritten).
        vocabularies: The `FeatureVocabularies` the model was trained with.
        item_genres: `RankingData.item_genres`, int32 `[item.size, G]`.
        item_year: `RankingData.item_year`, int32 `[item.size]`.
        extra: JSON-serialisable extras stored under "extra" (zoo name, data config).

    Returns:
        The run directory path.

    Example:
        ```python
        save_ranker(model, "runs/din", data.vocabularies, data.item_genres, data.item_year)
        model, vocabularies, item_tables, config = load_ranker("runs/din")
        ```
    """
    if type(model).__name__ not in _ranking_classes():
        raise TypeError(f"save_ranker supports {sorted(_ranking_classes())}; got {type(model).__name__}.")
    item_genres, item_year = np.asarray(item_genres, np.int32), np.asarray(item_year, np.int32)
    if item_genres.shape != (vocabularies.item.size, vocabularies.max_genres) or item_year.shape != (
        vocabularies.item.size,
    ):
        raise ValueError(
            f"item tables of shape {item_genres.shape} / {item_year.shape} do not match the "
            f"vocabularies ({vocabularies.item.size} items, {vocabularies.max_genres} genres); pass "
            "RankingData.item_genres and RankingData.item_year."
        )
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "class_name": type(model).__name__,
        "config": model.get_config(),
        "max_length": model.max_length,
        "extra": dict(extra or {}),
    }
    (run_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str))
    model.save_weights(str(run_dir / WEIGHTS_PREFIX))
    (run_dir / VOCABULARIES_FILE).write_text(vocabularies.to_json())
    np.savez(run_dir / ITEM_FEATURES_FILE, item_genres=item_genres, item_year=item_year)
    return run_dir


def load_ranker(
    run_dir: PathLike,
) -> tuple[RankingModel, FeatureVocabularies, dict[str, np.ndarray], dict]:
    """Rebuilds a ranking model saved by `save_ranker` and restores its weights.

    Args:
        run_dir: A directory written by `save_ranker`.

    Returns:
        `(model, vocabularies, {"item_genres", "item_year"}, config dict)`.

    Raises:
        FileNotFoundError: a file of the run directory is missing (the message names it).
        ValueError: the config is not a ranking model's.
    """
    run_dir = pathlib.Path(run_dir)
    for name in (CONFIG_FILE, VOCABULARIES_FILE, ITEM_FEATURES_FILE, WEIGHTS_PREFIX + ".index"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(
                f"{run_dir / name} not found: {run_dir} is not a ranking run directory written by "
                "`tf-attnrec train --model din ...` (tf_attnrec.ranking.saving.save_ranker)."
            )
    config = json.loads((run_dir / CONFIG_FILE).read_text())
    classes = _ranking_classes()
    if config.get("class_name") not in classes:
        raise ValueError(
            f"{run_dir / CONFIG_FILE}: class_name {config.get('class_name')!r} is not a ranking "
            f"model; expected one of {sorted(classes)}."
        )
    vocabularies = FeatureVocabularies.from_json((run_dir / VOCABULARIES_FILE).read_text())
    with np.load(run_dir / ITEM_FEATURES_FILE) as tables:
        item_tables = {"item_genres": tables["item_genres"], "item_year": tables["item_year"]}
    model = classes[config["class_name"]].from_config(config["config"])
    build_ranker(model, vocabularies.max_genres)
    status = model.load_weights(str(run_dir / WEIGHTS_PREFIX))
    status.assert_existing_objects_matched().expect_partial()  # optimizer slots not needed
    return model, vocabularies, item_tables, config
