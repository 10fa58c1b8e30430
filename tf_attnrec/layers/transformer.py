"""A Transformer encoder block (self-attention + feed-forward) for item sequences."""

from __future__ import annotations

from typing import Any, Optional

import tensorflow as tf

from tf_attnrec.layers.checks import is_positive_int
from tf_attnrec.layers.config import ConfigFromAttributes
from tf_attnrec.layers.dropout import ByteDropout
from tf_attnrec.layers.multi_head_attention import MultiHeadAttention, clone_initializer


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class TransformerBlock(ConfigFromAttributes, tf.keras.layers.Layer):
    """One Transformer encoder block: multi-head self-attention, then a feed-forward net.

    Pre-LN (`norm_first=True`, as in SASRec):
        `h = x + Dropout(MHA(LN1(x)))`, `y = h + Dropout(FFN(LN2(h)))`.
    Post-LN (`norm_first=False`, as in the original Transformer / BERT4Rec):
        `h = LN1(x + Dropout(MHA(x)))`, `y = LN2(h + Dropout(FFN(h)))`.
    `FFN(z) = Dense(hidden_dim)(Dropout(Dense(ff_dim, ff_activation)(z)))`.

    Padded positions (mask `False`) are never attended to, and their outputs are set to
    zero, so values at padded positions cannot leak into later blocks or into pooling.

    Args:
        num_heads: Number of attention heads; must divide `hidden_dim`.
        hidden_dim: Feature size of the input and output (`D`).
        ff_dim: Width of the feed-forward hidden layer; defaults to `4 * hidden_dim`.
        ff_activation: Activation of the feed-forward hidden layer ("gelu", "relu", ...).
        dropout: Dropout rate on the attention and feed-forward residual branches and
            inside the feed-forward net.
        attention_dropout: Dropout rate on the attention weights.
        norm_first: True for pre-LN, False for post-LN.
        causal: Whether position `t` only attends to positions `<= t`.
        layer_norm_epsilon: Epsilon of the layer normalizations.
        kernel_initializer: Initializer for all kernels.
        **kwargs: Standard `tf.keras.layers.Layer` arguments.

    Call args:
        x: `[B, T, hidden_dim]` float tensor.
        mask: Optional boolean `[B, T]` (`True` = real item); defaults to `x`'s Keras mask.
        training: Whether dropout is active.
        context: Optional `[B, S, hidden_dim]`: `x` attends over `context` instead of over
            itself (same weights; pre-LN normalises the context with the same LayerNorm), with
            no causal mask. With `x = y[:, t:t+1]` and `context = y` masked to positions
            `<= t`, the output equals the causal self-attention output of `y` at `t`; a caller
            whose keys differ per query (GC-SAN's prefix graphs) puts each query in its own
            row with its own context.
        context_mask: Optional boolean `[B, S]` (`True` = may be attended), or `[B, T, S]`,
            one per query; defaults to `context`'s Keras mask.
        context_bias: Optional float `[B, T, S]` added to the attention scores over `context`
            (`MultiHeadAttention`'s `attention_bias`), e.g. the log of how many positions a
            context row stands for.

    Returns:
        `[B, T, hidden_dim]`, zero at padded positions; the mask is propagated.

    Example:
        >>> block = TransformerBlock(num_heads=2, hidden_dim=8, causal=True)
        >>> x = tf.random.normal([3, 5, 8])
        >>> block(x, mask=tf.sequence_mask([5, 3, 1], 5)).shape
        TensorShape([3, 5, 8])
    """

    config_keys = (
        "num_heads", "hidden_dim", "ff_dim", "ff_activation", "dropout", "attention_dropout",
        "norm_first", "causal", "layer_norm_epsilon", "kernel_initializer",
    )

    def __init__(
        self,
        num_heads: int,
        hidden_dim: int,
        ff_dim: Optional[int] = None,
        ff_activation: Any = "gelu",
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        norm_first: bool = True,
        causal: bool = False,
        layer_norm_epsilon: float = 1e-6,
        kernel_initializer: Any = "glorot_uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not (is_positive_int(num_heads) and is_positive_int(hidden_dim)) or (
            hidden_dim % num_heads
        ):
            raise ValueError(
                f"TransformerBlock got num_heads={num_heads!r}, hidden_dim={hidden_dim!r}; "
                "expected positive ints with hidden_dim divisible by num_heads (each head "
                "gets hidden_dim // num_heads features). E.g. num_heads=2, hidden_dim=64."
            )
        if ff_dim is not None and not is_positive_int(ff_dim):
            raise ValueError(
                f"TransformerBlock got ff_dim={ff_dim!r}; expected a positive int or None "
                "(None means 4 * hidden_dim)."
            )
        for name, rate in (("dropout", dropout), ("attention_dropout", attention_dropout)):
            if not 0.0 <= float(rate) < 1.0:
                raise ValueError(
                    f"TransformerBlock got {name}={rate!r}; expected a rate in [0, 1)."
                )
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.ff_dim = ff_dim if ff_dim is not None else 4 * hidden_dim
        self.ff_activation = tf.keras.activations.get(ff_activation)
        self.dropout = float(dropout)
        self.attention_dropout = float(attention_dropout)
        self.norm_first = bool(norm_first)
        self.causal = bool(causal)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
        self.supports_masking = True

        policy = self.dtype_policy
        self.attention = MultiHeadAttention(
            num_heads=num_heads,
            key_dim=hidden_dim // num_heads,
            dropout=self.attention_dropout,
            causal=self.causal,
            kernel_initializer=self.kernel_initializer,
            dtype=policy,
            name="self_attention",
        )
        self.attention_norm = tf.keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="attention_norm")
        self.feed_forward_norm = tf.keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="feed_forward_norm")
        self.feed_forward_inner = tf.keras.layers.Dense(
            self.ff_dim, activation=self.ff_activation,
            # Seed offsets 0-3 are used by the attention projections.
            kernel_initializer=clone_initializer(self.kernel_initializer, 4),
            dtype=policy, name="feed_forward_inner")
        self.feed_forward_outer = tf.keras.layers.Dense(
            hidden_dim,
            kernel_initializer=clone_initializer(self.kernel_initializer, 5),
            dtype=policy, name="feed_forward_outer")
        self.attention_dropout_layer = ByteDropout(self.dropout, dtype=policy)
        self.feed_forward_dropout = ByteDropout(self.dropout, dtype=policy)
        self.output_dropout = ByteDropout(self.dropout, dtype=policy)

    def build(self, input_shape: tf.TensorShape) -> None:
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 3 or input_shape[-1] != self.hidden_dim:
            raise ValueError(
                f"TransformerBlock(hidden_dim={self.hidden_dim}) expects inputs of shape "
                f"[batch, time, {self.hidden_dim}]; got {input_shape}. Project the inputs to "
                "hidden_dim features or set hidden_dim to the input feature size."
            )
        super().build(input_shape)

    @staticmethod
    def _padding_mask(x: tf.Tensor, mask: Optional[tf.Tensor]) -> Optional[tf.Tensor]:
        """The boolean `[B, T]` mask: `mask`, else `x`'s Keras mask, else None."""
        if mask is None:
            mask = getattr(x, "_keras_mask", None)
        return None if mask is None else tf.cast(mask, tf.bool)

    def _attend(self, x: tf.Tensor, mask: Optional[tf.Tensor], training: Optional[bool],
                return_attention_scores: bool = False, context: Optional[tf.Tensor] = None,
                context_mask: Optional[tf.Tensor] = None, context_bias: Optional[tf.Tensor] = None):
        if context is None:
            return self.attention(x, x, query_mask=mask, value_mask=mask, training=training,
                                  return_attention_scores=return_attention_scores)
        per_query = context_mask is not None and context_mask.shape.rank == 3
        return self.attention(x, context, query_mask=mask,
                              value_mask=None if per_query else context_mask,
                              attention_mask=context_mask if per_query else None,
                              attention_bias=context_bias, training=training,
                              use_causal_mask=False, return_attention_scores=return_attention_scores)

    def _feed_forward(self, x: tf.Tensor, training: Optional[bool]) -> tf.Tensor:
        hidden = self.feed_forward_dropout(self.feed_forward_inner(x), training=training)
        return self.feed_forward_outer(hidden)

    def call(
        self, x: tf.Tensor, mask: Optional[tf.Tensor] = None, training: Optional[bool] = None,
        context: Optional[tf.Tensor] = None, context_mask: Optional[tf.Tensor] = None,
        context_bias: Optional[tf.Tensor] = None,
    ) -> tf.Tensor:
        mask = self._padding_mask(x, mask)
        if context is not None:
            context_mask = self._padding_mask(context, context_mask)
        if self.norm_first:
            normed_context = None if context is None else self.attention_norm(context)
            h = x + self.attention_dropout_layer(
                self._attend(self.attention_norm(x), mask, training, context=normed_context,
                             context_mask=context_mask, context_bias=context_bias),
                training=training)
            y = h + self.output_dropout(
                self._feed_forward(self.feed_forward_norm(h), training), training=training)
        else:
            h = self.attention_norm(
                x + self.attention_dropout_layer(
                    self._attend(x, mask, training, context=context, context_mask=context_mask,
                                 context_bias=context_bias),
                    training=training))
            y = self.feed_forward_norm(
                h + self.output_dropout(self._feed_forward(h, training), training=training))
        if mask is not None:
            y = y * tf.cast(mask, y.dtype)[..., tf.newaxis]
        return y

    def attention_weights(self, x: tf.Tensor, mask: Optional[tf.Tensor] = None) -> tf.Tensor:
        """The self-attention weights of this block for input `x`, as `call` computes them.

        The same attention step as `call` (after `attention_norm` for pre-LN), in inference
        mode, so the weights are before attention dropout.

        Args:
            x: `[B, T, hidden_dim]`, the block's input.
            mask: Optional boolean `[B, T]` (`True` = real item); defaults to `x`'s Keras mask.

        Returns:
            `[B, num_heads, T, T]` softmax weights (query position, key position); 0 for padded
            keys, and whole rows of 0 for padded queries.
        """
        mask = self._padding_mask(x, mask)
        query = self.attention_norm(x) if self.norm_first else x
        _, weights = self._attend(query, mask, training=False, return_attention_scores=True)
        return weights

    def compute_mask(self, inputs: tf.Tensor, mask: Optional[tf.Tensor] = None):
        return mask

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        return tf.TensorShape(input_shape)
