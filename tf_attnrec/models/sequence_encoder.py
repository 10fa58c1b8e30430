"""The interface every sequential encoder ("backbone") implements."""

from __future__ import annotations

from typing import Any, Optional

import tensorflow as tf


class SequenceEncoder(tf.keras.layers.Layer):
    """Base class: maps a left-padded item-id history `[B, L]` to query vectors.

    Subclasses own an item-embedding table of `vocab_size` rows (row 0 = padding, row 1 =
    out-of-vocabulary) that the retrieval head reuses as the output (candidate) table, so
    `scores = query @ item_embeddings^T`.

    Two ways to encode:

    * `encode_sequence(history) -> [B, L, D]`: one state per position, where the state at
      position `t` depends only on items at positions `<= t` (causal). Only encoders with
      `supports_all_positions = True` implement it; the retrieval head then trains on every
      position of every sequence in one pass.
    * `call(history) -> [B, D]`: the query for the most recent (last) position. Always
      available; encoders without per-position states are trained on sampled prefixes.

    Histories longer than `max_length` are truncated to their most recent `max_length` items.

    Args:
        vocab_size: Rows of the item-embedding table (`num_items + 2`).
        max_length: Longest history the encoder reads.
        **kwargs: Standard `tf.keras.layers.Layer` arguments.
    """

    #: True when `encode_sequence` returns causal per-position states.
    supports_all_positions: bool = False

    def __init__(self, vocab_size: int, max_length: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        name = type(self).__name__
        if not isinstance(vocab_size, int) or vocab_size < 3:
            raise ValueError(
                f"{name}: `vocab_size` must be an int >= 3 (num_items + 2: row 0 is padding, "
                f"row 1 out-of-vocabulary); got {vocab_size!r}. Pass `vocabulary.size`."
            )
        if not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"{name}: `max_length` must be a positive int; got {max_length!r}.")
        self.vocab_size = vocab_size
        self.max_length = max_length

    @property
    def item_embeddings(self) -> tf.Variable:
        """The `[vocab_size, D]` item-embedding table shared with the output layer.

        Subclasses keep their input `ItemSequenceEmbedding` in `self.embedding`; its table is
        the candidate table, which ties input and output embeddings.
        """
        return self.embedding.item_embeddings.embeddings

    @property
    def output_dim(self) -> int:
        """Size `D` of the query vectors (equal to the item-embedding size)."""
        raise NotImplementedError

    def _prepare(self, history: tf.Tensor) -> tf.Tensor:
        """Cast to int32 and keep the most recent `max_length` items."""
        history = tf.convert_to_tensor(history)
        if history.shape.rank is not None and history.shape.rank != 2:
            raise ValueError(
                f"{type(self).__name__} expects item ids of shape [batch, length] (left-padded "
                f"with 0); got shape {history.shape}."
            )
        history = tf.cast(history, tf.int32)
        if history.shape[1] is not None and history.shape[1] > self.max_length:
            history = history[:, -self.max_length :]
        return history

    @staticmethod
    def _history_weights(weights: tf.Tensor, history: tf.Tensor, per_head: bool) -> tf.Tensor:
        """Attention weights `[B, (H,) L']` of the read history, aligned with the input history.

        For `attention_weights` of subclasses: float32; a head axis of size 1 is added for
        single-attention encoders with `per_head=True`; positions cut off by `max_length`
        (the oldest ones) are left-padded with weight 0, so the result has the input's `L`.
        """
        weights = tf.cast(weights, tf.float32)
        if per_head and weights.shape.rank == 2:
            weights = weights[:, tf.newaxis, :]
        missing = tf.shape(tf.convert_to_tensor(history))[1] - tf.shape(weights)[-1]
        paddings = [[0, 0]] * (weights.shape.rank - 1) + [[missing, 0]]
        return tf.pad(weights, paddings)

    def encode_sequence(self, history: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        """Per-position states `[B, L, D]` (only when `supports_all_positions`)."""
        raise NotImplementedError(
            f"{type(self).__name__} encodes whole histories only (supports_all_positions=False); "
            "call the layer to get the query for the last position."
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"vocab_size": self.vocab_size, "max_length": self.max_length})
        return config
