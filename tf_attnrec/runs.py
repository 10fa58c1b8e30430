"""The run directory: its file names, and save / load of everything a run holds, for every task.

A run directory (`tf-attnrec train --output RUN`) holds:

| file | what | written by |
|---|---|---|
| `config.yaml` | the resolved run config (model, data, model_config, training, provenance) | `write_run_config` |
| `model_config.json` | `{"class_name", "config", "max_length", "extra", "weights"}` of the Keras model | `save_model` |
| `weights-<id>/model.*` | a TensorFlow checkpoint of the model's variables, the one `"weights"` names | `save_model` |
| `vocabulary.json` | the item `Vocabulary` (raw id <-> model id) | `save_model` |
| `feature_vocabularies.json`, `item_features.npz` | side-feature vocabularies and per-item feature ids (models that read side features) | `save_feature_tables` |
| `items.json` | item titles / genres / years, for printing | `write_items` |
| `user_vocabulary.json`, `graph.npz` | raw user id <-> user row, and the training user-item graph (collaborative models) | `tf_attnrec.tasks.collaborative` |
| `metrics.json`, `history.csv`, `logs/` | results, per-epoch log, TensorBoard logs | `tf_attnrec.training` |
| `backup/` | the checkpoint a rerun resumes from, while training is unfinished | `tf_attnrec.backup` |

Any registered zoo model reloads with `load_model`: its class is found through Keras'
serialization registry (every zoo model is `register_keras_serializable(package="tf_attnrec")`),
so no list of classes is kept here. JSON files are written atomically (temporary file +
rename), so a crash never leaves half a file; the weights are swapped in through the config
that names them, so a crash never pairs a config with weights of another save.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
import uuid
from typing import Any, Mapping, Optional, Union

import numpy as np
import tensorflow as tf
import yaml

from tf_attnrec.data.features import FeatureVocabularies
from tf_attnrec.yaml_loader import load_yaml
from tf_attnrec.data.vocabulary import FIRST_ID, Vocabulary

PathLike = Union[str, os.PathLike]

RUN_CONFIG_FILE = "config.yaml"
CONFIG_FILE = "model_config.json"
# TensorFlow checkpoint prefix inside the run directory, as runs before versioned weights wrote
# it; `save_model` now writes `weights-<id>/model` and names it in model_config.json.
WEIGHTS_PREFIX = "weights/model"
WEIGHTS_DIR_PREFIX = "weights-"
VOCABULARY_FILE = "vocabulary.json"
VOCABULARIES_FILE = "feature_vocabularies.json"
ITEM_FEATURES_FILE = "item_features.npz"
ITEMS_FILE = "items.json"
USER_VOCABULARY_FILE = "user_vocabulary.json"  # user row = model id - 2, as for items
GRAPH_FILE = "graph.npz"  # tf_attnrec.data.graph.InteractionGraph.save
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
TENSORBOARD_DIR = "logs"
BACKUP_DIR = "backup"  # tf_attnrec.backup: present only while a run is unfinished
ITEMS_FORMAT = "tf_attnrec.items/1"
_KERAS_PACKAGE = "tf_attnrec"

# Keys of a zoo / run config: the first ones configure the run; PROVENANCE_KEYS are written by
# `tf-attnrec train` into a run's config.yaml and read back without effect.
PROVENANCE_KEYS = ("source", "form", "created", "version", "init_from")
# `precision` is recorded only when it is not float32, so that older runs' configs still match.
CONFIG_KEYS = ("model", "dataset", "data_dir", "data", "model_config", "training", "precision", *PROVENANCE_KEYS)


# ------------------------------------------------------------------------------ plain files
def write_text_atomic(path: PathLike, text: str) -> pathlib.Path:
    """Writes `text` to a temporary file next to `path`, then renames it into place."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_metrics(run_dir: PathLike, metrics: Mapping[str, Any]) -> pathlib.Path:
    """Writes `metrics.json` (atomically)."""
    return write_text_atomic(pathlib.Path(run_dir) / METRICS_FILE, json.dumps(metrics, indent=2, default=float))


