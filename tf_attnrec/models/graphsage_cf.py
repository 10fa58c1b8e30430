"""`graphsage_cf`: an inductive GraphSAGE recommender (Hamilton et al., 2017) over the user-item graph.

The transductive graph models (`lightgcn`, `gat_cf`) learn one vector per training user, so
a user who arrives after training has none. Here a user has no vector of their own: they
are embedded from their items, and each item from a sampled neighbourhood of its users.

* Item `j`: `h_j = SAGE_item(x_j, {e_v : v in S sampled users of j})`, with `x` the item
  id table and `e` the table of training users (who are only ever neighbours).
* User `u` with items `H`: `h_u = SAGE_user(mean_{j in H} x_j, {h_j : j in H})`.
* Score: `h_u . h_i`, trained with BPR like the other graph models.

A new user with a history is therefore served without retraining: the export takes the raw
`history` like `sasrec`'s does. To train for exactly that case, a training step embeds the
user from S items sampled from their training items with the positive left out, and the
user is left out of their items' neighbourhoods: the model never sees the user's own edge
or vector, which a new user would not have either.

Neighbourhoods: training steps draw S with replacement, in-graph
(`tf_attnrec.data.graph.sample_with_replacement`), once per distinct item of the step as in
GraphSAGE's minibatch algorithm (each row then masks its own user out); evaluation and serving use one fixed
draw of S without replacement per item (`NeighbourSampler`, seeded by `neighbour_seed`),
so scores are deterministic, and a user is embedded from all their items.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np
import tensorflow as tf

from tf_attnrec.data.graph import InteractionGraph, NeighbourSampler, sample_with_replacement
from tf_attnrec.data.vocabulary import FIRST_ID
from tf_attnrec.layers.checks import check_positive_int
from tf_attnrec.layers.graph_sage import GraphSAGE
from tf_attnrec.layers.random_draws import RandomDraws
from tf_attnrec.layers.sparse_ops import gather_rows
from tf_attnrec.models.graph_cf import GraphCFModel
from tf_attnrec.models.registry import register_model

# Most (user, item) slots one evaluation chunk holds: users are embedded in chunks of similar
# degree, padded to the longest in the chunk, so memory stays bounded on large graphs.
_CHUNK_ENTRIES = 1 << 18


def _masked_mean(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean over axis 1 of the entries where `mask` is True; 0 for a row without any."""
    weights = tf.cast(mask, x.dtype)[:, :, tf.newaxis]
    return tf.reduce_sum(x * weights, axis=1) / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)


