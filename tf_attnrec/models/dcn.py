"""DCN-V2: explicit feature crosses (`tfrs.layers.dcn.Cross`) stacked under the MLP head."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import tensorflow as tf
import tensorflow_recommenders as tfrs

from tf_attnrec.layers.checks import check_positive_int
from tf_attnrec.models.ranking import TINY_RANKER, RankingModel
from tf_attnrec.models.registry import register_model
from tf_attnrec.layers.feature_embedding import FeatureEmbedding


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class DCN(RankingModel):
    """Deep & Cross Network (Wang et al., 2021), stacked: x0 -> cross layers -> MLP.

    x0 concatenates the user fields, the mean-pooled history fields and the candidate
    fields; each `tfrs.layers.dcn.Cross` computes `x0 * (W x + b) + x`. No attention.

    Args:
        feature_sizes: table rows per feature (`FeatureVocabularies.sizes()`).
        num_cross_layers: number of cross layers.
        projection_dim: low-rank size of the cross kernels (None = full rank).
        **kwargs: `RankingModel` arguments (embedding_dim, max_length, hidden_units, ...).

    Call arguments and returns: as `RankingModel` (a features dict -> click logits [B]).

    Example:
        ```python
        model = DCN(data.vocabularies.sizes(), num_cross_layers=2)
        ```
    """

    def __init__(
        self,
        feature_sizes: Mapping[str, int],
        num_cross_layers: int = 2,
        projection_dim: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("name", "dcn")
        check_positive_int("DCN", "num_cross_layers", num_cross_layers)
        super().__init__(feature_sizes, **kwargs)
        self.num_cross_layers = num_cross_layers
        self.projection_dim = projection_dim
        self.cross_layers = [
            tfrs.layers.dcn.Cross(projection_dim=projection_dim, name=f"cross_{i}")
            for i in range(num_cross_layers)
        ]

    def represent(self, embedded: Mapping[str, tf.Tensor], training: Optional[bool] = None) -> tf.Tensor:
        pooled = FeatureEmbedding.pool_history(embedded["history"], embedded["history_mask"], "mean")
        x0 = tf.concat(
            [self.flatten_fields(embedded["user"]), self.flatten_fields(pooled),
             self.flatten_fields(embedded["candidate"])],
            axis=-1,
        )
        x = x0
        for cross in self.cross_layers:
            x = cross(x0, x)
        return x

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"num_cross_layers": self.num_cross_layers, "projection_dim": self.projection_dim})
        return config


@register_model("ranking", (DCN,), tiny=TINY_RANKER)
def dcn(vocab_size: int, feature_sizes: Optional[Mapping[str, int]] = None, **config: Any) -> DCN:
    """Baseline without attention: DCN-V2 cross layers (tfrs) + MLP."""
    return DCN.from_sizes(vocab_size, feature_sizes, name="dcn", **config)
