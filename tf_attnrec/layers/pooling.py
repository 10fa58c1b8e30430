"""Additive (Bahdanau-style) attention pooling of a sequence into one vector."""

from __future__ import annotations

from typing import Any, Optional, Union

import tensorflow as tf

from tf_attnrec.layers.checks import is_positive_int
from tf_attnrec.layers.config import ConfigFromAttributes

_ACTIVATIONS = ("tanh", "sigmoid", "relu")

# A large negative logit for masked positions. Scores are normalised in float32 (even under a
# mixed_float16 policy), where -1e9 is representable and exp(-1e9 - max) is exactly 0.
_MASKED_LOGIT = -1e9


def masked_softmax(scores: tf.Tensor, mask: Optional[tf.Tensor], axis: int = -1) -> tf.Tensor:
    """Softmax over `axis` that gives masked positions weight exactly 0.

    Computed in float32 and cast back to `scores.dtype`. A row whose positions are all masked
    gets all-zero weights (not NaN, not uniform).

    Args:
        scores: Unnormalised scores, e.g. `[B, T]`.
        mask: Boolean mask broadcastable to `scores` (`True` = real position), or None.
        axis: The axis to normalise over.

    Returns:
        Weights with the shape and dtype of `scores`.

    Example:
        >>> w = masked_softmax(tf.constant([[1.0, 2.0]]), tf.constant([[True, False]]))
        >>> w.numpy().tolist()
        [[1.0, 0.0]]
    """
    scores32 = tf.cast(scores, tf.float32)
    if mask is None:
        return tf.cast(tf.nn.softmax(scores32, axis=axis), scores.dtype)
    mask = tf.cast(mask, tf.bool)
    # tf.where (not an additive bias) so that whatever a padded score is (even inf) never
    # reaches the softmax.
    scores32 = tf.where(mask, scores32, tf.constant(_MASKED_LOGIT, tf.float32))
    weights = tf.nn.softmax(scores32, axis=axis) * tf.cast(mask, tf.float32)
    return tf.cast(weights, scores.dtype)


