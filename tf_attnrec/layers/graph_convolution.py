"""GCN graph convolution (Kipf & Welling, 2017) over a sparse adjacency; LightGCN without units."""

from __future__ import annotations

from typing import Any, Optional

import tensorflow as tf

from tf_attnrec.layers.checks import get_activation, get_initializer, is_positive_int
from tf_attnrec.layers.config import ConfigFromAttributes
from tf_attnrec.layers.sparse_ops import sparse_matmul


def _check_adjacency(adjacency: Any, owner: str) -> tf.SparseTensor:
    """Returns `adjacency` if it is a rank-2 `tf.SparseTensor` of float values, else raises."""
    if not isinstance(adjacency, tf.SparseTensor):
        raise ValueError(
            f"{owner}: `adjacency` must be a tf.SparseTensor [targets, sources]; got "
            f"{type(adjacency).__name__}. Use tf.sparse.from_dense for a dense matrix."
        )
    if adjacency.shape.rank is not None and adjacency.shape.rank != 2:
        raise ValueError(
            f"{owner}: `adjacency` must be rank 2 [targets, sources]; got shape "
            f"{adjacency.shape}."
        )
    if not adjacency.values.dtype.is_floating:
        raise ValueError(
            f"{owner}: `adjacency` values are edge weights and must be floating point (1.0 for "
            f"an unweighted edge); got {adjacency.values.dtype.name}."
        )
    return adjacency


def _accumulation_dtype(dtype: tf.DType) -> tf.DType:
    """float32 for half-precision features: degree and neighbour sums would lose too much."""
    return tf.float32 if dtype in (tf.float16, tf.bfloat16) else dtype


def _inverse_sqrt_degree(
    values: tf.Tensor, node_ids: tf.Tensor, num_nodes: tf.Tensor
) -> tf.Tensor:
    """`deg^-1/2` per node, where `deg` sums the weights of its edges; 0 where `deg <= 0`."""
    degree = tf.math.unsorted_segment_sum(values, node_ids, num_nodes)
    positive = degree > 0
    # rsqrt only ever sees a positive degree, so neither the value nor its gradient is inf/NaN.
    safe = tf.math.rsqrt(tf.where(positive, degree, tf.ones_like(degree)))
    return tf.where(positive, safe, tf.zeros_like(safe))


