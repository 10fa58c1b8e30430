"""NARM-style encoder: an LSTM/GRU over the item history plus attention over its states."""

from __future__ import annotations

from typing import Any, Optional

import tensorflow as tf

from tf_attnrec.models.registry import register_model
from tf_attnrec.models.sequence_encoder import SequenceEncoder
from tf_attnrec.models.sequential_retrieval import SequentialRetrievalModel
from tf_attnrec.layers.embeddings import ItemSequenceEmbedding
from tf_attnrec.layers.recurrent import RecurrentAttentionEncoder


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class RecurrentAttentionSequenceEncoder(SequenceEncoder):
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
        self.embedding = ItemSequenceEmbedding(
            vocab_size,
            embedding_dim,
            max_length,
            position=None,
            dropout=self.dropout,
            scale=False,
            name="item_sequence_embedding",
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

    @property
    def output_dim(self) -> int:
        return self.embedding_dim

    def call(self, history: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        history = self._prepare(history)
        mask = tf.not_equal(history, 0)
        x = self.embedding(history, training=training)
        encoding = self.recurrent(x, mask=mask, training=training)
        return self.output_projection(encoding)

    def attention_weights(self, history: tf.Tensor, per_head: bool = False) -> tf.Tensor:
        """NARM's local attention over the RNN states for the last position (the query).

        The query of the attention is the final RNN state, as in `call`; inference mode.

        Args:
            history: int `[B, L]` item ids, left-padded with 0, most recent last.
            per_head: add a head axis of size 1 (`[B, 1, L]`), for a shape shared with
                multi-head encoders.

        Returns:
            float32 `[B, L]` softmax weights: sum 1 over the real items, 0 at padding (and at
            positions older than `max_length`); an all-padding row is all 0.
        """
        prepared = self._prepare(history)
        mask = tf.not_equal(prepared, 0)
        x = self.embedding(prepared, training=False)
        weights = self.recurrent.attention_weights(x, mask=mask)
        return self._history_weights(weights, history, per_head)

    def encode_sequence(self, history: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        history = self._prepare(history)
        mask = tf.not_equal(history, 0)
        x = self.embedding(history, training=training)
        encoding = self.recurrent(x, mask=mask, training=training, return_sequences=True)
        return self.output_projection(encoding)  # no bias: padded positions stay 0

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "embedding_dim": self.embedding_dim,
                "units": self.units,
                "cell": self.cell,
                "attention_units": self.attention_units,
                "dropout": self.dropout,
            }
        )
        return config


@register_model("retrieval", (RecurrentAttentionSequenceEncoder, SequentialRetrievalModel),
                training={"split_long_sequences": True}, tiny={"embedding_dim": 8, "units": 8, "max_length": 8})
def lstm_attention(vocab_size: int, **config: Any) -> SequentialRetrievalModel:
    """NARM-style LSTM (or GRU, cell='gru') plus attention over its states."""
    return SequentialRetrievalModel.with_encoder(RecurrentAttentionSequenceEncoder, vocab_size, name="lstm_attention", **config)