def resolve_sequence_mask(
    values: tf.Tensor, mask: Optional[tf.Tensor], layer_name: str, argument: str = "values"
) -> Optional[tf.Tensor]:
    """Return a boolean `[B, T]` mask for `values [B, T, ...]` (explicit or Keras), or None.

    Args:
        values: The masked sequence `[B, T, ...]`.
        mask: An explicit mask, or None to fall back to `values._keras_mask`.
        layer_name: Used in error messages.
        argument: Name of the sequence argument, used in error messages.

    Returns:
        A `tf.bool` tensor `[B, T]`, or None when there is no mask at all.

    Raises:
        ValueError: The mask is not rank 2.
    """
    if mask is None:
        mask = getattr(values, "_keras_mask", None)
    if mask is None:
        return None
    mask = tf.convert_to_tensor(mask)
    if mask.shape.rank is not None and mask.shape.rank != 2:
        raise ValueError(
            f"{layer_name}: `mask` must be a boolean tensor of shape [batch, time] matching "
            f"`{argument}` (True = real item, False = padding); got shape {mask.shape}. "
            "Pass e.g. `item_ids != 0`."
        )
    return tf.cast(mask, tf.bool)


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class AttentionPooling(ConfigFromAttributes, tf.keras.layers.Layer):
    """Pools a sequence `[B, T, D]` into `[B, D]` with additive attention.

    Scores are `s_t = v^T act(W_v h_t + W_q q + b)` (the `W_q q` term only with
    `use_query=True`), normalised with a softmax over the real (unmasked) positions, and the
    output is `sum_t w_t h_t`. Padded positions get weight exactly 0, so their values never
    change the result; a row with no real position pools to zeros.

    Args:
        hidden_units: Size of the attention hidden layer. Defaults to the value dimension `D`.
        use_query: If True, `call` requires a `query [B, Dq]` that conditions the scores
            (e.g. the last hidden state in NARM); otherwise the layer is query-free.
        activation: Non-linearity inside the score function: "tanh" (Bahdanau, default),
            "sigmoid" (NARM) or "relu".
        **kwargs: Standard `tf.keras.layers.Layer` arguments (name, dtype, ...).

    Call arguments:
        values: Float tensor `[B, T, D]`.
        query: Float tensor `[B, Dq]`; required iff `use_query=True`.
        mask: Optional boolean `[B, T]` (True = real). Defaults to `values._keras_mask`.
        return_attention_scores: If True, also return the weights `[B, T]`.
        causal: If True, pool once per position: output `t` pools positions `<= t` (with
            query `query[:, t]`, so `query` is `[B, T, Dq]`), exactly what `call` returns for
            the prefix `values[:, :t + 1]`. Used to train next-item models at every position.

    Returns:
        `[B, D]` pooled vectors (`[B, T, D]` and weights `[B, T, T]` with `causal=True`), or
        `(pooled, weights)`.

    Example:
        >>> pool = AttentionPooling(hidden_units=16)
        >>> pooled = pool(tf.random.normal([2, 5, 8]), mask=tf.sequence_mask([3, 5], 5))
        >>> pooled.shape
        TensorShape([2, 8])
    """

    config_keys = ("hidden_units", "use_query", "activation")

    def __init__(
        self,
        hidden_units: Optional[int] = None,
        use_query: bool = False,
        activation: str = "tanh",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if hidden_units is not None and not is_positive_int(hidden_units):
            raise ValueError(
                f"AttentionPooling: `hidden_units` must be a positive int or None (= value "
                f"dimension); got {hidden_units!r}."
            )
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"AttentionPooling: `activation` must be one of {_ACTIVATIONS}; got "
                f"{activation!r}."
            )
        self.hidden_units = hidden_units
        self.use_query = bool(use_query)
        self.activation = activation
        self.supports_masking = True
        self._activation_fn = tf.keras.activations.get(activation)

    def build(self, input_shape: tf.TensorShape) -> None:
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 3 or input_shape[-1] is None:
            raise ValueError(
                "AttentionPooling expects `values` of shape [batch, time, dim] with a known "
                f"dim; got {input_shape}."
            )
        units = self.hidden_units or int(input_shape[-1])
        self.value_projection = tf.keras.layers.Dense(
            units, use_bias=True, name="value_projection", dtype=self.dtype_policy
        )
        # No bias: the value projection already has one.
        self.query_projection = (
            tf.keras.layers.Dense(
                units, use_bias=False, name="query_projection", dtype=self.dtype_policy
            )
            if self.use_query
            else None
        )
        # No bias: softmax is shift-invariant, so a bias would get no gradient.
        self.score = tf.keras.layers.Dense(1, use_bias=False, name="score", dtype=self.dtype_policy)
        super().build(input_shape)

    def call(
        self,
        values: tf.Tensor,
        query: Optional[tf.Tensor] = None,
        mask: Optional[tf.Tensor] = None,
        return_attention_scores: bool = False,
        causal: bool = False,
    ) -> Union[tf.Tensor, tuple[tf.Tensor, tf.Tensor]]:
        if self.use_query and query is None:
            raise ValueError(
                "AttentionPooling(use_query=True) needs a `query` tensor of shape [batch, dim]; "
                "got None. Pass `query=...` or build the layer with use_query=False."
            )
        if not self.use_query and query is not None:
            raise ValueError(
                "AttentionPooling(use_query=False) got a `query`, which it would ignore. Build "
                "the layer with use_query=True to condition the attention on it."
            )
        mask = resolve_sequence_mask(values, mask, "AttentionPooling")
        if mask is not None:
            # Zero padded values first so nothing computed from them can leak (not even inf).
            values = tf.where(mask[:, :, tf.newaxis], values, tf.zeros_like(values))
        hidden = self.value_projection(values)  # [B, T, H]
        if self.query_projection is not None:
            query = tf.convert_to_tensor(query)
            expected = 3 if causal else 2
            if query.shape.rank is not None and query.shape.rank != expected:
                raise ValueError(
                    f"AttentionPooling: `query` must have shape "
                    f"{'[batch, time, dim] with causal=True' if causal else '[batch, dim]'}; "
                    f"got {query.shape}."
                )
        if causal:
            return self._causal_pooling(values, hidden, query, mask, return_attention_scores)
        if self.query_projection is not None:
            hidden = hidden + self.query_projection(query)[:, tf.newaxis, :]
        scores = tf.squeeze(self.score(self._activation_fn(hidden)), axis=-1)  # [B, T]
        weights = masked_softmax(scores, mask)
        pooled = tf.einsum("bt,btd->bd", tf.cast(weights, values.dtype), values)
        if return_attention_scores:
            return pooled, weights
        return pooled

    def _causal_pooling(
        self,
        values: tf.Tensor,
        hidden: tf.Tensor,
        query: Optional[tf.Tensor],
        mask: Optional[tf.Tensor],
        return_attention_scores: bool,
    ) -> Union[tf.Tensor, tuple[tf.Tensor, tf.Tensor]]:
        """Pools positions `<= t` for every `t`: scores `[B, T(query), T(value), H]`."""
        hidden = hidden[:, tf.newaxis, :, :]  # [B, 1, T, H]
        if self.query_projection is not None:
            hidden = hidden + self.query_projection(query)[:, :, tf.newaxis, :]  # [B, T, T, H]
        scores = tf.squeeze(self.score(self._activation_fn(hidden)), axis=-1)  # [B, T or 1, T]
        length = tf.shape(values)[1]
        allowed = tf.linalg.band_part(tf.ones(tf.stack([length, length]), tf.bool), -1, 0)[tf.newaxis]
        if mask is not None:
            allowed = allowed & mask[:, tf.newaxis, :]
        weights = masked_softmax(scores, allowed)  # broadcast to [B, T, T]; padding-only prefix -> 0
        pooled = tf.einsum("btj,bjd->btd", tf.cast(weights, values.dtype), values)
        if return_attention_scores:
            return pooled, weights
        return pooled

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        # The time axis is pooled away, so there is nothing left to mask.
        return None
