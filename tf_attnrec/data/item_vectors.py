"""User-supplied per-item vectors (text or image embeddings computed elsewhere).

Two file forms:

* `.npy`: a float matrix [N, dim] plus `ids_path`, the N raw item ids in the same order: a
  text file with one id per line (surrounding whitespace stripped; one trailing newline
  allowed) or a 1-D `.npy` of ints or strings.
* Parquet (`.parquet` / `.pq`, read with pyarrow): one row per item, a column `id_column`
  and a list column `vector_column` (all lists of one length). A null vector means "no
  vector" for that item. A wide table with columns v0..v{d-1} is not read; pack it first:
  `df["vector"] = list(df[[f"v{i}" for i in range(d)]].to_numpy())`.

Raw ids are typed like the vocabulary's (the text "123" is item 123 in an integer vocabulary;
the integer 123 is "123" in a string one). An item of the vocabulary without a vector is
masked (`present` False, a zero row): a missing modality, never an error. Ids the vocabulary
does not know are kept in `unknown_ids`, not an error, since a vector file often covers more
items than a filtered log. Everything else that is wrong (counts, duplicates, non-finite
values, shapes) raises `DataFormatError` naming the file and the line (text ids, 1-based) or
row (`.npy` and Parquet, 0-based): nothing is dropped or altered silently.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
from typing import Callable, Optional, Union

import numpy as np
import pandas as pd

from tf_attnrec.data.errors import DataFormatError
from tf_attnrec.data.readers import read_parquet_table
from tf_attnrec.data.vocabulary import FIRST_ID, Vocabulary

PathLike = Union[str, os.PathLike]
Locate = Callable[[int], str]  # position -> "line 3" (text ids) / "row 2 (0-based)"
_INTEGER = re.compile(r"[+-]?\d+")


@dataclasses.dataclass(eq=False)  # arrays: a field-wise == would be ambiguous
class ItemVectors:
    """Per-item vectors aligned with a `Vocabulary`: row i belongs to item id i.

    Args:
        vectors: float32 [vocabulary.size, dim]; zero rows where there is no vector.
        present: bool [vocabulary.size]: the item has a vector (rows 0 and 1, padding and
            OOV, are always False).
        source: the file(s) read, for cards and messages.
        unknown_ids: raw ids of the file that the vocabulary does not know, in file order.

    Example:
        ```python
        text = read_item_vectors("plots.npy", split.vocabulary, ids_path="plots_ids.txt")
        text.vectors[history], text.present[history]  # features and mask of a history
        ```
    """

    vectors: np.ndarray
    present: np.ndarray
    source: str
    unknown_ids: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def dim(self) -> int:
        """Length of each vector."""
        return int(self.vectors.shape[1])

    @property
    def num_present(self) -> int:
        """Number of vocabulary items with a vector."""
        return int(self.present.sum())

    def __repr__(self) -> str:  # the default would print the whole matrix
        return (
            f"ItemVectors(source={self.source!r}, dim={self.dim}, present={self.num_present:,} of "
            f"{len(self.present) - FIRST_ID:,} items, unknown_ids={len(self.unknown_ids):,})"
        )


def read_item_vectors(
    path: PathLike,
    vocabulary: Vocabulary,
    ids_path: Optional[PathLike] = None,
    id_column: str = "item_id",
    vector_column: str = "vector",
) -> ItemVectors:
    """Reads per-item vectors from `.npy` + ids or from Parquet, aligned with `vocabulary`.

    Args:
        path: `.npy` matrix [N, dim], or a `.parquet` / `.pq` table.
        vocabulary: the item vocabulary the vectors are for (e.g. `split.vocabulary`).
        ids_path: for `.npy` only: the N raw ids, one per line (text) or a 1-D `.npy`.
        id_column: Parquet column holding the raw item id.
        vector_column: Parquet column holding each item's vector (a list of numbers, or null).

    Returns:
        `ItemVectors` with one float32 row per vocabulary id.

    Raises:
        FileNotFoundError: `path` or `ids_path` does not exist.
        ValueError: an unsupported file type, or `ids_path` missing for `.npy` (or given for
            Parquet).
        DataFormatError: an empty or unreadable file, a missing column, N ids for M != N
            vectors, a duplicate id, a non-finite value, a matrix that is not 2-D, vectors
            of different lengths or ids that cannot be typed like the vocabulary's.

    Example:
        ```python
        vectors = read_item_vectors("posters.parquet", split.vocabulary)
        vectors  # ItemVectors(source='posters.parquet', dim=512, present=3,380 of 3,416 items, ...)
        ```
    """
    path = _existing(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if ids_path is None:
            raise ValueError(
                f"{path}: a .npy matrix needs ids_path, the file of its N item ids (one per line or a .npy)."
            )
        ids_path = _existing(ids_path)
        matrix, raw_ids, locate = _read_npy_pair(path, ids_path)
        id_file, has_vector, source = ids_path, np.ones(len(matrix), dtype=bool), f"{path} (ids: {ids_path})"
    elif suffix in (".parquet", ".pq"):
        if ids_path is not None:
            raise ValueError(
                f"{path}: ids_path is for .npy matrices; a Parquet table holds its ids in column {id_column!r}."
            )
        raw_ids, matrix, has_vector = _read_parquet(path, id_column, vector_column)
        id_file, locate, source = path, _row, str(path)
    else:
        raise ValueError(
            f"{path}: unsupported file type {path.suffix!r}; expected .npy (with ids_path) or .parquet / .pq."
        )

    ids = _typed_like(raw_ids, vocabulary, id_file, locate)
    _check_unique(ids, id_file, locate)
    vectors = _finite_float32(matrix, path, ids, has_vector)
    codes = vocabulary.lookup(ids)
    known = codes >= FIRST_ID
    use = known & has_vector
    table = np.zeros((vocabulary.size, vectors.shape[1]), dtype=np.float32)
    present = np.zeros(vocabulary.size, dtype=bool)
    table[codes[use]] = vectors[use]  # ids are unique, so no row is written twice
    present[codes[use]] = True
    return ItemVectors(table, present, source, np.asarray(ids[~known]))


def _read_npy_pair(path: pathlib.Path, ids_path: pathlib.Path) -> tuple[np.ndarray, np.ndarray, Locate]:
    """The [N, dim] matrix of `path` and the N raw ids of `ids_path`, counts checked."""
    matrix = _load_npy(path, "a 2-D float matrix [N, dim]")
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise DataFormatError(
            f"{path}: found an array of shape {matrix.shape}; expected a 2-D [N, dim] matrix with dim >= 1."
        )
    if matrix.shape[0] == 0:
        raise DataFormatError(f"{path}: the matrix has no rows; expected one vector per item.")
    raw_ids, locate = _read_ids(ids_path)
    if len(raw_ids) != len(matrix):
        unit = "entries" if ids_path.suffix.lower() == ".npy" else "lines"
        raise DataFormatError(
            f"{ids_path} has {len(raw_ids)} ids ({unit}) but {path} has {len(matrix)} vectors (rows); "
            "expected one id per vector, in the same order."
        )
    return matrix, raw_ids, locate


def _existing(path: PathLike) -> pathlib.Path:
    path = pathlib.Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file.")
    return path


def _load_npy(path: pathlib.Path, expected: str) -> np.ndarray:
    """A `.npy` array, without pickles (they can run code); bad files name the file."""
    if path.stat().st_size == 0:
        raise DataFormatError(f"{path}: the file is empty; expected a .npy file holding {expected}.")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DataFormatError(
            f"{path}: not a readable .npy file holding {expected} ({error}). Save it with "
            "np.save(path, array) from a numeric (or, for ids, str) array, not an object array."
        ) from None
    if not isinstance(array, np.ndarray):  # np.load returns an NpzFile for .npz content
        raise DataFormatError(f"{path}: holds an .npz archive; expected one .npy array ({expected}).")
    return array


def _row(i: int) -> str:
    return f"row {i} (0-based)"


def _read_ids(path: pathlib.Path) -> tuple[np.ndarray, Locate]:
    """Raw ids from a text file (one per line) or a 1-D .npy, and how to name a position."""
    if path.suffix.lower() == ".npy":
        ids = _load_npy(path, "a 1-D array of item ids")
        if ids.ndim != 1:
            raise DataFormatError(
                f"{path}: found an id array of shape {ids.shape}; expected a 1-D array of N item ids."
            )
        if ids.dtype.kind not in "iuUSf":
            raise DataFormatError(f"{path}: found ids of dtype {ids.dtype}; expected integer or string ids.")
        if ids.dtype.kind == "S":
            ids = np.char.decode(ids, "utf-8")
        return ids, lambda i: f"entry {i} (0-based)"
    raw = path.read_bytes()
    if not raw.strip():
        raise DataFormatError(f"{path}: the file is empty; expected one item id per line.")
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise DataFormatError(
            f"{path}, line {line}: byte 0x{raw[error.start]:02x} is not valid UTF-8; expected one item id per line."
        ) from None
    lines = [line.strip() for line in (text[:-1] if text.endswith("\n") else text).split("\n")]
    blank = [i for i, line in enumerate(lines) if not line]
    if blank:
        raise DataFormatError(f"{path}, line {blank[0] + 1}: empty line; expected one item id per line.")
    return np.asarray(lines, dtype=object), lambda i: f"line {i + 1}"


def _read_parquet(
    path: pathlib.Path, id_column: str, vector_column: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, matrix [N, dim] with zero rows for null vectors, has_vector [N])."""
    if path.stat().st_size == 0:
        raise DataFormatError(
            f"{path}: the file is empty; expected a Parquet table with columns {id_column!r}, {vector_column!r}."
        )
    frame = read_parquet_table(path)
    missing = [c for c in (id_column, vector_column) if c not in frame.columns]
    if missing:
        raise DataFormatError(
            f"{path}: no column(s) {missing}; the file has columns {list(frame.columns)}. Pass "
            "id_column= / vector_column=, or pack v0..v{d-1} columns into one list column."
        )

    def where(i: int) -> str:
        return f"{path}, {_row(i)}"

    id_values = frame[id_column]
    missing_id = np.flatnonzero(id_values.isna().to_numpy())
    if len(missing_id):
        raise DataFormatError(f"{where(int(missing_id[0]))}: {id_column!r} is missing; expected an item id.")
    cells = frame[vector_column].tolist()
    has_vector = np.array([cell is not None and not (np.isscalar(cell) and pd.isna(cell)) for cell in cells])
    if not has_vector.any():
        raise DataFormatError(f"{path}: every {vector_column!r} is null; expected at least one vector.")
    rows: list = []
    dim, first = None, None
    for i, cell in enumerate(cells):
        if not has_vector[i]:
            rows.append(None)
            continue
        if isinstance(cell, (str, bytes)) or np.ndim(cell) != 1:
            raise DataFormatError(
                f"{where(i)}: {vector_column!r} holds {type(cell).__name__} {str(cell)[:60]!r}; "
                "expected a list of numbers."
            )
        vector = np.asarray(cell)
        if dim is None:
            dim, first = len(vector), i
            if dim == 0:
                raise DataFormatError(
                    f"{where(i)}: {vector_column!r} is an empty list; expected a vector of length >= 1."
                )
        elif len(vector) != dim:
            raise DataFormatError(
                f"{where(i)}: {vector_column!r} has length {len(vector)}; expected {dim} like row {first} "
                "(every vector must have the same length)."
            )
        if vector.dtype.kind not in "iuf":
            raise DataFormatError(
                f"{where(i)}: {vector_column!r} holds values of type {vector.dtype}; expected numbers."
            )
        rows.append(vector)
    matrix = np.zeros((len(cells), dim), dtype=np.float64)
    matrix[has_vector] = np.stack([r for r in rows if r is not None])
    return id_values.to_numpy(), matrix, has_vector


