"""NARM-style encoder: an LSTM/GRU over the item history plus attention over its states."""

from __future__ import annotations

from typing import Any, Optional

import tensorflow as tf

from tf_attnrec.models.registry import register_model
from tf_attnrec.models.sequence_encoder import AttentionSequenceEncoder
from tf_attnrec.models.sequential_retrieval import SequentialRetrievalModel
from tf_attnrec.layers.recurrent import RecurrentAttentionEncoder


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class RecurrentAttentionSequenceEncoder(AttentionSequenceEncoder):
    """Item embeddings -> `RecurrentAttentionEncoder` (NARM) -> linear map to the item space.

    NARM (Li et al., 2017) scores item `i` as `emb_i^T B [global; local]`; the bias-free
    `output_projection` is that bilinear `B`, so the query lives in the item-embedding space
    and the item table is shared between input and output.

    The RNN is causal and the attention can be restricted to positions `<= t`, so
    `encode_sequence` gives the encoding of every prefix in one pass and the retrieval head
    trains on every position of every training sequence (as for SASRec).

    Args:
        vocab_size: Rows of the item table (`num_items + 2`).
        max_length: Longest history the RNN reads.
        embedding_dim: Item embedding size `D` (= query size).
        units: RNN hidden size.
        cell: "lstm" or "gru".
        attention_units: Hidden size of the additive attention (default `units`).
        dropout: Dropout on embeddings, RNN inputs and the encoding.
        **kwargs: Standard `tf.keras.layers.Layer` arguments.

    Call arguments:
        history: int `[B, L]` item ids, left-padded with 0, most recent last.
        training: Python bool, enables dropout.

    Returns:
        `call`: `[B, embedding_dim]` query vectors; `encode_sequence`: `[B, L, embedding_dim]`
        per-prefix queries (0 at padding).

    Example:
        >>> encoder = RecurrentAttentionSequenceEncoder(vocab_size=12, max_length=5,
        ...                                            embedding_dim=8, units=8, cell="gru")
        >>> encoder(tf.constant([[0, 0, 4, 5, 6]])).shape
        TensorShape([1, 8])
    """

    supports_all_positions = True
    #: What `attention_weights` returns (shown by `tf-attnrec explain`).
    attention_description = "query (final RNN state) additive attention over the RNN states, softmax"
    config_keys = (
        *AttentionSequenceEncoder.config_keys,
        "embedding_dim", "units", "cell", "attention_units", "dropout",
    )

    def __init__(
        self,
        vocab_size: int,
        max_length: int = 50,
        embedding_dim: int = 64,
        units: int = 64,
        cell: str = "lstm",
        attention_units: Optional[int] = None,
        dropout: float = 0.2,
        **kwargs: Any,
    ) -> None:
        super().__init__(vocab_size, max_length, **kwargs)
        self.embedding_dim = embedding_dim
        self.units = units
        self.cell = cell
        self.attention_units = attention_units
        self.dropout = float(dropout)
        self.embedding = self._input_embedding(
            embedding_dim, position=None, dropout=self.dropout, scale=False
        )
        self.recurrent = RecurrentAttentionEncoder(
            units,
            cell=cell,
            attention_units=attention_units,
            dropout=self.dropout,
            output="concat",
            name="recurrent_attention",
        )
        self.output_projection = tf.keras.layers.Dense(
            embedding_dim, use_bias=False, name="output_projection"
        )

    def call(self, history: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        x, mask = self._embed(history, training=training)
        encoding = self.recurrent(x, mask=mask, training=training)
        return self.output_projection(encoding)

    def _query_attention(self, x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """NARM's local attention `[B, L]` over the RNN states, queried by the final state."""
        return self.recurrent.attention_weights(x, mask=mask)

    def encode_sequence(self, history: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        x, mask = self._embed(history, training=training)
        encoding = self.recurrent(x, mask=mask, training=training, return_sequences=True)
        return self.output_projection(encoding)  # no bias: padded positions stay 0


@register_model("retrieval", (RecurrentAttentionSequenceEncoder, SequentialRetrievalModel),
                training={"split_long_sequences": True}, tiny={"embedding_dim": 8, "units": 8, "max_length": 8})
def lstm_attention(vocab_size: int, **config: Any) -> SequentialRetrievalModel:
    """NARM-style LSTM (or GRU, cell='gru') plus attention over its states."""
    return SequentialRetrievalModel.with_encoder(RecurrentAttentionSequenceEncoder, vocab_size, name="lstm_attention", **config)
