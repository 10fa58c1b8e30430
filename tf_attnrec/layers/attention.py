"""Scaled dot-product attention with padding, causal and explicit masks."""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple, Union

import tensorflow as tf

from tf_attnrec.layers.config import ConfigFromAttributes
from tf_attnrec.layers.dropout import ByteDropout


def _large_negative(dtype: tf.DType) -> float:
    """A masking bias that, added to a score, stays finite in `dtype` (-1e9 overflows float16 to -inf)."""
    if dtype in (tf.float16, tf.bfloat16):
        return float(dtype.min) / 2
    return -1e9


def default_masks(
    query: tf.Tensor,
    value: tf.Tensor,
    query_mask: Optional[tf.Tensor],
    value_mask: Optional[tf.Tensor],
    key: Optional[tf.Tensor] = None,
) -> Tuple[Optional[tf.Tensor], Optional[tf.Tensor]]:
    """`(query_mask, value_mask)`, each defaulting to the Keras mask of `query` / `value`.

    With a `key` other than `value`, the key's Keras mask is ANDed into `value_mask` (as
    `tf.keras.layers.MultiHeadAttention` does).
    """
    if query_mask is None:
        query_mask = getattr(query, "_keras_mask", None)
    if value_mask is None:
        value_mask = getattr(value, "_keras_mask", None)
    if key is not None and key is not value:
        key_mask = getattr(key, "_keras_mask", None)
        if key_mask is not None:
            value_mask = key_mask if value_mask is None else (
                tf.cast(value_mask, tf.bool) & tf.cast(key_mask, tf.bool))
    return query_mask, value_mask


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class ScaledDotProductAttention(ConfigFromAttributes, tf.keras.layers.Layer):
    """Scaled dot-product attention `softmax(q k^T / sqrt(d)) v` with masking.

    The layer has no weights. Masks of several kinds are combined with a logical AND:
    an explicit attention `mask`, a per-query `query_mask`, a per-key `value_mask`
    (both default to the inputs' Keras masks, `query._keras_mask` / `value._keras_mask`)
    and, with `causal=True`, a lower-triangular mask (query `i` sees keys `j <= i`,
    aligned at the first position as in `tf.keras.layers.MultiHeadAttention`).

    A query row with no visible key gets all-zero attention weights and a zero output
    (and zero gradient), never NaN. Inputs may carry extra leading dimensions (e.g. heads:
    `[B, H, T, D]`); `query_mask`/`value_mask` are `[B, T]` and are broadcast over them.

    Args:
        dropout: Dropout rate applied to the attention weights during training.
        causal: Whether query position `i` may only attend to key positions `j <= i`.
        **kwargs: Standard `tf.keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call args:
        query: `[B, ..., Tq, D]` float tensor.
        value: `[B, ..., Tv, Dv]` float tensor.
        key: Optional `[B, ..., Tv, D]` float tensor; defaults to `value`.
        mask: Optional boolean attention mask `[B, Tq, Tv]` or anything broadcastable to the
            scores after inserting dimensions after the batch axis (e.g. `[B, 1, Tv]`,
            `[1, Tq, Tv]`, `[B, H, Tq, Tv]`). `True` = may attend. A rank-2 `[B, Tq]` mask
            is read as a query mask: that is the query's Keras mask, which Keras passes as
            `mask` implicitly.
        query_mask: Optional boolean `[B, Tq]`, `True` = real query position.
        value_mask: Optional boolean `[B, Tv]`, `True` = real key/value position.
        training: Whether dropout is active.
        return_attention_scores: Whether to also return the attention weights.
        bias: Optional float bias added to the scaled scores before masking and softmax,
            broadcastable like `mask` (e.g. `[B, Tq, Tv]`): relative positions, or the log
            of how many times a query sees a key (a key standing for several positions).

    Returns:
        The attended values `[B, ..., Tq, Dv]`, or a tuple `(output, weights)` where
        `weights` is `[B, ..., Tq, Tv]` (before dropout) if `return_attention_scores=True`.

    Example:
        >>> attention = ScaledDotProductAttention(causal=True)
        >>> x = tf.random.normal([2, 5, 8])
        >>> attention(x, x, value_mask=tf.ones([2, 5], tf.bool)).shape
        TensorShape([2, 5, 8])
    """

    config_keys = ("dropout", "causal")

    def __init__(self, dropout: float = 0.0, causal: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(
                f"ScaledDotProductAttention got dropout={dropout!r}; expected a rate in "
                "[0, 1). Pass e.g. dropout=0.1, or 0.0 to disable attention dropout."
            )
        self.dropout = float(dropout)
        self.causal = bool(causal)
        self.supports_masking = True
        self._dropout_layer = ByteDropout(self.dropout, dtype=self.dtype_policy)

    @staticmethod
    def merge_masks(
        query: tf.Tensor,
        value: tf.Tensor,
        mask: Optional[tf.Tensor] = None,
        query_mask: Optional[tf.Tensor] = None,
        value_mask: Optional[tf.Tensor] = None,
        causal: bool = False,
    ) -> Optional[tf.Tensor]:
        """Combines all masks into one boolean mask broadcastable to `[B, Tq, Tv]`.

        Args:
            query: `[B, ..., Tq, D]` query; only its dynamic shape is used (for `causal`).
            value: `[B, ..., Tv, Dv]` value; only its dynamic shape is used.
            mask: Optional explicit boolean mask of rank >= 3 (`[B, Tq, Tv]`, `[B, H, Tq, Tv]`).
            query_mask: Optional boolean `[B, Tq]`.
            value_mask: Optional boolean `[B, Tv]`.
            causal: Whether to add a lower-triangular `[1, Tq, Tv]` mask.

        Returns:
            A boolean tensor of rank `max(3, rank(mask))` or None when nothing is masked.
        """
        merged = None
        if query_mask is not None:
            merged = tf.cast(query_mask, tf.bool)[:, :, tf.newaxis]
        if value_mask is not None:
            value_part = tf.cast(value_mask, tf.bool)[:, tf.newaxis, :]
            merged = value_part if merged is None else merged & value_part
        if causal:
            q_len = tf.shape(query)[-2]
            v_len = tf.shape(value)[-2]
            lower = tf.linalg.band_part(tf.ones([q_len, v_len], tf.bool), -1, 0)[tf.newaxis]
            merged = lower if merged is None else merged & lower
        if mask is not None:
            mask = tf.cast(mask, tf.bool)
            if merged is not None:
                for _ in range(mask.shape.rank - 3):
                    merged = tf.expand_dims(merged, axis=1)
                merged = mask & merged
            else:
                merged = mask
        return merged

    def call(
        self,
        query: tf.Tensor,
        value: tf.Tensor,
        key: Optional[tf.Tensor] = None,
        mask: Optional[tf.Tensor] = None,
        query_mask: Optional[tf.Tensor] = None,
        value_mask: Optional[tf.Tensor] = None,
        training: Optional[bool] = None,
        return_attention_scores: bool = False,
        bias: Optional[tf.Tensor] = None,
    ) -> Union[tf.Tensor, Tuple[tf.Tensor, tf.Tensor]]:
        query_mask, value_mask = default_masks(query, value, query_mask, value_mask)
        if mask is not None and len(mask.shape) == 2:
            # Keras passes the query's own [B, Tq] Keras mask as `mask` implicitly (also in
            # functional models, where it is not the same tensor object): a query mask.
            if mask.shape[-1] is not None and query.shape[-2] is not None and (
                    mask.shape[-1] != query.shape[-2]):
                raise ValueError(
                    f"{type(self).__name__} got a rank-2 mask of shape {mask.shape}, which "
                    f"is read as a [batch, Tq] query mask, but the query has Tq="
                    f"{query.shape[-2]}. Pass attention masks as [batch, Tq, Tv] and "
                    "padding masks as query_mask=[batch, Tq] / value_mask=[batch, Tv]."
                )
            if query_mask is None:
                query_mask = mask
            mask = None
        if key is None:
            key = value
        mask, query_mask, value_mask = (
            None if m is None else tf.convert_to_tensor(m)
            for m in (mask, query_mask, value_mask)
        )

        query = tf.cast(query, self.compute_dtype)
        key = tf.cast(key, self.compute_dtype)
        value = tf.cast(value, self.compute_dtype)
        rank = query.shape.rank
        if rank is None or rank < 3 or key.shape.rank != rank or value.shape.rank != rank:
            raise ValueError(
                f"{type(self).__name__} expects query, key and value of the same rank >= 3 "
                f"([batch, ..., time, features]); got query {query.shape}, key {key.shape}, "
                f"value {value.shape}. Add a time axis (e.g. tf.expand_dims(x, 1))."
            )
        if mask is not None and (mask.shape.rank is None or not 3 <= mask.shape.rank <= rank):
            raise ValueError(
                f"{type(self).__name__} got an attention mask of shape {mask.shape}; expected "
                f"a boolean mask of rank 3..{rank} such as [batch, Tq, Tv] or [batch, 1, Tv]. "
                "Pass per-position padding masks as query_mask=[batch, Tq] / "
                "value_mask=[batch, Tv]."
            )

        attention_mask = self.merge_masks(
            query, value, mask=mask, query_mask=query_mask, value_mask=value_mask,
            causal=self.causal,
        )

        depth = query.shape[-1]
        if depth is not None:
            query = query * tf.cast(1.0 / math.sqrt(depth), self.compute_dtype)
        else:
            query = query * tf.math.rsqrt(tf.cast(tf.shape(query)[-1], self.compute_dtype))
        scores = tf.matmul(query, key, transpose_b=True)  # [B, ..., Tq, Tv]
        if bias is not None:
            bias = tf.cast(bias, scores.dtype)
            for _ in range(rank - bias.shape.rank):  # insert the dimensions after batch (heads)
                bias = tf.expand_dims(bias, axis=1)
            scores = scores + bias

        row_has_key = None
        if attention_mask is None:
            weights = tf.nn.softmax(scores, axis=-1)
        else:
            # Insert the dimensions that lie between batch and time (e.g. heads).
            for _ in range(rank - attention_mask.shape.rank):
                attention_mask = tf.expand_dims(attention_mask, axis=1)
            # A large negative added, not selected with `where`: on CPU, TF's select costs about
            # four adds over the [.., Tq, Tv] scores, and an add has no backward op. Still finite,
            # so a row with no visible key gets uniform weights, never NaN.
            masked_scores = scores + tf.cast(tf.logical_not(attention_mask), scores.dtype) * tf.constant(
                _large_negative(scores.dtype), scores.dtype)
            weights = tf.nn.softmax(masked_scores, axis=-1)
            # A row with no visible key would otherwise spread uniform weight over padding: its
            # output is zeroed (a [.., Tq, d] product, not one over the [.., Tq, Tv] weights).
            row_has_key = tf.cast(tf.reduce_any(attention_mask, axis=-1, keepdims=True), weights.dtype)

        # The dropout's 1 / (1 - rate) is applied to the [.., Tq, d] output, not the [.., Tq, Tv] weights.
        dropped, scale = self._dropout_layer.drop_without_scale(weights, training=training)
        output = tf.matmul(dropped, value)
        output_scale = row_has_key
        if scale is not None:
            output_scale = scale if row_has_key is None else row_has_key * scale
        if output_scale is not None:
            output = output * output_scale
        if return_attention_scores:
            return output, weights if row_has_key is None else weights * row_has_key
        return output

    def compute_mask(self, inputs: tf.Tensor, mask: Optional[tf.Tensor] = None):
        """The output is aligned with the query, so it keeps the query's Keras mask."""
        query_mask = getattr(inputs, "_keras_mask", None)
        if query_mask is None and mask is not None and len(mask.shape) == 2:
            query_mask = mask
        return query_mask
