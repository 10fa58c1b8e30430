"""The interface every sequential encoder ("backbone") implements."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import tensorflow as tf

from tf_attnrec.data.item_content import check_item_features
from tf_attnrec.layers.checks import check_positive_int, is_positive_int
from tf_attnrec.layers.config import ConfigFromAttributes
from tf_attnrec.layers.embeddings import ItemSequenceEmbedding
from tf_attnrec.layers.fused_item_embedding import FusedItemEmbedding


def without_leading_padding(history: tf.Tensor) -> tf.Tensor:
    """`history` `[B, L]` without its first columns where every row is padding (0).

    For left-padded histories that is the padding of the longest row, the work a batch of short
    histories does not need. At least the last column is kept, so an all-padding batch stays
    `[B, 1]`.

    Example:
        >>> without_leading_padding(tf.constant([[0, 0, 0, 5], [0, 0, 3, 4]])).numpy().tolist()
        [[0, 5], [3, 4]]
    """
    has_item = tf.reduce_any(tf.not_equal(history, 0), axis=0)
    first = tf.argmax(tf.cast(has_item, tf.int32), output_type=tf.int32)  # the first column with an item
    first = tf.where(tf.reduce_any(has_item), first, tf.shape(history)[1] - 1)
    return history[:, first:]


class SequenceEncoder(ConfigFromAttributes, tf.keras.layers.Layer):
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
    `get_config` returns the constructor arguments named in `config_keys` (a subclass adds
    its own: `config_keys = (*SequenceEncoder.config_keys, "embedding_dim", ...)`).

    Args:
        vocab_size: Rows of the item-embedding table (`num_items + 2`).
        max_length: Longest history the encoder reads.
        **kwargs: Standard `tf.keras.layers.Layer` arguments.
    """

    #: True when `encode_sequence` returns causal per-position states.
    supports_all_positions: bool = False
    config_keys = ("vocab_size", "max_length")

    def __init__(self, vocab_size: int, max_length: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        name = type(self).__name__
        if not is_positive_int(vocab_size, minimum=3):
            raise ValueError(
                f"{name}: `vocab_size` must be an int >= 3 (num_items + 2: row 0 is padding, "
                f"row 1 out-of-vocabulary); got {vocab_size!r}. Pass `vocabulary.size`."
            )
        check_positive_int(name, "`max_length`", max_length)
        self.vocab_size = vocab_size
        self.max_length = max_length
        # A `FusedItemEmbedding` when the encoder embeds items from their content too
        # (`_fuse_items`). An instance attribute: Keras does not track layers that shadow a
        # class attribute.
        self.item_tower: Optional[FusedItemEmbedding] = None

    @property
    def item_embeddings(self) -> tf.Tensor:
        """The `[vocab_size, D]` item-embedding table shared with the output layer.

        Subclasses keep their input `ItemSequenceEmbedding` in `self.embedding`; its table is
        the candidate table, which ties input and output embeddings. With an item tower it is
        the fused table (`item_table`), computed from the id table and the items' content.
        """
        return self.item_table()

    def item_table(self, training: Optional[bool] = None) -> tf.Tensor:
        """The item table: the id embeddings, or with an item tower the fused `[vocab_size, D]` table.

        A training step computes it once and passes it to `encode_sequence(..., item_table=)`,
        so that input and output see the same table (the tower's id dropout is random).
        """
        if self.item_tower is None:
            return self._id_table()
        return self.item_tower(self._id_table(), training=training)

    def content_table(self, training: Optional[bool] = None) -> tf.Tensor:
        """`[vocab_size, D]`: every item embedded from its content alone (needs an item tower)."""
        if self.item_tower is None:
            raise ValueError(f"{type(self).__name__} has no item_features, so no content table.")
        return self.item_tower.content_table(self._id_table(), training=training)

    def _id_table(self) -> tf.Tensor:
        if not self.embedding.built:  # the tower may read the id table before any history was embedded
            self.embedding.build(tf.TensorShape([None, self.max_length]))
        return self.embedding.item_embeddings.embeddings

    def _fuse_items(self, embedding_dim: int, item_features: Sequence[str],
                    item_tower_options: Optional[Mapping[str, Any]],
                    item_content: Optional[Mapping[str, Any]]) -> None:
        """Keeps the fusion arguments and, when `item_features` is not empty, builds `self.item_tower`.

        Args:
            embedding_dim: The id table's width (the tower's output width).
            item_features: Content modalities fused with the id ("genres", "title", "year", "vectors").
            item_tower_options: Further `FusedItemEmbedding` arguments (e.g. `{"id_dropout": 0.3}`).
            item_content: The data-derived vocabularies (`content_vocabularies`), given by the task.
        """
        name = type(self).__name__
        self.item_features = list(check_item_features(item_features, name))
        self.item_tower_options = None if item_tower_options is None else dict(item_tower_options)
        self.item_content = None if item_content is None else dict(item_content)
        if not self.item_features:
            return
        if self.item_content is None:
            raise ValueError(
                f"{name}: item_features {self.item_features} need the catalogue's content vocabularies "
                "(`item_content`); train through `tf-attnrec train` or RetrievalTask, which reads them from "
                "the dataset's item metadata.")
        self.item_tower = FusedItemEmbedding(self.vocab_size, embedding_dim, self.item_features,
                                             **self.item_content, **(self.item_tower_options or {}),
                                             name="item_tower")

    @property
    def output_dim(self) -> int:
        """Size `D` of the query vectors (equal to the item-embedding size)."""
        return self.embedding.embedding_dim

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

    def _input_embedding(self, embedding_dim: int, **options: Any) -> ItemSequenceEmbedding:
        """The `ItemSequenceEmbedding` to keep as `self.embedding` (its table is `item_embeddings`).

        Args:
            embedding_dim: Item embedding size `D`.
            **options: Other `ItemSequenceEmbedding` arguments (position, dropout, scale, ...).
        """
        return ItemSequenceEmbedding(
            self.vocab_size, embedding_dim, self.max_length, name="item_sequence_embedding", **options
        )

    def _embed(
        self, history: tf.Tensor, training: Optional[bool] = None, item_table: Optional[tf.Tensor] = None
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """The read history's item vectors `[B, L', D]` and its mask `[B, L']` (True = item).

        `L'` is the history length cut to `max_length` (see `_prepare`). With an item tower the
        vectors are rows of the fused table (`item_table`, computed here when not given).
        """
        history = self._prepare(history)
        mask = tf.not_equal(history, 0)
        if self.item_tower is not None and item_table is None:
            item_table = self.item_table(training=training)
        return self.embedding(history, training=training, item_table=item_table), mask

    def encode_sequence(self, history: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        """Per-position states `[B, L, D]` (only when `supports_all_positions`)."""
        raise NotImplementedError(
            f"{type(self).__name__} encodes whole histories only (supports_all_positions=False); "
            "call the layer to get the query for the last position."
        )


class AttentionSequenceEncoder(SequenceEncoder):
    """A `SequenceEncoder` whose query attends over the history: adds `attention_weights`.

    Subclasses implement `_query_attention(x, mask)`: the weights that the query (the last
    position) gives the embedded history `x` `[B, L, D]` with mask `[B, L]`, `[B, L]` for a
    single attention or `[B, heads, L]` for multi-head attention. They also set
    `attention_description`, what those weights are (shown by `tf-attnrec explain`).
    """

    attention_description: str

    def attention_weights(self, history: tf.Tensor, per_head: bool = False) -> tf.Tensor:
        """The query's (the last position's) attention over the history, in inference mode.

        Args:
            history: int `[B, L]` item ids, left-padded with 0, most recent last.
            per_head: return `[B, heads, L]`, every head's weights (a head axis of size 1 for
                a single attention), instead of `[B, L]` (their mean over heads).

        Returns:
            float32 weights aligned with `history`: each head's weights sum to 1 over the real
            items and are 0 at padding (and at positions older than `max_length`); an
            all-padding row is all 0.
        """
        x, mask = self._embed(history, training=False)
        weights = tf.cast(self._query_attention(x, mask), tf.float32)
        if weights.shape.rank == 2 and per_head:
            weights = weights[:, tf.newaxis, :]
        elif weights.shape.rank == 3 and not per_head:
            weights = tf.reduce_mean(weights, axis=1)
        return self._aligned(weights, history)

    @staticmethod
    def _aligned(weights: tf.Tensor, history: tf.Tensor) -> tf.Tensor:
        """Weights over the read positions, padded back to the input's `L`: positions cut off
        by `max_length` (the oldest) get weight 0."""
        missing = tf.shape(tf.convert_to_tensor(history))[1] - tf.shape(weights)[-1]
        paddings = [[0, 0]] * (weights.shape.rank - 1) + [[missing, 0]]
        return tf.pad(weights, paddings)

    def _query_attention(self, x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """Weights `[B, L]` or `[B, heads, L]` of the query over the embedded history `x`."""
        raise NotImplementedError(f"{type(self).__name__} must implement _query_attention().")
