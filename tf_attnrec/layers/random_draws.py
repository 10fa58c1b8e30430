"""`RandomDraws`: the random numbers of a model's training step, from a generator a backup can save."""

from __future__ import annotations

from typing import Any, Optional

import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class RandomDraws(tf.keras.__internal__.layers.BaseRandomLayer):
    """Uniform draws for a model's own sampling (negatives, prefixes, id dropout), drawn as Keras draws dropout masks.

    Why a layer, not `tf.random.uniform`: a stateful `tf.random` op keeps its state inside the
    op's kernel, where no checkpoint reaches, so a resumed run would draw anew. A Keras random
    layer draws from a `tf.random.Generator` (`tf_attnrec` turns Keras' generator mode on)
    that Keras keeps out of the weights, so adding one never changes what a saved run holds, and
    whose state `tf_attnrec.backup` saves and restores with the rest of training.

    Args:
        seed: Seed of the generator (None: drawn from Python's `random`, which
            `tf.keras.utils.set_random_seed` seeds).

    Example:
        >>> draws = RandomDraws(seed=1)
        >>> draws.uniform([2, 3], 2, 10, tf.int32).shape
        TensorShape([2, 3])
    """

    def __init__(self, seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self.seed = seed

    def uniform(self, shape: Any, minval: Any = 0.0, maxval: Any = None, dtype: tf.DType = tf.float32) -> tf.Tensor:
        """Uniform values in [minval, maxval) (maxval None: 1 for floats); ints need both bounds."""
        if maxval is None and dtype.is_floating:
            maxval = 1.0
        return self._random_generator.random_uniform(shape, minval, maxval, dtype)

    def permutation(self, size: Any) -> tf.Tensor:
        """A random order of `tf.range(size)`."""
        return tf.argsort(self.uniform(tf.reshape(size, [1])))

    def weighted(self, weights: tf.Tensor, num_samples: int) -> tf.Tensor:
        """`num_samples` int32 indices drawn with replacement, index i with probability weights[i] / sum.

        Inverse-CDF sampling: an index with weight 0 is never drawn.
        """
        cumulative = tf.cumsum(tf.cast(weights, tf.float32))
        targets = self.uniform([num_samples]) * cumulative[-1]
        indices = tf.searchsorted(cumulative, targets, side="right", out_type=tf.int32)
        return tf.minimum(indices, tf.size(cumulative, out_type=tf.int32) - 1)  # float rounding at the top

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        """Returns `inputs` unchanged: the layer exists for its draws."""
        return inputs

    def get_config(self) -> dict:
        return {**super().get_config(), "seed": self.seed}


__all__ = ["RandomDraws"]
