"""NARM-style encoder: an RNN over the history plus attention over its hidden states."""

from __future__ import annotations

from typing import Any, Optional

import tensorflow as tf

from tf_attnrec.layers.checks import check_positive_int
from tf_attnrec.layers.config import ConfigFromAttributes
from tf_attnrec.layers.pooling import AttentionPooling, resolve_sequence_mask

_CELLS = {"lstm": tf.keras.layers.LSTM, "gru": tf.keras.layers.GRU}
_OUTPUTS = ("concat", "sum", "projection")


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class RecurrentAttentionEncoder(ConfigFromAttributes, tf.keras.layers.Layer):
    """Encodes a (left-padded) sequence `[B, T, D]` into one vector, as in NARM.

    An LSTM or GRU runs over the sequence. The *global* representation is its final hidden
    state; the *local* representation is additive attention (sigmoid score function, softmax
    over the real positions) over all hidden states with the final state as the query
    (Li et al., 2017, "Neural Attentive Session-based Recommendation").

    Masking: the standard Keras RNN carries its state unchanged through masked steps, so with
    left padding the state stays at its zero initial value until the first real item, and the
    final state depends only on the real items; the attention gives padded states weight 0.
    Padded steps therefore never change the output, and an all-padding row encodes to zeros.
    Standard Keras layers are used throughout (on GPU, a left-padded mask makes Keras pick its
    generic kernel over cuDNN, with identical results).

    Args:
        units: Hidden size of the RNN.
        cell: "lstm" or "gru".
        attention_units: Hidden size of the attention score function (default: `units`).
        dropout: Dropout rate on the RNN inputs and on the final representation (training only).
        output: How to combine global `g` and local `l` (both `[B, units]`): "concat"
            (`[g, l]`, `2 * units`, the NARM representation), "sum" (`g + l`, `units`), or
            "projection" (NARM's bias-free linear map of `[g, l]` to `units`).
        **kwargs: Standard `tf.keras.layers.Layer` arguments (name, dtype, ...).

    Call arguments:
        inputs: Float tensor `[B, T, D]`.
        mask: Optional boolean `[B, T]` (True = real item). Defaults to `inputs._keras_mask`.
        training: Python bool, enables dropout.
        return_sequences: If True, encode every prefix in one pass: position `t` combines the
            hidden state at `t` with attention over the states `<= t` (query: the state at
            `t`), which is what the layer returns for `inputs[:, :t + 1]`. Lets a next-item
            model train on every position, like SASRec. Padded positions are 0.

    Returns:
        `[B, output_dim]` with `output_dim = 2 * units` for "concat", else `units`
        (`[B, T, output_dim]` with `return_sequences=True`).

    Example:
        >>> encoder = RecurrentAttentionEncoder(units=16, cell="gru")
        >>> x = tf.random.normal([2, 5, 8])
        >>> encoder(x, mask=tf.constant([[False, False, True, True, True]] * 2)).shape
        TensorShape([2, 32])
    """

    # `output` is kept as `output_mode` (a `Layer` property has that name): see get_config.
    config_keys = ("units", "cell", "attention_units", "dropout")

    def __init__(
        self,
        units: int,
        cell: str = "lstm",
        attention_units: Optional[int] = None,
        dropout: float = 0.0,
        output: str = "concat",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_positive_int("RecurrentAttentionEncoder", "`units`", units)
        if cell not in _CELLS:
            raise ValueError(
                f"RecurrentAttentionEncoder: `cell` must be one of {sorted(_CELLS)}; got "
                f"{cell!r}."
            )
        if output not in _OUTPUTS:
            raise ValueError(
                f"RecurrentAttentionEncoder: `output` must be one of {_OUTPUTS}; got {output!r}."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"RecurrentAttentionEncoder: `dropout` must be in [0, 1); got {dropout!r}."
            )
        self.units = units
        self.cell = cell
        self.attention_units = attention_units
        self.dropout = float(dropout)
        self.output_mode = output
        self.supports_masking = True

        self.input_dropout = tf.keras.layers.Dropout(self.dropout, name="input_dropout")
        self.rnn = _CELLS[cell](
            units,
            return_sequences=True,
            return_state=True,
            name=cell,
            dtype=self.dtype_policy,
        )
        self.local_attention = AttentionPooling(
            hidden_units=attention_units or units,
            use_query=True,
            activation="sigmoid",
            name="local_attention",
            dtype=self.dtype_policy,
        )
        self.projection = (
            tf.keras.layers.Dense(units, use_bias=False, name="projection", dtype=self.dtype_policy)
            if output == "projection"
            else None
        )
        self.output_dropout = tf.keras.layers.Dropout(self.dropout, name="output_dropout")

    @property
    def output_dim(self) -> int:
        """Size of the encoding this layer returns."""
        return 2 * self.units if self.output_mode == "concat" else self.units

    def call(
        self,
        inputs: tf.Tensor,
        mask: Optional[tf.Tensor] = None,
        training: Optional[bool] = None,
        return_sequences: bool = False,
    ) -> tf.Tensor:
        mask = self._sequence_mask(inputs, mask)
        x = self.input_dropout(inputs, training=training)
        rnn_outputs = self.rnn(x, mask=mask, training=training)
        states, final_state = rnn_outputs[0], rnn_outputs[1]  # LSTM adds the cell state
        if return_sequences:
            # With left padding the state at each real t is that prefix's final state.
            local = self.local_attention(states, query=states, mask=mask, causal=True)
            encoding = self._combine(states, local)
            if mask is not None:
                encoding = encoding * tf.cast(mask, encoding.dtype)[:, :, tf.newaxis]
        else:
            encoding = self._combine(final_state, self.local_attention(states, query=final_state, mask=mask))
        return self.output_dropout(encoding, training=training)

    def attention_weights(self, inputs: tf.Tensor, mask: Optional[tf.Tensor] = None) -> tf.Tensor:
        """The local attention's weights over the RNN states, as `call` computes them.

        The query is the final state (what `call` returns the encoding of), in inference mode.

        Args:
            inputs: Float tensor `[B, T, D]`.
            mask: Optional boolean `[B, T]` (True = real item). Defaults to `inputs._keras_mask`.

        Returns:
            `[B, T]` softmax weights over the real positions (0 at padding; an all-padding row
            is all 0).
        """
        mask = self._sequence_mask(inputs, mask)
        rnn_outputs = self.rnn(inputs, mask=mask, training=False)
        states, final_state = rnn_outputs[0], rnn_outputs[1]
        _, weights = self.local_attention(
            states, query=final_state, mask=mask, return_attention_scores=True
        )
        return weights

    @staticmethod
    def _sequence_mask(inputs: tf.Tensor, mask: Optional[tf.Tensor]) -> Optional[tf.Tensor]:
        """The boolean `[B, T]` mask (`mask`, else the Keras mask) of `inputs` `[B, T, D]`."""
        if inputs.shape.rank != 3:
            raise ValueError(
                "RecurrentAttentionEncoder expects inputs of shape [batch, time, dim]; got "
                f"{inputs.shape}."
            )
        return resolve_sequence_mask(inputs, mask, "RecurrentAttentionEncoder", "inputs")

    def _combine(self, global_state: tf.Tensor, local: tf.Tensor) -> tf.Tensor:
        """NARM's `[global, local]` (or their sum / projection), on the last axis."""
        if self.output_mode == "sum":
            return global_state + local
        encoding = tf.concat([global_state, local], axis=-1)
        return self.projection(encoding) if self.projection is not None else encoding

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        # The time axis is encoded away.
        return None

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        return tf.TensorShape([tf.TensorShape(input_shape)[0], self.output_dim])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["output"] = self.output_mode
        return config
