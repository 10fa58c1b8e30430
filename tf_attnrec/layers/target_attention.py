"""DIN target attention: weight each history item by its relevance to a target item."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import tensorflow as tf

from tf_attnrec.layers.checks import is_positive_int
from tf_attnrec.layers.config import ConfigFromAttributes
from tf_attnrec.layers.pooling import masked_softmax, resolve_sequence_mask

_SPECIAL_ACTIVATIONS = ("dice", "prelu")
_WEIGHT_NORMALIZATIONS = (None, "length")


class _Dice(ConfigFromAttributes, tf.keras.layers.Layer):
    """Data-adaptive activation from DIN (Zhou et al., 2018), mask-aware.

    `f(s) = p(s) * s + (1 - p(s)) * alpha * s` with `p(s) = sigmoid((s - E[s]) / sqrt(Var[s] +
    eps))`. In training `E` and `Var` are the per-feature moments of the current batch over
    the real (unmasked) positions only, so padding never shifts them; at inference the moving
    averages are used.
    """

    config_keys = ("momentum", "epsilon")

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-8, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.momentum = momentum
        self.epsilon = epsilon

    def build(self, input_shape: tf.TensorShape) -> None:
        features = int(input_shape[-1])
        self.alpha = self._per_feature_weight("alpha", features, "zeros", trainable=True)
        self.moving_mean = self._per_feature_weight("moving_mean", features, "zeros", trainable=False)
        self.moving_variance = self._per_feature_weight(
            "moving_variance", features, "ones", trainable=False
        )
        super().build(input_shape)

    def _per_feature_weight(
        self, name: str, features: int, initializer: str, trainable: bool
    ) -> tf.Variable:
        """A `[features]` weight that stays float32 under mixed precision (as the statistics do)."""
        return self.add_weight(
            name=name,
            shape=(features,),
            initializer=initializer,
            trainable=trainable,
            dtype=tf.float32,
            experimental_autocast=False,
        )

    def call(
        self, inputs: tf.Tensor, mask: Optional[tf.Tensor] = None, training: Optional[bool] = None
    ) -> tf.Tensor:
        x = tf.cast(inputs, tf.float32)  # [B, T, H]; statistics in float32 for stability
        if training:
            if mask is None:
                weight = tf.ones_like(x[..., :1])
            else:
                weight = tf.cast(mask, tf.float32)[..., tf.newaxis]
            count = tf.maximum(tf.reduce_sum(weight), 1.0)
            mean = tf.reduce_sum(x * weight, axis=[0, 1]) / count
            variance = tf.reduce_sum(tf.square(x - mean) * weight, axis=[0, 1]) / count
            self.moving_mean.assign(
                self.momentum * self.moving_mean + (1.0 - self.momentum) * mean
            )
            self.moving_variance.assign(
                self.momentum * self.moving_variance + (1.0 - self.momentum) * variance
            )
        else:
            mean, variance = self.moving_mean, self.moving_variance
        p = tf.sigmoid((x - mean) * tf.math.rsqrt(variance + self.epsilon))
        alpha = tf.cast(self.alpha, tf.float32)
        return tf.cast(p * x + (1.0 - p) * alpha * x, inputs.dtype)


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class TargetAttention(ConfigFromAttributes, tf.keras.layers.Layer):
    """The DIN local activation unit: attention of a target item over a user's history.

    For each history item `k_t` an MLP on `[q, k_t, q - k_t, q * k_t]` gives a scalar weight
    `w_t`; the output is `sum_t w_t k_t`. As in the DIN paper the weights are NOT normalised
    by default (so the output keeps the intensity of the user's interest); `use_softmax=True`
    normalises them with a softmax over the real positions instead. Padded positions always get
    weight 0, and a fully padded history gives a zero vector.

    Args:
        hidden_units: Sizes of the MLP hidden layers (the paper uses (80, 40)).
        activation: Hidden-layer activation: "sigmoid" (default, as the DIN reference code),
            "dice" (the paper's data-adaptive activation, mask-aware batch statistics),
            "prelu", or any name `tf.keras.activations.get` accepts (e.g. "relu").
        use_softmax: If True, weights are softmax-normalised over the real positions.
        weight_normalization: None (default) or "length": divide the un-normalised weighted
            sum by the number of real positions (a weighted mean, so the output scale does not
            grow with history length). Cannot be combined with `use_softmax=True`.
        **kwargs: Standard `tf.keras.layers.Layer` arguments (name, dtype, ...).

    Call arguments:
        query: Target item embedding `[B, D]`.
        keys: History item embeddings `[B, T, D]` (same `D` as `query`).
        mask: Optional boolean `[B, T]` (True = real item). Defaults to `keys._keras_mask`.
        training: Python bool; only matters for the "dice" activation (batch statistics).
        return_attention_scores: If True, also return the weights `[B, T]`.

    Returns:
        `[B, D]` user-interest vector, or `(vector, weights)`.

    Example:
        >>> attention = TargetAttention(hidden_units=(16, 8))
        >>> out = attention(tf.random.normal([2, 8]), tf.random.normal([2, 5, 8]),
        ...                 mask=tf.sequence_mask([3, 5], 5))
        >>> out.shape
        TensorShape([2, 8])
    """

    config_keys = ("hidden_units", "activation", "use_softmax", "weight_normalization")

    def __init__(
        self,
        hidden_units: Sequence[int] = (80, 40),
        activation: str = "sigmoid",
        use_softmax: bool = False,
        weight_normalization: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        hidden_units = tuple(hidden_units)
        if not all(is_positive_int(units) for units in hidden_units):
            raise ValueError(
                "TargetAttention: `hidden_units` must be a sequence of positive ints, e.g. "
                f"(80, 40); got {hidden_units!r}."
            )
        if weight_normalization not in _WEIGHT_NORMALIZATIONS:
            raise ValueError(
                f"TargetAttention: `weight_normalization` must be one of "
                f"{_WEIGHT_NORMALIZATIONS}; got {weight_normalization!r}."
            )
        if use_softmax and weight_normalization is not None:
            raise ValueError(
                "TargetAttention: use_softmax=True already normalises the weights; set "
                f"weight_normalization=None (got {weight_normalization!r})."
            )
        if activation not in _SPECIAL_ACTIVATIONS:
            try:
                tf.keras.activations.get(activation)
            except ValueError as error:
                raise ValueError(
                    f"TargetAttention: unknown `activation` {activation!r}; use 'sigmoid', "
                    "'dice', 'prelu' or a tf.keras activation name such as 'relu'."
                ) from error
        self.hidden_units = hidden_units
        self.activation = activation
        self.use_softmax = bool(use_softmax)
        self.weight_normalization = weight_normalization
        self.supports_masking = True

        self.hidden_layers = []
        self.hidden_activations = []
        for index, units in enumerate(hidden_units):
            dense_activation = None if activation in _SPECIAL_ACTIVATIONS else activation
            self.hidden_layers.append(
                tf.keras.layers.Dense(
                    units,
                    activation=dense_activation,
                    name=f"hidden_{index}",
                    dtype=self.dtype_policy,
                )
            )
            if activation == "dice":
                self.hidden_activations.append(_Dice(name=f"dice_{index}", dtype=self.dtype_policy))
            elif activation == "prelu":
                # Alpha per feature, shared over time so any sequence length works.
                self.hidden_activations.append(
                    tf.keras.layers.PReLU(
                        shared_axes=[1], name=f"prelu_{index}", dtype=self.dtype_policy
                    )
                )
            else:
                self.hidden_activations.append(None)
        # Softmax is shift-invariant: a bias would receive no gradient.
        self.score = tf.keras.layers.Dense(
            1, use_bias=not self.use_softmax, name="score", dtype=self.dtype_policy
        )

    def call(
        self,
        query: tf.Tensor,
        keys: tf.Tensor,
        mask: Optional[tf.Tensor] = None,
        training: Optional[bool] = None,
        return_attention_scores: bool = False,
    ) -> Union[tf.Tensor, tuple[tf.Tensor, tf.Tensor]]:
        query = tf.convert_to_tensor(query)
        keys = tf.convert_to_tensor(keys, dtype_hint=query.dtype)
        if query.shape.rank != 2 or keys.shape.rank != 3:
            raise ValueError(
                "TargetAttention expects query [batch, dim] and keys [batch, time, dim]; got "
                f"query {query.shape} and keys {keys.shape}."
            )
        if (
            query.shape[-1] is not None
            and keys.shape[-1] is not None
            and query.shape[-1] != keys.shape[-1]
        ):
            raise ValueError(
                f"TargetAttention: query dim {query.shape[-1]} != keys dim {keys.shape[-1]}; the "
                "activation unit uses q - k and q * k, so project them to the same size first."
            )
        # Keras fills `mask` from the first input (`query`), which has no time axis; the
        # history's mask lives on `keys`.
        if mask is not None and tf.convert_to_tensor(mask).shape.rank == 1:
            mask = None
        mask = resolve_sequence_mask(keys, mask, "TargetAttention", argument="keys")
        if mask is not None:
            keys = tf.where(mask[:, :, tf.newaxis], keys, tf.zeros_like(keys))
        queries = tf.broadcast_to(query[:, tf.newaxis, :], tf.shape(keys))
        hidden = tf.concat([queries, keys, queries - keys, queries * keys], axis=-1)
        for dense, activation in zip(self.hidden_layers, self.hidden_activations):
            hidden = dense(hidden)
            if isinstance(activation, _Dice):
                hidden = activation(hidden, mask=mask, training=training)
            elif activation is not None:
                hidden = activation(hidden)
        scores = tf.squeeze(self.score(hidden), axis=-1)  # [B, T]

        if self.use_softmax:
            weights = masked_softmax(scores, mask)
        elif mask is not None:
            weights = tf.where(mask, scores, tf.zeros_like(scores))
        else:
            weights = scores
        if self.weight_normalization == "length":
            if mask is None:
                lengths = tf.cast(tf.shape(scores)[1], scores.dtype)
            else:
                lengths = tf.reduce_sum(tf.cast(mask, scores.dtype), axis=1, keepdims=True)
            weights = weights / tf.maximum(lengths, tf.ones_like(lengths))
        output = tf.einsum("bt,btd->bd", tf.cast(weights, keys.dtype), keys)
        if return_attention_scores:
            return output, weights
        return output

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        # The history axis is pooled away.
        return None
