"""`RecommenderModel`: what every zoo model shares, whatever its task."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Union

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs


def count_items(sequences: Iterable[np.ndarray], vocab_size: int) -> np.ndarray:
    """float32 `[vocab_size]` occurrences of each item id in `sequences` (rows 0, 1 zero).

    Example:
        >>> count_items([np.array([2, 3, 3])], 5).tolist()
        [0.0, 0.0, 1.0, 2.0, 0.0]
    """
    counts = np.zeros([vocab_size], np.float64)
    for sequence in sequences:
        np.add.at(counts, np.asarray(sequence, np.int64), 1.0)
    counts[:2] = 0.0
    return counts.astype(np.float32)


def as_float32(tensor: tf.Tensor) -> tf.Tensor:
    """`tensor` in float32 (a no-op when it is).

    Under a mixed-precision policy (`tf-attnrec train --precision`) layers compute in bfloat16
    or float16; scores, logits and losses are kept in float32, because a bfloat16 logit has
    about 3 significant digits, too few to rank a catalogue or to take its softmax.
    """
    # Left as it is when float32: a cast would join an item table sharded over parameter
    # servers into one tensor on the worker at every step.
    return tensor if tensor.dtype == tf.float32 else tf.cast(tensor, tf.float32)


class RecommenderModel(tfrs.Model):
    """Base of every zoo model: a `tfrs.Model` that a run directory can rebuild.

    A run directory stores `get_config()` and the weights; loading calls
    `from_config(config)`, then `build_variables()` (one call on dummy inputs, so the
    variables exist before the checkpoint is restored), then restores the weights.

    Subclasses set `max_length` (the history length the model reads) and implement
    `build_variables` and `get_config` (whose keys are the constructor's arguments).
    """

    #: False for models fitted by counting (`adapt`) rather than gradient descent.
    requires_training: bool = True
    #: The training examples the retrieval task builds: "next_item" sequences (every position
    #: predicts the next item) or "item_set" (each item predicted from the user's other items).
    trains_on: str = "next_item"
    #: Sum the embedding tables' gradients to dense tensors before the optimizer (`train_step`).
    dense_gradients: bool = False

    def adapt(self, sequences: Iterable[np.ndarray]) -> None:
        """Hook: statistics a model counts on the training sequences before fit (none here)."""

    def cached_function(self, key: Any, build: Callable[[], Any]) -> Any:
        """A `tf.function` made once per `key` by `build()` (later calls reuse the trace).

        Evaluation calls the same scoring function for validation, test and serving helpers;
        building it anew each time would trace the model again. The cache is set with
        `object.__setattr__`, so Keras does not track it and it is never saved.
        """
        cache = self.__dict__.get("_function_cache")
        if cache is None:
            cache = {}
            object.__setattr__(self, "_function_cache", cache)
        if key not in cache:
            cache[key] = build()
        return cache[key]

    def train_step(self, inputs: Any) -> dict:
        """tfrs's step, correct under data parallelism, with `dense_gradients` as an option.

        Each replica's loss is a mean over its slice of the global batch, and the optimizer sums
        the replicas' gradients: dividing by the number of replicas makes that sum the gradient
        of the global batch's mean, as one worker would compute it (`tf_attnrec.distribute`).
        With `dense_gradients`, sparse (IndexedSlices) gradients are summed to dense tensors
        first: a step that gathers many rows of a small table (a few thousand items, each read
        hundreds of times per batch) makes Adam's sparse update deduplicate those rows every
        step; one dense table-sized gradient is cheaper then.
        """
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        # Under mixed_float16, Keras' compile wrapped the optimizer in a LossScaleOptimizer: the
        # loss is scaled up before the gradient, so small float16 gradients do not flush to 0.
        loss_scaled = isinstance(self.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
        with tf.GradientTape() as tape:
            loss = self.compute_loss(inputs, training=True)
            regularization_loss = tf.reduce_sum(self.losses)
            replica_loss = (loss + regularization_loss) / replicas if replicas > 1 else loss + regularization_loss
            if loss_scaled:
                replica_loss = self.optimizer.get_scaled_loss(replica_loss)
        gradients = tape.gradient(replica_loss, self.trainable_variables)
        if loss_scaled:
            gradients = self.optimizer.get_unscaled_gradients(gradients)
        if self.dense_gradients:
            gradients = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in gradients]
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        return self._step_logs(loss, regularization_loss)

    def test_step(self, inputs: Any) -> dict:
        loss = self.compute_loss(inputs, training=False)
        return self._step_logs(loss, tf.reduce_sum(self.losses))

    def _step_logs(self, loss: tf.Tensor, regularization_loss: tf.Tensor) -> dict:
        """The step's logged values, divided by the replicas: Keras sums the replicas' logs.

        The metrics are synchronized over the replicas and the loss is each replica's mean over
        an equal share of the batch, so the logs are what one device would log.
        """
        logs = {**{metric.name: metric.result() for metric in self.metrics}, "loss": loss,
                "regularization_loss": regularization_loss, "total_loss": loss + regularization_loss}
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return {key: value / replicas for key, value in logs.items()} if replicas > 1 else logs

    def build_variables(self) -> None:
        """Creates the variables by calling the model once on dummy inputs."""
        raise NotImplementedError(f"{type(self).__name__} must implement build_variables().")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "RecommenderModel":
        return cls(**config)


class FittedWithoutGradients(RecommenderModel):
    """Base of the models fitted without gradient descent (by counting, or by reading item
    content) that score a history: `popularity`, `content_similarity`.

    `train_sequential` skips `fit` for them (`requires_training = False`); a subclass
    implements `score(history) -> [B, vocab_size]` and says in `fitted_by` how it is fitted.
    """

    requires_training = False
    #: How the model is fitted instead of `fit()` (for the error that `compute_loss` raises).
    fitted_by: str = "adapt(train_sequences)"

    def call(self, inputs: Union[tf.Tensor, Mapping[str, tf.Tensor]], training: Any = None) -> tf.Tensor:
        history = inputs["history"] if isinstance(inputs, Mapping) else inputs
        return self.score(history)

    def build_variables(self) -> None:
        self.score(tf.zeros([1, 1], tf.int32))

    def score(self, history: tf.Tensor) -> tf.Tensor:
        """`[B, vocab_size]` scores of every item for each history (rows 0 and 1: -1e9)."""
        raise NotImplementedError(f"{type(self).__name__} must implement score().")

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        raise TypeError(f"{type(self).__name__} is not trained with fit(); it is fitted by {self.fitted_by}.")