def _padded_chunks(indptr: np.ndarray, neighbours: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every node's whole neighbour list as padded `(nodes [n], lists [n, L], mask [n, L])` chunks.

    Nodes go in order of degree, so a chunk pads to little more than its own lengths; a chunk
    grows while it fits `_CHUNK_ENTRIES` at the width of its longest (last) node.
    """
    degrees = np.diff(indptr)
    order = np.argsort(degrees, kind="stable")
    widths = np.maximum(degrees[order], 1)
    padded = np.concatenate([neighbours, np.zeros(1, neighbours.dtype)])  # an index to read when masked
    chunks, start = [], 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and (stop - start + 1) * widths[stop] <= _CHUNK_ENTRIES:
            stop += 1
        nodes = order[start:stop]
        positions = np.arange(widths[stop - 1])[np.newaxis, :]
        mask = positions < degrees[nodes][:, np.newaxis]
        lists = padded[np.where(mask, indptr[nodes][:, np.newaxis] + positions, len(neighbours))]
        chunks.append((nodes.astype(np.int32), lists.astype(np.int32), mask))
        start = stop
    return chunks


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class GraphSAGECF(GraphCFModel):
    """Users embedded from their items' sampled neighbourhoods: two GraphSAGE layers, inductive.

    Args:
        num_users: U, training users (neighbours of the items).
        vocab_size: `num_items + 2`.
        embedding_dim: D.
        aggregator: the GraphSAGE aggregator of both layers: "attention" (default: additive
            attention of a node over its neighbours), "mean" or "max_pool".
        num_samples: S, neighbours sampled per node.
        max_length: most recent history items a served request is embedded from.
        neighbour_seed: seed of the fixed evaluation and serving neighbourhoods.
        reg_weight: L2 weight on the batch's item ego embeddings and user means.
        **kwargs: `tf.keras.Model` arguments.

    Both layers are linear (no activation, no L2 normalisation): scores are dot products of
    their outputs, as in LightGCN, which found the non-linearity of GCN layers hurts CF.

    Example:
        >>> graph = InteractionGraph.from_pairs([0, 0, 1], [0, 1, 1], num_users=2, num_items=2)
        >>> model = GraphSAGECF(num_users=2, vocab_size=4, embedding_dim=8)
        >>> model.set_graph(graph)
        >>> model.score(tf.constant([[0, 2, 3]])).shape  # a history of model ids, left-padded
        TensorShape([1, 4])
    """

    #: What a served request carries: a raw item history (the transductive models take user ids).
    serves = "history"

    def __init__(self, num_users: int, vocab_size: int, embedding_dim: int = 64, aggregator: str = "attention",
                 num_samples: int = 10, max_length: int = 200, neighbour_seed: int = 0, reg_weight: float = 1e-4,
                 **kwargs: Any) -> None:
        super().__init__(num_users, vocab_size, embedding_dim, reg_weight, **kwargs)
        self.num_samples = check_positive_int("GraphSAGECF", "`num_samples`", num_samples)
        self.max_length = check_positive_int("GraphSAGECF", "`max_length`", max_length)
        self.neighbour_seed = int(neighbour_seed)
        self.aggregator = aggregator
        self.item_layer = GraphSAGE(embedding_dim, aggregator, activation=None, normalize=False, name="item_sage")
        self.user_layer = GraphSAGE(embedding_dim, aggregator, activation=None, normalize=False, name="user_sage")
        self.draws = RandomDraws(name="random_draws")  # the training step's neighbour samples
        self._csr = None

    def graph_changed(self, graph: InteractionGraph) -> None:
        user_indptr, user_items = graph.neighbour_lists("users")
        item_indptr, item_users = graph.neighbour_lists("items")
        # One trailing entry, so the sampler always has an index to read (it masks it).
        pad = np.zeros(1, np.int32)
        fixed_users, fixed_mask = NeighbourSampler(graph, self.num_samples, self.neighbour_seed).sample_users_of_items(
            np.arange(graph.num_items))
        object.__setattr__(self, "_csr", {
            "user_indptr": tf.constant(user_indptr), "user_items": tf.constant(np.concatenate([user_items, pad])),
            "item_indptr": tf.constant(item_indptr), "item_users": tf.constant(np.concatenate([item_users, pad])),
            "fixed_users": tf.constant(fixed_users), "fixed_mask": tf.constant(fixed_mask),
        })
        object.__setattr__(self, "_user_chunks", None)  # built when first evaluated

    def _graph_tensors(self) -> dict:
        if self._csr is None:
            _ = self.graph  # raises, naming set_graph
        return self._csr

    def build_propagation(self) -> None:
        for layer in (self.item_layer, self.user_layer):
            layer.build(tf.TensorShape([None, self.embedding_dim]))

    # ------------------------------------------------------------------ the two layers
    def item_vectors(self, items: tf.Tensor, users: tf.Tensor, mask: tf.Tensor, training: bool = False,
                     rows: Optional[tf.Tensor] = None) -> tf.Tensor:
        """`[N, D]` items (nodes `[N]`) from their neighbour users `[N, S]` (mask `[N, S]`).

        With `rows` (`[N]` into `items`), `items` `[U]` are distinct nodes with neighbours
        `[U, S]`, and the mask `[N, S]` is per output row (see `GraphSAGE`'s `rows`).
        """
        user_ego, item_ego = self.ego_embeddings()
        keys = None
        if self.aggregator == "attention":
            # Each user row is projected once, not once per sample.
            keys = gather_rows(self.item_layer.attention_keys(user_ego), users)
        return self.item_layer(gather_rows(item_ego, items), gather_rows(user_ego, users), mask=mask,
                               training=training, neighbour_keys=keys, rows=rows)

    def user_vectors(self, items: tf.Tensor, mask: tf.Tensor, item_vectors: tf.Tensor,
                     training: bool = False) -> tf.Tensor:
        """`[B, D]` users from their items (nodes `[B, L]`, mask `[B, L]`) and those items' vectors `[B, L, D]`."""
        own = _masked_mean(gather_rows(self.item_embedding.embeddings, items), mask)
        return self.user_layer(own, item_vectors, mask=mask, training=training)

    def item_table(self) -> tf.Tensor:
        """`[I, D]` every item over its fixed neighbourhood (what evaluation and serving score)."""
        tensors = self._graph_tensors()
        return self.item_vectors(tf.range(self.num_items), tensors["fixed_users"], tensors["fixed_mask"])

    # ------------------------------------------------------------------ inference
    def final_embeddings(self, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """Training users embedded from all their training items, and the item table."""
        items = self.item_table()
        if self._user_chunks is None:
            object.__setattr__(self, "_user_chunks", _padded_chunks(*self.graph.neighbour_lists("users")))
        rows, vectors = [], []
        for users, lists, mask in self._user_chunks:
            rows.append(users)
            vectors.append(self.user_vectors(lists, mask, tf.gather(items, lists)))
        order = np.argsort(np.concatenate(rows))  # chunks are by degree; put users back in row order
        return tf.gather(tf.concat(vectors, axis=0), order), items

    def score(self, history: tf.Tensor) -> tf.Tensor:
        """`[B, V]` scores for histories of model ids `[B, L]` (0 padding and 1 unknown are ignored)."""
        history = tf.convert_to_tensor(history)
        mask = history >= FIRST_ID
        items = tf.where(mask, history - FIRST_ID, tf.zeros_like(history))
        table = self.item_table()
        return self.scores(self.user_vectors(items, mask, tf.gather(table, items)), table)

    # ------------------------------------------------------------------ training
    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        tensors = self._graph_tensors()
        users, positives, negatives = (tf.reshape(features[key], [-1]) for key in ("user", "positive", "negative"))
        positives, negatives = positives - FIRST_ID, negatives - FIRST_ID  # model ids -> item nodes
        batch, samples = tf.shape(users)[0], self.num_samples
        # The user's items, the positive left out (a new user's history never holds the answer).
        history, history_mask = sample_with_replacement(tensors["user_indptr"], tensors["user_items"], users, samples,
                                                         self.draws.uniform)
        history_mask &= tf.not_equal(history, positives[:, tf.newaxis])
        # Every item the step scores. As in GraphSAGE's minibatch algorithm, each distinct item
        # gets one sampled neighbourhood per step (a batch reads a few thousand items about
        # B x S times); each row leaves its own user out of it.
        items = tf.concat([tf.reshape(history, [-1]), positives, negatives], axis=0)
        roots = tf.concat([tf.repeat(users, samples), users, users], axis=0)
        nodes, node_of_row = tf.unique(items)
        neighbours, neighbour_mask = sample_with_replacement(
            tensors["item_indptr"], tensors["item_users"], nodes, samples, self.draws.uniform)
        row_mask = tf.logical_and(
            tf.gather(neighbour_mask, node_of_row),
            tf.not_equal(tf.gather(neighbours, node_of_row), roots[:, tf.newaxis]),
        )
        vectors = self.item_vectors(nodes, neighbours, row_mask, training=training, rows=node_of_row)
        history_vectors = tf.reshape(vectors[: batch * samples], [batch, samples, self.embedding_dim])
        positive_vectors = vectors[batch * samples: batch * (samples + 1)]
        negative_vectors = vectors[batch * (samples + 1):]
        item_ego = self.item_embedding.embeddings
        own = _masked_mean(gather_rows(item_ego, history), history_mask)
        u = self.user_layer(own, history_vectors, mask=history_mask, training=training)
        margin = tf.reduce_sum(u * (positive_vectors - negative_vectors), axis=1)
        bpr = -tf.reduce_mean(tf.math.log_sigmoid(margin))
        regulariser = (tf.norm(own) + tf.norm(tf.gather(item_ego, positives))
                       + tf.norm(tf.gather(item_ego, negatives))) / tf.cast(batch, tf.float32)
        return bpr + self.reg_weight * regulariser + tf.add_n([0.0, *self.losses])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "aggregator": self.aggregator, "num_samples": self.num_samples,
                "max_length": self.max_length, "neighbour_seed": self.neighbour_seed}


@register_model("collaborative", (GraphSAGECF,), training={},
                tiny={"embedding_dim": 8, "num_samples": 3, "max_length": 8})
def graphsage_cf(vocab_size: int, num_users: int, **config: Any) -> GraphSAGECF:
    """GraphSAGE-CF: inductive; a user is embedded from their items' sampled neighbourhoods (serves histories)."""
    return GraphSAGECF(num_users, vocab_size, name="graphsage_cf", **config)
