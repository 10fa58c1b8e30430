"""LightGCN (He et al., 2020): the no-attention graph baseline of the collaborative task."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from tf_attnrec.data.graph import InteractionGraph
from tf_attnrec.layers.checks import check_positive_int
from tf_attnrec.layers.graph_convolution import GraphConvolution
from tf_attnrec.models.graph_cf import GraphCFModel
from tf_attnrec.models.registry import register_model


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class LightGCN(GraphCFModel):
    """Ego embeddings propagated `num_layers` times over D^-1/2 A D^-1/2, layers averaged.

    `E_0 = [users; items]`, `E_k = Â E_{k-1}` over the symmetric (U+I) x (U+I) adjacency of
    the training graph, and the final embeddings are `mean(E_0, ..., E_K)`: no weight, no
    activation and no self loop, only the ego tables are trained. The adjacency is
    normalised once, when the graph is set (`GraphConvolution(normalize=False)` then uses its
    values as they are).

    Args:
        num_users: U.
        vocab_size: `num_items + 2`.
        embedding_dim: D.
        num_layers: K, propagation steps.
        reg_weight: L2 weight on the batch's ego embeddings.
        **kwargs: `tf.keras.Model` arguments.

    Example:
        >>> graph = InteractionGraph.from_pairs([0, 0, 1], [0, 1, 1], num_users=2, num_items=2)
        >>> model = LightGCN(num_users=2, vocab_size=4, embedding_dim=8)
        >>> model.set_graph(graph)
        >>> model(tf.constant([0, 1])).shape
        TensorShape([2, 4])
    """

    def __init__(self, num_users: int, vocab_size: int, embedding_dim: int = 64, num_layers: int = 3,
                 reg_weight: float = 1e-4, **kwargs: Any) -> None:
        super().__init__(num_users, vocab_size, embedding_dim, reg_weight, **kwargs)
        self.num_layers = check_positive_int("LightGCN", "`num_layers`", num_layers, minimum=0)
        self.propagation = GraphConvolution(units=None, normalize=False, name="propagation")
        self._adjacency = None

    def graph_changed(self, graph: InteractionGraph) -> None:
        object.__setattr__(self, "_adjacency", graph.adjacency(normalize=True))

    def propagate(self, users: tf.Tensor, items: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        if self._adjacency is None:
            _ = self.graph  # raises, naming set_graph
        layer = tf.concat([users, items], axis=0)
        total = layer
        for _ in range(self.num_layers):
            layer = self.propagation(layer, self._adjacency)
            total = total + layer
        final = total / float(self.num_layers + 1)
        return final[: self.num_users], final[self.num_users:]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_layers": self.num_layers}


@register_model("collaborative", (LightGCN,), training={}, tiny={"embedding_dim": 8, "num_layers": 2})
def lightgcn(vocab_size: int, num_users: int, **config: Any) -> LightGCN:
    """LightGCN: ego embeddings averaged over propagation steps on the user-item graph (no attention)."""
    return LightGCN(num_users, vocab_size, name="lightgcn", **config)
