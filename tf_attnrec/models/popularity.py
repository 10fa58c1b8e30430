"""Most-popular baseline: the same score interface, no training by gradient descent."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import tensorflow as tf

from tf_attnrec.models.base import FittedWithoutGradients, count_items
from tf_attnrec.models.registry import register_model


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class PopularityModel(FittedWithoutGradients):
    """Scores every item by how often it occurs in the training sequences.

    Every user gets the same ranking (minus the items they have seen, which the evaluator
    excludes). `adapt(train_sequences)` is the whole fit; it has no trainable weights, so
    `train_sequential` skips `model.fit` for it. Rows 0 and 1 are never recommended.

    Args:
        vocab_size: Number of item ids (`num_items + 2`).
        max_length: Accepted for interface symmetry with the other models (unused).
        **kwargs: Standard `tf.keras.Model` arguments.

    Call arguments:
        history: int `[B, L]` item ids (ignored except for the batch size).

    Returns:
        `score(history)`: `[B, vocab_size]` (log(1 + count); -1e9 for rows 0 and 1).

    Example:
        >>> model = PopularityModel(vocab_size=5)
        >>> model.adapt([np.array([2, 3, 3])])
        >>> model.score(tf.constant([[0, 2]])).numpy().argmax()
        3
    """

    def __init__(self, vocab_size: int, max_length: int = 200, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(vocab_size, int) or vocab_size < 3:
            raise ValueError(
                f"PopularityModel: `vocab_size` must be an int >= 3 (num_items + 2); got "
                f"{vocab_size!r}. Pass `vocabulary.size`."
            )
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.item_counts = tf.Variable(
            tf.zeros([vocab_size], tf.float32), trainable=False, name="item_counts"
        )

    def adapt(self, sequences: Iterable[np.ndarray]) -> None:
        """Counts item occurrences in the training sequences."""
        self.item_counts.assign(count_items(sequences, self.vocab_size))

    def score(self, history: tf.Tensor) -> tf.Tensor:
        """`[B, vocab_size]` popularity scores, the same row for every history."""
        scores = tf.math.log1p(self.item_counts)
        scores = tf.concat([tf.fill([2], tf.constant(-1e9, tf.float32)), scores[2:]], axis=0)
        batch = tf.shape(history)[0]
        return tf.tile(scores[tf.newaxis, :], [batch, 1])

    def get_config(self) -> dict[str, Any]:
        return {"vocab_size": self.vocab_size, "max_length": self.max_length, "name": self.name}



@register_model("retrieval", (PopularityModel,), training={}, tiny={"max_length": 8})
def popularity(vocab_size: int, **config: Any) -> PopularityModel:
    """Baseline without attention: the most popular unseen items."""
    return PopularityModel(vocab_size, name="popularity", **config)
