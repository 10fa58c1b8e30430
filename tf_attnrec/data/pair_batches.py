"""BPR training batches: every training edge once per pass, each with a sampled negative item.

A pass shuffles the (user, item) edges of the training graph and, per batch, draws one
negative item per edge uniformly from the items that user has NOT interacted with in
training (RecBole's default `train_neg_sample_args`). A drawn item that is one of the user's
training items is redrawn, until none is or `max_draws` draws have been made (a user who
has seen nearly the whole catalogue may keep a positive as its negative; for ML-1M's
densest user, with 68% of the catalogue, that is 0.68^32 of its draws).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import tensorflow as tf

from tf_attnrec.data.graph import InteractionGraph
from tf_attnrec.data.vocabulary import FIRST_ID


def bpr_triples(graph: InteractionGraph, batch_size: int = 2048, seed: int = 0, shuffle: bool = True,
                max_draws: int = 32) -> tf.data.Dataset:
    """One pass of `{"user", "positive", "negative"}` int32 batches (items as model ids).

    Args:
        graph: the training `InteractionGraph` (only its edges are positives).
        batch_size: edges per batch (the last batch may be smaller).
        seed: seed of the shuffles and of the negative draws (one NumPy generator: each pass
            is drawn anew, and the n-th pass is the same in every run with this seed).
        shuffle: shuffle the edges each pass.
        max_draws: most draws per negative (see the module docstring).

    Returns:
        A `tf.data.Dataset` with a known cardinality (batches per pass).

    Example:
        ```python
        dataset = bpr_triples(InteractionGraph.from_sequence_split(split), batch_size=2048)
        ```
    """
    if graph.num_edges == 0:
        raise ValueError("the training graph has no edge: there is nothing to train on.")
    if graph.num_items < 2:
        raise ValueError(f"BPR needs at least 2 items to draw negatives from; the graph has {graph.num_items}.")
    num_items, num_edges = graph.num_items, graph.num_edges
    # Edges are sorted by (user, item), so these keys are sorted: membership by binary search.
    edge_keys = graph.user_index.astype(np.int64) * num_items + graph.item_index
    rng = np.random.default_rng(seed)  # one stream for every pass: pass n is the same each run

    def is_positive(users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users.astype(np.int64) * num_items + items
        return edge_keys[np.minimum(np.searchsorted(edge_keys, keys), num_edges - 1)] == keys

    def one_pass() -> Iterator[dict]:
        # The whole pass is drawn at once in NumPy; tf.data's per-element shuffle and a
        # per-batch redraw loop cost several times more CPU, which the train step needs.
        # Negatives are drawn and checked in the graph's (user, item) order and shuffled with
        # their edges afterwards: the membership queries then arrive grouped by user, next to
        # each other in `edge_keys`. On a 20M-edge graph the check took 1.8 s that way, against
        # 69 s for the same queries in shuffled order (cache misses; 2 busy cores).
        negatives = rng.integers(0, num_items, num_edges, dtype=np.int32)
        collide = np.flatnonzero(is_positive(graph.user_index, negatives))
        for _ in range(max_draws - 1):  # each round re-checks only the draws that collided
            if not len(collide):
                break
            negatives[collide] = rng.integers(0, num_items, len(collide), dtype=np.int32)
            collide = collide[is_positive(graph.user_index[collide], negatives[collide])]
        order = rng.permutation(num_edges) if shuffle else np.arange(num_edges)
        users, positives, negatives = graph.user_index[order], graph.item_index[order], negatives[order]
        for start in range(0, num_edges, batch_size):
            part = slice(start, start + batch_size)
            yield {"user": users[part], "positive": positives[part] + FIRST_ID, "negative": negatives[part] + FIRST_ID}

    spec = tf.TensorSpec([None], tf.int32)
    dataset = tf.data.Dataset.from_generator(
        one_pass, output_signature={"user": spec, "positive": spec, "negative": spec})
    batches = -(-num_edges // batch_size)
    return dataset.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(2)


__all__ = ["bpr_triples"]
