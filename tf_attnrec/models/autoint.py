"""AutoInt: multi-head self-attention over feature fields (Song et al., 2019)."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import tensorflow as tf

from tf_attnrec.layers.checks import check_positive_int
from tf_attnrec.layers.multi_head_attention import MultiHeadAttention
from tf_attnrec.models.ranking import TINY_RANKER, RankingModel
from tf_attnrec.models.registry import register_model
from tf_attnrec.layers.feature_embedding import FeatureEmbedding


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class AutoInt(RankingModel):
    """Interacting layers: every feature field attends to every other field.

    Fields (each a D-vector): user gender, age, occupation; candidate id, genres, year;
    and the mean-pooled history's id, genre and year fields (9 in all). Each interacting
    layer is `ReLU(MHA(e, e) + W_res e)` with `num_heads * attention_dim` outputs; the
    flattened result goes to the MLP head (`hidden_units=()` gives the paper's linear
    output, non-empty units give AutoInt+).

    Args:
        feature_sizes: table rows per feature (`FeatureVocabularies.sizes()`).
        num_layers: interacting layers (paper: 3).
        num_heads: heads per layer (paper: 2).
        attention_dim: size per head (paper: 32).
        **kwargs: `RankingModel` arguments (embedding_dim, max_length, hidden_units, ...).

    Call arguments and returns: as `RankingModel` (a features dict -> click logits [B]).

    Example:
        ```python
        model = AutoInt(data.vocabularies.sizes(), num_layers=2, num_heads=2, attention_dim=8)
        ```
    """

    def __init__(
        self,
        feature_sizes: Mapping[str, int],
        num_layers: int = 2,
        num_heads: int = 2,
        attention_dim: int = 16,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("name", "autoint")
        super().__init__(feature_sizes, **kwargs)
        self.num_layers = check_positive_int("AutoInt", "num_layers", num_layers)
        self.num_heads = num_heads
        self.attention_dim = attention_dim
        width = num_heads * attention_dim
        self.attention_layers = [
            MultiHeadAttention(num_heads, attention_dim, dropout=self.dropout, output_shape=width,
                               name=f"interacting_{i}")
            for i in range(num_layers)
        ]
        self.residuals = [
            tf.keras.layers.Dense(width, use_bias=False, name=f"residual_{i}") for i in range(num_layers)
        ]

    def represent(self, embedded: Mapping[str, tf.Tensor], training: Optional[bool] = None) -> tf.Tensor:
        pooled = FeatureEmbedding.pool_history(embedded["history"], embedded["history_mask"], "mean")
        fields = tf.concat([embedded["user"], embedded["candidate"], pooled], axis=1)  # [B, 9, D]
        for attention, residual in zip(self.attention_layers, self.residuals):
            fields = tf.nn.relu(attention(fields, fields, training=training) + residual(fields))
        return self.flatten_fields(fields)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"num_layers": self.num_layers, "num_heads": self.num_heads,
                       "attention_dim": self.attention_dim})
        return config


@register_model("ranking", (AutoInt,), tiny={**TINY_RANKER, "attention_dim": 4, "num_layers": 1})
def autoint(vocab_size: int, feature_sizes: Optional[Mapping[str, int]] = None, **config: Any) -> AutoInt:
    """AutoInt: multi-head self-attention over feature fields (Song et al. 2019)."""
    return AutoInt.from_sizes(vocab_size, feature_sizes, name="autoint", **config)
