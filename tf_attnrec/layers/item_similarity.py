"""`ItemSimilarityAttention`: a candidate's similarity to a history of items, attention-weighted (FISM, NAIS)."""

from __future__ import annotations

from typing import Any, Optional

import tensorflow as tf

from tf_attnrec.layers.checks import check_positive_int
from tf_attnrec.layers.config import ConfigFromAttributes

ATTENTIONS = ("prod", "concat")


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class ItemSimilarityAttention(ConfigFromAttributes, tf.keras.layers.Layer):
    """Score of candidates against a history: `sum_j a_cj (p_j . q_c)` (NAIS, He et al. 2018).

    `p_j` are the history items' (source) vectors, `q_c` a candidate's (target) vector, and
    the weight of history item `j` for candidate `c` is NAIS's smoothed softmax

        a_cj = exp(f(p_j, q_c)) / (sum_k exp(f(p_k, q_c)))^beta,

    with the attention network `f(p, q) = h . ReLU(W (p * q) + b)` ("prod") or
    `h . ReLU(W [p; q] + b)` ("concat"). `beta` = 1 is the softmax; `beta` < 1 lets a long
    history keep more mass, which NAIS found necessary because histories differ in length
    by orders of magnitude. Without attention (`attention=None`), `f = 0` and the weight is
    `n^-beta` for `n` history items: FISM's `n^-alpha` normalisation.

    Padding (mask False) gets weight 0 and never changes a score; a candidate scored against
    an all-padding history gets weight 0 everywhere and a score of 0, never NaN.

    Args:
        attention: "prod", "concat" or None (FISM: no attention network).
        attention_dim: Hidden size `A` of the attention network.
        beta: The smoothing exponent on the softmax denominator, in [0, 1].
        regularizer: Keras regularizer of the attention network's weights `W` and `h` (the
            NAIS paper's lambda); a strong one pulls the weights toward FISM's uniform ones.
        **kwargs: Standard `tf.keras.layers.Layer` arguments.

    Call arguments:
        history: float `[B, L, D]` history item (source) vectors.
        candidates: float `[B, C, D]` candidate (target) vectors per row, or `[C, D]` shared
            by every row (the catalogue).
        mask: bool `[B, L]`, True at real items (None: all real).
        return_attention: also return the weights.

    Returns:
        scores `[B, C]`; with `return_attention`, `(scores, weights [B, C, L])`.

    Example:
        >>> layer = ItemSimilarityAttention("prod", attention_dim=4)
        >>> scores = layer(tf.ones([2, 3, 8]), tf.ones([2, 5, 8]), mask=tf.constant([[True] * 3, [False] * 3]))
        >>> scores.shape, float(scores[1, 0])
        (TensorShape([2, 5]), 0.0)
    """

    config_keys = ("attention", "attention_dim", "beta", "regularizer")

    def __init__(self, attention: Optional[str] = "prod", attention_dim: int = 16, beta: float = 0.5,
                 regularizer: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        if attention is not None and attention not in ATTENTIONS:
            raise ValueError(f"{owner}: `attention` must be one of {ATTENTIONS} or None (FISM); got {attention!r}.")
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= beta <= 1.0:
            raise ValueError(f"{owner}: `beta` (the softmax smoothing exponent) must be a number in [0, 1]; "
                             f"got {beta!r}.")
        self.attention = attention
        self.attention_dim = check_positive_int(owner, "`attention_dim`", attention_dim)
        self.beta = float(beta)
        self.regularizer = tf.keras.regularizers.get(regularizer)
        self.supports_masking = True

    def build(self, input_shape: Any) -> None:
        # Keras passes the first call argument's shape: the history `[B, L, D]`.
        if self.attention is not None:
            self._build_weights(int(tf.TensorShape(input_shape)[-1]))
        super().build(input_shape)

    def _build_weights(self, dim: int) -> None:
        inputs = dim if self.attention == "prod" else 2 * dim
        # Glorot for W as NAIS's reference code; h starts at ones (RecBole's `weight_layer`).
        self.kernel = self.add_weight("kernel", [inputs, self.attention_dim], initializer="glorot_normal",
                                      regularizer=self.regularizer)
        self.bias = self.add_weight("bias", [self.attention_dim], initializer="zeros")
        # h is regularized with W: otherwise a small W is undone by a large h (ReLU is scale-equivariant).
        self.projection = self.add_weight("projection", [self.attention_dim], initializer="ones",
                                          regularizer=self.regularizer)

    def attention_logits(self, history: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor:
        """`f(p_j, q_c)`: `[B, C, L]` from history `[B, L, D]` and candidates `[B, C, D]` or `[C, D]`."""
        shared = candidates.shape.rank == 2
        # The hidden tensor is laid out [B, L, C, A], the order a matmul of the [B * L, D]
        # history rows produces, so the largest tensor of the layer is never transposed.
        if self.attention == "prod":
            # W (p * q) = p . (q[:, None] * W): the history against one [D, A] kernel per
            # candidate, never the [B, C, L, D] tensor of pairwise products.
            kernels = candidates[..., tf.newaxis] * self.kernel  # [(B,) C, D, A]
            hidden = tf.einsum("bld,cda->blca" if shared else "bld,bcda->blca", history, kernels)
        else:
            # W [p; q] = W_p p + W_q q: each side is projected once, not once per pair.
            dim = tf.shape(history)[-1]
            from_history = tf.einsum("bld,da->bla", history, self.kernel[:dim])
            from_candidate = tf.einsum("...cd,da->...ca", candidates, self.kernel[dim:])
            if shared:
                from_candidate = from_candidate[tf.newaxis]
            hidden = from_history[:, :, tf.newaxis, :] + from_candidate[:, tf.newaxis, :, :]
        logits = tf.tensordot(tf.nn.relu(hidden + self.bias), self.projection, axes=[[3], [0]])  # [B, L, C]
        return tf.transpose(logits, [0, 2, 1])

    def weights_from_logits(self, logits: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """`a = exp(f - beta * logsumexp(f))` over the real items (0 at padding): `[B, C, L]`."""
        mask = tf.broadcast_to(mask[:, tf.newaxis, :], tf.shape(logits))
        lowest = tf.constant(logits.dtype.min, logits.dtype)
        masked = tf.where(mask, logits, lowest)
        # logsumexp with the largest real logit m taken out first; a row without items keeps
        # m = 0 and a sum of 0, and gets weight 0. m is held out of the gradient: the value of
        # m + log(sum exp(f - m)) does not depend on it, so the gradient stays exact.
        peak = tf.stop_gradient(tf.reduce_max(masked, axis=-1, keepdims=True))
        peak = tf.where(peak > lowest, peak, tf.zeros_like(peak))
        total = tf.reduce_sum(tf.where(mask, tf.exp(masked - peak), tf.zeros_like(logits)), axis=-1, keepdims=True)
        log_denominator = self.beta * (peak + tf.math.log(tf.maximum(total, tf.keras.backend.epsilon())))
        return tf.where(mask & (total > 0), tf.exp(masked - log_denominator), tf.zeros_like(logits))

    def call(self, history: tf.Tensor, candidates: tf.Tensor, mask: Optional[tf.Tensor] = None,
             return_attention: bool = False) -> Any:
        history = tf.convert_to_tensor(history)
        candidates = tf.convert_to_tensor(candidates, history.dtype)
        if mask is None:
            mask = tf.ones(tf.shape(history)[:2], tf.bool)
        mask = tf.cast(mask, tf.bool)
        shared = candidates.shape.rank == 2
        if self.attention is None:
            logits = tf.zeros([tf.shape(history)[0], 1, tf.shape(history)[1]], history.dtype)
        else:
            logits = self.attention_logits(history, candidates)
        weights = self.weights_from_logits(logits, mask)  # [B, C or 1, L]
        if self.attention is None:
            # Weights do not depend on the candidate: pool the history once, then one matmul.
            pooled = tf.einsum("bl,bld->bd", weights[:, 0, :], history)
            scores = (tf.matmul(pooled, candidates, transpose_b=True) if shared
                      else tf.einsum("bd,bcd->bc", pooled, candidates))
            weights = tf.broadcast_to(weights, [tf.shape(history)[0], tf.shape(scores)[1], tf.shape(history)[1]])
        else:
            similarity = (tf.einsum("bld,cd->bcl", history, candidates) if shared
                          else tf.einsum("bld,bcd->bcl", history, candidates))
            scores = tf.reduce_sum(weights * similarity, axis=-1)
        scores.set_shape([history.shape[0], candidates.shape[-2]])  # einsum loses the static sizes
        return (scores, weights) if return_attention else scores

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None
