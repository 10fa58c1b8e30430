"""A retrieval export's item table stored compressed: float16, or per-row scaled int8.

The SavedModel keeps only the compressed values (and, for int8, one float32 scale per row);
the graph turns them back into a float32 table on each request, so scoring stays a float32
matmul with plain TensorFlow ops that TF Serving runs.

int8 is symmetric per row: `scale = max|row| / 127`, `q = round(row / scale)`, read back as
`q * scale`, so each entry is off by at most `scale / 2`. One scale per row, not per table,
keeps a row with small entries (a rare item) from rounding to zero beside one with large entries.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

QUANTIZE_MODES = ("float16", "int8")
INT8_LEVELS = 127  # symmetric: -127..127, so that -row quantizes to -q


def quantize_int8(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row symmetric int8 quantization of a `[rows, D]` float table.

    Returns:
        `(values, scale)`: int8 `[rows, D]` and float32 `[rows]`, with `values * scale[:, None]`
        within `scale / 2` of `table` per entry. An all-zero row gets scale 0 (and values 0).

    Example:
        >>> values, scale = quantize_int8(np.array([[0.25, -1.0], [0.0, 0.0]], np.float32))
        >>> values.tolist(), scale.tolist()
        ([[32, -127], [0, 0]], [0.007874015718698502, 0.0])
    """
    table = np.asarray(table, np.float32)
    scale = np.abs(table).max(axis=1) / np.float32(INT8_LEVELS)
    divisor = np.where(scale > 0, scale, np.float32(1))[:, np.newaxis]
    values = np.clip(np.rint(table / divisor), -INT8_LEVELS, INT8_LEVELS).astype(np.int8)
    return values, scale.astype(np.float32)


class CompressedItemTable(tf.Module):
    """The `[vocab_size, D]` item table as saved variables in `mode`, read back as float32.

    Args:
        table: The float32 table to store.
        mode: "float16" or "int8" (`QUANTIZE_MODES`).

    Raises:
        ValueError: an unknown `mode`, a non-finite table, or (float16) entries beyond its range.

    Example:
        >>> table = CompressedItemTable(np.ones([4, 2], np.float32), "int8")
        >>> table.dequantized().numpy().tolist()[0], table.stored_bytes
        ([1.0, 1.0], 24)
    """

    def __init__(self, table: np.ndarray, mode: str) -> None:
        super().__init__(name="item_table")
        if mode not in QUANTIZE_MODES:
            raise ValueError(f"quantize must be one of {QUANTIZE_MODES}; got {mode!r}.")
        table = np.asarray(table, np.float32)
        if not np.isfinite(table).all():
            raise ValueError("quantize: the item table has non-finite entries (NaN or inf); the model is broken.")
        self.scale: Optional[tf.Variable] = None  # int8 only
        if mode == "float16":
            largest = float(np.abs(table).max())
            if largest > np.finfo(np.float16).max:
                raise ValueError(f"quantize='float16': the item table has an entry of magnitude {largest:g}, beyond "
                                 f"float16's {np.finfo(np.float16).max:g}; use quantize='int8'.")
            self.values = tf.Variable(table.astype(np.float16), trainable=False, name="values")
        else:
            values, scale = quantize_int8(table)
            self.values = tf.Variable(values, trainable=False, name="values")
            self.scale = tf.Variable(scale, trainable=False, name="scale")

    def dequantized(self) -> tf.Tensor:
        """The float32 `[vocab_size, D]` table the stored values stand for."""
        table = tf.cast(self.values, tf.float32)
        return table if self.scale is None else table * self.scale[:, tf.newaxis]

    @property
    def stored_bytes(self) -> int:
        """Bytes of the saved values (and scales): what the table costs in the SavedModel."""
        return sum(int(np.prod(v.shape)) * v.dtype.size for v in (self.values, self.scale) if v is not None)