def read_metrics(run_dir: PathLike) -> dict:
    """The run's `metrics.json` ({} when there is none yet)."""
    path = pathlib.Path(run_dir) / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def read_config(path: PathLike) -> dict:
    """Reads and checks a zoo config or a run's `config.yaml`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a mapping, unknown keys, or `model_config` / `training` / `data` not
            mappings.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"config file {path} not found; pass a zoo config such as models/sasrec/config.yaml "
            "or a run's config.yaml."
        )
    try:
        config = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error}).".replace("\n", " ")) from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a YAML mapping with keys {list(CONFIG_KEYS[:6])}; got {type(config).__name__}.")
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; a config may contain {list(CONFIG_KEYS)}.")
    for key in ("model_config", "training", "data"):
        if not isinstance(config.get(key) or {}, dict):
            raise ValueError(f"{path}: `{key}` must be a mapping; got {config[key]!r}.")
    return config


def write_run_config(run_dir: PathLike, config: Mapping[str, Any]) -> pathlib.Path:
    """Writes the run's `config.yaml` (the zoo-config format, so `train --config` repeats it)."""
    return write_text_atomic(pathlib.Path(run_dir) / RUN_CONFIG_FILE, yaml.safe_dump(dict(config), sort_keys=False))


def read_run_config(run_dir: PathLike) -> dict:
    """The `config.yaml` that `tf-attnrec train` wrote (clear errors when it is not a run).

    A run saved by the library alone (`train_sequential(..., run_dir=...)`) has no
    `config.yaml`; its model name then comes from `model_config.json`, which is enough to
    reload and export it (commands that reread the data need the recorded data source).
    """
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} not found; pass a folder written by `tf-attnrec train`.")
    path = run_dir / RUN_CONFIG_FILE
    if path.is_file():
        return read_config(path)
    if (run_dir / CONFIG_FILE).is_file():  # saved by the library (train_*(run_dir=...)), not the CLI
        saved = json.loads((run_dir / CONFIG_FILE).read_text())
        return {"model": saved.get("extra", {}).get("model") or saved["config"].get("name")}
    raise FileNotFoundError(
        f"{run_dir} is not a run directory: it has neither {RUN_CONFIG_FILE} (written by `tf-attnrec train`) nor "
        f"{CONFIG_FILE} (written by tf_attnrec.runs.save_model)."
    )


def write_items(items: Any, vocabulary: Vocabulary, run_dir: PathLike) -> int:
    """Writes title / genres / year of the vocabulary's items to `items.json`; returns the count."""
    known = items[items["item_id"].isin(vocabulary.raw_ids(np.arange(2, vocabulary.size)))]
    records = {}
    for row in known.itertuples(index=False):
        record = {"title": str(row.title)} if hasattr(row, "title") and not _is_missing(row.title) else {}
        if hasattr(row, "genres") and isinstance(row.genres, (tuple, list)):
            record["genres"] = [str(g) for g in row.genres]
        year = getattr(row, "year", None)
        if year is not None and not _is_missing(year):
            record["year"] = int(year)
        records[str(row.item_id)] = record
    write_text_atomic(pathlib.Path(run_dir) / ITEMS_FILE, json.dumps({"format": ITEMS_FORMAT, "items": records}))
    return len(records)


def _is_missing(value: Any) -> bool:
    try:
        return bool(value != value) or value is None  # NaN / pandas NA
    except TypeError:  # pandas.NA in a boolean context
        return True


def read_items(run_dir: PathLike) -> dict:
    """`{str(raw item id): {"title": ..., ...}}` from a run's `items.json` ({} if absent)."""
    path = pathlib.Path(run_dir) / ITEMS_FILE
    if not path.is_file():
        return {}
    payload = json.loads(path.read_text())
    if payload.get("format") != ITEMS_FORMAT:
        raise ValueError(f"{path}: not a tf-attnrec items file (format {payload.get('format')!r}).")
    return payload["items"]


