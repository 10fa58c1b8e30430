"""SASRec: causal self-attention over the item sequence (Kang & McAuley, 2018)."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import tensorflow as tf

from tf_attnrec.models.registry import register_model
from tf_attnrec.models.sequence_encoder import AttentionSequenceEncoder, without_leading_padding
from tf_attnrec.models.sequential_retrieval import SequentialRetrievalModel
from tf_attnrec.layers.transformer import TransformerBlock


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class SASRecEncoder(AttentionSequenceEncoder):
    """Item + position embeddings, `num_blocks` causal Transformer blocks, final LayerNorm.

    The state at position `t` attends only to positions `<= t`, so every position of a
    training sequence is a next-item target in one forward pass. Padded positions output
    zeros. The item table (`item_embeddings`) is shared with the output layer.

    Args:
        vocab_size: Rows of the item table (`num_items + 2`).
        max_length: Longest history (learned position embeddings have this many rows).
        hidden_dim: Embedding / model width `D`.
        num_blocks: Number of Transformer blocks.
        num_heads: Attention heads per block.
        ff_dim: Feed-forward width (default `hidden_dim`, as in SASRec).
        ff_activation: Feed-forward activation ("relu" in SASRec, "gelu" ...).
        dropout: Dropout on embeddings, attention outputs and feed-forward layers.
        attention_dropout: Dropout on attention weights (default: `dropout`).
        position: "learned", "sinusoidal" or None (no position information).
        position_alignment: "end" (original SASRec: the most recent item always has the
            last position) or "start" (positions count the items before, so the state at
            `t` is exactly the query of the prefix ending at `t`); see `PositionEmbedding`.
        norm_first: Pre-LayerNorm blocks (True, SASRec code) or post-LN (False).
        layer_norm_epsilon: Epsilon of the LayerNorms.
        initializer_range: If set, item and position tables and all projection kernels
            start from a normal distribution with this standard deviation (0.02 in BERT,
            RecBole and SASRec+ code); None keeps Keras' Glorot-uniform.
        item_features: Content fused with each item's id into the item table, for input and
            output alike (`FusedItemEmbedding`): a subset of ("genres", "title", "year",
            "vectors"); empty = id embeddings only.
        item_tower_options: Further `FusedItemEmbedding` arguments, e.g. `{"id_dropout": 0.3}`.
        item_content: The content vocabularies, from the data (`content_vocabularies`); the
            retrieval task passes them, never a config.
        **kwargs: Standard `tf.keras.layers.Layer` arguments.

    Call arguments:
        history: int `[B, L]` item ids, left-padded with 0, most recent last.
        training: Python bool, enables dropout.

    Returns:
        `call`: `[B, hidden_dim]` query for the last position; `encode_sequence`:
        `[B, L, hidden_dim]` causal per-position states.

    Example:
        >>> encoder = SASRecEncoder(vocab_size=12, max_length=5, hidden_dim=8)
        >>> encoder(tf.constant([[0, 0, 4, 5, 6]])).shape
        TensorShape([1, 8])
    """

    supports_all_positions = True
    #: What `attention_weights` returns (shown by `tf-attnrec explain`).
    attention_description = "query (last position) softmax attention, last block"
    config_keys = (
        *AttentionSequenceEncoder.config_keys,
        "hidden_dim", "num_blocks", "num_heads", "ff_dim", "ff_activation", "dropout",
        "attention_dropout", "position", "position_alignment", "initializer_range",
        "norm_first", "layer_norm_epsilon", "item_features", "item_tower_options", "item_content",
    )

    def __init__(
        self,
        vocab_size: int,
        max_length: int = 200,
        hidden_dim: int = 64,
        num_blocks: int = 2,
        num_heads: int = 1,
        ff_dim: Optional[int] = None,
        ff_activation: str = "relu",
        dropout: float = 0.1,  # 0.2 measured worse on ML-1M (models/sasrec/README.md)
        attention_dropout: Optional[float] = None,
        position: Optional[str] = "learned",
        position_alignment: str = "end",
        norm_first: bool = True,
        layer_norm_epsilon: float = 1e-6,
        initializer_range: Optional[float] = None,
        item_features: Sequence[str] = (),
        item_tower_options: Optional[Mapping[str, Any]] = None,
        item_content: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(vocab_size, max_length, **kwargs)
        if hidden_dim % num_heads:
            raise ValueError(
                f"SASRecEncoder: `hidden_dim` ({hidden_dim}) must be divisible by `num_heads` "
                f"({num_heads})."
            )
        if num_blocks < 1:
            raise ValueError(f"SASRecEncoder: `num_blocks` must be >= 1; got {num_blocks!r}.")
        self.hidden_dim = hidden_dim
        self.num_blocks = num_blocks
        self.num_heads = num_heads
        self.ff_dim = ff_dim
        self.ff_activation = ff_activation
        self.dropout = float(dropout)
        self.attention_dropout = attention_dropout
        self.position = position
        self.position_alignment = position_alignment
        self.norm_first = norm_first
        self.layer_norm_epsilon = layer_norm_epsilon
        if initializer_range is not None and not initializer_range > 0:
            raise ValueError(
                f"SASRecEncoder: `initializer_range` must be a positive standard deviation or "
                f"None; got {initializer_range!r}."
            )
        self.initializer_range = initializer_range
        initializer: Any = (
            "glorot_uniform"
            if initializer_range is None
            else tf.keras.initializers.RandomNormal(stddev=initializer_range)
        )

        self.embedding = self._input_embedding(
            hidden_dim,
            position=position,
            dropout=self.dropout,
            scale=True,
            position_alignment=position_alignment,
            embeddings_initializer=initializer,
        )
        self._fuse_items(hidden_dim, item_features, item_tower_options, item_content)
        self.blocks = [
            TransformerBlock(
                num_heads=num_heads,
                hidden_dim=hidden_dim,
                ff_dim=ff_dim or hidden_dim,
                ff_activation=ff_activation,
                dropout=self.dropout,
                attention_dropout=self.dropout if attention_dropout is None else attention_dropout,
                norm_first=norm_first,
                causal=True,
                layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=initializer,
                name=f"transformer_block_{i}",
            )
            for i in range(num_blocks)
        ]
        # Pre-LN blocks leave the residual stream un-normalised: normalise once at the end.
        self.final_norm = (
            tf.keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="final_norm")
            if norm_first
            else None
        )

    def encode_sequence(self, history: tf.Tensor, training: Optional[bool] = None,
                        item_table: Optional[tf.Tensor] = None) -> tf.Tensor:
        x, mask = self._embed(history, training=training, item_table=item_table)
        for block in self.blocks:
            x = block(x, mask=mask, training=training)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x * tf.cast(mask, x.dtype)[:, :, tf.newaxis]

    def call(self, history: tf.Tensor, training: Optional[bool] = None,
             item_table: Optional[tf.Tensor] = None) -> tf.Tensor:
        """The query `[B, hidden_dim]`: `encode_sequence(history)[:, -1]`, with less work.

        Only the last position's state is needed, so two kinds of work are skipped, neither of
        which changes it: the columns that are padding in every row (padding never changes a
        result, and "end"-aligned positions keep their indices), and, in the last block, every
        query but the last one, which attends over the whole sequence as its context.
        """
        x, mask = self._embed(without_leading_padding(self._prepare(history)), training=training,
                              item_table=item_table)
        for block in self.blocks[:-1]:
            x = block(x, mask=mask, training=training)
        last_mask = mask[:, -1:]
        query = self.blocks[-1](x[:, -1:], mask=last_mask, training=training, context=x, context_mask=mask)
        if self.final_norm is not None:
            query = self.final_norm(query)
        return (query * tf.cast(last_mask, query.dtype)[:, :, tf.newaxis])[:, 0, :]

    def block_attention_weights(self, history: tf.Tensor) -> tf.Tensor:
        """The query's (the last position's) attention over the history in every block.

        Args:
            history: int `[B, L]` item ids, left-padded with 0, most recent last.

        Returns:
            float32 `[B, num_blocks, num_heads, L]`, aligned with `history` as
            `attention_weights` is (the last block's equals `attention_weights(per_head=True)`).
        """
        x, mask = self._embed(history, training=False)
        maps = []
        for block in self.blocks:
            maps.append(block.attention_weights(x, mask=mask)[:, :, -1, :])
            x = block(x, mask=mask, training=False)
        return self._aligned(tf.cast(tf.stack(maps, axis=1), tf.float32), history)

    def _query_attention(self, x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """The last position's self-attention `[B, num_heads, L]` in the last block.

        The last position's state is what `call` returns (the query); these are the softmax
        weights its attention step in the last Transformer block gives every position
        (before attention dropout).
        """
        for block in self.blocks[:-1]:
            x = block(x, mask=mask, training=False)
        return self.blocks[-1].attention_weights(x, mask=mask)[:, :, -1, :]


@register_model("retrieval", (SASRecEncoder, SequentialRetrievalModel),
                training={"patience": 20, "reduce_lr_patience": 6}, tiny={"hidden_dim": 8, "max_length": 8, "num_blocks": 1})
def sasrec(vocab_size: int, **config: Any) -> SequentialRetrievalModel:
    """SASRec: causal self-attention over the item sequence, full softmax (SASRec+)."""
    return SequentialRetrievalModel.with_encoder(SASRecEncoder, vocab_size, name="sasrec", **config)
