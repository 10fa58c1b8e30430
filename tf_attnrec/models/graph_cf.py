"""`GraphCFModel`: user and item embeddings refined over the training graph, trained with BPR.

The base of the transductive graph recommenders (`lightgcn`, `gat_cf`): a user id table and
an item id table ("ego" embeddings), a subclass's `propagate` that refines both over the
user-item graph of the training interactions, and the pairwise BPR loss on
(user, positive item, negative item) triples with L2 regularisation of the triple's ego
embeddings, as in LightGCN and RecBole.

The graph is data, not a weight: `set_graph(InteractionGraph)` hands it to the model before
training, evaluation or export, and a run directory stores it beside the weights. Users are
graph nodes `0 .. U-1`; items are model ids `2 .. V-1` (node `id - 2`), so scores come out over
model ids like every retrieval model's, with columns 0 and 1 (padding, OOV) never candidates.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import tensorflow as tf

from tf_attnrec.data.graph import InteractionGraph
from tf_attnrec.data.vocabulary import FIRST_ID
from tf_attnrec.layers.checks import check_positive_int
from tf_attnrec.models.base import RecommenderModel

# Added to the scores of rows 0 (padding) and 1 (OOV): never recommended.
_EXCLUDED_SCORE = -1e9


class GraphCFModel(RecommenderModel):
    """Base class: ego embeddings, graph propagation (`propagate`), BPR loss, full scoring.

    Subclasses implement `propagate(users, items, training)`, or, when they do not propagate
    the whole graph (`graphsage_cf` samples neighbourhoods), override `final_embeddings` and
    `compute_loss`; each adds its own config keys to `get_config`.

    Args:
        num_users: U, user nodes (rows of the split).
        vocab_size: item ids including padding and OOV (`num_items + 2`).
        embedding_dim: size of the ego and output embeddings.
        reg_weight: weight of the L2 term `sum_x ||x||_2 / B` over the batch's user, positive
            and negative ego embeddings (RecBole's `EmbLoss`, `require_pow=False`).
        **kwargs: standard `tf.keras.Model` arguments.

    Training features: `{"user": int32 [B], "positive": int32 [B], "negative": int32 [B]}`, items
    as model ids (`tf_attnrec.data.pair_batches.bpr_triples` makes them).
    """

    #: The history length read: none, a transductive model knows its users by id.
    max_length = 0
    #: A step gathers the same rows of two small tables many times over (graphsage_cf: about
    #: B x S x S user rows from U); on ML-1M a graphsage_cf step of batch 8192 took 1.3 s with
    #: Adam's sparse update, 0.49 s with dense gradients (`/tmp` timing, contended CPU).
    dense_gradients = True
    #: What a served request carries: "user_id" (a training user), or "history" (raw item ids)
    #: for a model that embeds any user from their items (`graphsage_cf`).
    serves = "user_id"

    def __init__(self, num_users: int, vocab_size: int, embedding_dim: int = 64, reg_weight: float = 1e-4,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.num_users = check_positive_int(owner, "`num_users`", num_users)
        self.vocab_size = check_positive_int(owner, "`vocab_size` (num_items + 2)", vocab_size, minimum=3)
        self.num_items = self.vocab_size - FIRST_ID
        self.embedding_dim = check_positive_int(owner, "`embedding_dim`", embedding_dim)
        if not isinstance(reg_weight, (int, float)) or reg_weight < 0:
            raise ValueError(f"{owner}: `reg_weight` must be a number >= 0; got {reg_weight!r}.")
        self.reg_weight = float(reg_weight)
        # Xavier-uniform tables, as RecBole initialises LightGCN and NGCF.
        self.user_embedding = tf.keras.layers.Embedding(
            self.num_users, self.embedding_dim, embeddings_initializer="glorot_uniform", name="user_embedding")
        self.item_embedding = tf.keras.layers.Embedding(
            self.num_items, self.embedding_dim, embeddings_initializer="glorot_uniform", name="item_embedding")
        self._graph: Optional[InteractionGraph] = None

    # ------------------------------------------------------------------ the graph
    def set_graph(self, graph: InteractionGraph) -> None:
        """Gives the model the training graph (its adjacencies are built here, once)."""
        if not isinstance(graph, InteractionGraph):
            raise TypeError(f"{type(self).__name__}.set_graph needs an InteractionGraph; got {type(graph).__name__}.")
        if (graph.num_users, graph.num_items) != (self.num_users, self.num_items):
            raise ValueError(
                f"{type(self).__name__}: the graph has {graph.num_users} users and {graph.num_items} items but the "
                f"model was built for {self.num_users} and {self.num_items}."
            )
        # Plain attributes set past Keras' tracking: tensors of data, not weights.
        object.__setattr__(self, "_graph", graph)
        self.graph_changed(graph)

    def graph_changed(self, graph: InteractionGraph) -> None:
        """Hook: a subclass builds its adjacency tensors from `graph` here."""

    @property
    def graph(self) -> InteractionGraph:
        if self._graph is None:
            raise RuntimeError(
                f"{type(self).__name__} has no graph: call set_graph(InteractionGraph.from_sequence_split(split)) "
                "first (the collaborative task does this)."
            )
        return self._graph

    # ------------------------------------------------------------------ embeddings
    def ego_embeddings(self) -> tuple[tf.Tensor, tf.Tensor]:
        """The id tables: users `[U, D]`, items `[I, D]`."""
        return self.user_embedding.embeddings, self.item_embedding.embeddings

    def propagate(self, users: tf.Tensor, items: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """Refines ego embeddings over the graph: `(users [U, D'], items [I, D'])`."""
        raise NotImplementedError(f"{type(self).__name__} must implement propagate().")

    def final_embeddings(self, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """The propagated user and item embeddings that score (user, item) pairs."""
        return self.propagate(*self.ego_embeddings(), training=training)

    def call(self, inputs: Any, training: Optional[bool] = None) -> tf.Tensor:
        """`[B, V]` scores of every item for user rows `inputs` (or `inputs["user"]`)."""
        users = inputs["user"] if isinstance(inputs, Mapping) else inputs
        user_final, item_final = self.final_embeddings(training=bool(training))
        return self.scores(tf.gather(user_final, users), item_final)

    def scores(self, user_vectors: tf.Tensor, item_final: tf.Tensor) -> tf.Tensor:
        """`[B, V]` scores over model ids from `[B, D]` user vectors (rows 0, 1 excluded)."""
        scores = tf.matmul(user_vectors, item_final, transpose_b=True)
        excluded = tf.fill([tf.shape(scores)[0], FIRST_ID], tf.constant(_EXCLUDED_SCORE, scores.dtype))
        return tf.concat([excluded, scores], axis=1)

    def build_variables(self) -> None:
        self.user_embedding(tf.zeros([1], tf.int32))
        self.item_embedding(tf.zeros([1], tf.int32))
        self.build_propagation()

    def build_propagation(self) -> None:
        """Hook: a subclass with weights in `propagate` creates them here (no graph needed)."""

    # ------------------------------------------------------------------ training
    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        users, positives, negatives = (tf.reshape(features[key], [-1]) for key in ("user", "positive", "negative"))
        positives, negatives = positives - FIRST_ID, negatives - FIRST_ID  # model ids -> item nodes
        user_ego, item_ego = self.ego_embeddings()
        user_final, item_final = self.propagate(user_ego, item_ego, training=training)
        u = tf.gather(user_final, users)
        margin = tf.reduce_sum(u * (tf.gather(item_final, positives) - tf.gather(item_final, negatives)), axis=1)
        bpr = -tf.reduce_mean(tf.math.log_sigmoid(margin))
        regulariser = (tf.norm(tf.gather(user_ego, users)) + tf.norm(tf.gather(item_ego, positives))
                       + tf.norm(tf.gather(item_ego, negatives))) / tf.cast(tf.shape(users)[0], tf.float32)
        return bpr + self.reg_weight * regulariser + tf.add_n([0.0, *self.losses])

    def get_config(self) -> dict[str, Any]:
        return {"num_users": self.num_users, "vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim,
                "reg_weight": self.reg_weight, "name": self.name}


__all__ = ["GraphCFModel"]