# ------------------------------------------------------------------------------ the model
def save_model(
    model: tf.keras.Model,
    run_dir: PathLike,
    vocabulary: Optional[Vocabulary] = None,
    extra: Optional[Mapping[str, Any]] = None,
) -> pathlib.Path:
    """Writes `model_config.json`, `weights/` (TF checkpoint) and `vocabulary.json`.

    Args:
        model: A zoo model (a `tf_attnrec.models.RecommenderModel`).
        run_dir: Directory to write (created if missing; files are overwritten).
        vocabulary: The item `Vocabulary` the model was trained with (to map raw ids).
        extra: JSON-serialisable extras stored under "extra" (e.g. the zoo name).

    Returns:
        The run directory path.

    Example:
        ```python
        save_model(model, "runs/sasrec_ml1m", split.vocabulary, {"model": "sasrec"})
        model, vocabulary, config = load_model("runs/sasrec_ml1m")
        ```
    """
    class_name = type(model).__name__
    if tf.keras.utils.get_registered_object(f"{_KERAS_PACKAGE}>{class_name}") is not type(model):
        raise TypeError(
            f"save_model saves zoo models (registered with tf.keras.utils.register_keras_serializable("
            f"package={_KERAS_PACKAGE!r})); got {class_name}. Use model.save_weights for other models."
        )
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "class_name": class_name,
        "config": model.get_config(),
        "max_length": int(model.max_length),
        "extra": dict(extra or {}),
    }
    # A checkpoint is several files, so no single rename makes it appear at once. The weights go
    # to a fresh folder that model_config.json then names, and that config's atomic rename is
    # the commit: a crash at any point leaves the old config with the old weights, or the new
    # with the new. Older weight folders go only after the commit.
    weights = f"{WEIGHTS_DIR_PREFIX}{uuid.uuid4().hex[:12]}/model"
    model.save_weights(str(run_dir / weights))
    if vocabulary is not None:
        write_text_atomic(run_dir / VOCABULARY_FILE, vocabulary.to_json())
    write_text_atomic(run_dir / CONFIG_FILE, json.dumps({**config, "weights": weights}, indent=2, default=str))
    current = pathlib.PurePath(weights).parts[0]
    for old in [*run_dir.glob(f"{WEIGHTS_DIR_PREFIX}*"), run_dir / pathlib.PurePath(WEIGHTS_PREFIX).parts[0]]:
        if old.is_dir() and old.name != current:
            shutil.rmtree(old, ignore_errors=True)
    return run_dir


def weights_prefix(run_dir: PathLike, config: Mapping[str, Any]) -> pathlib.Path:
    """The checkpoint prefix that a run's model_config.json names (older runs: `weights/model`)."""
    return pathlib.Path(run_dir) / config.get("weights", WEIGHTS_PREFIX)


def load_model(run_dir: PathLike) -> tuple[tf.keras.Model, Optional[Vocabulary], dict]:
    """Rebuilds the model of any run directory and restores its weights.

    Args:
        run_dir: A directory written by `save_model` (`tf-attnrec train`, `train_sequential`,
            `train_ranker`).

    Returns:
        `(model, item vocabulary or None, model_config.json dict)`.

    Raises:
        FileNotFoundError: `run_dir` lacks the config or the weights; the message names them.
        ValueError: the config names a class that is not a registered zoo model.
    """
    run_dir = pathlib.Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{config_path} not found: {run_dir} is not a run directory written by `tf-attnrec train` "
            "(or tf_attnrec.runs.save_model)."
        )
    config = json.loads(config_path.read_text())
    model_class = tf.keras.utils.get_registered_object(f"{_KERAS_PACKAGE}>{config.get('class_name')}")
    if model_class is None or not hasattr(model_class, "build_variables"):
        raise ValueError(
            f"{config_path}: unknown class_name {config.get('class_name')!r}; expected a tf_attnrec zoo "
            "model (see `tf-attnrec list-models`)."
        )
    model = model_class.from_config(config["config"])
    model.build_variables()
    prefix = weights_prefix(run_dir, config)
    if not tf.io.gfile.glob(str(prefix) + ".index"):
        raise FileNotFoundError(f"{prefix}.index not found (no saved weights).")
    status = model.load_weights(str(prefix))
    # Optimizer slots are in the checkpoint but not needed for inference: do not warn.
    status.assert_existing_objects_matched().expect_partial()
    vocabulary_path = run_dir / VOCABULARY_FILE
    vocabulary = Vocabulary.from_json(vocabulary_path.read_text()) if vocabulary_path.is_file() else None
    return model, vocabulary, config


