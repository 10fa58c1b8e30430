"""Embedding & MLP: the DIN paper's base model, pooled history without attention."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import tensorflow as tf

from tf_attnrec.models.ranking import TINY_RANKER, RankingModel
from tf_attnrec.models.registry import register_model
from tf_attnrec.layers.feature_embedding import POOLING_MODES, FeatureEmbedding


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class EmbeddingMLP(RankingModel):
    """Baseline without attention: user profile + candidate + pooled history -> MLP.

    The history's item vectors are sum-pooled (the DIN paper's base model) or mean-pooled
    over the real positions, so every history item counts the same whatever the candidate.

    Args:
        feature_sizes: table rows per feature (`FeatureVocabularies.sizes()`).
        pooling: "sum" (paper) or "mean".
        **kwargs: `RankingModel` arguments (embedding_dim, max_length, hidden_units, ...).

    Call arguments and returns: as `RankingModel` (a features dict -> click logits [B]).

    Example:
        ```python
        model = EmbeddingMLP(data.vocabularies.sizes(), pooling="sum")
        ```
    """

    def __init__(self, feature_sizes: Mapping[str, int], pooling: str = "sum", **kwargs: Any) -> None:
        kwargs.setdefault("name", "embedding_mlp")
        if pooling not in POOLING_MODES:
            raise ValueError(f"EmbeddingMLP: pooling must be one of {POOLING_MODES}; got {pooling!r}.")
        super().__init__(feature_sizes, **kwargs)
        self.pooling = pooling

    def represent(self, embedded: Mapping[str, tf.Tensor], training: Optional[bool] = None) -> tf.Tensor:
        pooled = FeatureEmbedding.pool_history(embedded["history"], embedded["history_mask"], self.pooling)
        return tf.concat(
            [self.flatten_fields(embedded["user"]), self.flatten_fields(pooled),
             self.flatten_fields(embedded["candidate"])],
            axis=-1,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["pooling"] = self.pooling
        return config


@register_model("ranking", (EmbeddingMLP,), tiny=TINY_RANKER)
def embedding_mlp(vocab_size: int, feature_sizes: Optional[Mapping[str, int]] = None, **config: Any) -> EmbeddingMLP:
    """Baseline without attention: sum-pooled history + MLP (DIN base)."""
    return EmbeddingMLP.from_sizes(vocab_size, feature_sizes, name="embedding_mlp", **config)
