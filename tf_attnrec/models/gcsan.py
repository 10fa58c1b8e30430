"""GC-SAN: a gated graph network over the session graph, then self-attention (Xu et al., 2019)."""

from __future__ import annotations

from typing import Any, Optional

import tensorflow as tf

from tf_attnrec.layers.gated_graph import GatedGraphConvolution, session_graph
from tf_attnrec.layers.transformer import TransformerBlock
from tf_attnrec.models.registry import register_model
from tf_attnrec.models.sequence_encoder import AttentionSequenceEncoder
from tf_attnrec.models.sequential_retrieval import SequentialRetrievalModel


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class GCSANEncoder(AttentionSequenceEncoder):
    """Session graph -> gated graph layer -> causal self-attention; graph/attention mix.

    Follows RecBole's `GCSAN` (Xu et al., IJCAI 2019, "Graph Contextualized Self-Attention
    Network for Session-based Recommendation"):

    1. The history's session graph (`session_graph`): one node per distinct item, an edge
       for every pair of consecutive items, in/out adjacency averaged by in/out degree.
    2. `GatedGraphConvolution` (SR-GNN's gated graph layer) for `num_steps` steps over the
       node embeddings; the node states are put back in sequence order (a repeated item
       has the same state at each of its positions). No position embeddings, as in the
       paper and RecBole.
    3. `num_blocks` causal `TransformerBlock`s over those states (post-LN, as RecBole's
       `TransformerEncoder`).
    4. Query = `graph_weight * attention_last + (1 - graph_weight) * graph_last`: the last
       position's self-attention output and its graph state (the paper's `omega`; RecBole's
       `weight` = 0.6). Note: `graph_weight` is the weight of the self-attention output
       (as `omega` and RecBole's `weight` are); the graph state gets `1 - graph_weight`.

    Training on every position (`encode_sequence`, `supports_all_positions` when
    `num_steps == 1`): the query at position `t` is what `call` returns for the prefix
    ending at `t`, so every state is built from the graph of that prefix only, never from
    later items. A whole-history graph would not do: the item at `t` would average its
    successors through `A_out`. Running the layer once per prefix costs `O(L)` graphs per
    sequence; instead, a position adds at most one edge, which changes only two node
    states, its own item's (a new predecessor) and the previous item's (a new successor).
    `GatedGraphConvolution.prefix_states` computes those `2L` states, and each prefix's
    context (the state of each earlier position's item in that prefix's graph) is gathered
    from them: position `j`'s item has the state of its latest change at or before `t`.
    With one block, each `t` attends over those `2L` states, each weighted by how many of
    its positions `<= t` it fills (`_attend_states`, `O(L^2)`); with more, every prefix's
    context goes through the blocks (`_attend_prefixes`, `O(L^3)`). RecBole trains GC-SAN on the last
    position of every prefix as separate samples; this is the same loss, one pass per
    window. With `num_steps > 1` a node's state also depends on its neighbours' states in
    the prefix graph; the head then trains on sampled prefixes (`prefixes_per_sequence`).

    Not followed from RecBole: its embedding regulariser (`reg_weight` 5e-5 times the
    Frobenius norm of the item table divided by the number of items, ~1e-7 of the loss at
    init) is left out; `TransformerBlock` has a dropout between its two feed-forward layers
    that RecBole's feed-forward lacks. Item id 1 (OOV) is a node like any item.

    Args:
        vocab_size: Rows of the item table (`num_items + 2`).
        max_length: Longest history (the dense graphs are `[B, max_length, max_length]`).
        hidden_dim: Embedding / model width `D` (RecBole `hidden_size` 64).
        num_steps: Gated graph steps (RecBole `step` 1).
        num_blocks: Self-attention blocks (RecBole `n_layers` 1).
        num_heads: Attention heads per block (RecBole `n_heads` 1).
        ff_dim: Feed-forward width (default `4 * hidden_dim`, RecBole `inner_size` 256).
        ff_activation: Feed-forward activation (RecBole "gelu").
        dropout: Dropout on the attention and feed-forward outputs (RecBole 0.2).
        attention_dropout: Dropout on attention weights (default `dropout`; RecBole 0.2).
        graph_weight: `omega` in `[0, 1]`: the query's weight of the self-attention output
            (the last item's graph state gets `1 - omega`; RecBole `weight` 0.6, the paper
            suggests 0.4 - 0.8).
        norm_first: Pre-LN blocks plus a final LayerNorm (True) or post-LN (False, RecBole).
        layer_norm_epsilon: Epsilon of the LayerNorms (RecBole 1e-12).
        initializer_range: Standard deviation of the normal init of the item table, the
            graph layer's edge projections and the Transformer kernels (RecBole 0.02); None
            keeps Glorot-uniform. The graph layer's gate weights always start from
            `U(-1/sqrt(D), 1/sqrt(D))`, as in RecBole.
        **kwargs: Standard `tf.keras.layers.Layer` arguments.

    Call arguments:
        history: int `[B, L]` item ids, left-padded with 0, most recent last.
        training: Python bool, enables dropout.

    Returns:
        `[B, hidden_dim]` query for the last position (0 for an all-padding history).

    Example:
        >>> encoder = GCSANEncoder(vocab_size=12, max_length=5, hidden_dim=8)
        >>> encoder(tf.constant([[0, 0, 4, 5, 4]])).shape
        TensorShape([1, 8])
    """

    #: What `attention_weights` returns (shown by `tf-attnrec explain`).
    attention_description = (
        "query (last position) softmax attention over the graph states, last block"
    )
    config_keys = (
        *AttentionSequenceEncoder.config_keys,
        "hidden_dim", "num_steps", "num_blocks", "num_heads", "ff_dim", "ff_activation",
        "dropout", "attention_dropout", "graph_weight", "norm_first", "layer_norm_epsilon",
        "initializer_range",
    )

    def __init__(
        self,
        vocab_size: int,
        max_length: int = 50,
        hidden_dim: int = 64,
        num_steps: int = 1,
        num_blocks: int = 1,
        num_heads: int = 1,
        ff_dim: Optional[int] = None,
        ff_activation: str = "gelu",
        dropout: float = 0.2,
        attention_dropout: Optional[float] = None,
        graph_weight: float = 0.6,
        norm_first: bool = False,
        layer_norm_epsilon: float = 1e-12,
        initializer_range: Optional[float] = 0.02,
        **kwargs: Any,
    ) -> None:
        super().__init__(vocab_size, max_length, **kwargs)
        name = "GCSANEncoder"
        if hidden_dim % num_heads:
            raise ValueError(
                f"{name}: `hidden_dim` ({hidden_dim}) must be divisible by `num_heads` ({num_heads})."
            )
        if num_blocks < 1:
            raise ValueError(f"{name}: `num_blocks` must be >= 1; got {num_blocks!r}.")
        if not 0.0 <= float(graph_weight) <= 1.0:
            raise ValueError(f"{name}: `graph_weight` must be in [0, 1]; got {graph_weight!r}.")
        if initializer_range is not None and not initializer_range > 0:
            raise ValueError(
                f"{name}: `initializer_range` must be a positive standard deviation or None; "
                f"got {initializer_range!r}."
            )
        self.hidden_dim = hidden_dim
        self.num_steps = num_steps
        self.supports_all_positions = num_steps == 1  # see `encode_sequence`
        self.num_blocks = num_blocks
        self.num_heads = num_heads
        self.ff_dim = ff_dim
        self.ff_activation = ff_activation
        self.dropout = float(dropout)
        self.attention_dropout = attention_dropout
        self.graph_weight = float(graph_weight)
        self.norm_first = norm_first
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        initializer: Any = (
            "glorot_uniform"
            if initializer_range is None
            else tf.keras.initializers.RandomNormal(stddev=initializer_range)
        )
        self.embedding = self._input_embedding(
            hidden_dim, position=None, dropout=0.0, scale=False, embeddings_initializer=initializer
        )
        self.gated_graph = GatedGraphConvolution(
            num_steps, kernel_initializer=initializer, name="gated_graph"
        )
        self.blocks = [
            TransformerBlock(
                num_heads=num_heads,
                hidden_dim=hidden_dim,
                ff_dim=ff_dim or 4 * hidden_dim,
                ff_activation=ff_activation,
                dropout=self.dropout,
                attention_dropout=self.dropout if attention_dropout is None else attention_dropout,
                norm_first=norm_first,
                causal=True,
                layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=initializer,
                name=f"transformer_block_{i}",
            )
            for i in range(num_blocks)
        ]
        self.final_norm = (
            tf.keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="final_norm")
            if norm_first
            else None
        )

    def _embed(
        self, history: tf.Tensor, training: Optional[bool] = None
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """The graph-contextualised states `[B, L', D]` in sequence order and the mask `[B, L']`.

        What the self-attention reads (and what `attention_weights` explains): each position
        holds its item's node state after the gated graph layer; 0 at padding.
        """
        history = self._prepare(history)
        mask = tf.not_equal(history, 0)
        graph = session_graph(history)
        nodes = self.embedding(graph.node_ids, training=training)
        nodes = self.gated_graph(nodes, graph.adjacency, mask=tf.not_equal(graph.node_ids, 0))
        states = tf.gather(nodes, graph.alias, batch_dims=1)
        return states * tf.cast(mask, states.dtype)[:, :, tf.newaxis], mask

    def call(self, history: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        x, mask = self._embed(history, training=training)
        graph_last = x[:, -1, :]  # left padding: the last position is the most recent item
        for block in self.blocks:
            x = block(x, mask=mask, training=training)
        if self.final_norm is not None:
            x = self.final_norm(x) * tf.cast(mask, x.dtype)[:, :, tf.newaxis]
        return self.graph_weight * x[:, -1, :] + (1.0 - self.graph_weight) * graph_last

    def encode_sequence(self, history: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        """Per-position queries `[B, L', D]`: position `t` gets `call` of the prefix ending at `t`.

        Only with `num_steps == 1` (see the class docstring); 0 at padding.
        """
        if not self.supports_all_positions:
            return super().encode_sequence(history, training=training)
        history = self._prepare(history)
        mask = tf.not_equal(history, 0)
        shape = tf.shape(history)
        batch, length = shape[0], shape[1]
        graph = session_graph(history)
        nodes = self.embedding(graph.node_ids, training=training)
        positions = tf.range(length)
        # Position t changes two node states in its prefix graph: its own item's ("arrival",
        # state t) and the previous item's ("departure", state L + t; unused at t = 0).
        previous = tf.concat([graph.alias[:, :1], graph.alias[:, :-1]], axis=1)
        states = self.gated_graph.prefix_states(
            nodes,
            graph.edge_times,
            tf.concat([graph.alias, previous], axis=1),
            tf.broadcast_to(tf.tile(positions, [2])[tf.newaxis, :], [batch, 2 * length]),
            mask=tf.not_equal(graph.node_ids, 0),
        )
        # In the prefix ending at t, position j's item has the state of its latest change:
        # its arrival at t if its last occurrence up to t is t itself, else the departure
        # right after that last occurrence.
        same_item = tf.equal(graph.alias[:, :, tf.newaxis], graph.alias[:, tf.newaxis, :])
        last_seen = _running_max(
            tf.where(same_item, positions[tf.newaxis, :, tf.newaxis], -1), self.max_length
        )  # [B, t, j]: the last position <= t holding j's item
        t = positions[tf.newaxis, :, tf.newaxis]
        state_index = tf.where(tf.equal(last_seen, t), t, length + last_seen + 1)
        visible = tf.logical_and(
            positions[tf.newaxis, tf.newaxis, :] <= t,
            tf.logical_and(mask[:, tf.newaxis, :], mask[:, :, tf.newaxis]),
        )  # [B, t, j]
        state_index = tf.where(visible, state_index, tf.zeros_like(state_index))
        graph_states = states[:, :length, :]  # arrival: the item at t in its prefix graph
        if len(self.blocks) == 1:
            x = self._attend_states(graph_states, mask, states, state_index, visible, training)
        else:
            x = self._attend_prefixes(graph_states, mask, states, state_index, visible, training)
        if self.final_norm is not None:
            x = self.final_norm(x)
        queries = self.graph_weight * x + (1.0 - self.graph_weight) * graph_states
        return queries * tf.cast(mask, queries.dtype)[:, :, tf.newaxis]

    def _attend_states(self, queries, mask, states, state_index, visible, training):
        """One block: each `t` attends over the `2L` states, each counted once per position it fills.

        The softmax over the positions `j <= t` equals one over the states they point at
        with `log(count)` added to each state's score, so no `[B, L, L, D]` context is built
        (`O(B L^2)` memory). Attention dropout then drops a state with all its positions.
        """
        shape = tf.shape(state_index)
        batch, length = shape[0], shape[1]
        num_states = 2 * length
        rows = tf.range(batch)[:, tf.newaxis, tf.newaxis] * length + tf.range(length)[tf.newaxis, :, tf.newaxis]
        counts = tf.math.unsorted_segment_sum(
            tf.reshape(tf.cast(visible, states.dtype), [-1]),
            tf.reshape(rows * num_states + state_index, [-1]),
            batch * length * num_states,
        )
        counts = tf.reshape(counts, tf.stack([batch, length, num_states]))  # [B, t, state]
        return self.blocks[0](
            queries, mask=mask, context=states, context_mask=counts > 0,
            context_bias=tf.math.log(tf.maximum(counts, 1.0)), training=training,
        )

    def _attend_prefixes(self, queries, mask, states, state_index, visible, training):
        """Several blocks: every prefix's context `[B * L, L, D]` through all but the last block."""
        shape = tf.shape(state_index)
        batch, length, dim = shape[0], shape[1], self.hidden_dim
        # One row per (sequence, t): that prefix's context and its query.
        context = tf.reshape(tf.gather(states, state_index, batch_dims=1), tf.stack([-1, length, dim]))
        context_mask = tf.reshape(visible, tf.stack([-1, length]))
        query = tf.reshape(queries, [-1, 1, dim])
        for block in self.blocks[:-1]:
            context = block(context, mask=context_mask, training=training)
            query = tf.gather(context, tf.tile(tf.range(length), [batch])[:, tf.newaxis], batch_dims=1)
        x = self.blocks[-1](
            query, mask=tf.reshape(mask, [-1, 1]), context=context, context_mask=context_mask,
            training=training,
        )
        return tf.reshape(x, tf.shape(queries))

    def _query_attention(self, x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """The last position's self-attention `[B, num_heads, L]` in the last block."""
        for block in self.blocks[:-1]:
            x = block(x, mask=mask, training=False)
        return self.blocks[-1].attention_weights(x, mask=mask)[:, :, -1, :]


def _running_max(values: tf.Tensor, max_length: int) -> tf.Tensor:
    """Running maximum of int `[B, L, M]` along axis 1, `L <= max_length` (log-step doubling)."""
    length = tf.shape(values)[1]
    shift = 1
    while shift < max_length:
        shifted = tf.pad(values, [[0, 0], [shift, 0], [0, 0]], constant_values=-1)[:, :length]
        values = tf.maximum(values, shifted)
        shift *= 2
    return values


@register_model("retrieval", (GCSANEncoder, SequentialRetrievalModel),
                training={"split_long_sequences": True}, tiny={"hidden_dim": 8, "max_length": 8, "num_blocks": 1})
def gcsan(vocab_size: int, **config: Any) -> SequentialRetrievalModel:
    """GC-SAN: gated graph network over each prefix's session graph, then self-attention."""
    return SequentialRetrievalModel.with_encoder(GCSANEncoder, vocab_size, name="gcsan", **config)
