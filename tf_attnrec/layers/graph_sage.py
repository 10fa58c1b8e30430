"""GraphSAGE (Hamilton et al., 2017): aggregate sampled fixed-size neighbourhoods, dense."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import tensorflow as tf

from tf_attnrec.layers.checks import check_positive_int, get_activation, get_initializer, is_positive_int
from tf_attnrec.layers.config import ConfigFromAttributes
from tf_attnrec.layers.multi_head_attention import clone_initializer
from tf_attnrec.layers.pooling import masked_softmax, resolve_sequence_mask
from tf_attnrec.layers.sparse_ops import edge_weighted_matmul, gather_rows

_AGGREGATORS = ("mean", "max_pool", "attention")

# Smallest squared norm the L2 normalisation divides by: a zero row stays zero, never NaN.
# Applied in float32, where 1e-12 does not underflow (it would in float16).
_NORM_EPSILON = 1e-12


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class GraphSAGE(ConfigFromAttributes, tf.keras.layers.Layer):
    """One GraphSAGE layer over sampled neighbourhoods of a fixed size `S`, as dense tensors.

    For graphs too large for full-batch propagation, each node comes with `S` sampled
    neighbours (padded and masked when it has fewer). The neighbours are aggregated into
    `h_neigh`, then `out = activation(W [h_self ; h_neigh] + b)` (concatenation, as in the
    paper), L2-normalised per row when `normalize=True`. Aggregators:

    * "mean": the mean of the real neighbours.
    * "max_pool": `max_j relu(W_pool n_j + b_pool)`, elementwise over the real neighbours.
    * "attention": `sum_j alpha_j n_j` with additive attention of the node over its
      neighbours, `alpha = softmax_j(v . tanh(W_q h_self + W_k n_j + b_a))` over the real ones.

    Padded neighbours never change the result (not even inf/NaN values there), the result
    does not depend on the order of the neighbours, and a node with no real neighbour gets
    `h_neigh = 0` (finite output, never NaN).

    Args:
        units: Output size.
        aggregator: "mean" (default), "max_pool" or "attention".
        activation: Output activation (default "relu"); None or any tf.keras activation.
        normalize: If True (default), L2-normalise each output row (a zero row stays zero).
        pool_units: Size of the max-pool projection (aggregator "max_pool" only); defaults to
            the feature size `D`.
        attention_units: Size of the attention hidden layer (aggregator "attention" only);
            defaults to the feature size `D`.
        use_bias: Whether the output projection has a bias. (The pool and attention
            projections always have theirs, as in their formulas.)
        kernel_initializer: Initializer of all kernels (cloned per weight, so a seeded one
            gives each weight its own draw). Biases start at zero.
        **kwargs: Standard `tf.keras.layers.Layer` arguments (name, dtype, ...).

    Call arguments:
        inputs: The nodes' own features `[B, D]`.
        neighbours: Their sampled neighbours' features `[B, S, D]` (same `D`).
        mask: Optional boolean `[B, S]` (True = real neighbour, False = padding). Defaults to
            `neighbours._keras_mask`, else every neighbour is real. A `[B]` mask (what Keras
            passes when `inputs` itself carries a Keras mask) is ignored.
        training: Accepted for the Keras call convention; the layer is deterministic.
        neighbour_keys: Optional `[B, S, attention_units]` attention keys of the neighbours
            (aggregator "attention" only), as `attention_keys(table)` gathered like
            `neighbours`. Neighbours gathered from a table with many repeats (a batch's
            sampled neighbourhoods) are then projected once per table row instead of once
            per sample; the result is the same.
        return_attention_weights: If True (aggregator "attention" only), also return the
            attention weights `[B, S]` (0 at padding, summing to 1 over the real neighbours).
        rows: Optional int `[N]`: `inputs` `[U, D]` and `neighbours` `[U, S, D]` (and
            `neighbour_keys`) hold U distinct nodes, output row `n` is node `rows[n]`, and
            `mask` is `[N, S]`, one per output row. The same as the layer on
            `tf.gather(inputs, rows)`, `tf.gather(neighbours, rows)` with that mask, without
            gathering `[N, S, D]`: a training batch that reads a few thousand nodes many
            times over, each time leaving a different neighbour out, computes each node's
            keys and scores once, and its weighted sums as one sparse product. A neighbour
            slot is zeroed (its inf or NaN kept out) only where no row reads it.

    Returns:
        `[B, units]` node embeddings, or `(embeddings, weights)`.

    Example:
        >>> sage = GraphSAGE(units=4, aggregator="max_pool")
        >>> out = sage(tf.random.normal([2, 8]), tf.random.normal([2, 5, 8]),
        ...            mask=tf.sequence_mask([3, 5], 5))
        >>> out.shape
        TensorShape([2, 4])
    """

    config_keys = (
        "units", "aggregator", "activation", "normalize", "pool_units", "attention_units",
        "use_bias", "kernel_initializer",
    )

    def __init__(
        self,
        units: int,
        aggregator: str = "mean",
        activation: Any = "relu",
        normalize: bool = True,
        pool_units: Optional[int] = None,
        attention_units: Optional[int] = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = check_positive_int("GraphSAGE", "`units`", units)
        if aggregator not in _AGGREGATORS:
            raise ValueError(
                f"GraphSAGE: `aggregator` must be one of {_AGGREGATORS}; got {aggregator!r}."
            )
        # A size for a projection the chosen aggregator does not have would be ignored
        # silently, which usually means the wrong aggregator was picked.
        for name, value, owner in (
            ("pool_units", pool_units, "max_pool"),
            ("attention_units", attention_units, "attention"),
        ):
            if value is not None and not is_positive_int(value):
                raise ValueError(
                    f"GraphSAGE: `{name}` must be a positive int or None (= feature size); "
                    f"got {value!r}."
                )
            if value is not None and aggregator != owner:
                raise ValueError(
                    f"GraphSAGE: `{name}` only applies to aggregator={owner!r}; got "
                    f"aggregator={aggregator!r}. Leave `{name}` as None."
                )
        self.activation = get_activation("GraphSAGE", activation, "relu")
        self.kernel_initializer = get_initializer("GraphSAGE", kernel_initializer)
        self.aggregator = aggregator
        self.normalize = bool(normalize)
        self.pool_units = pool_units
        self.attention_units = attention_units
        self.use_bias = bool(use_bias)
        self.supports_masking = True

    def _kernel(self, name: str, shape: Sequence[int], index: int) -> tf.Variable:
        return self.add_weight(
            name=name, shape=tuple(shape),
            initializer=clone_initializer(self.kernel_initializer, index), trainable=True,
        )

    def _bias(self, name: str, size: int) -> tf.Variable:
        return self.add_weight(name=name, shape=(size,), initializer="zeros", trainable=True)

    def build(self, input_shape: Any) -> None:
        # Keras passes the shape of `inputs` only; `neighbours` must share its feature size.
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 2 or input_shape[-1] is None:
            raise ValueError(
                "GraphSAGE expects `inputs` (the nodes' own features) of shape [batch, dim] "
                f"with a known dim; got {input_shape}."
            )
        dim = int(input_shape[-1])
        neighbour_dim = dim
        if self.aggregator == "max_pool":
            neighbour_dim = self.pool_units or dim
            self.pool_kernel = self._kernel("pool_kernel", (dim, neighbour_dim), 1)
            self.pool_bias = self._bias("pool_bias", neighbour_dim)
        elif self.aggregator == "attention":
            hidden = self.attention_units or dim
            self.attention_query_kernel = self._kernel("attention_query_kernel", (dim, hidden), 1)
            self.attention_key_kernel = self._kernel("attention_key_kernel", (dim, hidden), 2)
            self.attention_bias = self._bias("attention_bias", hidden)
            self.attention_vector = self._kernel("attention_vector", (hidden, 1), 3)
        # One kernel over the concatenation (as a Dense kernel, so Glorot sees the true fans).
        self.kernel = self._kernel("kernel", (dim + neighbour_dim, self.units), 0)
        self.bias = self._bias("bias", self.units) if self.use_bias else None
        super().build(input_shape)

    def call(
        self,
        inputs: tf.Tensor,
        neighbours: tf.Tensor,
        mask: Optional[tf.Tensor] = None,
        training: Optional[bool] = None,
        return_attention_weights: bool = False,
        neighbour_keys: Optional[tf.Tensor] = None,
        rows: Optional[tf.Tensor] = None,
    ) -> Union[tf.Tensor, tuple[tf.Tensor, tf.Tensor]]:
        for flag, given in (("return_attention_weights=True", return_attention_weights),
                            ("neighbour_keys", neighbour_keys is not None)):
            if given and self.aggregator != "attention":
                raise ValueError(
                    f"GraphSAGE: `{flag}` needs aggregator='attention'; got "
                    f"aggregator={self.aggregator!r}, which has no attention."
                )
        # Keras fills `mask` from the first argument (`inputs`) when it has a Keras mask: a
        # [B] mask of the nodes themselves, with no neighbour axis. (Keras does not always
        # keep `inputs._keras_mask` to compare with, e.g. while building a functional model.)
        # The neighbourhood's mask lives on `neighbours`.
        if mask is not None and tf.convert_to_tensor(mask).shape.rank == 1:
            mask = None
        inputs = tf.convert_to_tensor(inputs)
        raw_neighbours = neighbours
        # Keras autocasts only the first argument to the compute dtype.
        neighbours = tf.cast(tf.convert_to_tensor(neighbours), inputs.dtype)
        if neighbours.shape.rank != 3 or neighbours.shape[-1] not in (None, inputs.shape[-1]):
            raise ValueError(
                "GraphSAGE expects `neighbours` of shape [batch, samples, dim] with the dim of "
                f"`inputs` [batch, dim]; got neighbours {neighbours.shape} and inputs "
                f"{inputs.shape}."
            )
        if mask is None:
            mask = getattr(raw_neighbours, "_keras_mask", None)
        weights = None
        if rows is not None:
            aggregated, weights = self._aggregate_rows(inputs, neighbours, mask, rows, neighbour_keys)
            inputs = gather_rows(inputs, rows)
        else:
            mask = resolve_sequence_mask(neighbours, mask, "GraphSAGE", argument="neighbours")
            if mask is not None:
                # Zero padded neighbours first so nothing computed from them (not even inf or
                # a gradient through them) can leak into the result.
                neighbours = tf.where(mask[:, :, tf.newaxis], neighbours, tf.zeros_like(neighbours))
            if self.aggregator == "mean":
                aggregated = self._mean(neighbours, mask)
            elif self.aggregator == "max_pool":
                aggregated = self._max_pool(neighbours, mask)
            else:
                aggregated, weights = self._attention(inputs, neighbours, mask, neighbour_keys)

        output = tf.matmul(tf.concat([inputs, aggregated], axis=-1), self.kernel)
        if self.bias is not None:
            output = output + self.bias
        output = self.activation(output)
        if self.normalize:
            output = tf.cast(
                tf.math.l2_normalize(tf.cast(output, tf.float32), axis=-1, epsilon=_NORM_EPSILON),
                output.dtype,
            )
        if return_attention_weights:
            return output, weights
        return output

    @staticmethod
    def _mean(neighbours: tf.Tensor, mask: Optional[tf.Tensor]) -> tf.Tensor:
        if mask is None:
            return tf.reduce_mean(neighbours, axis=1)
        counts = tf.reduce_sum(tf.cast(mask, neighbours.dtype), axis=1, keepdims=True)
        # Padding is already zero, so the sum is over real neighbours; no neighbour -> 0 / 1.
        return tf.reduce_sum(neighbours, axis=1) / tf.maximum(counts, tf.ones_like(counts))

    def _max_pool(self, neighbours: tf.Tensor, mask: Optional[tf.Tensor]) -> tf.Tensor:
        pooled = tf.nn.relu(tf.einsum("bsd,dp->bsp", neighbours, self.pool_kernel) + self.pool_bias)
        if mask is not None:
            # relu outputs are >= 0, so a 0 at padding never beats a real neighbour and a node
            # with no real neighbour pools to exactly 0 (no -inf to clean up).
            pooled = tf.where(mask[:, :, tf.newaxis], pooled, tf.zeros_like(pooled))
        return tf.reduce_max(pooled, axis=1)

    def _aggregate_rows(
        self, inputs: tf.Tensor, neighbours: tf.Tensor, mask: Optional[tf.Tensor], rows: tf.Tensor,
        neighbour_keys: Optional[tf.Tensor],
    ) -> tuple[tf.Tensor, Optional[tf.Tensor]]:
        """`[N, D]` aggregates (and `[N, S]` weights) of rows reading per-node neighbourhoods (`rows`)."""
        rows = tf.cast(tf.convert_to_tensor(rows), tf.int32)
        if rows.shape.rank != 1:
            raise ValueError(f"GraphSAGE: `rows` must be int [N] (one node per output row); got shape {rows.shape}.")
        num_nodes, samples = tf.shape(neighbours)[0], tf.shape(neighbours)[1]
        if mask is None:
            mask = tf.ones(tf.stack([tf.shape(rows)[0], samples]), tf.bool)
        mask = tf.cast(mask, tf.bool)
        if mask.shape.rank != 2:
            raise ValueError(f"GraphSAGE: with `rows`, `mask` must be [N, samples] (one per row); got {mask.shape}.")
        read = tf.math.unsorted_segment_max(tf.cast(mask, tf.int32), rows, num_nodes) > 0  # [U, S]
        neighbours = tf.where(read[:, :, tf.newaxis], neighbours, tf.zeros_like(neighbours))
        if self.aggregator == "max_pool":
            pooled = tf.nn.relu(tf.einsum("bsd,dp->bsp", neighbours, self.pool_kernel) + self.pool_bias)
            pooled = tf.where(mask[:, :, tf.newaxis], tf.gather(pooled, rows), 0.0)
            return tf.reduce_max(pooled, axis=1), None
        if self.aggregator == "mean":
            counts = tf.reduce_sum(tf.cast(mask, neighbours.dtype), axis=1, keepdims=True)
            weights, returned = tf.cast(mask, neighbours.dtype) / tf.maximum(counts, 1.0), None
        else:
            scores = self._attention_scores(inputs, neighbours, neighbour_keys)  # per node [U, S]
            weights = returned = masked_softmax(tf.gather(scores, rows), mask)
        # sum_s weights[n, s] * neighbours[rows[n], s] as one [N, U * S] x [U * S, D] CSR product
        # (its indices are row-major by construction): 82 ms forward and backward at N = 98,304,
        # S = 10, D = 64, against 256 ms gathering [N, S, D] (`/tmp` timing on busy cores).
        num_rows = tf.shape(rows, out_type=tf.int64)[0]
        samples64 = tf.cast(samples, tf.int64)
        columns = tf.cast(rows, tf.int64)[:, tf.newaxis] * samples64 + tf.range(samples64)[tf.newaxis, :]
        indices = tf.stack([tf.repeat(tf.range(num_rows), samples64), tf.reshape(columns, [-1])], axis=1)
        dense_shape = tf.stack([num_rows, tf.cast(num_nodes, tf.int64) * samples64])
        flat = tf.reshape(neighbours, tf.stack([num_nodes * samples, tf.shape(neighbours)[2]]))
        aggregated = edge_weighted_matmul(indices, tf.reshape(tf.cast(weights, tf.float32), [-1]), dense_shape,
                                          tf.cast(flat, tf.float32), row_major=True)
        return tf.cast(aggregated, neighbours.dtype), returned

    def attention_keys(self, features: tf.Tensor) -> tf.Tensor:
        """`[..., attention_units]` attention keys of neighbour features `[..., D]` (see `call`)."""
        if self.aggregator != "attention":
            raise ValueError(f"GraphSAGE: aggregator={self.aggregator!r} has no attention keys.")
        features = tf.convert_to_tensor(features)
        return tf.tensordot(tf.cast(features, self.attention_key_kernel.dtype), self.attention_key_kernel, 1)

    def _attention_scores(
        self, inputs: tf.Tensor, neighbours: tf.Tensor, neighbour_keys: Optional[tf.Tensor]
    ) -> tf.Tensor:
        """`[B, S]` additive attention scores `v . tanh(W_q h_self + W_k n_j + b_a)`, unmasked."""
        keys = self.attention_keys(neighbours) if neighbour_keys is None else tf.cast(neighbour_keys, inputs.dtype)
        hidden = keys + tf.matmul(inputs, self.attention_query_kernel)[:, tf.newaxis, :] + self.attention_bias
        return tf.einsum("bsa,ao->bs", tf.tanh(hidden), self.attention_vector)

    def _attention(
        self, inputs: tf.Tensor, neighbours: tf.Tensor, mask: Optional[tf.Tensor],
        neighbour_keys: Optional[tf.Tensor] = None,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        weights = masked_softmax(self._attention_scores(inputs, neighbours, neighbour_keys), mask)  # [B, S]; 0 at padding, all 0 if no neighbour
        aggregated = tf.einsum("bs,bsd->bd", tf.cast(weights, neighbours.dtype), neighbours)
        return aggregated, weights

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        # The neighbour axis is aggregated away; one output row per node, all real.
        return None

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        return tf.TensorShape(input_shape)[:1].concatenate([self.units])
