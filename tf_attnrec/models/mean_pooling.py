"""Baseline without attention: the mean of the history's item embeddings."""

from __future__ import annotations

from typing import Any, Optional

import tensorflow as tf

from tf_attnrec.models.registry import register_model
from tf_attnrec.models.sequence_encoder import SequenceEncoder
from tf_attnrec.models.sequential_retrieval import SequentialRetrievalModel


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class MeanPoolingEncoder(SequenceEncoder):
    """Query = (optionally linearly mapped) mean of the item embeddings seen so far.

    The per-position state at `t` is the running mean over positions `<= t` (a cumulative
    sum), so it is causal and the head trains on every position in one pass. An empty
    history encodes to zeros.

    Args:
        vocab_size: Rows of the item table (`num_items + 2`).
        max_length: Longest history read.
        embedding_dim: Item embedding size `D` (= query size).
        project: Apply a bias-free `D x D` linear map to the mean (lets "what I watched"
            differ from "what I watch next"); False = the plain mean.
        dropout: Dropout on the embeddings.
        **kwargs: Standard `tf.keras.layers.Layer` arguments.

    Call arguments:
        history: int `[B, L]` item ids, left-padded with 0, most recent last.
        training: Python bool, enables dropout.

    Returns:
        `call`: `[B, embedding_dim]`; `encode_sequence`: `[B, L, embedding_dim]`.

    Example:
        >>> encoder = MeanPoolingEncoder(vocab_size=12, max_length=5, embedding_dim=8)
        >>> encoder(tf.constant([[0, 0, 4, 5, 6]])).shape
        TensorShape([1, 8])
    """

    supports_all_positions = True
    config_keys = (*SequenceEncoder.config_keys, "embedding_dim", "project", "dropout")

    def __init__(
        self,
        vocab_size: int,
        max_length: int = 200,
        embedding_dim: int = 64,
        project: bool = True,
        dropout: float = 0.2,
        **kwargs: Any,
    ) -> None:
        super().__init__(vocab_size, max_length, **kwargs)
        self.embedding_dim = embedding_dim
        self.project = bool(project)
        self.dropout = float(dropout)
        self.embedding = self._input_embedding(
            embedding_dim, position=None, dropout=self.dropout, scale=False
        )
        self.output_projection = (
            tf.keras.layers.Dense(embedding_dim, use_bias=False, name="output_projection")
            if self.project
            else None
        )

    def encode_sequence(self, history: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        x, is_item = self._embed(history, training=training)
        mask = tf.cast(is_item, self.compute_dtype)[:, :, tf.newaxis]
        x = x * mask
        running_mean = tf.math.divide_no_nan(
            tf.cumsum(x, axis=1), tf.cumsum(mask, axis=1)
        )
        if self.output_projection is not None:
            running_mean = self.output_projection(running_mean)
        return running_mean * mask

    def call(self, history: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        return self.encode_sequence(history, training=training)[:, -1, :]


@register_model("retrieval", (MeanPoolingEncoder, SequentialRetrievalModel),
                training={}, tiny={"embedding_dim": 8, "max_length": 8})
def mean_pooling(vocab_size: int, **config: Any) -> SequentialRetrievalModel:
    """Baseline without attention: mean of the history's item embeddings."""
    return SequentialRetrievalModel.with_encoder(MeanPoolingEncoder, vocab_size, name="mean_pooling", **config)