def _architecture(config: Any, ignored: tuple = ("name", "build_config")) -> Any:
    """A config without layer names and build shapes (which differ between equal models)."""
    if isinstance(config, Mapping):
        return {k: _architecture(v, ignored) for k, v in config.items() if k not in ignored}
    if isinstance(config, (list, tuple)):
        return [_architecture(v, ignored) for v in config]
    return config


def _grown(saved: np.ndarray, fresh: np.ndarray, rows: np.ndarray, axis: int) -> np.ndarray:
    """`fresh` with the saved rows of the items both vocabularies know, along the item `axis`.

    `rows[i]` is the saved row of new id i, or -1 for an item the saved run never saw, which
    keeps its fresh initialisation.
    """
    grown = np.moveaxis(fresh.copy(), axis, 0)
    known = rows >= 0
    grown[known] = np.moveaxis(saved, axis, 0)[rows[known]]
    return np.moveaxis(grown, 0, axis)


def _with_vocab_size(config: Any, size: int) -> Any:
    if isinstance(config, Mapping):
        return {k: size if k == "vocab_size" else _with_vocab_size(v, size) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [_with_vocab_size(v, size) for v in config]
    return config


def _item_axes(model: tf.keras.Model) -> list:
    """Per weight of `model`, the axis indexed by item id, or None.

    Found by building the same model with one more item: the axes that grow are the item axes
    (a table's rows, a bias, the item counts), whatever the model calls them.
    """
    probe = type(model).from_config(_with_vocab_size(model.get_config(), model.vocab_size + 1))
    probe.build_variables()
    axes = []
    for weight, other in zip(model.weights, probe.weights):
        grown = [axis for axis, (a, b) in enumerate(zip(weight.shape, other.shape)) if a != b]
        axes.append(grown[0] if grown else None)
    return axes


def _saved_rows(vocabulary: Vocabulary, saved_vocabulary: Vocabulary) -> np.ndarray:
    """Per id of `vocabulary`: the id of the same raw item in `saved_vocabulary`, or -1 (padding and unknown map to themselves)."""
    raw = vocabulary.raw_ids(np.arange(FIRST_ID, vocabulary.size))
    saved = saved_vocabulary.lookup(raw).astype(np.int64)
    return np.concatenate([np.arange(FIRST_ID), np.where(saved >= FIRST_ID, saved, -1)])


def load_weights_from_run(
    model: tf.keras.Model, run_dir: PathLike, vocabulary: Optional[Vocabulary] = None
) -> int:
    """Warm-starts `model` with the weights of a saved run.

    A run of the same model class continues: every weight is copied, and the config must be the
    same. A run of another zoo model pretrains: the weights the two models share (the same
    attribute path, e.g. `history_embedding`, and shape) are copied and the others keep their
    fresh initialisation, e.g. `nais` from a `fism` run, as the NAIS paper pretrains.

    Args:
        model: The model to train.
        run_dir: A directory written by `save_model`.
        vocabulary: The vocabulary `model` is trained with. A run of the same model may have
            another one (new data: new items, items numbered otherwise): each item the two
            share keeps its trained rows, found by raw id, and new items start fresh. A run of
            another model must have the same one.

    Returns:
        How many of `model`'s weights were copied.

    Raises:
        FileNotFoundError: `run_dir` lacks the config or the weights.
        ValueError: the saved config (same class) or vocabulary differs from `model`'s, or a
            run of another model shares no weight with it.
    """
    saved, saved_vocabulary, saved_config = load_model(run_dir)
    model.build_variables()
    grows = vocabulary is not None and saved_vocabulary is not None and saved_vocabulary != vocabulary
    if grows and type(saved) is not type(model):
        raise ValueError(
            f"{pathlib.Path(run_dir) / VOCABULARY_FILE}: the saved item vocabulary differs from "
            f"the training data's; pretrain a {type(model).__name__} from a run on the same dataset."
        )
    if type(saved) is not type(model):
        before = [w.numpy() for w in model.weights]
        # The checkpoint is matched object by object: only the shared attribute paths restore.
        try:
            model.load_weights(str(weights_prefix(run_dir, saved_config))).expect_partial()
        except AssertionError:  # TensorFlow's "nothing except the root object matched"
            pass
        copied = sum(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.weights))
        if not copied:
            raise ValueError(f"{run_dir}: the saved {type(saved).__name__} shares no weight with the "
                             f"{type(model).__name__} being trained; nothing to pretrain from.")
        return copied
    ignored = ("name", "build_config", *(("vocab_size",) if grows else ()))
    if _architecture(saved.get_config(), ignored) != _architecture(model.get_config(), ignored):
        raise ValueError(
            f"{pathlib.Path(run_dir) / CONFIG_FILE}: the saved model's config differs from the "
            "model being trained; continue a run with the same model config."
        )
    if not grows:
        model.set_weights(saved.get_weights())
        return len(model.weights)
    # New data: the items both vocabularies know keep their trained rows (found by raw id, as
    # the new vocabulary may number them differently); new items start fresh.
    rows = _saved_rows(vocabulary, saved_vocabulary)
    model.set_weights([value if axis is None else _grown(value, fresh, rows, axis)
                       for value, fresh, axis in zip(saved.get_weights(), model.get_weights(), _item_axes(model))])
    return len(model.weights)


