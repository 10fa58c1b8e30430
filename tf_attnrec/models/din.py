"""DIN: target attention of the candidate over the behaviour history (Zhou et al., 2018)."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import tensorflow as tf

from tf_attnrec.layers.target_attention import TargetAttention
from tf_attnrec.models.ranking import TINY_RANKER, RankingModel
from tf_attnrec.models.registry import register_model


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class DIN(RankingModel):
    """Deep Interest Network: the candidate weights each history item, then an MLP.

    Item vectors are the concatenated id, genre and year fields (3D). `TargetAttention` (the
    DIN activation unit) scores each history item against the candidate; the weighted sum
    (un-normalised, as in the paper, unless `use_softmax`) is concatenated with the user
    profile and the candidate and fed to the MLP head.

    Args:
        feature_sizes: table rows per feature (`FeatureVocabularies.sizes()`).
        attention_units: hidden sizes of the activation unit (paper: (80, 40)).
        attention_activation: "sigmoid", "dice", "prelu" or a Keras activation name.
        use_softmax: softmax-normalise the attention weights.
        **kwargs: `RankingModel` arguments (embedding_dim, max_length, hidden_units, ...).

    Call arguments and returns: as `RankingModel` (a features dict -> click logits [B]);
    `attention_weights(features)` gives the weights [B, L].

    Example:
        ```python
        model = DIN(data.vocabularies.sizes(), embedding_dim=16, max_length=50)
        weights = model.attention_weights(next(iter(data.dataset("test"))))
        ```
    """

    def __init__(
        self,
        feature_sizes: Mapping[str, int],
        attention_units: Sequence[int] = (80, 40),
        attention_activation: str = "sigmoid",
        use_softmax: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("name", "din")
        super().__init__(feature_sizes, **kwargs)
        self.attention_units = tuple(attention_units)
        self.attention_activation = attention_activation
        self.use_softmax = bool(use_softmax)
        self.attention = TargetAttention(
            hidden_units=self.attention_units,
            activation=attention_activation,
            use_softmax=self.use_softmax,
            name="target_attention",
        )

    def _attend(self, embedded: Mapping[str, tf.Tensor], training: Optional[bool]):
        history = embedded["history"]
        keys = tf.reshape(history, [tf.shape(history)[0], tf.shape(history)[1], self.embedding.item_dim])
        query = self.flatten_fields(embedded["candidate"])
        return query, self.attention(
            query, keys, mask=embedded["history_mask"], training=training, return_attention_scores=True
        )

    def represent(self, embedded: Mapping[str, tf.Tensor], training: Optional[bool] = None) -> tf.Tensor:
        query, (interest, _) = self._attend(embedded, training)
        return tf.concat([self.flatten_fields(embedded["user"]), interest, query], axis=-1)

    def attention_weights(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """Attention weight of each history position for each example [B, L] (0 at padding)."""
        _, (_, weights) = self._attend(self.embedding(features), training=False)
        return weights

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({
            "attention_units": list(self.attention_units),
            "attention_activation": self.attention_activation,
            "use_softmax": self.use_softmax,
        })
        return config


@register_model("ranking", (DIN,), tiny=TINY_RANKER)
def din(vocab_size: int, feature_sizes: Optional[Mapping[str, int]] = None, **config: Any) -> DIN:
    """DIN: target attention of the candidate over the history (Zhou et al. 2018)."""
    return DIN.from_sizes(vocab_size, feature_sizes, name="din", **config)
