"""Next-item retrieval head: an encoder plus the loss, as a `tfrs.Model`."""

from __future__ import annotations

import inspect
from typing import Any, Iterable, Mapping, Optional, Union

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tf_attnrec.layers.checks import check_positive_int
from tf_attnrec.layers.random_draws import RandomDraws
from tf_attnrec.models.base import RecommenderModel, as_float32, count_items
from tf_attnrec.models.sequence_encoder import SequenceEncoder, without_leading_padding

LOSSES = ("softmax", "sampled_softmax", "in_batch", "bce")
LOSS_ITEMS = ("all", "trained")
TARGET_WEIGHTINGS = ("per_batch", "per_target")

# Added to the logits of rows 0 (padding) and 1 (out-of-vocabulary): never a candidate.
_EXCLUDED_LOGIT = -1e9
# Share of the items the content loss scores by their content alone in a step (`_content_losses`).
_CONTENT_SHARE = 0.5


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class SequentialRetrievalModel(RecommenderModel):
    """Encoder ("backbone") + next-item retrieval loss over a shared item table.

    The query for a history is the encoder state at its last (most recent) position; the
    score of item `i` is `query . item_embeddings[i]`, with rows 0 and 1 (padding, OOV) never
    recommended.

    Training features are a dict `{"history": int [B, L], "targets": int [B, L]}` where
    `targets[b, t]` is the item that followed `history[b, t]` (0 at padding). With an
    encoder that has causal per-position states, every non-padded position is a target;
    only those positions' states are gathered before the output layer (the softmax is most
    of the step, padding is ~half of ML-1M). Encoders without per-position states
    (`supports_all_positions=False`) are trained on `prefixes_per_sequence` randomly cut
    prefixes of each sequence per step.

    Losses:
        * "softmax": cross-entropy over the full catalogue (SASRec+, the default).
        * "sampled_softmax": `tfrs.tasks.Retrieval` with in-batch candidates plus
          `num_negatives` extra candidates drawn from the item-frequency distribution;
          log-Q correction (`candidate_sampling_probability`) and accidental-hit removal.
        * "in_batch": the same with in-batch candidates only.
        * "bce": binary cross-entropy with one uniformly sampled negative per position
          (the original SASRec paper; kept for reproduction).
        For the two retrieval losses at most `max_retrieval_queries` positions (a random
        subset) enter a step, because in-batch scoring is quadratic in their number.

    Args:
        encoder: A `SequenceEncoder` (or its serialized config dict).
        loss: One of "softmax", "sampled_softmax", "in_batch", "bce".
        num_negatives: Extra sampled candidates for "sampled_softmax".
        max_retrieval_queries: Cap on positions per step for the retrieval losses.
        prefixes_per_sequence: Prefixes drawn per sequence and step for encoders without
            per-position states.
        temperature: Optional softmax temperature for the retrieval losses.
        loss_items: The items the "softmax" loss ranks the target against: "all" the catalogue,
            or "trained" only items that occur in the training sequences. With "all", an item
            that training never sees is only ever a negative, so its content (with an item
            tower) learns to score low: cold-start items need "trained".
        content_loss_weight: Weight of the content loss (an item tower and loss "softmax" only):
            the softmax again, with a random half of the catalogue, targets included, scored by
            their content-only vectors (`content_table`, what they would be as cold items), and a
            gradient that reaches the content path only. It teaches content to score as an item
            with interactions would, so a cold item competes with warm ones, without moving the
            id model: DropoutNet's id dropout (Volkovs et al. 2017) without its cost to warm items.
        target_weighting: How the "softmax" and "bce" losses weigh a step's targets. "per_batch":
            the mean over the batch's targets, so a target in a batch of short histories weighs
            more. "per_target": their sum over the batch's target slots (B x L, or B x
            `prefixes_per_sequence`), so every target weighs the same whatever batch it falls in
            and the pass's gradient is the mean over all its targets. Batches of similar lengths
            (`length_buckets`) need it: with "per_batch" a short history's positions weigh up to
            L / length times as much as a long one's.
        **kwargs: Standard `tf.keras.Model` arguments.

    Call arguments:
        history: int `[B, L]` item ids (or a dict with key "history").

    Returns:
        `[B, D]` query embeddings. `score(history)` returns `[B, vocab_size]` scores.

    Example:
        >>> from tf_attnrec.models.mean_pooling import MeanPoolingEncoder
        >>> model = SequentialRetrievalModel(MeanPoolingEncoder(vocab_size=12, max_length=5))
        >>> model.score(tf.constant([[0, 0, 4, 5, 6]])).shape
        TensorShape([1, 12])
    """

    def __init__(
        self,
        encoder: Union[SequenceEncoder, Mapping[str, Any]],
        loss: str = "softmax",
        num_negatives: int = 1024,
        max_retrieval_queries: int = 4096,
        prefixes_per_sequence: int = 4,
        temperature: Optional[float] = None,
        loss_items: str = "all",
        content_loss_weight: float = 0.0,
        target_weighting: str = "per_batch",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(encoder, Mapping):
            encoder = tf.keras.layers.deserialize(dict(encoder))
        if not isinstance(encoder, SequenceEncoder):
            raise TypeError(
                "SequentialRetrievalModel: `encoder` must be a tf_attnrec SequenceEncoder (e.g. "
                f"SASRecEncoder) or its serialized config; got {type(encoder).__name__}."
            )
        if loss not in LOSSES:
            raise ValueError(
                f"SequentialRetrievalModel: unknown loss {loss!r}; expected one of {LOSSES}."
            )
        owner = "SequentialRetrievalModel"
        if loss_items not in LOSS_ITEMS or (loss_items != "all" and loss != "softmax"):
            raise ValueError(
                f"{owner}: `loss_items` must be one of {LOSS_ITEMS} (\"trained\" with loss \"softmax\" only); "
                f"got loss_items={loss_items!r} with loss={loss!r}."
            )
        self.loss_items = loss_items
        if isinstance(content_loss_weight, bool) or not isinstance(content_loss_weight, (int, float)) \
                or content_loss_weight < 0:
            raise ValueError(f"{owner}: `content_loss_weight` must be a number >= 0; got {content_loss_weight!r}.")
        if content_loss_weight and (getattr(encoder, "item_tower", None) is None or loss != "softmax"):
            raise ValueError(f"{owner}: `content_loss_weight` needs `item_features` (an item tower) and loss "
                             f"\"softmax\"; got loss={loss!r}, item_features="
                             f"{getattr(encoder, 'item_features', None)!r}.")
        self.content_loss_weight = float(content_loss_weight)
        if target_weighting not in TARGET_WEIGHTINGS or (target_weighting != "per_batch"
                                                          and loss not in ("softmax", "bce")):
            # The retrieval losses score a capped random subset of the positions in-batch, so
            # their targets' weight is set by `max_retrieval_queries`, not by the batch.
            raise ValueError(
                f"{owner}: `target_weighting` must be one of {TARGET_WEIGHTINGS} (\"per_target\" with loss "
                f"\"softmax\" or \"bce\" only); got target_weighting={target_weighting!r} with loss={loss!r}.")
        self.target_weighting = target_weighting
        self.encoder = encoder
        self.loss_name = loss
        self.num_negatives = check_positive_int(owner, "`num_negatives`", num_negatives, minimum=0)
        self.max_retrieval_queries = check_positive_int(owner, "`max_retrieval_queries`", max_retrieval_queries)
        self.prefixes_per_sequence = check_positive_int(owner, "`prefixes_per_sequence`", prefixes_per_sequence)
        self.temperature = temperature
        self.vocab_size = encoder.vocab_size
        self.draws = RandomDraws(name="random_draws")  # negatives, prefixes, content share, query subsets

        excluded = np.zeros([self.vocab_size], np.float32)
        excluded[:2] = _EXCLUDED_LOGIT
        self._logit_bias = tf.constant(excluded)
        # Training-item counts: the proposal distribution of the retrieval losses.
        self.item_counts = tf.Variable(
            tf.zeros([self.vocab_size], tf.float32), trainable=False, name="item_counts"
        )
        # Per-example losses, averaged in `compute_loss`: Keras refuses its batch-averaging
        # reductions in a custom training step under a tf.distribute strategy.
        if loss in ("sampled_softmax", "in_batch"):
            self.task = tfrs.tasks.Retrieval(
                loss=tf.keras.losses.CategoricalCrossentropy(
                    from_logits=True, reduction=tf.keras.losses.Reduction.NONE
                ),
                temperature=temperature,
                remove_accidental_hits=True,
            )
        elif loss == "softmax":
            self.task = tf.keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, reduction=tf.keras.losses.Reduction.NONE
            )
        else:
            self.task = tf.keras.losses.BinaryCrossentropy(
                from_logits=True, reduction=tf.keras.losses.Reduction.NONE
            )

    # ------------------------------------------------------------------ inference
    @staticmethod
    def _history(inputs: Union[tf.Tensor, Mapping[str, tf.Tensor]]) -> tf.Tensor:
        if isinstance(inputs, Mapping):
            if "history" not in inputs:
                raise KeyError(
                    f"Expected a feature 'history' (int item ids [B, L]); got {sorted(inputs)}."
                )
            inputs = inputs["history"]
        return tf.cast(inputs, tf.int32)

    def call(self, inputs: Union[tf.Tensor, Mapping[str, tf.Tensor]], training=None,
             item_table: Optional[tf.Tensor] = None) -> tf.Tensor:
        """The query `[B, D]` of each history.

        `item_table`, for an encoder with an item tower only: the precomputed fused table to read
        the history's item vectors from (see `score`).
        """
        if item_table is None:
            return self.encoder(self._history(inputs), training=training)
        return self.encoder(self._history(inputs), training=training, item_table=item_table)

    @property
    def max_length(self) -> int:
        """The history length the encoder reads (longer histories keep the most recent)."""
        return int(self.encoder.max_length)

    @property
    def item_embeddings(self) -> tf.Variable:
        """The `[vocab_size, D]` candidate table (shared with the encoder's input)."""
        return self.encoder.item_embeddings

    def build_variables(self) -> None:
        self.score(tf.zeros([1, self.max_length], tf.int32))

    def score(self, history: tf.Tensor, item_table: Optional[tf.Tensor] = None) -> tf.Tensor:
        """Scores `[B, vocab_size]` of every item for each history (rows 0, 1 get -1e9).

        Args:
            history: int `[B, L]` item ids, left-padded with 0 (or a dict with "history").
            item_table: The candidate table `item_embeddings`, when the caller holds it already.
                With an item tower the table is computed from every item's content, so it is
                computed once here for both the history and the candidates; an export passes a
                frozen copy, so that a served request never recomputes the catalogue.
        """
        fused = self.encoder.item_tower is not None
        if item_table is None:
            item_table = self.item_embeddings
        query = self(history, training=False, item_table=item_table if fused else None)
        logits = tf.matmul(as_float32(query), as_float32(item_table), transpose_b=True)
        return logits + self._logit_bias

    def attention_weights(
        self, history: Union[tf.Tensor, Mapping[str, tf.Tensor]], per_head: bool = False
    ) -> tf.Tensor:
        """The query's (last position's) attention over the history, from the encoder.

        Args:
            history: int `[B, L]` item ids, left-padded with 0 (or a dict with "history").
            per_head: `[B, heads, L]` (every head of the last Transformer block for SASRec;
                one "head" for single-attention encoders) instead of `[B, L]`.

        Returns:
            float32 weights aligned with `history`: 0 at padding (and at positions older than
            the `max_length` the encoder reads); an all-padding row is all 0.

        Raises:
            ValueError: the encoder has no attention over the history (e.g. mean pooling).
        """
        method = getattr(self.encoder, "attention_weights", None)
        if not callable(method):
            raise ValueError(
                f"the {self.name} model's encoder ({type(self.encoder).__name__}) has no attention "
                "over the history; attention_weights needs an attention encoder such as "
                "SASRecEncoder, RecurrentAttentionSequenceEncoder or AttentionPoolingEncoder."
            )
        return method(self._history(history), per_head=per_head)

    def adapt(self, sequences: Iterable[np.ndarray]) -> None:
        """Counts item occurrences in training sequences (the retrieval losses' proposal).

        An item tower also learns from them which items have a trained id (count > 0).
        """
        counts = count_items(sequences, self.vocab_size)
        self.item_counts.assign(counts)
        if self.encoder.item_tower is not None:
            self.encoder.item_tower.set_item_counts(counts)

    def set_item_content(self, content: Any) -> None:
        """Stores the catalogue's `ItemContent` in the item tower (models with `item_features`)."""
        if self.encoder.item_tower is None:
            raise ValueError(f"the {self.name} model has no item_features; it reads item ids only.")
        self.encoder.item_tower.set_catalogue(content)

    # ------------------------------------------------------------------ training
    def _gather_targets(
        self, features: Mapping[str, tf.Tensor], training: bool
    ) -> tuple[tf.Tensor, tf.Tensor, Optional[tf.Tensor], tf.Tensor]:
        """Query states `[N, D]`, their target ids `[N]` for all (non-padded) targets, their
        positions in the flattened `[B * L]` targets (None for sampled prefixes), and the item
        table of this step (the output layer's)."""
        history = self._history(features)
        targets = tf.cast(features["targets"], tf.int32)
        if self.encoder.supports_all_positions:
            if self.encoder.item_tower is None:
                table = self.item_embeddings
                states = self.encoder.encode_sequence(history, training=training)
            else:  # one fused table per step, for input and output alike
                table = self.encoder.item_table(training=training)
                states = self.encoder.encode_sequence(history, training=training, item_table=table)
            flat_states = tf.reshape(states, [-1, tf.shape(states)[-1]])
            flat_targets = tf.reshape(targets, [-1])
            positions = tf.where(flat_targets > 0)[:, 0]
            return (as_float32(tf.gather(flat_states, positions)), tf.gather(flat_targets, positions), positions,
                    as_float32(table))
        prefixes, prefix_targets = self._sample_prefixes(history, targets)
        return as_float32(self.encoder(prefixes, training=training)), prefix_targets, None, as_float32(self.item_embeddings)

    def _sample_prefixes(
        self, history: tf.Tensor, targets: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Cuts `prefixes_per_sequence` random prefixes (left-padded again) per sequence."""
        length = tf.shape(history)[1]
        counts = tf.reduce_sum(tf.cast(targets > 0, tf.int32), axis=1)  # real positions
        has_targets = counts > 0
        history = tf.boolean_mask(history, has_targets)
        targets = tf.boolean_mask(targets, has_targets)
        counts = tf.boolean_mask(counts, has_targets)
        num_rows = tf.shape(history)[0]
        k = self.prefixes_per_sequence
        # Left padding: the real positions are the last `count` ones.
        offsets = tf.cast(
            self.draws.uniform([num_rows, k]) * tf.cast(counts[:, None], tf.float32), tf.int32
        )
        cut = length - counts[:, None] + tf.minimum(offsets, counts[:, None] - 1)  # [R, k]
        shift = length - 1 - cut
        source = tf.range(length)[None, None, :] - shift[:, :, None]  # [R, k, L]
        prefixes = tf.gather(history, tf.maximum(source, 0), batch_dims=1)
        prefixes = tf.where(source >= 0, prefixes, tf.zeros_like(prefixes))
        prefix_targets = tf.gather(targets, cut, batch_dims=1)
        return tf.reshape(prefixes, [-1, length]), tf.reshape(prefix_targets, [-1])

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        if not isinstance(features, Mapping) or "targets" not in features:
            raise KeyError(
                "SequentialRetrievalModel trains on dicts {'history': [B, L], 'targets': [B, L]} "
                "(see tf_attnrec.data.pipelines.next_item_dataset); got "
                f"{type(features).__name__}."
            )
        # The batch's target slots, before any trimming: the divisor of "per_target".
        slots = (tf.size(features["targets"]) if self.encoder.supports_all_positions
                 else tf.shape(features["targets"])[0] * self.prefixes_per_sequence)
        if self.encoder.supports_all_positions and not getattr(self, "_jit_compile", False):
            # Columns that are padding in every row change no state and hold no target: a batch
            # of short histories (`length_buckets`) then costs what its longest history needs.
            # Not under XLA, which compiles static shapes only.
            history = self._history(features)
            trimmed = without_leading_padding(history)
            first = tf.shape(history)[1] - tf.shape(trimmed)[1]
            features = {**features, "history": trimmed, "targets": features["targets"][:, first:]}
        queries, target_ids, positions, table = self._gather_targets(features, training)
        if self.loss_name == "softmax":
            # Rows 0 and 1 are never targets: score only real items (ids shift by 2), which
            # also saves a pass over the [N, vocab_size] logits for masking.
            logits = tf.matmul(queries, table[2:], transpose_b=True) + self._loss_items_bias()
            loss = self._reduce(self.task(target_ids - 2, logits), slots)
            if self.content_loss_weight:
                loss += self.content_loss_weight * self._reduce(
                    self._content_losses(queries, target_ids, logits, training), slots)
            return loss
        # Rows of the table by `tf.nn.embedding_lookup`, not `tf.gather`: on a table sharded over
        # parameter servers (`examples/parameter_server.py`), TF 2.20's `tf.gather` returns the
        # rows grouped by shard, silently out of order.
        if self.loss_name == "bce":
            if positions is None:
                negative_ids = self.draws.uniform(tf.shape(target_ids), 2, self.vocab_size, tf.int32)
            else:
                # Drawn over the whole [B * L] grid (a static shape, so XLA compiles the
                # step), then gathered like the targets: one negative per position.
                grid = self.draws.uniform([tf.size(features["targets"])], 2, self.vocab_size, tf.int32)
                negative_ids = tf.gather(grid, positions)
            positive_logits = tf.reduce_sum(queries * tf.nn.embedding_lookup(table, target_ids), axis=-1)
            negative_logits = tf.reduce_sum(queries * tf.nn.embedding_lookup(table, negative_ids), axis=-1)
            logits = tf.concat([positive_logits, negative_logits], axis=0)
            labels = tf.concat(
                [tf.ones_like(positive_logits), tf.zeros_like(negative_logits)], axis=0
            )
            # One logit a row: Keras' cross-entropy averages over the last axis.
            losses = self.task(labels[:, tf.newaxis], logits[:, tf.newaxis])
            return self._reduce(losses, 2 * slots)  # a positive and a negative a slot
        return self._retrieval_loss(queries, target_ids, table)

    def _reduce(self, losses: tf.Tensor, slots: tf.Tensor) -> tf.Tensor:
        """The step's loss from its per-target `losses`, by `target_weighting`."""
        if self.target_weighting == "per_target":
            return tf.reduce_sum(losses) / tf.cast(slots, losses.dtype)
        return tf.reduce_mean(losses)

    def _loss_items_bias(self) -> Union[tf.Tensor, float]:
        """Added to the softmax's `[N, vocab_size - 2]` logits: the items it must not rank the target against."""
        if self.loss_items == "trained":
            return tf.where(self.item_counts[2:] > 0, 0.0, _EXCLUDED_LOGIT)
        return 0.0

    def _content_losses(self, queries: tf.Tensor, target_ids: tf.Tensor, logits: tf.Tensor,
                        training: bool) -> tf.Tensor:
        """Per target, the softmax cross-entropy again, with a random half of the items scored by their content alone.

        Each step draws which items stand in by their content vector (`content_table`, what they
        would be as cold items), the targets included, so a content vector is a positive as often
        as it is a negative: content learns to score as the item's full vector would, which is
        what lets a cold item compete with warm ones at serving. (Were the target always its
        content, raising every content vector above every full one would lower the loss.) The
        queries and the full-vector logits are constants here: only the content path learns.
        """
        content_logits = tf.matmul(tf.stop_gradient(queries), self.encoder.content_table(training=training)[2:],
                                   transpose_b=True)
        content_logits += self._loss_items_bias()
        by_content = self.draws.uniform([tf.shape(logits)[1]]) < _CONTENT_SHARE
        return self.task(target_ids - 2, tf.where(by_content, content_logits, tf.stop_gradient(logits)))

    def _retrieval_loss(
        self, queries: tf.Tensor, target_ids: tf.Tensor, table: tf.Variable
    ) -> tf.Tensor:
        num_queries = tf.shape(target_ids)[0]
        keep = self.draws.permutation(num_queries)[: self.max_retrieval_queries]
        queries = tf.gather(queries, keep)
        candidate_ids = tf.gather(target_ids, keep)
        total = tf.reduce_sum(self.item_counts)
        tf.debugging.assert_positive(
            total,
            message=(
                "Sampled/in-batch losses need item frequencies: call model.adapt(train_sequences) "
                "before fit (train_sequential does this)."
            ),
        )
        if self.loss_name == "sampled_softmax" and self.num_negatives > 0:
            negatives = self.draws.weighted(self.item_counts, self.num_negatives)
            candidate_ids = tf.concat([candidate_ids, negatives], axis=0)
        probability = tf.gather(self.item_counts, candidate_ids) / total
        return tf.reduce_mean(self.task(
            queries,
            tf.nn.embedding_lookup(table, candidate_ids),
            candidate_sampling_probability=probability,
            candidate_ids=candidate_ids,
            compute_metrics=False,
        ))

    def get_config(self) -> dict[str, Any]:
        return {
            "encoder": tf.keras.layers.serialize(self.encoder),
            "loss": self.loss_name,
            "num_negatives": self.num_negatives,
            "max_retrieval_queries": self.max_retrieval_queries,
            "prefixes_per_sequence": self.prefixes_per_sequence,
            "temperature": self.temperature,
            "loss_items": self.loss_items,
            "content_loss_weight": self.content_loss_weight,
            "target_weighting": self.target_weighting,
            "name": self.name,
        }

    @classmethod
    def with_encoder(
        cls, encoder_class: type, vocab_size: int, name: Optional[str] = None, **config: Any
    ) -> "SequentialRetrievalModel":
        """Builds `encoder_class` and the head from one flat config (what zoo builders do).

        Args:
            encoder_class: A `SequenceEncoder` subclass.
            vocab_size: Rows of the item table (`vocabulary.size`).
            name: The model's name (the zoo name).
            **config: Head keys (`loss`, `num_negatives`, ...) and encoder keys, mixed.

        Returns:
            The `SequentialRetrievalModel`.
        """
        head_keys = set(inspect.signature(cls.__init__).parameters) - {"self", "encoder", "kwargs"}
        encoder = encoder_class(
            vocab_size=vocab_size, **{k: v for k, v in config.items() if k not in head_keys}
        )
        return cls(encoder, name=name, **{k: v for k, v in config.items() if k in head_keys})