# ------------------------------------------------------------------------- side features
def save_feature_tables(
    run_dir: PathLike, vocabularies: FeatureVocabularies, item_genres: np.ndarray, item_year: np.ndarray
) -> None:
    """Writes `feature_vocabularies.json` and `item_features.npz` (per item id: genre and year ids).

    Args:
        run_dir: The run directory.
        vocabularies: The `FeatureVocabularies` the model was trained with.
        item_genres: int32 `[item.size, G]` (`RankingData.item_genres`).
        item_year: int32 `[item.size]` (`RankingData.item_year`).

    Raises:
        ValueError: tables whose shapes do not match the vocabularies.
    """
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
    write_text_atomic(run_dir / VOCABULARIES_FILE, vocabularies.to_json())
    np.savez(run_dir / ITEM_FEATURES_FILE, item_genres=item_genres, item_year=item_year)


def load_feature_tables(run_dir: PathLike) -> tuple[FeatureVocabularies, dict[str, np.ndarray]]:
    """`(FeatureVocabularies, {"item_genres", "item_year"})` of a run with side features.

    Raises:
        FileNotFoundError: a file is missing (the message names it).
    """
    run_dir = pathlib.Path(run_dir)
    for name in (VOCABULARIES_FILE, ITEM_FEATURES_FILE):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(
                f"{run_dir / name} not found: {run_dir} is not a run of a model with side features "
                "(e.g. `tf-attnrec train --model din ...`)."
            )
    vocabularies = FeatureVocabularies.from_json((run_dir / VOCABULARIES_FILE).read_text())
    with np.load(run_dir / ITEM_FEATURES_FILE) as tables:
        item_tables = {"item_genres": tables["item_genres"], "item_year": tables["item_year"]}
    return vocabularies, item_tables
