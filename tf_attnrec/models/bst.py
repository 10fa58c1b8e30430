"""BST: a Transformer over the behaviour sequence plus the candidate (Chen et al., 2019)."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import tensorflow as tf

from tf_attnrec.layers.embeddings import PositionEmbedding
from tf_attnrec.models.ranking import TINY_RANKER, TransformerRankingModel
from tf_attnrec.models.registry import register_model


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class BST(TransformerRankingModel):
    """Behavior Sequence Transformer: history items and the candidate as one sequence.

    The sequence is the history (left-padded, most recent last) followed by the candidate;
    item vectors (id, genre, year fields) are projected to `hidden_dim`, get learned
    position embeddings (aligned at the candidate, so padding length does not move them)
    and pass through `num_blocks` `TransformerBlock`s with the padding masked. The
    candidate position's output and the mean of the history positions' outputs are
    concatenated with the user profile and fed to the MLP head.

    Args:
        feature_sizes: table rows per feature (`FeatureVocabularies.sizes()`).
        hidden_dim: Transformer width (divisible by `num_heads`).
        num_blocks: number of Transformer blocks (paper: 1).
        num_heads: attention heads (paper: 8).
        **kwargs: `RankingModel` arguments (embedding_dim, max_length, hidden_units,
            dropout, ...); `dropout` also applies inside the blocks.

    Call arguments and returns: as `RankingModel` (a features dict -> click logits [B]);
    `attention_weights(features)` gives the candidate's attention over the history in the
    last block, averaged over heads [B, L].

    Example:
        ```python
        model = BST(data.vocabularies.sizes(), hidden_dim=32, num_heads=2, max_length=50)
        ```
    """

    def __init__(self, feature_sizes: Mapping[str, int], **kwargs: Any) -> None:
        kwargs.setdefault("name", "bst")
        super().__init__(feature_sizes, **kwargs)
        self.project = tf.keras.layers.Dense(self.hidden_dim, name="item_projection")
        # One position per history slot plus the candidate's.
        self.positions = PositionEmbedding(self.max_length + 1, self.hidden_dim, name="positions")
        self.blocks = self.transformer_blocks()

    def _sequence(self, embedded: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        history = embedded["history"]
        if history.shape[1] is not None and history.shape[1] > self.max_length:
            raise ValueError(
                f"BST(max_length={self.max_length}) got histories of length {history.shape[1]}; "
                "build the features with the same max_length."
            )
        batch, length = tf.shape(history)[0], tf.shape(history)[1]
        items = tf.concat(
            [tf.reshape(history, [batch, length, self.embedding.item_dim]),
             self.flatten_fields(embedded["candidate"])[:, tf.newaxis, :]],
            axis=1,
        )
        mask = tf.concat([embedded["history_mask"], tf.ones([batch, 1], tf.bool)], axis=1)
        x = self.project(items)
        x = x + self.positions(x)
        # Padded slots hold zeros + their position vector; zero them so only the mask matters.
        return x * tf.cast(mask, x.dtype)[..., tf.newaxis], mask

    def represent(self, embedded: Mapping[str, tf.Tensor], training: Optional[bool] = None) -> tf.Tensor:
        x, mask = self._sequence(embedded)
        for block in self.blocks:
            x = block(x, mask=mask, training=training)
        history_mask = embedded["history_mask"]
        weights = tf.cast(history_mask, x.dtype)[..., tf.newaxis]
        history_mean = tf.reduce_sum(x[:, :-1] * weights, axis=1) / tf.maximum(
            tf.reduce_sum(weights, axis=1), 1.0)
        return tf.concat([self.flatten_fields(embedded["user"]), x[:, -1], history_mean], axis=-1)

    def attention_weights(self, features: Mapping[str, tf.Tensor], per_head: bool = False) -> tf.Tensor:
        """Candidate-to-history attention of the last block (0 at padding).

        Args:
            features: dict with the `schema.MODEL_FEATURES`.
            per_head: return every head's weights instead of their mean.

        Returns:
            [B, L], the mean over heads, or [B, num_heads, L] with `per_head=True`. Each head's
            softmax also gives weight to the candidate token itself, so a row sums to <= 1.
        """
        x, mask = self._sequence(self.embedding(features))
        for block in self.blocks[:-1]:
            x = block(x, mask=mask, training=False)
        weights = self.blocks[-1].attention_weights(x, mask=mask)
        candidate = weights[:, :, -1, :-1]  # [B, heads, L]: the candidate's row, history columns
        return candidate if per_head else tf.reduce_mean(candidate, axis=1)


@register_model("ranking", (BST,), tiny={**TINY_RANKER, "hidden_dim": 8})
def bst(vocab_size: int, feature_sizes: Optional[Mapping[str, int]] = None, **config: Any) -> BST:
    """BST: Transformer over history + candidate with positions (Chen et al. 2019)."""
    return BST.from_sizes(vocab_size, feature_sizes, name="bst", **config)
