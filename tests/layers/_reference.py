"""NumPy references and shared checks for layer tests (reusable by other layer tests)."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf


def masked_softmax(scores: np.ndarray, mask: Optional[np.ndarray]) -> np.ndarray:
    """Softmax over the last axis; masked entries get 0, rows with nothing visible are 0."""
    scores = np.asarray(scores, np.float64)
    if mask is None:
        mask = np.ones(scores.shape, bool)
    mask = np.broadcast_to(mask, scores.shape)
    shifted = np.where(mask, scores, -np.inf)
    row_max = np.max(np.where(mask, scores, -1e300), axis=-1, keepdims=True)
    exp = np.where(mask, np.exp(shifted - row_max), 0.0)
    total = exp.sum(axis=-1, keepdims=True)
    return np.divide(exp, total, out=np.zeros_like(exp), where=total > 0)


def causal_mask(q_len: int, v_len: int) -> np.ndarray:
    """`[Tq, Tv]` lower-triangular boolean mask (query i sees keys j <= i)."""
    return np.tril(np.ones([q_len, v_len], bool))


def attention(q, k, v, mask: Optional[np.ndarray] = None):
    """Reference scaled dot-product attention; returns (output, weights) in float64."""
    q, k, v = (np.asarray(t, np.float64) for t in (q, k, v))
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    weights = masked_softmax(scores, mask)
    return weights @ v, weights


def multi_head_attention(query, value, weights: Sequence[np.ndarray], num_heads: int,
                         mask: Optional[np.ndarray] = None):
    """Reference MHA with Keras' weight layout [Wq, bq, Wk, bk, Wv, bv, Wo, bo].

    `mask` broadcasts to `[B, Tq, Tv]`. Rows with nothing visible output zeros.
    Returns (output [B, Tq, D], weights [B, H, Tq, Tv]).
    """
    wq, bq, wk, bk, wv, bv, wo, bo = (np.asarray(w, np.float64) for w in weights)
    query, value = np.asarray(query, np.float64), np.asarray(value, np.float64)
    assert wq.shape[1] == num_heads
    k = np.einsum("btd,dhk->bhtk", value, wk) + bk[None, :, None, :]
    v = np.einsum("btd,dhk->bhtk", value, wv) + bv[None, :, None, :]
    q = np.einsum("btd,dhk->bhtk", query, wq) + bq[None, :, None, :]
    full_mask = None
    if mask is not None:
        full_mask = np.broadcast_to(mask, (query.shape[0], query.shape[1], value.shape[1]))
        full_mask = full_mask[:, None]
    context, attn = attention(q, k, v, full_mask)
    out = np.einsum("bhtv,hvd->btd", context, wo) + bo
    if full_mask is not None:
        out = out * full_mask[:, 0].any(-1)[..., None]
    return out, attn


def layer_norm(x, gamma, beta, epsilon: float):
    x = np.asarray(x, np.float64)
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon) * gamma + beta


@contextlib.contextmanager
def mixed_precision(policy: str = "mixed_float16") -> Iterator[None]:
    """Run a block under a global Keras dtype policy, always restoring float32."""
    tf.keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")


def assert_config_round_trip(layer: tf.keras.layers.Layer, call: Callable) -> None:
    """`from_config(get_config())` rebuilt with copied weights gives identical outputs.

    `call(layer)` runs the layer on fixed inputs (building it) and returns the output.
    """
    expected = call(layer)
    config = layer.get_config()
    clone = type(layer).from_config(config)
    call(clone)  # build
    assert clone.get_config() == config
    assert len(clone.weights) == len(layer.weights)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(tf.nest.flatten(call(clone))[0].numpy(),
                                  tf.nest.flatten(expected)[0].numpy())


def assert_gradients_finite_and_nonzero(layer: tf.keras.layers.Layer, loss: Callable) -> None:
    """Every trainable weight gets a finite, not-all-zero gradient from `loss(layer)`."""
    with tf.GradientTape() as tape:
        value = loss(layer)
    assert layer.trainable_weights, "layer has no trainable weights to check"
    grads = tape.gradient(value, layer.trainable_weights)
    for weight, grad in zip(layer.trainable_weights, grads):
        assert grad is not None, f"no gradient for {weight.name}"
        grad = tf.convert_to_tensor(grad).numpy()
        assert np.all(np.isfinite(grad)), f"non-finite gradient for {weight.name}"
        assert np.any(grad != 0), f"all-zero gradient for {weight.name}"


def relu(x):
    return np.maximum(x, 0.0)


def expert_mlp(x, layers: Sequence[tuple], activation: Callable = relu) -> np.ndarray:
    """One expert: `activation(h W + b)` for each `(W [F, U], b [U])` of `layers`; () = identity."""
    hidden = np.asarray(x, np.float64)
    for kernel, bias in layers:
        hidden = activation(hidden @ np.asarray(kernel, np.float64) + np.asarray(bias, np.float64))
    return hidden


def _gated_mixture(x, experts: list, gate: Optional[tuple], activation: Callable):
    """(sum_e g_e expert_e(x_e) [B, U], g [B, E]); `experts` holds (input, layers) pairs."""
    outputs = np.stack([expert_mlp(inp, layers, activation) for inp, layers in experts], axis=1)
    if gate is None:  # a gate over one expert is 1
        gates = np.ones(outputs.shape[:2])
    else:
        kernel, bias = (np.asarray(w, np.float64) for w in gate)
        gates = masked_softmax(np.asarray(x, np.float64) @ kernel + bias, None)
    return np.einsum("be,beu->bu", gates, outputs), gates


def extraction_level(inputs, shared_experts: Sequence, task_experts: Sequence[Sequence],
                     task_gates: Sequence[Optional[tuple]], shared_gate: Optional[tuple] = None,
                     output_shared: bool = False, activation: Callable = relu) -> dict:
    """Reference PLE extraction level (MMoE when every task has no expert of its own), float64.

    Args:
        inputs: `[B, F]` that every expert and gate reads, or a list of `T + 1` `[B, F]`
            (task t's experts and gate read `inputs[t]`, the shared ones `inputs[-1]`).
        shared_experts: The shared experts, each a list of `(kernel [F, U], bias [U])` layers
            (an empty list is the identity).
        task_experts: For each task, its own experts in the same form.
        task_gates: For each task, `(kernel [F, n], bias [n])` over its own experts then the
            shared ones, or None when `n == 1` (the gate is 1).
        shared_gate: The shared gate over every task's experts then the shared ones (same
            form); read only with `output_shared=True`.
        output_shared: Also return "shared_output" and "shared_gates".
        activation: The experts' activation, on NumPy arrays.

    Returns:
        The layer's dict: "task_outputs" `[B, T, U]`, "task_gates" `[B, T, n]` (and
        "shared_output" `[B, U]`, "shared_gates" `[B, E]`).
    """
    num_tasks = len(task_experts)
    if isinstance(inputs, (list, tuple)):
        task_inputs, shared_input = list(inputs[:-1]), inputs[-1]
    else:
        task_inputs, shared_input = [inputs] * num_tasks, inputs
    shared = [(shared_input, expert) for expert in shared_experts]
    outputs, gates = zip(*(
        _gated_mixture(x, [(x, expert) for expert in own] + shared, gate, activation)
        for x, own, gate in zip(task_inputs, task_experts, task_gates)
    ))
    result = {"task_outputs": np.stack(outputs, axis=1), "task_gates": np.stack(gates, axis=1)}
    if output_shared:
        every = [(x, expert) for x, own in zip(task_inputs, task_experts) for expert in own] + shared
        result["shared_output"], result["shared_gates"] = _gated_mixture(
            shared_input, every, shared_gate, activation
        )
    return result
