"""`gat_cf`: LightGCN's propagation with GAT attention (Velickovic et al., 2018) as edge weights."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from tf_attnrec.data.graph import InteractionGraph
from tf_attnrec.layers.checks import check_positive_int
from tf_attnrec.layers.graph_attention import GraphAttention
from tf_attnrec.models.graph_cf import GraphCFModel
from tf_attnrec.models.registry import register_model


def adjacency_with_self_loops(graph: InteractionGraph) -> tf.SparseTensor:
    """The 0/1 symmetric (U+I) x (U+I) adjacency plus one self loop per node, row-major.

    Built once per graph in NumPy, so the attention layers get their edges in the order the
    CSR product needs and never sort them per step.
    """
    adjacency = graph.adjacency(normalize=False)
    size = graph.num_users + graph.num_items
    loops = np.arange(size, dtype=np.int64)
    indices = np.concatenate([adjacency.indices.numpy(), np.stack([loops, loops], 1)])
    order = np.lexsort([indices[:, 1], indices[:, 0]])
    return tf.SparseTensor(indices[order], np.ones(len(order), np.float32), [size, size])


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class GATCF(GraphCFModel):
    """Ego embeddings refined by `num_layers` GAT layers over the user-item graph, layers averaged.

    The ablation of LightGCN that isolates what attention buys: the same layer-averaged,
    activation-free propagation `E_k = sum_j alpha_ij W_k E_{k-1, j}`, where LightGCN's fixed
    weight `1 / sqrt(d_i d_j)` becomes a learned softmax over each node's neighbours (and
    itself, one self loop per node), per head, averaged over heads. Every user attends over
    the items they interacted with in training, and every item over its users.

    Args:
        num_users: U.
        vocab_size: `num_items + 2`.
        embedding_dim: D (also each head's size).
        num_layers: K, attention layers.
        num_heads: heads per layer (averaged).
        attention_dropout: dropout on the attention weights in training.
        reg_weight: L2 weight on the batch's ego embeddings.
        **kwargs: `tf.keras.Model` arguments.
    """

    def __init__(self, num_users: int, vocab_size: int, embedding_dim: int = 64, num_layers: int = 2,
                 num_heads: int = 1, attention_dropout: float = 0.0, reg_weight: float = 1e-4,
                 **kwargs: Any) -> None:
        super().__init__(num_users, vocab_size, embedding_dim, reg_weight, **kwargs)
        self.num_layers = check_positive_int("GATCF", "`num_layers`", num_layers)
        self.num_heads = check_positive_int("GATCF", "`num_heads`", num_heads)
        self.attention_dropout = float(attention_dropout)
        self.attention_layers = [
            GraphAttention(embedding_dim, num_heads=num_heads, concat_heads=False, attention_dropout=attention_dropout,
                           use_bias=False, name=f"graph_attention_{k}")
            for k in range(self.num_layers)
        ]
        self._adjacency = None

    def graph_changed(self, graph: InteractionGraph) -> None:
        object.__setattr__(self, "_adjacency", adjacency_with_self_loops(graph))

    def build_propagation(self) -> None:
        for layer in self.attention_layers:
            layer.build(tf.TensorShape([None, self.embedding_dim]))

    def propagate(self, users: tf.Tensor, items: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        total = tf.add_n(self._layers(users, items, training)) / float(self.num_layers + 1)
        return total[: self.num_users], total[self.num_users:]

    def _layers(self, users: tf.Tensor, items: tf.Tensor, training: bool) -> list:
        if self._adjacency is None:
            _ = self.graph  # raises, naming set_graph
        outputs = [tf.concat([users, items], axis=0)]
        for attention in self.attention_layers:
            outputs.append(attention(outputs[-1], self._adjacency, training=training))
        return outputs

    def edge_attention(self) -> tuple[tf.SparseTensor, list]:
        """The adjacency (with self loops) and, per layer, its `[E, heads]` attention weights."""
        if self._adjacency is None:
            _ = self.graph
        x = tf.concat(self.ego_embeddings(), axis=0)
        weights = []
        for attention in self.attention_layers:
            x, alpha = attention(x, self._adjacency, training=False, return_attention_weights=True)
            weights.append(alpha)
        return self._adjacency, weights

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_layers": self.num_layers, "num_heads": self.num_heads,
                "attention_dropout": self.attention_dropout}


@register_model("collaborative", (GATCF,), training={}, tiny={"embedding_dim": 8, "num_layers": 1})
def gat_cf(vocab_size: int, num_users: int, **config: Any) -> GATCF:
    """GAT-CF: LightGCN-style propagation with learned GAT attention over each node's neighbours."""
    return GATCF(num_users, vocab_size, name="gat_cf", **config)
