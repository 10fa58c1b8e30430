"""`Vocabulary`: the one mapping between raw ids and model ids (0 = padding, 1 = OOV)."""

from __future__ import annotations

import json
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

PAD_ID = 0
OOV_ID = 1
FIRST_ID = 2


class Vocabulary:
    """Maps raw ids (ints or strings) to dense int32 ids with 0 = padding and 1 = OOV.

    Known raw ids get ids 2 .. num_items + 1 in sorted raw-id order, so the mapping does not
    depend on row order. Unknown raw ids (and ids rarer than `min_count`) map to 1, never to an
    error, so serving cannot crash on a new id. Embedding tables need `size` = num_items + 2 rows.

    Args:
        raw_ids: the known raw ids, unique, in id order (`raw_ids[0]` gets id 2).

    Example:
        ```python
        vocab = Vocabulary.from_ids(["b", "a", "b", "c"])
        vocab.lookup(["a", "c", "zzz"])  # array([2, 4, 1], dtype=int32)
        vocab.raw_ids([2, 4])             # array(['a', 'c'], dtype=object)
        vocab.size                        # 5
        ```
    """

    def __init__(self, raw_ids: Sequence[Any]):
        self._index = self._validated_index(raw_ids)

    @staticmethod
    def _validated_index(raw_ids: Any) -> pd.Index:
        index = pd.Index(raw_ids if isinstance(raw_ids, (np.ndarray, pd.Index)) else list(raw_ids))
        if index.hasnans:
            raise ValueError("Vocabulary raw ids must not contain missing values (NaN/None).")
        if index.inferred_type not in ("integer", "string", "empty"):
            raise TypeError(
                f"Vocabulary raw ids must be all integers or all strings; got {index.inferred_type!r} "
                f"(e.g. {index[:3].tolist()}). Convert the id column with .astype(str) or .astype(int)."
            )
        if index.has_duplicates:
            dupes = index[index.duplicated()].unique().tolist()[:5]
            raise ValueError(f"Vocabulary raw ids must be unique; got duplicates {dupes}.")
        return index

    @classmethod
    def from_ids(cls, raw_ids: Iterable[Any], min_count: int = 1) -> "Vocabulary":
        """Builds a vocabulary from raw ids as they occur (repeats count towards `min_count`).

        Args:
            raw_ids: raw ids, e.g. `interactions["item_id"]`.
            min_count: ids seen fewer times than this are left out (they map to OOV).

        Returns:
            The `Vocabulary`, ids assigned in sorted raw-id order.
        """
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}.")
        values = raw_ids if isinstance(raw_ids, (pd.Series, pd.Index, np.ndarray)) else list(raw_ids)
        counts = pd.Series(values).value_counts(sort=False)  # pandas keeps mixed types visible
        kept = counts.index[counts.to_numpy() >= min_count]
        return cls(cls._validated_index(kept).sort_values())

    @property
    def num_items(self) -> int:
        """Number of known raw ids."""
        return len(self._index)

    @property
    def size(self) -> int:
        """Rows an embedding table needs: num_items + 2 (padding and OOV)."""
        return len(self._index) + FIRST_ID

    def lookup(self, raw_ids: Any) -> np.ndarray:
        """Maps raw ids (scalar, list or array of any shape) to int32 ids; unknown -> 1."""
        values = np.asarray(raw_ids)
        positions = self._index.get_indexer(values.reshape(-1))
        ids = np.where(positions < 0, OOV_ID, positions + FIRST_ID).astype(np.int32)
        return ids.reshape(values.shape)

    def raw_ids(self, ids: Any, default: Optional[Any] = None) -> np.ndarray:
        """Maps ids back to raw ids.

        Args:
            ids: int ids (any shape).
            default: value returned for padding/OOV ids (0 and 1). None makes them an error.

        Returns:
            Array of raw ids with the shape of `ids`.
        """
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(
                f"ids must lie in [0, {self.size}); got values from {ids.min()} to {ids.max()}."
            )
        special = ids < FIRST_ID
        if special.any() and default is None:
            raise ValueError(
                f"ids {np.unique(ids[special]).tolist()} are padding (0) / out-of-vocabulary (1) "
                "and have no raw id; pass default=... to map them to a placeholder."
            )
        values = self._index.to_numpy()
        flat = ids.reshape(-1)
        result = values[np.maximum(flat - FIRST_ID, 0)] if len(values) else np.empty(len(flat), object)
        if special.any():
            result = result.astype(object)
            result[special.reshape(-1)] = default
        return result.reshape(ids.shape)

    def to_json(self) -> str:
        """Serialises the vocabulary (raw ids and their type) to a JSON string."""
        kind = "int" if self._index.inferred_type == "integer" else "str"
        raw = [int(v) for v in self._index] if kind == "int" else [str(v) for v in self._index]
        return json.dumps({"format": "tf_attnrec.Vocabulary/1", "kind": kind, "raw_ids": raw})

    @classmethod
    def from_json(cls, text: str) -> "Vocabulary":
        """Rebuilds a vocabulary written by `to_json`."""
        payload = json.loads(text)
        if payload.get("format") != "tf_attnrec.Vocabulary/1":
            raise ValueError(f"Not a tf_attnrec vocabulary JSON (format={payload.get('format')!r}).")
        raw = payload["raw_ids"]
        if payload["kind"] == "int":
            return cls(np.asarray(raw, dtype=np.int64))
        return cls(pd.Index(raw, dtype=object))

    def to_lookup_layer(self) -> tf.keras.layers.Layer:
        """An in-graph Keras lookup layer giving the same ids as `lookup` (for export).

        String vocabularies give a `StringLookup` (input "" is padding); integer ones an
        `IntegerLookup` whose mask token is a negative value outside the vocabulary (-1 unless
        -1 is a real id), which maps to padding 0. Both map unknown ids to 1.
        """
        if self._index.inferred_type == "integer":
            values = self._index.to_numpy().astype(np.int64)
            mask = -1 if -1 not in set(values.tolist()) else int(values.min()) - 1
            return tf.keras.layers.IntegerLookup(
                vocabulary=values, mask_token=mask, num_oov_indices=1, vocabulary_dtype="int64"
            )
        return tf.keras.layers.StringLookup(
            vocabulary=[str(v) for v in self._index], mask_token="", num_oov_indices=1
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._index.equals(other._index)

    def __repr__(self) -> str:
        return f"Vocabulary(num_items={self.num_items:,}, size={self.size:,})"
