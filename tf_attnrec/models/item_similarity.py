"""Attentive item-based CF: `fism` (Kabbur et al. 2013) and `nais` (He et al. 2018).

A user is the set of items they interacted with. The score of candidate `i` is

    y(u, i) = b_i + sum_{j in H} a_ij (p_j . q_i),

with a history table `p`, a candidate table `q` and an item bias `b`. FISM weighs every
history item by `|H|^-alpha`; NAIS learns `a_ij` with an attention network over (p_j, q_i)
and a smoothed softmax (`tf_attnrec.layers.ItemSimilarityAttention`).

Training is pointwise, as in both papers: each training item is a positive with the user's
other items as the history (`tf_attnrec.data.item_set_dataset`), against `num_negatives`
items drawn uniformly from the catalogue, with binary cross-entropy.

Full ranking. FISM's weights do not depend on the candidate, so a user vector is pooled once
and the catalogue is one matmul. NAIS's weights do: every (history item, candidate) pair goes
through the attention network, `B x V x L x A` multiply-adds for `B` users. `score` loops
over the catalogue in chunks sized so the `[B, chunk, L, A]` hidden tensor stays under
`_CHUNK_ELEMENTS`; every score is exact.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

import numpy as np
import tensorflow as tf

from tf_attnrec.data.vocabulary import FIRST_ID
from tf_attnrec.layers.checks import check_positive_int
from tf_attnrec.layers.item_similarity import ItemSimilarityAttention
from tf_attnrec.layers.random_draws import RandomDraws
from tf_attnrec.models.base import RecommenderModel
from tf_attnrec.models.registry import register_model

# Most elements of the [users, candidates, history, attention] tensor one chunk of NAIS's
# full ranking holds (2^23 float32 = 32 MiB; the ReLU makes a second one).
_CHUNK_ELEMENTS = 1 << 23
_EXCLUDED_SCORE = -1e9


class ItemSimilarityModel(RecommenderModel):
    """Base of `FISM` and `NAIS`: history and candidate tables, item bias, pointwise BCE.

    Subclasses choose the weighting (`ItemSimilarityAttention`'s `attention` and `beta`) and
    own their constructor defaults; this base has none, so the zoo's defaults have one source.

    Args:
        vocab_size: Item ids including padding and OOV (`num_items + 2`).
        embedding_dim: D, the size of both tables.
        max_length: The most recent history items read.
        attention: "prod", "concat" or None (FISM).
        attention_dim: A, hidden size of the attention network.
        beta: Smoothing exponent of the weights' denominator (FISM's alpha).
        num_negatives: Uniformly drawn negatives per positive in training.
        l2_weight: Weight of the squared L2 norm of the step's gathered embeddings, per example.
        attention_l2: Weight of the squared L2 norm of the attention network's `W` and `h`, per step.
        **kwargs: `tf.keras.Model` arguments.

    Training features: `{"history": int [B, L], "positive": int [B]}` (`item_set_dataset`).
    """

    #: The training examples `train_sequential` builds: item sets, not next-item sequences.
    trains_on = "item_set"

    def __init__(self, vocab_size: int, embedding_dim: int, max_length: int, attention: Optional[str],
                 attention_dim: int, beta: float, num_negatives: int, l2_weight: float, attention_l2: float,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.vocab_size = check_positive_int(owner, "`vocab_size` (num_items + 2)", vocab_size, minimum=3)
        self.embedding_dim = check_positive_int(owner, "`embedding_dim`", embedding_dim)
        self.max_length = check_positive_int(owner, "`max_length`", max_length)
        self.num_negatives = check_positive_int(owner, "`num_negatives`", num_negatives)
        self.draws = RandomDraws(name="random_draws")  # the negatives
        for key, value in (("l2_weight", l2_weight), ("attention_l2", attention_l2)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{owner}: `{key}` must be a number >= 0; got {value!r}.")
        self.l2_weight = float(l2_weight)
        self.attention_l2 = float(attention_l2)
        # N(0, 0.01) tables, as the NAIS reference code and RecBole initialise them.
        self.history_embedding = tf.keras.layers.Embedding(
            vocab_size, embedding_dim, embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=0.01),
            name="history_embedding")
        self.candidate_embedding = tf.keras.layers.Embedding(
            vocab_size, embedding_dim, embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=0.01),
            name="candidate_embedding")
        self.item_bias = tf.keras.layers.Embedding(vocab_size, 1, embeddings_initializer="zeros", name="item_bias")
        self.similarity = ItemSimilarityAttention(
            attention, attention_dim, beta, regularizer=tf.keras.regularizers.L2(self.attention_l2)
            if self.attention_l2 else None, name="item_similarity")
        # Every weight's shape is known now: build them, so scoring may read the tables first.
        for table in (self.history_embedding, self.candidate_embedding, self.item_bias):
            table.build(tf.TensorShape([None]))
        self.similarity.build(tf.TensorShape([None, None, embedding_dim]))

    # ------------------------------------------------------------------ inputs
    def _history(self, inputs: Union[tf.Tensor, Mapping[str, tf.Tensor]]) -> tuple[tf.Tensor, tf.Tensor]:
        """The read history `[B, L']` (most recent `max_length`) and its mask (padding and OOV out)."""
        if isinstance(inputs, Mapping):
            if "history" not in inputs:
                raise KeyError(f"Expected a feature 'history' (int item ids [B, L]); got {sorted(inputs)}.")
            inputs = inputs["history"]
        history = tf.cast(tf.convert_to_tensor(inputs), tf.int32)
        if history.shape.rank is not None and history.shape.rank != 2:
            raise ValueError(f"{type(self).__name__} expects item ids of shape [batch, length]; got {history.shape}.")
        history = history[:, -self.max_length:]
        # An unknown item (id 1) says nothing about the user: it is left out like padding.
        return history, history >= FIRST_ID

    # ------------------------------------------------------------------ scoring
    def score_candidates(self, history: Any, candidates: tf.Tensor, training: bool = False,
                         return_attention: bool = False) -> Any:
        """Scores `[B, C]` of candidate ids `[B, C]` for histories `[B, L]` (with weights `[B, C, L]`)."""
        history, mask = self._history(history)
        candidates = tf.cast(candidates, tf.int32)
        result = self.similarity(self.history_embedding(history), self.candidate_embedding(candidates), mask=mask,
                                 return_attention=return_attention, training=training)
        scores, weights = result if return_attention else (result, None)
        scores = scores + tf.squeeze(self.item_bias(candidates), -1)
        return (scores, weights) if return_attention else scores

    def score(self, history: Any) -> tf.Tensor:
        """Scores `[B, vocab_size]` of every item for each history (rows 0, 1 get -1e9), exact."""
        history, mask = self._history(history)
        vectors = self.history_embedding(history)
        table = self.candidate_embedding.embeddings[FIRST_ID:]
        if self.similarity.attention is None:
            scores = self.similarity(vectors, table, mask=mask)
        else:
            scores = self._chunked_scores(vectors, mask, table)
        scores = scores + self.item_bias.embeddings[FIRST_ID:, 0]
        excluded = tf.fill([tf.shape(scores)[0], FIRST_ID], tf.constant(_EXCLUDED_SCORE, scores.dtype))
        return tf.concat([excluded, scores], axis=1)

    def _chunked_scores(self, vectors: tf.Tensor, mask: tf.Tensor, table: tf.Tensor) -> tf.Tensor:
        """`[B, I]` attention scores of every candidate row of `table`, `chunk` candidates at a time."""
        batch, length, items = tf.shape(vectors)[0], tf.shape(vectors)[1], tf.shape(table)[0]
        chunk = tf.maximum(1, _CHUNK_ELEMENTS // tf.maximum(1, batch * length * self.similarity.attention_dim))
        chunk = tf.minimum(chunk, items)
        num_chunks = (items + chunk - 1) // chunk
        padded = tf.pad(table, [[0, num_chunks * chunk - items], [0, 0]])
        chunks = tf.reshape(padded, [num_chunks, chunk, self.embedding_dim])
        per_chunk = tf.map_fn(lambda candidates: self.similarity(vectors, candidates, mask=mask), chunks,
                              fn_output_signature=tf.TensorSpec([None, None], vectors.dtype),
                              parallel_iterations=None if tf.executing_eagerly() else 2)
        scores = tf.reshape(tf.transpose(per_chunk, [1, 0, 2]), [batch, num_chunks * chunk])
        return scores[:, :items]

    def call(self, inputs: Union[tf.Tensor, Mapping[str, tf.Tensor]], training: Optional[bool] = None) -> tf.Tensor:
        """`[B, vocab_size]` catalogue scores, or `[B, C]` for `{"history", "candidates"}`."""
        if isinstance(inputs, Mapping) and "candidates" in inputs:
            return self.score_candidates(inputs, inputs["candidates"], training=bool(training))
        return self.score(inputs)

    def build_variables(self) -> None:
        self.score_candidates(tf.zeros([1, self.max_length], tf.int32), tf.fill([1, 1], FIRST_ID))

    # ------------------------------------------------------------------ training
    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        if not isinstance(features, Mapping) or "positive" not in features:
            raise KeyError(
                f"{type(self).__name__} trains on dicts {{'history': [B, L], 'positive': [B]}} "
                "(see tf_attnrec.data.item_set_dataset); got "
                f"{sorted(features) if isinstance(features, Mapping) else type(features).__name__}.")
        positives = tf.cast(tf.reshape(features["positive"], [-1, 1]), tf.int32)
        # Uniform over real items; a negative the user has seen is rare and left in (as in FISM).
        negatives = self.draws.uniform([tf.shape(positives)[0], self.num_negatives], FIRST_ID, self.vocab_size,
                                       tf.int32)
        candidates = tf.concat([positives, negatives], axis=1)
        logits = self.score_candidates(features, candidates, training=training)
        labels = tf.concat([tf.ones_like(positives, logits.dtype), tf.zeros_like(negatives, logits.dtype)], axis=1)
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits))
        if self.l2_weight:
            history, mask = self._history(features)
            used = tf.cast(mask, tf.float32)[:, :, tf.newaxis] * self.history_embedding(history)
            squares = tf.reduce_sum(tf.square(used)) + tf.reduce_sum(tf.square(self.candidate_embedding(candidates)))
            loss += self.l2_weight * squares / tf.cast(tf.shape(positives)[0], tf.float32)
        return loss + tf.add_n([0.0, *self.losses])

    def _base_config(self) -> dict[str, Any]:
        return {"vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim, "max_length": self.max_length,
                "num_negatives": self.num_negatives, "l2_weight": self.l2_weight, "name": self.name}


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class FISM(ItemSimilarityModel):
    """FISM: a candidate's score is its similarity to the user's items, pooled with weight `|H|^-alpha`.

    Args:
        vocab_size: `num_items + 2`.
        embedding_dim: D.
        alpha: Normalisation exponent; 0 sums the history, 1 averages it.
        max_length: Most recent history items read.
        num_negatives: Negatives per positive in training.
        l2_weight: L2 weight on the step's embeddings.
        **kwargs: `tf.keras.Model` arguments.

    Example:
        >>> model = FISM(vocab_size=12, embedding_dim=8, max_length=5)
        >>> model.score(tf.constant([[0, 0, 4, 5, 6]])).shape
        TensorShape([1, 12])
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 64, alpha: float = 0.5, max_length: int = 200,
                 num_negatives: int = 4, l2_weight: float = 0.0, **kwargs: Any) -> None:
        super().__init__(vocab_size, embedding_dim, max_length, None, 1, alpha, num_negatives, l2_weight, 0.0,
                         **kwargs)
        self.alpha = float(alpha)

    def get_config(self) -> dict[str, Any]:
        return {**self._base_config(), "alpha": self.alpha}


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class NAIS(ItemSimilarityModel):
    """NAIS: FISM with an attention network weighing each history item for the candidate.

    Args:
        vocab_size: `num_items + 2`.
        embedding_dim: D.
        attention: "prod" (`h . ReLU(W (p * q) + b)`) or "concat" (`h . ReLU(W [p; q] + b)`).
        attention_dim: A, the attention network's hidden size.
        beta: Smoothing exponent of the softmax denominator (NAIS found 0.5 best).
        max_length: Most recent history items read.
        num_negatives: Negatives per positive in training.
        l2_weight: L2 weight on the step's embeddings.
        attention_l2: L2 weight on the attention network's `W` and `h` (the paper's lambda).
        **kwargs: `tf.keras.Model` arguments.

    Example:
        >>> model = NAIS(vocab_size=12, embedding_dim=8, attention_dim=4, max_length=5)
        >>> model.attention_weights(tf.constant([[0, 0, 4, 5, 6]]), candidates=[7]).shape
        TensorShape([1, 5])
    """

    @property
    def attention_description(self) -> str:
        """What a weight is, for `tf-attnrec explain`."""
        return (f"NAIS {self.similarity.attention} attention of the history item for this item "
                f"(softmax with denominator^{self.similarity.beta:g})")

    def __init__(self, vocab_size: int, embedding_dim: int = 64, attention: str = "prod", attention_dim: int = 16,
                 beta: float = 0.5, max_length: int = 200, num_negatives: int = 4, l2_weight: float = 0.0,
                 attention_l2: float = 0.0, **kwargs: Any) -> None:
        if attention not in ("prod", "concat"):
            raise ValueError(f"NAIS: `attention` must be 'prod' or 'concat' (use fism for none); got {attention!r}.")
        super().__init__(vocab_size, embedding_dim, max_length, attention, attention_dim, beta, num_negatives,
                         l2_weight, attention_l2, **kwargs)

    def attention_weights(self, history: Any, candidates: Any = None, per_head: bool = False) -> tf.Tensor:
        """The weight `a_ij` of each history item for one candidate per row.

        Args:
            history: int `[B, L]` item ids, left-padded with 0.
            candidates: int `[B]` candidate ids (required: NAIS's weights depend on the candidate).
            per_head: return `[B, 1, L]` (one "head") instead of `[B, L]`.

        Returns:
            float32 weights aligned with `history`: 0 at padding, unknown items and positions
            older than `max_length`. With `beta` < 1 they need not sum to 1 (NAIS's smoothing).
        """
        if candidates is None:
            raise ValueError(f"{self.name}'s attention depends on the candidate item: pass `candidates` ([B] ids).")
        history = tf.cast(tf.convert_to_tensor(history), tf.int32)
        weights = self.history_attention(history, tf.reshape(tf.cast(candidates, tf.int32), [-1, 1]))[:, 0, :]
        missing = tf.shape(history)[1] - tf.shape(weights)[1]
        weights = tf.pad(weights, [[0, 0], [missing, 0]])
        return weights[:, tf.newaxis, :] if per_head else weights

    def history_attention(self, history: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor:
        """`[B, C, L]` weights of each history item for each candidate id `[B, C]` (what exports serve)."""
        _, weights = self.score_candidates(history, candidates, return_attention=True)
        return tf.cast(weights, tf.float32)

    def get_config(self) -> dict[str, Any]:
        return {**self._base_config(), "attention": self.similarity.attention,
                "attention_dim": self.similarity.attention_dim, "beta": self.similarity.beta,
                "attention_l2": self.attention_l2}


_TINY = {"embedding_dim": 8, "max_length": 8}


@register_model("retrieval", (FISM,), training={}, tiny=_TINY)
def fism(vocab_size: int, **config: Any) -> FISM:
    """FISM: the user's items pooled with weight |H|^-alpha, scored against each candidate (no attention)."""
    return FISM(vocab_size, name="fism", **config)


@register_model("retrieval", (NAIS,), training={}, tiny={**_TINY, "attention_dim": 4})
def nais(vocab_size: int, **config: Any) -> NAIS:
    """NAIS: attentive item similarity; each history item weighted for the candidate (product or concat attention)."""
    return NAIS(vocab_size, name="nais", **config)


__all__ = ["FISM", "ItemSimilarityModel", "NAIS"]
