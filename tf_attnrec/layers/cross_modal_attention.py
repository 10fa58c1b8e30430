"""`CrossModalAttention`: one vector from an item's modalities, attention-weighted by a query."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from typing import Any, Optional, Union

import tensorflow as tf

from tf_attnrec.layers.checks import check_positive_int, get_initializer, is_positive_int
from tf_attnrec.layers.config import ConfigFromAttributes
from tf_attnrec.layers.multi_head_attention import clone_initializer
from tf_attnrec.layers.pooling import masked_softmax


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class CrossModalAttention(ConfigFromAttributes, tf.keras.layers.Layer):
    """Fuses an item's modalities (id, genres, title, year, ...) with attention across them.

    Each modality `m` has its own key and value projections (`k_m = W_k^m x_m + b_k^m`,
    `v_m = W_v^m x_m + b_v^m`, both to `units`) and the query its own (`q = W_q x_q + b_q`).
    The weights are a softmax over the modalities present in a row,

        a_m = softmax_m((q . k_m) / sqrt(units)),    output = sum_m a_m v_m,

    so `a` says which modality mattered for that row. A modality left out of `inputs` is
    exactly a masked one. A masked modality gets weight 0 and its values are zeroed before the
    projections, so nothing in them (not even inf) reaches the result; a row with every
    modality masked outputs 0 with weights 0, never NaN.

    Leading dimensions broadcast (NumPy rules) between the modalities, their masks and the
    query: modalities `[V, d_m]` with a query `[B, 1, query_dim]` give `[B, V, units]` (every
    item weighted for every user); modalities `[N, d_m]` with a query `[N, query_dim]` give
    `[N, units]`. A mask with leading dimensions that its modality lacks broadcasts that
    modality's values (and its projection) to them.

    Args:
        units: Width of the keys, values and output.
        modalities: Ordered mapping of modality name to its input width `d_m`, e.g.
            `{"id": 64, "genres": 18, "title": 64, "year": 16}`. The order is the weights'
            axis order (`modality_names`).
        query_dim: Width of the query vectors.
        dropout: Dropout rate on the attention weights, in training only.
        kernel_initializer: Initializer of the projection kernels (a fresh draw for each;
            biases start at 0).
        **kwargs: Standard `tf.keras.layers.Layer` arguments.

    Call arguments:
        inputs: Mapping of modality name to float `[..., d_m]`; modalities may be left out.
        query: float `[..., query_dim]`.
        mask: Optional mapping of modality name to bool `[...]` (True = present in that row);
            a modality without a mask is present everywhere.
        training: Whether dropout is active.
        return_weights: Also return the weights.

    Returns:
        `[..., units]` (the broadcast leading shape); with `return_weights`, `(output,
        weights [..., M])`, weights (before dropout) in `modality_names` order, 0 at masked or
        left-out modalities.

    Example:
        >>> layer = CrossModalAttention(8, {"id": 4, "genres": 3}, query_dim=4)
        >>> output, weights = layer({"id": tf.ones([5, 4]), "genres": tf.ones([5, 3])},
        ...                         query=tf.ones([2, 1, 4]), return_weights=True)
        >>> output.shape, weights.shape
        (TensorShape([2, 5, 8]), TensorShape([2, 5, 2]))
    """

    config_keys = ("units", "modalities", "query_dim", "dropout", "kernel_initializer")

    def __init__(self, units: int, modalities: Mapping[str, int], query_dim: int, dropout: float = 0.0,
                 kernel_initializer: Any = "glorot_uniform", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.units = check_positive_int(owner, "`units`", units)
        if not isinstance(modalities, Mapping) or not modalities:
            raise ValueError(f"{owner}: `modalities` must be a non-empty mapping of modality name to input "
                             f"width, e.g. {{'id': 64, 'genres': 18}}; got {modalities!r}.")
        for name, width in modalities.items():
            if not isinstance(name, str) or not is_positive_int(width):
                raise ValueError(f"{owner}: `modalities` must map str names to positive int widths; got "
                                 f"{name!r}: {width!r}.")
        self.query_dim = check_positive_int(owner, "`query_dim`", query_dim)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"{owner}: `dropout` must be a rate in [0, 1); got {dropout!r}.")
        self.modalities = dict(modalities)
        self.dropout = float(dropout)
        self.kernel_initializer = get_initializer(owner, kernel_initializer)
        self.supports_masking = True
        # All projections exist from the constructor's widths, in modality order, so the
        # weights' order never depends on which modalities the first call passes.
        names = [_scope_name(name) for name in self.modalities]
        self.query_projection = self._projection("query", 0)
        self.key_projections = [self._projection(f"key_{name}", 1 + i) for i, name in enumerate(names)]
        self.value_projections = [self._projection(f"value_{name}", 1 + len(names) + i)
                                  for i, name in enumerate(names)]
        self._dropout = tf.keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="dropout")

    @property
    def modality_names(self) -> tuple[str, ...]:
        """The modality names in the weights' axis order."""
        return tuple(self.modalities)

    def _projection(self, name: str, seed_offset: int) -> tf.keras.layers.Dense:
        # A fresh initializer per kernel: a seeded Keras 2 instance gives the same draw twice.
        initializer = clone_initializer(self.kernel_initializer, seed_offset)
        return tf.keras.layers.Dense(self.units, kernel_initializer=initializer, dtype=self.dtype_policy,
                                     name=name)

    def build(self, input_shape: Any = None) -> None:
        # Built from the constructor's widths, not from `input_shape` (which lacks left-out modalities).
        widths = [self.query_dim, *self.modalities.values(), *self.modalities.values()]
        for layer, width in zip([self.query_projection, *self.key_projections, *self.value_projections], widths):
            with tf.name_scope(layer.name):
                layer.build(tf.TensorShape([None, width]))
        super().build(input_shape)

    def _check_keys(self, mapping: Any, argument: str) -> dict[str, Any]:
        """`mapping` as a dict without None values; a ValueError for a non-mapping or an unknown key."""
        owner = type(self).__name__
        if not isinstance(mapping, Mapping):
            raise ValueError(f"{owner}: `{argument}` must be a mapping of modality name to tensor; got "
                             f"{type(mapping).__name__}.")
        for key in mapping:
            if key not in self.modalities:
                raise ValueError(f"{owner}: unknown modality {key!r} in `{argument}`; the known modalities are "
                                 f"{self.modality_names}.")
        # A Keras implicit mask gives None for the inputs that carry none: present everywhere.
        return {key: value for key, value in mapping.items() if value is not None}

    def call(self, inputs: Mapping[str, tf.Tensor], query: tf.Tensor,
             mask: Optional[Mapping[str, tf.Tensor]] = None, training: Optional[bool] = None,
             return_weights: bool = False) -> Union[tf.Tensor, tuple[tf.Tensor, tf.Tensor]]:
        owner = type(self).__name__
        inputs = self._check_keys(inputs, "inputs")
        masks = {} if mask is None else self._check_keys(mask, "mask")
        masks = {key: tf.cast(value, tf.bool) for key, value in masks.items()}
        query = tf.cast(query, self.compute_dtype)
        if query.shape[-1] is not None and query.shape[-1] != self.query_dim:
            raise ValueError(f"{owner}: `query` has width {query.shape[-1]}; expected query_dim={self.query_dim}.")
        # 1/sqrt(units) on the query once, not on every modality's logits.
        query = self.query_projection(query) * tf.cast(1.0 / math.sqrt(self.units), self.compute_dtype)

        logits, values = {}, {}
        for index, (name, width) in enumerate(self.modalities.items()):
            if name not in inputs:
                continue
            x = tf.cast(inputs[name], self.compute_dtype)
            if x.shape[-1] is not None and x.shape[-1] != width:
                raise ValueError(f"{owner}: modality {name!r} has width {x.shape[-1]}; expected {width} (as "
                                 f"declared in `modalities`).")
            if name in masks:
                x = tf.where(masks[name][..., tf.newaxis], x, tf.zeros_like(x))
            logits[name] = tf.reduce_sum(query * self.key_projections[index](x), axis=-1)
            values[name] = self.value_projections[index](x)

        # The leading shape every modality, mask and the query broadcast to.
        shapes = [query[..., 0], *logits.values(), *masks.values()]
        static = functools.reduce(tf.broadcast_static_shape, [t.shape for t in shapes])
        leading = functools.reduce(tf.broadcast_dynamic_shape, [tf.shape(t) for t in shapes])

        def full(tensor: tf.Tensor) -> tf.Tensor:
            return tf.broadcast_to(tensor, leading)

        # A left-out modality is a masked one (whatever its mask says): logit 0 behind False.
        names, zero = self.modality_names, tf.zeros([], self.compute_dtype)
        present = tf.stack([full(masks.get(name, True) if name in logits else False) for name in names], -1)
        stacked = tf.stack([full(logits.get(name, zero)) for name in names], -1)
        present.set_shape(static.concatenate([len(names)]))
        stacked.set_shape(present.shape)
        # Masked logits are replaced (not offset) by a large negative and the weights multiplied
        # by the mask, so a row without any modality gets weights 0 and finite gradients.
        weights = masked_softmax(stacked, present)
        dropped = self._dropout(weights, training=training)

        output = tf.zeros(tf.concat([leading, [self.units]], 0), self.compute_dtype)
        for index, name in enumerate(names):
            if name in values:
                output += dropped[..., index:index + 1] * values[name]
        output.set_shape(static.concatenate([self.units]))
        return (output, weights) if return_weights else output

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        # The modality axis is attended away: the output carries no mask.
        return None


def _scope_name(name: str) -> str:
    """`name` with the characters a TF name scope rejects replaced by '_'."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name)
