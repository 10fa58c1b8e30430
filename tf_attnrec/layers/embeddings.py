"""Position embeddings and item-sequence embeddings for left-padded histories.

Module layout note: the spec places both embedding layers here because
`ItemSequenceEmbedding` is a thin composition of an item table and `PositionEmbedding`.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import tensorflow as tf

from tf_attnrec.layers.checks import is_positive_int
from tf_attnrec.layers.config import ConfigFromAttributes
from tf_attnrec.layers.dropout import ByteDropout
from tf_attnrec.layers.multi_head_attention import clone_initializer

_POSITION_KINDS = ("learned", "sinusoidal")
_ALIGNMENTS = ("end", "start")


def _sinusoidal_table(max_length: int, dim: int) -> np.ndarray:
    """`[max_length, dim]` table: even features sin(p / 10000^(2i/d)), odd ones cos(...)."""
    positions = np.arange(max_length, dtype=np.float64)[:, None]
    pair_index = (np.arange(dim) // 2).astype(np.float64)[None, :]
    angles = positions / np.power(10000.0, 2.0 * pair_index / dim)
    table = np.where(np.arange(dim)[None, :] % 2 == 0, np.sin(angles), np.cos(angles))
    return table.astype(np.float32)


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class PositionEmbedding(ConfigFromAttributes, tf.keras.layers.Layer):
    """Position vectors for left-padded sequences.

    Two ways to number the positions of an input of length `T <= max_length`:

    * `alignment="end"` (original SASRec): position `t` gets index `(max_length - T) + t`,
      so the last (most recent) position is always `max_length - 1`. When every position is
      a training target, the state at `t` then also sees where the window ends (how many
      items follow it), which the query at serving time (always the last slot) never does.
    * `alignment="start"` (SASRec+ implementations that right-pad): the first real item
      gets index 0 and each real item the number of real items before it, counted with the
      mask. The index of position `t` depends only on positions `<= t`, so the state at `t`
      is exactly the query of the prefix ending at `t`. Padded positions get zero vectors.

    Args:
        max_length: Longest supported sequence length (number of position vectors).
        output_dim: Size of the position vectors; defaults to the last dimension of a
            `[B, T, D]` input (required for `[B, T]` inputs such as item ids).
        kind: "learned" (a trainable `[max_length, D]` table) or "sinusoidal" (the fixed
            sin/cos table of Vaswani et al., 2017).
        embeddings_initializer: Initializer of the learned table.
        alignment: "end" or "start", see above.
        **kwargs: Standard `tf.keras.layers.Layer` arguments.

    Call args:
        x: `[B, T, D]` features or `[B, T]` ids; only the shape is used.
        mask: Optional boolean `[B, T]` (True = real item), used by `alignment="start"`
            (defaults to `x`'s Keras mask; without one every position counts as real).

    Returns:
        `[B, T, D]` position vectors (the input's Keras mask is propagated).

    Example:
        >>> positions = PositionEmbedding(max_length=50, kind="sinusoidal")
        >>> x = tf.zeros([2, 10, 16])
        >>> (x + positions(x)).shape
        TensorShape([2, 10, 16])
    """

    config_keys = ("max_length", "output_dim", "kind", "embeddings_initializer", "alignment")

    def __init__(
        self,
        max_length: int,
        output_dim: Optional[int] = None,
        kind: str = "learned",
        embeddings_initializer: Any = "glorot_uniform",
        alignment: str = "end",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if alignment not in _ALIGNMENTS:
            raise ValueError(
                f"PositionEmbedding got alignment={alignment!r}; expected one of {_ALIGNMENTS}."
            )
        if not is_positive_int(max_length):
            raise ValueError(
                f"PositionEmbedding got max_length={max_length!r}; expected a positive int "
                "(the longest sequence length, e.g. 200)."
            )
        if output_dim is not None and not is_positive_int(output_dim):
            raise ValueError(
                f"PositionEmbedding got output_dim={output_dim!r}; expected a positive int "
                "or None (None takes the input's last dimension)."
            )
        if kind not in _POSITION_KINDS:
            raise ValueError(
                f"PositionEmbedding got kind={kind!r}; expected one of {_POSITION_KINDS}."
            )
        self.max_length = max_length
        self.output_dim = output_dim
        self.kind = kind
        self.alignment = alignment
        self.embeddings_initializer = tf.keras.initializers.get(embeddings_initializer)
        self.supports_masking = True

    def build(self, input_shape: tf.TensorShape) -> None:
        input_shape = tf.TensorShape(input_shape)
        dim = self.output_dim
        if dim is None:
            if input_shape.rank != 3 or input_shape[-1] is None:
                raise ValueError(
                    f"PositionEmbedding without output_dim needs [batch, time, features] "
                    f"inputs with a known feature size; got {input_shape}. Pass output_dim=."
                )
            dim = int(input_shape[-1])
        self._dim = dim
        if self.kind == "learned":
            self.position_embeddings = self.add_weight(
                name="position_embeddings",
                shape=[self.max_length, dim],
                initializer=self.embeddings_initializer,
                trainable=True,
            )
        else:
            self._table = _sinusoidal_table(self.max_length, dim)
        super().build(input_shape)

    def call(self, x: tf.Tensor, mask: Optional[tf.Tensor] = None) -> tf.Tensor:
        length = tf.shape(x)[1]
        if x.shape[1] is not None and x.shape[1] > self.max_length:
            raise ValueError(
                f"PositionEmbedding(max_length={self.max_length}) got sequences of length "
                f"{x.shape[1]}. Truncate histories to the most recent {self.max_length} items "
                "or raise max_length."
            )
        checks = [tf.debugging.assert_less_equal(
            length, self.max_length,
            message=f"PositionEmbedding: sequence longer than max_length={self.max_length}; "
                    "truncate histories to the most recent items or raise max_length.")]
        with tf.control_dependencies(checks):
            start = self.max_length - length
        if self.kind == "learned":
            table = self.position_embeddings
        else:
            table = tf.constant(self._table)
        table = tf.cast(table, self.compute_dtype)
        batch = tf.shape(x)[0]
        if self.alignment == "end":
            vectors = table[start:]  # [T, D]
            return tf.broadcast_to(vectors[tf.newaxis], tf.stack([batch, length, self._dim]))
        if mask is None:
            mask = tf.ones(tf.stack([batch, length]), tf.bool)
        real = tf.cast(mask, tf.int32)
        index = tf.maximum(tf.cumsum(real, axis=1) - 1, 0)  # real items before t, <= T - 1
        vectors = tf.gather(table, index)  # [B, T, D]
        return vectors * tf.cast(real, vectors.dtype)[..., tf.newaxis]

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        input_shape = tf.TensorShape(input_shape)
        dim = self.output_dim if self.output_dim is not None else input_shape[-1]
        return tf.TensorShape([input_shape[0], input_shape[1], dim])


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class ItemSequenceEmbedding(ConfigFromAttributes, tf.keras.layers.Layer):
    """Item embeddings plus position embeddings for left-padded item-id histories.

    Item id 0 is padding: it produces a Keras mask (`item_ids != 0`) and a zero output
    vector. With `scale=True` item vectors are multiplied by `sqrt(embedding_dim)` before
    positions are added (as in SASRec). The item table is exposed as `.item_embeddings`
    (a `tf.keras.layers.Embedding`) so a model can reuse
    `layer.item_embeddings.embeddings` (`[vocab_size, embedding_dim]`) for output logits.

    Args:
        vocab_size: Rows of the item table (`num_items + 2`: 0 = padding, 1 = OOV).
        embedding_dim: Size of the item and position vectors.
        max_length: Longest history length.
        position: "learned", "sinusoidal" or None (no position embedding).
        dropout: Dropout rate on the summed embeddings.
        scale: Whether to multiply item vectors by `sqrt(embedding_dim)`.
        embeddings_initializer: Initializer of the item table (and learned positions).
        embeddings_regularizer: Optional regularizer of the item table.
        position_alignment: How positions are numbered, "end" or "start" (see
            `PositionEmbedding`; "start" counts the real items, so padding never shifts them).
        **kwargs: Standard `tf.keras.layers.Layer` arguments.

    Call args:
        item_ids: `[B, T]` integer ids, left-padded with 0, `T <= max_length`.
        training: Whether dropout is active.
        item_table: Optional `[vocab_size, embedding_dim]` table to read the item vectors from
            instead of `item_embeddings` (a fused item tower's output).

    Returns:
        `[B, T, embedding_dim]` float tensor with a Keras mask `item_ids != 0`.

    Example:
        >>> embed = ItemSequenceEmbedding(vocab_size=100, embedding_dim=8, max_length=5)
        >>> x = embed(tf.constant([[0, 0, 7, 3, 9]]))
        >>> x.shape, x._keras_mask.numpy().tolist()
        (TensorShape([1, 5, 8]), [[False, False, True, True, True]])
    """

    config_keys = (
        "vocab_size", "embedding_dim", "max_length", "position", "dropout", "scale",
        "position_alignment", "embeddings_initializer", "embeddings_regularizer",
    )

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        max_length: int,
        position: Optional[str] = "learned",
        dropout: float = 0.0,
        scale: bool = True,
        embeddings_initializer: Any = "glorot_uniform",
        embeddings_regularizer: Any = None,
        position_alignment: str = "end",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, number in (("vocab_size", vocab_size), ("embedding_dim", embedding_dim),
                             ("max_length", max_length)):
            if not is_positive_int(number):
                raise ValueError(
                    f"ItemSequenceEmbedding got {name}={number!r}; expected a positive int "
                    "(vocab_size is num_items + 2, see Vocabulary.size)."
                )
        if vocab_size < 3:
            raise ValueError(
                f"ItemSequenceEmbedding got vocab_size={vocab_size}; expected at least 3 "
                "(row 0 = padding, 1 = out-of-vocabulary, items from 2). Use Vocabulary.size."
            )
        if position is not None and position not in _POSITION_KINDS:
            raise ValueError(
                f"ItemSequenceEmbedding got position={position!r}; expected one of "
                f"{_POSITION_KINDS} or None."
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(
                f"ItemSequenceEmbedding got dropout={dropout!r}; expected a rate in [0, 1)."
            )
        if position_alignment not in _ALIGNMENTS:
            raise ValueError(
                f"ItemSequenceEmbedding got position_alignment={position_alignment!r}; "
                f"expected one of {_ALIGNMENTS}."
            )
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.max_length = max_length
        self.position = position
        self.dropout = float(dropout)
        self.scale = bool(scale)
        self.position_alignment = position_alignment
        self.embeddings_initializer = tf.keras.initializers.get(embeddings_initializer)
        self.embeddings_regularizer = tf.keras.regularizers.get(embeddings_regularizer)

        self.item_embeddings = tf.keras.layers.Embedding(
            vocab_size,
            embedding_dim,
            embeddings_initializer=self.embeddings_initializer,
            embeddings_regularizer=self.embeddings_regularizer,
            mask_zero=True,
            dtype=self.dtype_policy,
            name="item_embeddings",
        )
        self.position_embeddings = None
        if position is not None:
            self.position_embeddings = PositionEmbedding(
                max_length,
                output_dim=embedding_dim,
                kind=position,
                # Seed offset 1: a different draw than the item table when seeded.
                embeddings_initializer=clone_initializer(self.embeddings_initializer, 1),
                alignment=position_alignment,
                dtype=self.dtype_policy,
                name="position_embeddings",
            )
        self.dropout_layer = ByteDropout(self.dropout, dtype=self.dtype_policy)

    def build(self, input_shape: tf.TensorShape) -> None:
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 2:
            raise ValueError(
                f"ItemSequenceEmbedding expects item ids of shape [batch, time]; got "
                f"{input_shape}. Pad histories with pad_sequences(...) first."
            )
        with tf.name_scope(self.item_embeddings.name):
            self.item_embeddings.build(input_shape)
        if self.position_embeddings is not None:
            with tf.name_scope(self.position_embeddings.name):
                self.position_embeddings.build(input_shape)
        super().build(input_shape)

    def call(self, item_ids: tf.Tensor, training: Optional[bool] = None,
             item_table: Optional[tf.Tensor] = None) -> tf.Tensor:
        if not item_ids.dtype.is_integer:
            raise TypeError(
                f"ItemSequenceEmbedding expects integer item ids; got dtype {item_ids.dtype}. "
                "Map raw ids with Vocabulary.lookup (an int32 array) first."
            )
        checks = [
            tf.debugging.assert_non_negative(
                item_ids, message="ItemSequenceEmbedding: negative item id; ids must be in "
                "[0, vocab_size). Map raw ids with Vocabulary.lookup."),
            tf.debugging.assert_less(
                item_ids, tf.cast(self.vocab_size, item_ids.dtype),
                message=f"ItemSequenceEmbedding: item id >= vocab_size={self.vocab_size}; "
                "unknown items must be mapped to 1 (OOV) by Vocabulary.lookup."),
        ]
        with tf.control_dependencies(checks):
            item_ids = tf.identity(item_ids)
        # `item_table`: a table computed from this one (e.g. fused with item content) read instead.
        vectors = self.item_embeddings(item_ids) if item_table is None else tf.gather(item_table, item_ids)
        if self.scale:
            vectors = vectors * tf.cast(math.sqrt(self.embedding_dim), vectors.dtype)
        is_item = tf.not_equal(item_ids, 0)
        if self.position_embeddings is not None:
            vectors = vectors + self.position_embeddings(item_ids, mask=is_item)
        vectors = vectors * tf.cast(is_item, vectors.dtype)[..., tf.newaxis]
        return self.dropout_layer(vectors, training=training)

    def compute_mask(self, item_ids: tf.Tensor, mask: Optional[tf.Tensor] = None):
        return tf.not_equal(item_ids, 0)

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        return tf.TensorShape(input_shape).concatenate([self.embedding_dim])
