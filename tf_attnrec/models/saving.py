"""Save / load a trained zoo model as a run directory: config + weights + vocabulary."""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Mapping, Optional, Union

import tensorflow as tf

from tf_attnrec.data.vocabulary import Vocabulary
from tf_attnrec.models.popularity import PopularityModel
from tf_attnrec.models.sequential_retrieval import SequentialRetrievalModel

CONFIG_FILE = "model_config.json"
VOCABULARY_FILE = "vocabulary.json"
WEIGHTS_PREFIX = "weights/model"  # TensorFlow checkpoint prefix inside the run directory

_MODEL_CLASSES = {
    "SequentialRetrievalModel": SequentialRetrievalModel,
    "PopularityModel": PopularityModel,
}

PathLike = Union[str, os.PathLike]


def _build(model: tf.keras.Model, max_length: int) -> None:
    """Creates the variables by scoring one dummy history."""
    model.score(tf.zeros([1, max_length], tf.int32))


def save_model(
    model: tf.keras.Model,
    run_dir: PathLike,
    vocabulary: Optional[Vocabulary] = None,
    extra: Optional[Mapping[str, Any]] = None,
) -> pathlib.Path:
    """Writes `model_config.json`, `weights/` (TF checkpoint) and `vocabulary.json`.

    Args:
        model: A `SequentialRetrievalModel` or `PopularityModel`.
        run_dir: Directory to write (created if missing; files are overwritten).
        vocabulary: The item `Vocabulary` the model was trained with (to map raw ids).
        extra: JSON-serialisable extras stored under "extra" (e.g. the zoo name, training
            config).

    Returns:
        The run directory path.

    Example:
        ```python
        save_model(model, "runs/sasrec_ml1m", split.vocabulary, {"model": "sasrec"})
        model, vocabulary, config = load_model("runs/sasrec_ml1m")
        ```
    """
    class_name = type(model).__name__
    if class_name not in _MODEL_CLASSES:
        raise TypeError(
            f"save_model supports {sorted(_MODEL_CLASSES)}; got {class_name}. Use "
            "model.save_weights for other models."
        )
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "class_name": class_name,
        "config": model.get_config(),
        "max_length": model.max_length,
        "extra": dict(extra or {}),
    }
    (run_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str))
    model.save_weights(str(run_dir / WEIGHTS_PREFIX))
    if vocabulary is not None:
        (run_dir / VOCABULARY_FILE).write_text(vocabulary.to_json())
    return run_dir


def _architecture(config: Any) -> Any:
    """A config without layer names and build shapes (which differ between equal models)."""
    if isinstance(config, Mapping):
        return {k: _architecture(v) for k, v in config.items() if k not in ("name", "build_config")}
    if isinstance(config, (list, tuple)):
        return [_architecture(v) for v in config]
    return config


def load_weights_from_run(
    model: tf.keras.Model, run_dir: PathLike, vocabulary: Optional[Vocabulary] = None
) -> None:
    """Warm-starts `model` with the weights of a saved run (to continue its training).

    Args:
        model: A model built with the same architecture as the saved one.
        run_dir: A directory written by `save_model`.
        vocabulary: The vocabulary `model` is trained with; it must equal the saved one, or
            item rows would be assigned to the wrong items.

    Raises:
        FileNotFoundError: `run_dir` lacks the config or the weights.
        ValueError: the saved architecture or vocabulary differs from `model`'s.
    """
    saved, saved_vocabulary, _ = load_model(run_dir)
    _build(model, saved.max_length)
    if _architecture(saved.get_config()) != _architecture(model.get_config()):
        raise ValueError(
            f"{pathlib.Path(run_dir) / CONFIG_FILE}: the saved model's config differs from the "
            "model being trained; continue a run with the same model config."
        )
    if vocabulary is not None and saved_vocabulary is not None and (
        saved_vocabulary.to_json() != vocabulary.to_json()
    ):
        raise ValueError(
            f"{pathlib.Path(run_dir) / VOCABULARY_FILE}: the saved item vocabulary differs from "
            "the training data's; continue a run on the same dataset."
        )
    model.set_weights(saved.get_weights())


def load_model(run_dir: PathLike) -> tuple[tf.keras.Model, Optional[Vocabulary], dict]:
    """Rebuilds a model saved by `save_model` and restores its weights.

    Args:
        run_dir: A directory written by `save_model`.

    Returns:
        `(model, vocabulary or None, config dict)`.

    Raises:
        FileNotFoundError: `run_dir` lacks the config or the weights; the message names them.
    """
    run_dir = pathlib.Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{config_path} not found: {run_dir} is not a run directory written by "
            "tf_attnrec.models.saving.save_model (or train_sequential(run_dir=...))."
        )
    config = json.loads(config_path.read_text())
    if config.get("class_name") not in _MODEL_CLASSES:
        raise ValueError(
            f"{config_path}: unknown class_name {config.get('class_name')!r}; expected one of "
            f"{sorted(_MODEL_CLASSES)}."
        )
    model = _MODEL_CLASSES[config["class_name"]].from_config(config["config"])
    _build(model, config["max_length"])
    if not tf.io.gfile.glob(str(run_dir / WEIGHTS_PREFIX) + ".index"):
        raise FileNotFoundError(f"{run_dir / WEIGHTS_PREFIX}.index not found (no saved weights).")
    status = model.load_weights(str(run_dir / WEIGHTS_PREFIX))
    # Optimizer slots are in the checkpoint but not needed for inference: do not warn.
    status.assert_existing_objects_matched().expect_partial()
    vocabulary_path = run_dir / VOCABULARY_FILE
    vocabulary = Vocabulary.from_json(vocabulary_path.read_text()) if vocabulary_path.is_file() else None
    return model, vocabulary, config