def _typed_like(raw: np.ndarray, vocabulary: Vocabulary, path: pathlib.Path, locate: Locate) -> np.ndarray:
    """Raw ids converted to the vocabulary's id type (int64 or str objects)."""

    def where(i: int) -> str:
        return f"{path}, {locate(i)}"

    if vocabulary.num_items == 0:
        return np.asarray(raw, dtype=object)
    wants_int = isinstance(vocabulary.raw_ids([FIRST_ID])[0], (int, np.integer))
    kind = raw.dtype.kind
    if kind in "iu":
        return raw.astype(np.int64) if wants_int else np.array([str(v) for v in raw.tolist()], object)
    if kind == "f":  # e.g. ids saved as floats: only whole numbers are ids
        bad = np.flatnonzero(~np.isfinite(raw) | (np.mod(raw, 1) != 0))
        if len(bad):
            raise DataFormatError(
                f"{where(int(bad[0]))}: id {float(raw[bad[0]])!r} is not a whole number; expected an item id."
            )
        whole = raw.astype(np.int64)
        return whole if wants_int else np.array([str(v) for v in whole.tolist()], dtype=object)
    texts = [v if isinstance(v, str) else str(v) for v in raw.tolist()]
    if not wants_int:
        return np.array(texts, dtype=object)
    for i, text in enumerate(texts):
        if not _INTEGER.fullmatch(text.strip()):
            raise DataFormatError(
                f"{where(i)}: found id {text[:60]!r}; expected an integer id, as the vocabulary's ids are integers."
            )
    return np.array([int(t) for t in texts], dtype=np.int64)