def normalize_adjacency(adjacency: tf.SparseTensor) -> tf.SparseTensor:
    """Symmetrically normalised adjacency `D_r^-1/2 A D_c^-1/2` (the GCN / LightGCN weights).

    Edge `(i, j)` with weight `a_ij` becomes `a_ij / sqrt(deg_row(i) * deg_col(j))`, where
    `deg_row(i)` sums the values of row `i` and `deg_col(j)` those of column `j`; for a
    symmetric square `A` both are the node degree. `A` may be bipartite (non-square). A node
    whose degree is 0 has no edge, so it simply has no entry; nothing is divided by 0. Compute
    it once for a fixed graph and pass the result to layers built with `normalize=False`.

    Args:
        adjacency: `tf.SparseTensor [targets, sources]` of float edge weights, in any order.

    Returns:
        A `tf.SparseTensor` of the same dense shape and dtype, in canonical (row-major) order,
        which the CSR conversion of `sparse_matmul` needs.

    Raises:
        ValueError: `adjacency` is not a rank-2 `tf.SparseTensor` of float values.

    Example:
        >>> a = tf.SparseTensor([[0, 1], [1, 0], [1, 2], [2, 1]], [1.0] * 4, [3, 3])
        >>> [round(v, 4) for v in normalize_adjacency(a).values.numpy().tolist()]
        [0.7071, 0.7071, 0.7071, 0.7071]
    """
    adjacency = _check_adjacency(adjacency, "normalize_adjacency")
    # Canonical order first: the degree sums and the product below then add up in the same
    # order whatever order the edges came in, so results do not depend on it at all.
    adjacency = tf.sparse.reorder(adjacency)
    dtype = adjacency.values.dtype
    values = tf.cast(adjacency.values, _accumulation_dtype(dtype))
    rows, cols = adjacency.indices[:, 0], adjacency.indices[:, 1]
    row_scale = _inverse_sqrt_degree(values, rows, adjacency.dense_shape[0])
    col_scale = _inverse_sqrt_degree(values, cols, adjacency.dense_shape[1])
    normalized = values * tf.gather(row_scale, rows) * tf.gather(col_scale, cols)
    return tf.SparseTensor(adjacency.indices, tf.cast(normalized, dtype), adjacency.dense_shape)


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class GraphConvolution(ConfigFromAttributes, tf.keras.layers.Layer):
    """Graph convolution: each target node gets the normalised sum of its neighbours' features.

    The output is `activation(Â X W + b)` with `Â = D_r^-1/2 A D_c^-1/2` (Kipf & Welling's
    GCN). With `units=None` there is no weight, bias or activation: the layer is the pure
    propagation `Â X` of LightGCN (He et al., 2020). Propagation is one sparse product
    (`sparse_matmul`, TensorFlow's CSR kernel; never a dense `[N, N]` matrix), done in float32
    for half-precision features. A target with no neighbour gets zeros from the propagation
    (plus the bias), never NaN.

    Args:
        units: Output size (a `[D, units]` kernel), or None for pure propagation (LightGCN).
        activation: Activation applied after the bias, e.g. "relu"; needs `units`.
        use_bias: Whether to add a bias (only with `units`).
        normalize: If True, normalise `adjacency` with `normalize_adjacency` on every call. If
            False, its values are used as they are: pass a graph normalised once beforehand.
        kernel_initializer: Initializer of the kernel (only with `units`).
        **kwargs: Standard `tf.keras.layers.Layer` arguments (name, dtype, ...).

    Call arguments:
        inputs: Source node features `[num_sources, D]`.
        adjacency: `tf.SparseTensor [num_targets, num_sources]`: row `i` holds the edges into
            target `i`, its values the edge weights (1.0 if unweighted). Square for one node
            set, or bipartite (e.g. users over items). Indices need not be sorted.

    Returns:
        Target node outputs `[num_targets, units]` (`[num_targets, D]` with `units=None`).

    Example:
        >>> adjacency = tf.SparseTensor([[0, 1], [1, 0], [1, 2], [2, 1]], [1.0] * 4, [3, 3])
        >>> GraphConvolution(units=4, activation="relu")(tf.random.normal([3, 8]), adjacency).shape
        TensorShape([3, 4])
        >>> GraphConvolution()(tf.random.normal([3, 8]), adjacency).shape  # LightGCN propagation
        TensorShape([3, 8])
    """

    config_keys = ("units", "activation", "use_bias", "normalize", "kernel_initializer")

    def __init__(
        self,
        units: Optional[int] = None,
        activation: Any = None,
        use_bias: bool = True,
        normalize: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if units is not None and not is_positive_int(units):
            raise ValueError(
                "GraphConvolution: `units` must be a positive int, or None for pure "
                f"propagation (LightGCN); got {units!r}."
            )
        self.activation = get_activation("GraphConvolution", activation, "relu")
        # Pure propagation is linear by definition; an activation there would be silently lost.
        if units is None and self.activation is not tf.keras.activations.linear:
            raise ValueError(
                f"GraphConvolution: `activation` {activation!r} needs `units`; with units=None "
                "the layer is pure propagation (no weight, bias or activation)."
            )
        self.kernel_initializer = get_initializer("GraphConvolution", kernel_initializer)
        self.units = units
        self.use_bias = bool(use_bias)
        self.normalize = bool(normalize)

    def build(self, input_shape: tf.TensorShape) -> None:
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 2 or input_shape[-1] is None:
            raise ValueError(
                "GraphConvolution expects `inputs` node features of shape [nodes, features] "
                f"with a known feature size; got {input_shape}."
            )
        self.kernel = self.bias = None
        if self.units is not None:
            self.kernel = self.add_weight(
                name="kernel",
                shape=(int(input_shape[-1]), self.units),
                initializer=self.kernel_initializer,
                trainable=True,
            )
            if self.use_bias:
                self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        super().build(input_shape)

    def _propagate(self, adjacency: tf.SparseTensor, features: tf.Tensor) -> tf.Tensor:
        """`Â features` in the accumulation dtype, cast back to the layer's compute dtype."""
        dtype = _accumulation_dtype(features.dtype)
        adjacency = tf.SparseTensor(
            adjacency.indices, tf.cast(adjacency.values, dtype), adjacency.dense_shape
        )
        if self.normalize:
            adjacency = normalize_adjacency(adjacency)
        propagated = sparse_matmul(adjacency, tf.cast(features, dtype))
        return tf.cast(propagated, self.compute_dtype)

    def call(self, inputs: tf.Tensor, adjacency: tf.SparseTensor) -> tf.Tensor:
        adjacency = _check_adjacency(adjacency, "GraphConvolution")
        features = tf.convert_to_tensor(inputs)
        num_sources = features.shape[0]
        if adjacency.shape[1] is not None and num_sources is not None \
                and adjacency.shape[1] != num_sources:
            raise ValueError(
                f"GraphConvolution: `adjacency` has {adjacency.shape[1]} columns (source "
                f"nodes) but `inputs` has {num_sources} rows; they must match."
            )
        if self.kernel is None:
            return self._propagate(adjacency, features)
        # Â (X W) == (Â X) W: propagate whichever of X and X W is narrower.
        if self.units < features.shape[-1]:
            output = self._propagate(adjacency, tf.matmul(features, self.kernel))
        else:
            output = tf.matmul(self._propagate(adjacency, features), self.kernel)
        if self.bias is not None:
            output = output + self.bias
        return self.activation(output)

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        # The number of rows is the adjacency's (target nodes), unknown from `inputs` alone.
        input_shape = tf.TensorShape(input_shape)
        return tf.TensorShape([None, self.units or input_shape[-1]])
