"""Tiny exported models shared by the export tests (one export per vocabulary kind)."""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec.data.pipelines import pad_sequences
from tf_attnrec.data.vocabulary import Vocabulary
from tf_attnrec.export import export_retrieval, export_run
from tf_attnrec.models import create_model
from tf_attnrec.runs import save_model

MAX_LENGTH = 6
K = 5


@dataclasses.dataclass
class Exported:
    model: tf.keras.Model
    vocabulary: Vocabulary
    export_dir: pathlib.Path
    exclude_history: bool
    summary: object
    served: object = None  # the loaded serving_default signature
    loaded: object = None


def tiny_model(vocabulary: Vocabulary, seed: int) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(seed)
    model = create_model(
        "sasrec", vocab_size=vocabulary.size, hidden_dim=16, max_length=MAX_LENGTH,
        num_blocks=1, dropout=0.0,
    )
    model.score(tf.zeros([1, MAX_LENGTH], tf.int32))
    return model


def request_ids(vocabulary: Vocabulary, history) -> np.ndarray:
    """What a raw-id request means in model ids, by `Vocabulary.lookup` ("" dropped)."""
    raw = [h for h in history if h != ""]
    if vocabulary.raw_ids([2]).dtype.kind in "iu":
        # Int raw ids arrive as their canonical decimal strings ("10"); "0010" is unknown.
        canonical = [h.lstrip("-").isdigit() and str(int(h)) == h for h in raw]
        known = [vocabulary.lookup(int(h)) if ok else 1 for h, ok in zip(raw, canonical)]
        return np.asarray(known, np.int32)
    return vocabulary.lookup(np.asarray(raw, dtype=object)) if raw else np.zeros([0], np.int32)


def python_top_k(model, vocabulary, histories, k=K, exclude_history=True):
    """The in-Python model's top-k raw ids (as strings) and scores for raw-id histories."""
    ids = [request_ids(vocabulary, history) for history in histories]
    scores = model.score(pad_sequences(ids, MAX_LENGTH)).numpy()[:, 2:].astype(np.float64)
    if exclude_history:
        for row, seq in enumerate(ids):
            seen = np.asarray(seq)[np.asarray(seq) >= 2] - 2
            scores[row, seen] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    raw = [[str(v) for v in vocabulary.raw_ids(row + 2)] for row in top]
    return raw, np.take_along_axis(scores, top, axis=1)


@pytest.fixture(scope="session")
def string_export(tmp_path_factory) -> Exported:
    """String raw ids, exclude_history=True, via export_retrieval."""
    vocabulary = Vocabulary.from_ids([f"m{i:02d}" for i in range(40)])
    model = tiny_model(vocabulary, seed=1)
    export_dir = tmp_path_factory.mktemp("serving_str") / "tiny" / "1"
    summary = export_retrieval(model, export_dir, k=K, vocabulary=vocabulary)
    exported = Exported(model, vocabulary, export_dir, True, summary)
    exported.loaded = tf.saved_model.load(str(export_dir))
    exported.served = exported.loaded.signatures["serving_default"]
    return exported


@pytest.fixture(scope="session")
def int_export(tmp_path_factory) -> Exported:
    """Integer raw ids, exclude_history=False, via save_model + export_run."""
    vocabulary = Vocabulary.from_ids([3 * i + 7 for i in range(30)])
    model = tiny_model(vocabulary, seed=2)
    root = tmp_path_factory.mktemp("serving_int")
    save_model(model, root / "run", vocabulary)
    export_dir = root / "serving" / "tiny_int" / "3"
    summary = export_run(root / "run", export_dir, k=K, exclude_history=False)
    exported = Exported(model, vocabulary, export_dir, False, summary)
    exported.loaded = tf.saved_model.load(str(export_dir))
    exported.served = exported.loaded.signatures["serving_default"]
    return exported


def serve(exported: Exported, histories) -> tuple[list, np.ndarray]:
    out = exported.served(history=tf.constant(histories, tf.string))
    ids = [[v.decode() for v in row] for row in out["item_ids"].numpy()]
    return ids, out["scores"].numpy()
