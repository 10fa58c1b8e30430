"""Multi-head attention built on `ScaledDotProductAttention`."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Union

import tensorflow as tf

from tf_attnrec.layers.attention import ScaledDotProductAttention, default_masks
from tf_attnrec.layers.checks import is_positive_int
from tf_attnrec.layers.config import ConfigFromAttributes


def clone_initializer(
    initializer: tf.keras.initializers.Initializer, offset: int
) -> tf.keras.initializers.Initializer:
    """A new initializer instance for the `offset`-th weight, with its own seed if seeded.

    Why: a seeded Keras 2 initializer is stateless, so sharing one instance (or cloning it
    with the same seed) would give the query, key and value kernels identical values.
    """
    config = initializer.get_config()
    if config.get("seed") is not None:
        config["seed"] = int(config["seed"]) + offset
    return initializer.__class__.from_config(config)


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class MultiHeadAttention(ConfigFromAttributes, tf.keras.layers.Layer):
    """Multi-head attention (Vaswani et al., 2017) with padding and causal masks.

    Projects query, key and value into `num_heads` heads, runs
    `ScaledDotProductAttention` on all heads at once and projects the concatenated heads
    back. Weight shapes and order match `tf.keras.layers.MultiHeadAttention` for rank-3
    inputs (query/key/value kernels `[D, H, key_dim]`, biases `[H, key_dim]`, output kernel
    `[H, value_dim, D_out]`), so weights can be copied between the two.

    Masks are combined with a logical AND: `attention_mask`, `query_mask`/`value_mask`
    (defaulting to the Keras masks of `query`/`value`/`key`, as in Keras) and the causal
    mask. Differences from Keras: a query row that can see no key outputs zeros (Keras
    outputs a uniform average plus bias), and each weight gets its own initializer draw.

    Args:
        num_heads: Number of attention heads.
        key_dim: Size of each head for query and key.
        value_dim: Size of each head for value; defaults to `key_dim`.
        dropout: Dropout rate on the attention weights.
        use_bias: Whether the projections have biases.
        output_shape: Size of the output features; defaults to the query's last dimension.
        causal: Whether position `i` may only attend to positions `j <= i`.
        kernel_initializer: Initializer for the projection kernels (cloned per kernel).
        bias_initializer: Initializer for the projection biases (cloned per bias).
        kernel_regularizer: Optional regularizer for the kernels.
        bias_regularizer: Optional regularizer for the biases.
        kernel_constraint: Optional constraint for the kernels.
        bias_constraint: Optional constraint for the biases.
        **kwargs: Standard `tf.keras.layers.Layer` arguments.

    Call args:
        query: `[B, Tq, Dq]`.
        value: `[B, Tv, Dv]`.
        key: Optional `[B, Tv, Dk]`; defaults to `value`.
        attention_mask: Optional boolean `[B, Tq, Tv]` (or broadcastable, or per head
            `[B, H, Tq, Tv]`); `True` = may attend.
        query_mask: Optional boolean `[B, Tq]`; defaults to `query._keras_mask`.
        value_mask: Optional boolean `[B, Tv]`; defaults to `value._keras_mask`.
        training: Whether dropout is active.
        return_attention_scores: Whether to also return the per-head weights.
        use_causal_mask: Optional bool overriding `causal` for this call (as Keras's
            argument of that name): False lets a causal layer attend over keys that the
            caller masked itself, e.g. one query per row over its own prefix.
        attention_bias: Optional float `[B, Tq, Tv]` (or broadcastable, or per head) added to
            every head's scaled scores before masking (see `ScaledDotProductAttention`).

    Returns:
        `[B, Tq, output_shape or Dq]`, or `(output, weights [B, H, Tq, Tv])` if
        `return_attention_scores=True`.

    Example:
        >>> mha = MultiHeadAttention(num_heads=2, key_dim=4, causal=True)
        >>> x = tf.random.normal([3, 5, 8])
        >>> out, weights = mha(x, x, return_attention_scores=True)
        >>> out.shape, weights.shape
        (TensorShape([3, 5, 8]), TensorShape([3, 2, 5, 5]))
    """

    # `output_shape` is kept as `output_dim` (a `Layer` property has that name): see get_config.
    config_keys = (
        "num_heads", "key_dim", "value_dim", "dropout", "use_bias", "causal",
        "kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer",
        "kernel_constraint", "bias_constraint",
    )

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        value_dim: Optional[int] = None,
        dropout: float = 0.0,
        use_bias: bool = True,
        output_shape: Optional[int] = None,
        causal: bool = False,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, number in (("num_heads", num_heads), ("key_dim", key_dim),
                             ("value_dim", value_dim), ("output_shape", output_shape)):
            if number is None and name in ("value_dim", "output_shape"):
                continue
            if not is_positive_int(number):
                optional = ", or None" if name in ("value_dim", "output_shape") else ""
                raise ValueError(
                    f"MultiHeadAttention got {name}={number!r}; expected a positive int "
                    f"(e.g. num_heads=2, key_dim=32){optional}."
                )
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim if value_dim is not None else key_dim
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        self.output_dim = output_shape
        self.causal = bool(causal)
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
        self.bias_initializer = tf.keras.initializers.get(bias_initializer)
        self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = tf.keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = tf.keras.constraints.get(kernel_constraint)
        self.bias_constraint = tf.keras.constraints.get(bias_constraint)
        self.supports_masking = True
        self._attention = ScaledDotProductAttention(
            dropout=self.dropout, dtype=self.dtype_policy, name="attention"
        )

    def _projection(self, equation: str, output_shape: Tuple[Optional[int], ...],
                    bias_axes: str, name: str, index: int) -> tf.keras.layers.EinsumDense:
        return tf.keras.layers.EinsumDense(
            equation,
            output_shape=output_shape,
            bias_axes=bias_axes if self.use_bias else None,
            kernel_initializer=clone_initializer(self.kernel_initializer, index),
            bias_initializer=clone_initializer(self.bias_initializer, index),
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            kernel_constraint=self.kernel_constraint,
            bias_constraint=self.bias_constraint,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, query_shape: tf.TensorShape) -> None:
        query_shape = tf.TensorShape(query_shape)
        if query_shape.rank != 3 or query_shape[-1] is None:
            raise ValueError(
                f"MultiHeadAttention expects query of shape [batch, time, features] with a "
                f"known feature size; got {query_shape}. Reshape the input to rank 3."
            )
        output_dim = self.output_dim or int(query_shape[-1])
        # Same equations and weight layout as tf.keras.layers.MultiHeadAttention.
        self._query_dense = self._projection(
            "abc,cde->abde", (None, self.num_heads, self.key_dim), "de", "query", 0)
        self._key_dense = self._projection(
            "abc,cde->abde", (None, self.num_heads, self.key_dim), "de", "key", 1)
        self._value_dense = self._projection(
            "abc,cde->abde", (None, self.num_heads, self.value_dim), "de", "value", 2)
        self._output_dense = self._projection(
            "abcd,cde->abe", (None, output_dim), "e", "attention_output", 3)
        # Name scopes give the variables distinct names ("query/kernel", ...) as in Keras.
        with tf.name_scope(self._query_dense.name):
            self._query_dense.build(query_shape)
        with tf.name_scope(self._output_dense.name):
            self._output_dense.build(tf.TensorShape(
                [query_shape[0], query_shape[1], self.num_heads, self.value_dim]))
        super().build(query_shape)

    def call(
        self,
        query: tf.Tensor,
        value: tf.Tensor,
        key: Optional[tf.Tensor] = None,
        attention_mask: Optional[tf.Tensor] = None,
        query_mask: Optional[tf.Tensor] = None,
        value_mask: Optional[tf.Tensor] = None,
        training: Optional[bool] = None,
        return_attention_scores: bool = False,
        use_causal_mask: Optional[bool] = None,
        attention_bias: Optional[tf.Tensor] = None,
    ) -> Union[tf.Tensor, Tuple[tf.Tensor, tf.Tensor]]:
        query_mask, value_mask = default_masks(query, value, query_mask, value_mask, key=key)
        if key is None:
            key = value
        attention_mask, query_mask, value_mask = (
            None if m is None else tf.convert_to_tensor(m)
            for m in (attention_mask, query_mask, value_mask)
        )
        if attention_mask is not None and attention_mask.shape.rank not in (3, 4):
            raise ValueError(
                f"MultiHeadAttention got attention_mask of shape {attention_mask.shape}; "
                "expected a boolean [batch, Tq, Tv] (or broadcastable, or [batch, heads, Tq, "
                "Tv]) mask. Pass a per-position [batch, T] padding mask as query_mask= or "
                "value_mask= instead."
            )
        mask = ScaledDotProductAttention.merge_masks(
            query, value, mask=attention_mask, query_mask=query_mask,
            value_mask=value_mask, causal=self.causal if use_causal_mask is None else bool(use_causal_mask),
        )

        # [B, T, H, d] -> [B, H, T, d]
        heads_query = tf.transpose(self._query_dense(query), [0, 2, 1, 3])
        heads_key = tf.transpose(self._key_dense(key), [0, 2, 1, 3])
        heads_value = tf.transpose(self._value_dense(value), [0, 2, 1, 3])
        context, weights = self._attention(
            heads_query, heads_value, key=heads_key, mask=mask, training=training,
            return_attention_scores=True,
            bias=None if attention_bias is None else tf.convert_to_tensor(attention_bias),
        )
        output = self._output_dense(tf.transpose(context, [0, 2, 1, 3]))
        if mask is not None:
            # Rows with no visible key are zero (not just the output bias).
            row_has_key = tf.reduce_any(mask, axis=-1)
            if row_has_key.shape.rank == 3:  # per-head mask [B, H, Tq]
                row_has_key = tf.reduce_any(row_has_key, axis=1)
            output = output * tf.cast(row_has_key, output.dtype)[..., tf.newaxis]
        if return_attention_scores:
            return output, weights
        return output

    def compute_output_shape(self, query_shape: tf.TensorShape) -> tf.TensorShape:
        query_shape = tf.TensorShape(query_shape)
        return query_shape[:-1].concatenate([self.output_dim or query_shape[-1]])

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["output_shape"] = self.output_dim
        return config
