"""`ByteDropout`: Keras dropout whose keep mask comes from random bytes, a quarter of the random words."""

from __future__ import annotations

import numbers
from typing import Any

import tensorflow as tf

#: Mask resolution: one random byte per element, so the rate is a multiple of 1/256.
_LEVELS = 256


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class ByteDropout(tf.keras.layers.Dropout):
    """`tf.keras.layers.Dropout` with a cheaper mask: each element's keep/drop is one random byte.

    Keras draws one float32 uniform (one 32-bit Philox word) per element. Here one 32-bit word
    gives the masks of four elements: an element is dropped when its byte is below
    `round(rate * 256)`, so the rate applied is that multiple of 1/256 (0.1 -> 0.1016,
    0.2 -> 0.1992; `applied_rate`), and kept elements are scaled by `1 / (1 - applied_rate)`,
    which keeps the expectation exact. Why: in a SASRec training step on a CPU, the float
    draws for the attention weights' dropout (`[B, heads, L, L]`) were the largest single op
    after the matmuls (`benchmarks/profile_step.py`).

    The draws come from the layer's Keras random generator, as Keras' dropout does, so they
    are seeded by `tf.keras.utils.set_random_seed` and saved by run backups. With a
    `noise_shape`, a rate that is not a number, a rate below 1/512, or Keras' generator mode
    off (`tf_attnrec` turns it on), it falls back to Keras' own dropout.

    Args:
        rate: Fraction of the inputs to drop, in [0, 1).
        **kwargs: `tf.keras.layers.Dropout` arguments (`noise_shape`, `seed`, `name`, ...).

    Example:
        >>> layer = ByteDropout(0.5, seed=1)
        >>> outputs = layer(tf.ones([4, 1000]), training=True)
        >>> sorted(set(outputs.numpy().ravel().tolist()))
        [0.0, 2.0]
    """

    @property
    def _threshold(self) -> int:
        """Bytes below this are dropped: `rate` in 256ths."""
        return round(float(self.rate) * _LEVELS)

    @property
    def applied_rate(self) -> float:
        """The rate the byte masks apply: `rate` rounded to a multiple of 1/256."""
        return self._threshold / _LEVELS

    def _uses_bytes(self) -> bool:
        return self.noise_shape is None and isinstance(self.rate, numbers.Real) and 1 <= self._threshold < _LEVELS

    def call(self, inputs: tf.Tensor, training: Any = None) -> tf.Tensor:
        if not self._uses_bytes():
            return super().call(inputs, training=training)
        dropped, scale = self.drop_without_scale(inputs, training)
        return dropped if scale is None else dropped * scale

    def drop_without_scale(self, inputs: tf.Tensor, training: Any = None) -> tuple[tf.Tensor, Any]:
        """`(inputs with the dropped elements zeroed, the scale the kept ones are owed)`.

        For a caller that can apply the scale to a smaller tensor downstream, e.g. attention,
        whose `[.., Tq, Tv]` weights are dropped but whose `[.., Tq, d]` output can be scaled.
        The scale is None when `training` is False (a Python bool), else a scalar tensor (1 in
        inference when `training` is a tensor). Keras' fallbacks return their scaled result
        and a scale of None.
        """
        if training is None:
            training = tf.keras.backend.learning_phase()
        if isinstance(training, bool) and not training:
            return inputs, None
        if not self._uses_bytes() or not tf.keras.backend.experimental.is_tf_random_generator_enabled():
            # Keras' own masks; without its generator mode (legacy op seeds) there is no seed to draw words from.
            return super().call(inputs, training=training), None
        scale = tf.constant(1.0 / (1.0 - self.applied_rate), inputs.dtype)
        return tf.__internal__.smart_cond.smart_cond(
            training, lambda: (self._zero_dropped(inputs), scale),
            lambda: (tf.identity(inputs), tf.ones_like(scale)))

    def _zero_dropped(self, inputs: tf.Tensor) -> tf.Tensor:
        size = tf.size(inputs)
        seed = self._random_generator.make_seed_for_stateless_op()
        words = tf.random.stateless_uniform([(size + 3) // 4], seed=seed, minval=None, maxval=None, dtype=tf.uint32)
        draws = tf.reshape(tf.reshape(tf.bitcast(words, tf.uint8), [-1])[:size], tf.shape(inputs))
        # A product with the 0/1 mask, not `where`: on CPU, TF's select costs more than a cast and a
        # multiply, forward and backward.
        return inputs * tf.cast(draws >= tf.constant(self._threshold, tf.uint8), inputs.dtype)


__all__ = ["ByteDropout"]
