"""Pieces every SavedModel export shares: raw-id tables, history compaction, version folders.

Both `tf_attnrec.export.topk` (top-k retrieval) and `tf_attnrec.export.score` (click
probability) serve raw ids as strings: a `Vocabulary` is written to an asset text file (line
i = the raw id of model id i + 2), a `StaticHashTable` built from that file maps a request's
strings to model ids ("" -> padding 0, unknown -> OOV 1), and ""-padded histories are
compacted into the model's left-padded form. Only stock TensorFlow ops are used, so TF
Serving loads the result.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import shutil
import tempfile
from typing import Iterator, Mapping, Union

import numpy as np
import tensorflow as tf

from tf_attnrec.data.vocabulary import FIRST_ID, OOV_ID, PAD_ID, Vocabulary
from tf_attnrec.export.summary import TensorInfo

PathLike = Union[str, os.PathLike]


def raw_id_strings(vocabulary: Vocabulary, what: str = "item ids") -> list[str]:
    """The vocabulary's raw ids in id order as the strings a request carries.

    Integer raw ids become their canonical decimal strings ("25"), so a request must send
    exactly that spelling ("025" is unknown and maps to OOV).

    Args:
        vocabulary: The `Vocabulary` to serve.
        what: What the ids are, for the error message (e.g. "occupation values").

    Returns:
        `vocabulary.num_items` strings; element i is the raw id of model id i + 2.

    Raises:
        ValueError: a raw id is "" or spans several lines (it could not be served).

    Example:
        >>> raw_id_strings(Vocabulary.from_ids([30, 7]))
        ['7', '30']
    """
    raw = vocabulary.raw_ids(np.arange(FIRST_ID, vocabulary.size)).tolist()
    strings = [str(int(v)) if isinstance(v, (int, np.integer)) else str(v) for v in raw]
    bad = [s for s in strings if s == "" or "\n" in s or "\r" in s]
    if bad:
        raise ValueError(
            f"export: raw {what} must be non-empty single-line strings (\"\" is the padding "
            f"token of the serving input); got {bad[:5]!r}. Rename these values and retrain, or "
            "drop them from the vocabulary."
        )
    return strings


def write_id_file(path: PathLike, raw_ids: list[str]) -> pathlib.Path:
    """Writes one raw id per line (the asset `raw_id_table` reads); returns the path."""
    path = pathlib.Path(path)
    path.write_text("".join(f"{raw}\n" for raw in raw_ids), encoding="utf-8")
    return path


def raw_id_table(id_file: PathLike) -> tf.lookup.StaticHashTable:
    """An in-graph table raw id string -> line number of `id_file` (-1 when absent).

    Saved with a module, the file becomes a SavedModel asset and the table is rebuilt from it
    at load time.
    """
    return tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            str(id_file),
            key_dtype=tf.string,
            key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
            value_dtype=tf.int64,
            value_index=tf.lookup.TextFileIndex.LINE_NUMBER,
        ),
        default_value=-1,
    )


def index_to_raw_table(id_file: PathLike) -> tf.lookup.StaticHashTable:
    """The inverse of `raw_id_table`: line number of `id_file` -> raw id string ("" when absent).

    Built from the same asset file, so the ids a model serves are exactly that file's lines.
    """
    return tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            str(id_file),
            key_dtype=tf.int64,
            key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
            value_dtype=tf.string,
            value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
        ),
        default_value="",
    )


def lookup_ids(table: tf.lookup.StaticHashTable, raw: tf.Tensor, empty_is_padding: bool) -> tf.Tensor:
    """Raw id strings (any shape) -> int32 model ids: known -> 2..., unknown -> 1.

    Args:
        table: A `raw_id_table`.
        raw: string tensor of raw ids.
        empty_is_padding: map "" to 0 (padding of a history) rather than to OOV 1.

    Returns:
        int32 ids of the shape of `raw`.
    """
    index = table.lookup(raw)
    ids = tf.where(index < 0, tf.constant(OOV_ID, tf.int64), index + FIRST_ID)
    if empty_is_padding:
        ids = tf.where(tf.equal(raw, ""), tf.constant(PAD_ID, tf.int64), ids)
    return tf.cast(ids, tf.int32)


def left_padded(ids: tf.Tensor, max_length: int) -> tf.Tensor:
    """Drops padding (0) wherever it is, keeps the last `max_length` ids, left-pads to it.

    Args:
        ids: int32 `[B, T]` model ids, any T (also 0); 0 = padding anywhere.
        max_length: L, the history length the model reads.

    Returns:
        int32 `[B, L]`: the real ids of each row in order, the most recent L of them, with
        zeros in front.
    """
    real = tf.cast(ids != PAD_ID, tf.int32)
    count = tf.reduce_sum(real, axis=1, keepdims=True)
    destination = max_length - count + tf.cumsum(real, axis=1) - 1  # slot of each real id
    kept = tf.where((real > 0) & (destination >= 0))  # [N, 2] (row, position)
    slots = tf.gather_nd(destination, kept)
    padded = tf.scatter_nd(
        tf.stack([kept[:, 0], tf.cast(slots, tf.int64)], axis=1),
        tf.gather_nd(ids, kept),
        tf.stack([tf.shape(ids, out_type=tf.int64)[0], max_length]),
    )
    return tf.reshape(padded, [-1, max_length])  # static L for the model


def validate_export_dir(export_dir: pathlib.Path, overwrite: bool) -> tuple[str, int]:
    """Checks `serving/<model_name>/<version>` (nothing is deleted here).

    Returns:
        `(model_name, version)`.

    Raises:
        ValueError: the last folder is not an integer version.
        FileExistsError: the folder is not empty and `overwrite` is False.
    """
    if not export_dir.name.isdigit():
        raise ValueError(
            f"export_dir must be serving/<model_name>/<version> with an integer version folder "
            f"(TF Serving only loads integer versions); got {str(export_dir)!r}. Pass e.g. "
            f"{str(export_dir / '1')!r}."
        )
    if export_dir.exists() and any(export_dir.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{export_dir} exists and is not empty; pass overwrite=True to replace it or "
            "export to a new version folder."
        )
    return export_dir.parent.name, int(export_dir.name)


@contextlib.contextmanager
def staged_export(export_dir: pathlib.Path, overwrite: bool) -> Iterator[tuple[pathlib.Path, pathlib.Path]]:
    """Builds an export in a staging folder, then renames it into `export_dir` in one step.

    TF Serving loads the highest integer version folder it sees, so a version folder must
    never be seen half-written: the SavedModel is written to `.<version>.staging-*` next to
    it (same filesystem, and not an integer name, so TF Serving ignores it) and renamed into
    place only when complete. A failure at any point leaves the previous state.

    Args:
        export_dir: `serving/<model_name>/<version>` (checked by `validate_export_dir`).
        overwrite: Replace an existing, non-empty `export_dir`.

    Yields:
        `(staging, scratch)`: the folder to save the SavedModel into, and a temporary folder
        for asset source files (the SavedModel copies them into its `assets/`).
    """
    export_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{export_dir.name}.staging-", dir=export_dir.parent))
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="tf_attnrec_export_"))
    # `tf.saved_model.save` logs the staging folder's name ("Assets written to: .1.staging-...")
    # and Keras layers it does not serialise in full (the SavedModel holds plain functions on
    # purpose): noise that misleads. Errors still show; the summary says what was written.
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))
    try:
        yield staging, scratch
        if export_dir.exists():  # overwrite: the old version moves aside, the new one in
            retired = pathlib.Path(tempfile.mkdtemp(prefix=f".{export_dir.name}.old-", dir=export_dir.parent))
            os.replace(export_dir, retired / export_dir.name)
            os.replace(staging, export_dir)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, export_dir)
    finally:
        logger.setLevel(level)
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)


def signature_infos(
    signatures: Mapping[str, tf.types.experimental.ConcreteFunction],
) -> dict[str, dict[str, dict[str, TensorInfo]]]:
    """`{signature: {"inputs": {name: TensorInfo}, "outputs": {name: TensorInfo}}}`."""
    return {
        name: {
            "inputs": {
                spec.name: TensorInfo.from_spec(spec)
                for spec in tf.nest.flatten(function.structured_input_signature)
            },
            "outputs": {
                key: TensorInfo.from_spec(spec) for key, spec in function.structured_outputs.items()
            },
        }
        for name, function in signatures.items()
    }
