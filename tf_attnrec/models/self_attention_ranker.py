"""A Transformer block over user and item tokens: profile, behaviour and candidate."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import tensorflow as tf

from tf_attnrec.models.ranking import TINY_RANKER, TransformerRankingModel
from tf_attnrec.models.registry import register_model
from tf_attnrec.layers.feature_embedding import FeatureEmbedding

_NUM_TOKENS = 3  # user profile, user behaviour (pooled history), candidate item


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class SelfAttentionRanker(TransformerRankingModel):
    """User and item embeddings as tokens through Transformer blocks, then the MLP head.

    Three tokens, each projected to `hidden_dim` plus a learned token-type vector: the user
    profile (gender, age, occupation fields), the user's behaviour (mean-pooled history item
    fields) and the candidate item (id, genre, year fields). Self-attention lets the
    candidate token interact with both user tokens; the flattened outputs go to the head.

    Args:
        feature_sizes: table rows per feature (`FeatureVocabularies.sizes()`).
        hidden_dim: token width (divisible by `num_heads`).
        num_blocks: Transformer blocks.
        num_heads: attention heads.
        **kwargs: `RankingModel` arguments (embedding_dim, max_length, hidden_units,
            dropout, ...); `dropout` also applies inside the blocks.

    Call arguments and returns: as `RankingModel` (a features dict -> click logits [B]).

    Example:
        ```python
        model = SelfAttentionRanker(data.vocabularies.sizes(), hidden_dim=32, num_heads=2)
        ```
    """

    def __init__(self, feature_sizes: Mapping[str, int], **kwargs: Any) -> None:
        kwargs.setdefault("name", "self_attention_ranker")
        super().__init__(feature_sizes, **kwargs)
        self.token_projections = [
            tf.keras.layers.Dense(self.hidden_dim, name=f"{token}_token")
            for token in ("profile", "behaviour", "candidate")
        ]
        self.token_types = tf.keras.layers.Embedding(_NUM_TOKENS, self.hidden_dim, name="token_types")
        self.blocks = self.transformer_blocks()

    def represent(self, embedded: Mapping[str, tf.Tensor], training: Optional[bool] = None) -> tf.Tensor:
        pooled = FeatureEmbedding.pool_history(embedded["history"], embedded["history_mask"], "mean")
        sources = (embedded["user"], pooled, embedded["candidate"])
        tokens = tf.stack(
            [project(self.flatten_fields(fields)) for project, fields in zip(self.token_projections, sources)],
            axis=1,
        )
        x = tokens + self.token_types(tf.range(_NUM_TOKENS))[tf.newaxis]
        for block in self.blocks:
            x = block(x, training=training)
        return tf.reshape(x, [-1, _NUM_TOKENS * self.hidden_dim])


@register_model("ranking", (SelfAttentionRanker,), tiny={**TINY_RANKER, "hidden_dim": 8})
def self_attention_ranker(vocab_size: int, feature_sizes: Optional[Mapping[str, int]] = None, **config: Any) -> SelfAttentionRanker:
    """Transformer block over user-profile, user-behaviour and candidate tokens."""
    return SelfAttentionRanker.from_sizes(vocab_size, feature_sizes, name="self_attention_ranker", **config)
