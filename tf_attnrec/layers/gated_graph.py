"""Session graphs of item sequences and the gated graph layer over them (SR-GNN, GC-SAN).

`session_graph` turns left-padded item-id sequences into one small directed graph per
sequence (nodes = its distinct items, an edge for every pair of consecutive items), as dense
`[B, L, L]` tensors built with TensorFlow ops only. `GatedGraphConvolution` is the gated graph
neural network of SR-GNN (Wu et al., 2019; Li et al., 2016) that GC-SAN (Xu et al., 2019)
runs over those graphs.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional

import tensorflow as tf

from tf_attnrec.layers.checks import check_positive_int, get_initializer
from tf_attnrec.layers.config import ConfigFromAttributes
from tf_attnrec.layers.multi_head_attention import clone_initializer


class SessionGraph(NamedTuple):
    """The session graphs of a batch of sequences, with `N = L` node slots per sequence.

    Attributes:
        node_ids: int32 `[B, L]`: slot `j` holds the item of position `j` if that position is
            the item's first occurrence in the sequence, else 0 (an empty slot).
        adjacency: float32 `[B, L, L]`: `adjacency[b, u, v] = 1` if the sequence has item of
            slot `u` directly followed by item of slot `v` (repeated transitions count once,
            a repeated item gives a self loop), else 0. Empty slots have no edge.
        alias: int32 `[B, L]`: the slot of the item at each position (a padded position
            points at its own, empty, slot), so `tf.gather(node_states, alias, batch_dims=1)`
            puts the node states back in sequence order.
        edge_times: int32 `[B, L, L]`: the position at which the edge `u -> v` first appears
            (the position of its second item), `L` where there is no edge. The graph of the
            prefix ending at position `t` is `edge_times <= t`; `adjacency` is
            `edge_times < L`.
    """

    node_ids: tf.Tensor
    adjacency: tf.Tensor
    alias: tf.Tensor
    edge_times: tf.Tensor


def session_graph(item_ids: tf.Tensor) -> SessionGraph:
    """Builds the session graph of each left-padded sequence (SR-GNN / GC-SAN), in-graph.

    The node of an item is the slot of its first occurrence, so node slots are ordered by
    first occurrence and padding never moves them relative to each other: extra left padding
    shifts every slot and edge by the same amount. Only pairs of consecutive real items
    (both ids non-zero) give an edge. Costs `O(B L^2)` memory (dense masks and adjacency).

    Args:
        item_ids: int `[B, L]` item ids, 0 = padding (left-padded, most recent last).

    Returns:
        A `SessionGraph` (node ids, unnormalised directed adjacency, position -> slot alias,
        when each edge appears).

    Example:
        >>> graph = session_graph(tf.constant([[0, 4, 5, 4, 6]]))
        >>> graph.node_ids.numpy().tolist(), graph.alias.numpy().tolist()
        ([[0, 4, 5, 0, 6]], [[0, 1, 2, 1, 4]])
        >>> tf.where(graph.adjacency[0] > 0).numpy().tolist()  # 4 -> 5, 5 -> 4, 4 -> 6
        [[1, 2], [1, 4], [2, 1]]
    """
    # dtypes as strings (also `out_type`): inside a Keras functional model every op here is a TFOpLambda
    # layer, whose config (its arguments) must be JSON.
    item_ids = tf.cast(item_ids, "int32")
    if item_ids.shape.rank is not None and item_ids.shape.rank != 2:
        raise ValueError(
            f"session_graph expects item ids of shape [batch, length]; got {item_ids.shape}."
        )
    shape = tf.shape(item_ids, out_type="int32")
    batch, length = shape[0], shape[1]
    is_item = tf.not_equal(item_ids, 0)
    positions = tf.range(length)
    # same[b, i, j]: position j (a real item) holds the item of position i.
    same = tf.logical_and(
        tf.equal(item_ids[:, :, tf.newaxis], item_ids[:, tf.newaxis, :]), is_item[:, tf.newaxis, :]
    )
    first = tf.reduce_min(tf.where(same, positions[tf.newaxis, tf.newaxis, :], length), axis=-1)
    alias = tf.where(is_item, first, tf.broadcast_to(positions[tf.newaxis, :], shape))
    is_node = tf.logical_and(is_item, tf.equal(alias, positions[tf.newaxis, :]))
    node_ids = tf.where(is_node, item_ids, tf.zeros_like(item_ids))
    # One edge per consecutive pair of real items (b, slot_t, slot_t+1), first seen at t + 1:
    # a scatter-min of the pair's time (L, "never", for pairs with padding).
    pair = tf.logical_and(is_item[:, :-1], is_item[:, 1:])
    pair_shape = tf.shape(pair, out_type="int32")
    rows = tf.broadcast_to(tf.range(batch)[:, tf.newaxis], pair_shape)
    indices = tf.stack([rows, alias[:, :-1], alias[:, 1:]], axis=-1)
    times = tf.where(pair, tf.broadcast_to(positions[tf.newaxis, 1:], pair_shape), length)
    edge_times = tf.tensor_scatter_nd_min(
        tf.fill(tf.stack([batch, length, length]), length), indices, times
    )
    adjacency = tf.cast(edge_times < length, "float32")
    return SessionGraph(node_ids, adjacency, alias, edge_times)


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class GatedGraphConvolution(ConfigFromAttributes, tf.keras.layers.Layer):
    """Gated graph layer of SR-GNN / GC-SAN over dense per-graph adjacencies.

    For node states `h` `[B, N, D]` and a directed adjacency `A` (`A[b, u, v]` = weight of
    the edge `u -> v`), with `normalize=True` each node averages its predecessors and its
    successors: `A_in[v, u] = A[u, v] / indeg(v)` and `A_out[u, v] = A[u, v] / outdeg(u)`
    (a node without such edges gets 0, never a division by 0). Each of `num_steps` steps is

        a_in  = A_in  (h W_in  + b_in)             a_out = A_out (h W_out + b_out)
        g_i   = [a_in, a_out] W_i + b_i            g_h   = h W_h + b_h          (3 chunks each)
        r = sigmoid(g_i_r + g_h_r),  z = sigmoid(g_i_z + g_h_z)
        n = tanh(g_i_n + r * g_h_n),  h = (1 - z) * h + z * n

    the GRU-style update of RecBole's `GNN` (SR-GNN's `GNNCell`, whose extra bias after the
    propagation RecBole drops; so does this layer). The weights are shared across steps.

    Masked nodes (`mask` False) neither send nor receive anything and output 0: their input
    states are replaced by 0 and every adjacency entry touching them is ignored, so whatever
    is stored at padding cannot change real nodes (an all-masked graph outputs zeros).

    Args:
        num_steps: Propagation steps (SR-GNN / GC-SAN `step`; 1 in RecBole's GC-SAN).
        normalize: Degree-normalise `adjacency` as above (True); False uses
            `A_in = A^T`, `A_out = A` as given (pass pre-normalised weights).
        kernel_initializer: Initializer of the edge projections `W_in`, `W_out` (biases 0).
        gate_initializer: Initializer of the gate kernels `W_i`, `W_h` (biases 0); None (the
            default) draws gate kernels and biases from `U(-1/sqrt(D), 1/sqrt(D))` as
            SR-GNN and RecBole do.
        **kwargs: Standard `tf.keras.layers.Layer` arguments.

    Call arguments:
        inputs: Node states `[B, N, D]`.
        adjacency: Dense float `[B, N, N]`, `adjacency[b, u, v]` = weight of edge `u -> v`
            (e.g. `session_graph(item_ids).adjacency`).
        mask: Optional boolean `[B, N]` (True = real node); defaults to `inputs`' Keras mask.

    Returns:
        Node states `[B, N, D]` after `num_steps` steps (0 at masked nodes).

    Example:
        >>> graph = session_graph(tf.constant([[0, 4, 5, 4, 6]]))
        >>> nodes = tf.random.normal([1, 5, 8])
        >>> GatedGraphConvolution()(nodes, graph.adjacency, mask=graph.node_ids > 0).shape
        TensorShape([1, 5, 8])
    """

    config_keys = ("num_steps", "normalize", "kernel_initializer", "gate_initializer")

    def __init__(
        self,
        num_steps: int = 1,
        normalize: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        gate_initializer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_steps = check_positive_int("GatedGraphConvolution", "`num_steps`", num_steps)
        self.normalize = bool(normalize)
        self.kernel_initializer = get_initializer("GatedGraphConvolution", kernel_initializer)
        self.gate_initializer = (
            None
            if gate_initializer is None
            else get_initializer("GatedGraphConvolution", gate_initializer, "gate_initializer")
        )
        self.supports_masking = True

    def build(self, input_shape: tf.TensorShape) -> None:
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 3 or input_shape[-1] is None:
            raise ValueError(
                "GatedGraphConvolution expects `inputs` node states of shape [batch, nodes, "
                f"features] with a known feature size; got {input_shape}."
            )
        dim = int(input_shape[-1])
        limit = 1.0 / math.sqrt(dim)
        count = iter(range(8))

        def weight(name: str, shape: tuple, initializer: Any) -> tf.Variable:
            # A Keras 2 initializer instance returns the same values at every call: every
            # weight gets its own copy (with its own seed offset when seeded).
            if initializer is None:
                initializer = tf.keras.initializers.RandomUniform(-limit, limit)
            elif not isinstance(initializer, str):
                initializer = clone_initializer(initializer, next(count))
            return self.add_weight(name=name, shape=shape, initializer=initializer, trainable=True)

        gate_bias = None if self.gate_initializer is None else "zeros"
        self.edge_in_kernel = weight("edge_in_kernel", (dim, dim), self.kernel_initializer)
        self.edge_in_bias = weight("edge_in_bias", (dim,), "zeros")
        self.edge_out_kernel = weight("edge_out_kernel", (dim, dim), self.kernel_initializer)
        self.edge_out_bias = weight("edge_out_bias", (dim,), "zeros")
        self.input_kernel = weight("input_kernel", (2 * dim, 3 * dim), self.gate_initializer)
        self.input_bias = weight("input_bias", (3 * dim,), gate_bias)
        self.recurrent_kernel = weight("recurrent_kernel", (dim, 3 * dim), self.gate_initializer)
        self.recurrent_bias = weight("recurrent_bias", (3 * dim,), gate_bias)
        super().build(input_shape)

    def _normalized(self, adjacency: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """`(A_in, A_out)`: rows = receiving node, columns = the neighbour it averages."""
        transposed = tf.linalg.matrix_transpose(adjacency)
        if not self.normalize:
            return transposed, adjacency
        in_degree = tf.reduce_sum(adjacency, axis=1)  # [B, N]: edges into v
        out_degree = tf.reduce_sum(adjacency, axis=2)  # [B, N]: edges out of u
        return (
            tf.math.divide_no_nan(transposed, in_degree[:, :, tf.newaxis]),
            tf.math.divide_no_nan(adjacency, out_degree[:, :, tf.newaxis]),
        )

    def call(
        self, inputs: tf.Tensor, adjacency: tf.Tensor, mask: Optional[tf.Tensor] = None
    ) -> tf.Tensor:
        h = tf.convert_to_tensor(inputs)
        adjacency = tf.cast(tf.convert_to_tensor(adjacency), h.dtype)
        if adjacency.shape.rank is not None and adjacency.shape.rank != 3:
            raise ValueError(
                "GatedGraphConvolution: `adjacency` must be dense [batch, nodes, nodes]; got "
                f"shape {adjacency.shape}."
            )
        if mask is None:
            mask = getattr(inputs, "_keras_mask", None)
        node_mask = None
        if mask is not None:
            mask = tf.cast(mask, tf.bool)
            node_mask = tf.cast(mask, h.dtype)[:, :, tf.newaxis]
            # where, not a product: inf / NaN stored at padding must not become NaN here.
            h = tf.where(mask[:, :, tf.newaxis], h, tf.zeros_like(h))
            adjacency = adjacency * node_mask * tf.linalg.matrix_transpose(node_mask)
        in_adjacency, out_adjacency = self._normalized(adjacency)
        for _ in range(self.num_steps):
            a_in = tf.matmul(in_adjacency, tf.matmul(h, self.edge_in_kernel) + self.edge_in_bias)
            a_out = tf.matmul(out_adjacency, tf.matmul(h, self.edge_out_kernel) + self.edge_out_bias)
            h = self._update(h, a_in, a_out)
            if node_mask is not None:
                h = h * node_mask
        return h

    def _update(self, h: tf.Tensor, a_in: tf.Tensor, a_out: tf.Tensor) -> tf.Tensor:
        """The GRU-style update of node states `h` from their in/out aggregates."""
        gate_inputs = tf.matmul(tf.concat([a_in, a_out], axis=-1), self.input_kernel) + self.input_bias
        gate_hidden = tf.matmul(h, self.recurrent_kernel) + self.recurrent_bias
        input_r, input_z, input_n = tf.split(gate_inputs, 3, axis=-1)
        hidden_r, hidden_z, hidden_n = tf.split(gate_hidden, 3, axis=-1)
        reset = tf.sigmoid(input_r + hidden_r)
        update = tf.sigmoid(input_z + hidden_z)
        candidate = tf.tanh(input_n + reset * hidden_n)
        return (1.0 - update) * h + update * candidate

    def prefix_states(
        self,
        inputs: tf.Tensor,
        edge_times: tf.Tensor,
        nodes: tf.Tensor,
        times: tf.Tensor,
        mask: Optional[tf.Tensor] = None,
    ) -> tf.Tensor:
        """States of chosen nodes, each in the graph of the edges seen up to a chosen time.

        Entry `k` is the state of node `nodes[b, k]` after the layer's step over the binary
        graph `edge_times[b] <= times[b, k]` (the session graph of a prefix): equal to
        `call(inputs, edge_times <= times[b, k], mask)[b, nodes[b, k]]`, but without running
        the layer over a whole graph per time. This is how GC-SAN trains on every prefix of
        a sequence at once. One step only: with more steps a node's state depends on its
        neighbours' states at that time, which this shortcut does not compute.

        Args:
            inputs: Node states `[B, N, D]` (the same for every prefix).
            edge_times: int `[B, N, N]`, e.g. `session_graph(item_ids).edge_times`.
            nodes: int `[B, K]` node slots.
            times: int `[B, K]` (or broadcastable) times; edges with `edge_times <= time` count.
            mask: Optional boolean `[B, N]` (True = real node): masked nodes send nothing,
                and entries for masked nodes are 0.

        Returns:
            `[B, K, D]` node states.
        """
        if self.num_steps != 1:
            raise ValueError(
                "GatedGraphConvolution.prefix_states computes one propagation step; this "
                f"layer has num_steps={self.num_steps}. Call the layer on each prefix graph."
            )
        h = tf.convert_to_tensor(inputs)
        if not self.built:  # e.g. a training step before the layer was ever called
            with tf.name_scope(self.name):
                self.build(h.shape)
        edge_times = tf.cast(edge_times, "int32")
        nodes = tf.cast(nodes, "int32")
        times = tf.cast(times, "int32")[..., tf.newaxis]  # [B, K, 1]
        # incoming[b, k, u]: u -> node k is an edge by time k; outgoing[b, k, w]: node k -> w.
        incoming = tf.gather(tf.linalg.matrix_transpose(edge_times), nodes, batch_dims=1) <= times
        outgoing = tf.gather(edge_times, nodes, batch_dims=1) <= times
        query_mask = None
        if mask is not None:
            mask = tf.cast(mask, tf.bool)
            h = tf.where(mask[:, :, tf.newaxis], h, tf.zeros_like(h))
            incoming = tf.logical_and(incoming, mask[:, tf.newaxis, :])
            outgoing = tf.logical_and(outgoing, mask[:, tf.newaxis, :])
            query_mask = tf.gather(mask, nodes, batch_dims=1)
        in_weights = tf.cast(incoming, h.dtype)
        out_weights = tf.cast(outgoing, h.dtype)
        if self.normalize:
            in_weights = tf.math.divide_no_nan(in_weights, tf.reduce_sum(in_weights, -1, keepdims=True))
            out_weights = tf.math.divide_no_nan(out_weights, tf.reduce_sum(out_weights, -1, keepdims=True))
        a_in = tf.matmul(in_weights, tf.matmul(h, self.edge_in_kernel) + self.edge_in_bias)
        a_out = tf.matmul(out_weights, tf.matmul(h, self.edge_out_kernel) + self.edge_out_bias)
        states = self._update(tf.gather(h, nodes, batch_dims=1), a_in, a_out)
        if query_mask is not None:
            states = states * tf.cast(query_mask, states.dtype)[:, :, tf.newaxis]
        return states

    def compute_mask(self, inputs: tf.Tensor, mask: Optional[tf.Tensor] = None):
        return mask

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        return tf.TensorShape(input_shape)