def _check_unique(ids: np.ndarray, path: pathlib.Path, locate: Locate) -> None:
    index = pd.Index(ids)
    if index.has_duplicates:
        second = int(np.flatnonzero(index.duplicated())[0])
        first = int(np.flatnonzero(index == ids[second])[0])
        raise DataFormatError(
            f"{path}, {locate(second)}: duplicate id {_show(ids[second])}, already at {locate(first)}; "
            "expected each item once."
        )


def _show(value: object) -> str:
    """repr of an id without numpy's wrapper: 12, not np.int64(12)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _finite_float32(
    matrix: np.ndarray, path: pathlib.Path, ids: np.ndarray, has_vector: np.ndarray
) -> np.ndarray:
    """The matrix as float32; a non-finite value, or one float32 cannot hold, names the row."""
    if matrix.dtype.kind not in "iuf":
        raise DataFormatError(f"{path}: found values of dtype {matrix.dtype}; expected a numeric matrix.")
    with np.errstate(over="ignore"):  # a float64 beyond 3.4e38 becomes inf here: caught below
        cast = matrix.astype(np.float32)
    for values, problem in ((matrix, "a non-finite value"), (cast, "a value float32 cannot hold")):
        bad = ~np.isfinite(values) & has_vector[:, None]
        if bad.any():
            row = int(np.flatnonzero(bad.any(axis=1))[0])
            raise DataFormatError(
                f"{path}, row {row} (0-based, id {_show(ids[row])}): {problem} "
                f"({float(matrix[row][bad[row]][0])!r}); expected finite numbers "
                f"({int(bad.any(axis=1).sum())} row(s) affected)."
            )
    return cast


__all__ = ["ItemVectors", "read_item_vectors"]
