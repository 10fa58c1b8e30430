"""The simplest attention recommender: the last item attends over the history."""

from __future__ import annotations

from typing import Any, Optional

import tensorflow as tf

from tf_attnrec.models.registry import register_model
from tf_attnrec.models.sequence_encoder import AttentionSequenceEncoder
from tf_attnrec.models.sequential_retrieval import SequentialRetrievalModel
from tf_attnrec.layers.pooling import AttentionPooling


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class AttentionPoolingEncoder(AttentionSequenceEncoder):
    """Query = most recent item; additive attention pools the history; linear merge.

    `pooled = AttentionPooling(values=history embeddings, query=last item embedding)` and the
    query vector is `W [pooled; last]` (bias-free), a STAMP-like short-term/long-term mix.
    `encode_sequence` computes the same for every prefix at once (item `t` as the query,
    attending over positions `<= t`), so the retrieval head trains on every position.

    Args:
        vocab_size: Rows of the item table (`num_items + 2`).
        max_length: Longest history read.
        embedding_dim: Item embedding size `D` (= query size).
        attention_units: Hidden size of the additive attention (default `D`).
        position: Position embeddings added to the history ("learned", "sinusoidal", None).
        position_alignment: "end" or "start" (positions count the items before, so the state
            of every prefix in `encode_sequence` equals its `call` query); see
            `PositionEmbedding`.
        dropout: Dropout on the embeddings.
        **kwargs: Standard `tf.keras.layers.Layer` arguments.

    Call arguments:
        history: int `[B, L]` item ids, left-padded with 0, most recent last.
        training: Python bool, enables dropout.

    Returns:
        `[B, embedding_dim]` query vectors (`encode_sequence`: `[B, L, embedding_dim]`,
        zeros at padded positions).

    Example:
        >>> encoder = AttentionPoolingEncoder(vocab_size=12, max_length=5, embedding_dim=8)
        >>> encoder(tf.constant([[0, 0, 4, 5, 6]])).shape
        TensorShape([1, 8])
    """

    supports_all_positions = True
    #: What `attention_weights` returns (shown by `tf-attnrec explain`).
    attention_description = "query (most recent item) additive attention pooling, softmax"
    config_keys = (
        *AttentionSequenceEncoder.config_keys,
        "embedding_dim", "attention_units", "position", "position_alignment", "dropout",
    )

    def __init__(
        self,
        vocab_size: int,
        max_length: int = 50,
        embedding_dim: int = 64,
        attention_units: Optional[int] = None,
        position: Optional[str] = "learned",
        position_alignment: str = "start",
        dropout: float = 0.2,
        **kwargs: Any,
    ) -> None:
        super().__init__(vocab_size, max_length, **kwargs)
        self.embedding_dim = embedding_dim
        self.attention_units = attention_units
        self.position = position
        self.position_alignment = position_alignment
        self.dropout = float(dropout)
        self.embedding = self._input_embedding(
            embedding_dim, position=position, dropout=self.dropout, scale=False,
            position_alignment=position_alignment,
        )
        self.pooling = AttentionPooling(
            hidden_units=attention_units, use_query=True, name="attention_pooling"
        )
        self.output_projection = tf.keras.layers.Dense(
            embedding_dim, use_bias=False, name="output_projection"
        )

    def call(self, history: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        x, mask = self._embed(history, training=training)
        last = x[:, -1, :]  # left padding: the last position is the most recent item
        pooled = self.pooling(x, query=last, mask=mask)
        return self.output_projection(tf.concat([pooled, last], axis=-1))

    def _query_attention(self, x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """The pooling weights `[B, L]` with the most recent item as the query, as in `call`."""
        _, weights = self.pooling(x, query=x[:, -1, :], mask=mask, return_attention_scores=True)
        return weights

    def encode_sequence(self, history: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        x, mask = self._embed(history, training=training)
        pooled = self.pooling(x, query=x, mask=mask, causal=True)  # state t pools items <= t
        states = self.output_projection(tf.concat([pooled, x], axis=-1))
        # Padded positions carry position embeddings; zero their states (never a target).
        return tf.where(mask[:, :, tf.newaxis], states, tf.zeros_like(states))


@register_model("retrieval", (AttentionPoolingEncoder, SequentialRetrievalModel),
                training={"split_long_sequences": True}, tiny={"embedding_dim": 8, "max_length": 8})
def attention_pooling(vocab_size: int, **config: Any) -> SequentialRetrievalModel:
    """Last item as query, additive attention pooling over the history."""
    return SequentialRetrievalModel.with_encoder(AttentionPoolingEncoder, vocab_size, name="attention_pooling", **config)
