"""Tests for tf_attnrec.layers.experts: ExtractionLevel (PLE / MMoE) and MultiGateExperts."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tests.layers import _reference as ref
from tf_attnrec.layers.experts import ExtractionLevel, MultiGateExperts

B, F, T = 6, 5, 2
UNITS = (6, 3)
ACTIVATIONS = {"relu": ref.relu, "tanh": np.tanh}


def _inputs(seed: int = 0, count: int = 1, scale: float = 1.0):
    """One `[B, F]` input (count=1) or a list of `count` of them."""
    rng = np.random.default_rng(seed)
    tensors = [(scale * rng.normal(size=(B, F))).astype(np.float32) for _ in range(count)]
    return tensors[0] if count == 1 else tensors


def _seeded(seed: int = 1) -> tf.keras.initializers.Initializer:
    return tf.keras.initializers.GlorotUniform(seed=seed)


def _randomize(layer: tf.keras.layers.Layer, seed: int = 3) -> None:
    """Biases start at 0: give every weight random values so that each can fail the test."""
    rng = np.random.default_rng(seed)
    for variable in layer.weights:
        variable.assign(rng.normal(scale=0.5, size=variable.shape).astype(np.float32))


def _experts(group, count: int) -> list:
    """A stacked group (`(kernel [E, in, U], bias [E, U])` per layer) as `count` experts."""
    return [[(kernel.numpy()[e], bias.numpy()[e]) for kernel, bias in group] for e in range(count)]


def _gate(weights):
    return None if weights is None else tuple(w.numpy() for w in weights)


def _numpy_level(layer: ExtractionLevel, inputs, activation=ref.relu) -> dict:
    """`ref.extraction_level` with the layer's weights, unstacked into one list per expert."""
    return ref.extraction_level(
        inputs,
        shared_experts=_experts(layer.shared_expert_weights, layer.num_shared_experts),
        task_experts=[_experts(group, layer.num_task_experts) for group in layer.task_expert_weights],
        task_gates=[_gate(gate) for gate in layer.task_gate_weights],
        shared_gate=_gate(layer.shared_gate_weights),
        output_shared=layer.output_shared,
        activation=activation,
    )


def _assert_outputs_close(actual: dict, expected: dict, atol: float = 1e-5) -> None:
    assert set(actual) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(np.asarray(actual[key]), value, rtol=1e-5, atol=atol, err_msg=key)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("expert_units", [UNITS, ()], ids=["mlp", "identity"])
def test_mmoe_matches_numpy_reference(activation, expert_units):
    x = _inputs()
    mmoe = MultiGateExperts(num_tasks=T, num_shared_experts=3, expert_units=expert_units,
                            activation=activation, kernel_initializer=_seeded())
    mmoe(x)
    _randomize(mmoe)
    out = mmoe(x)
    assert set(out) == {"task_outputs", "task_gates"}
    assert out["task_outputs"].shape == (B, T, expert_units[-1] if expert_units else F)
    assert out["task_gates"].shape == (B, T, 3)
    [level] = mmoe.levels
    assert level.num_task_experts == 0 and not level.output_shared
    _assert_outputs_close(out, _numpy_level(level, x, ACTIVATIONS[activation]))


@pytest.mark.parametrize("list_inputs", [False, True], ids=["one-input", "list-inputs"])
def test_ple_level_matches_numpy_reference(list_inputs):
    x = _inputs(count=T + 1) if list_inputs else _inputs()
    level = ExtractionLevel(num_tasks=T, num_shared_experts=2, num_task_experts=2, expert_units=UNITS,
                            activation="tanh", output_shared=True, kernel_initializer=_seeded())
    level(x)
    _randomize(level)
    out = level(x)
    assert out["task_gates"].shape == (B, T, 4)
    assert out["shared_output"].shape == (B, UNITS[-1])
    assert out["shared_gates"].shape == (B, T * 2 + 2)
    _assert_outputs_close(out, _numpy_level(level, x, np.tanh))


@pytest.mark.parametrize("num_task_experts", [0, 2])
def test_gates_are_distributions(num_task_experts):
    level = ExtractionLevel(num_tasks=3, num_shared_experts=3, num_task_experts=num_task_experts,
                            expert_units=(4,), output_shared=True)
    out = level(_inputs(scale=5.0))
    for key in ("task_gates", "shared_gates"):
        gates = out[key].numpy()
        assert np.all(gates >= 0.0), key
        np.testing.assert_allclose(gates.sum(axis=-1), 1.0, rtol=0, atol=1e-6, err_msg=key)
        assert not np.allclose(gates, gates[..., :1]), f"{key}: the gates should not be uniform"


def test_shared_bottom_gate_is_exactly_one():
    x = _inputs()
    bottom = MultiGateExperts(num_tasks=3, num_shared_experts=1, num_task_experts=0, expert_units=UNITS)
    out = bottom(x)
    # One expert: no gate weights at all (they would get no gradient), just the expert.
    assert len(bottom.weights) == 2 * len(UNITS)
    np.testing.assert_array_equal(out["task_gates"].numpy(), np.ones((B, 3, 1)))
    [level] = bottom.levels
    expert = ref.expert_mlp(x, _experts(level.shared_expert_weights, 1)[0])
    for task in range(3):
        np.testing.assert_allclose(out["task_outputs"].numpy()[:, task], expert, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out["task_outputs"].numpy()[:, 1:], out["task_outputs"].numpy()[:, :1].repeat(2, 1))


def test_one_task_expert_each_is_that_expert():
    x = _inputs()
    level = ExtractionLevel(num_tasks=T, num_shared_experts=0, num_task_experts=1, expert_units=UNITS)
    out = level(x)
    np.testing.assert_array_equal(out["task_gates"].numpy(), np.ones((B, T, 1)))
    outputs = out["task_outputs"].numpy()
    for task, group in enumerate(level.task_expert_weights):
        np.testing.assert_allclose(outputs[:, task], ref.expert_mlp(x, _experts(group, 1)[0]), rtol=1e-5, atol=1e-6)
    assert not np.allclose(outputs[:, 0], outputs[:, 1])


def test_identity_experts_return_the_input():
    x = _inputs()
    level = ExtractionLevel(num_tasks=T, num_shared_experts=1, num_task_experts=0, expert_units=())
    out = level(x)
    assert not level.weights
    for task in range(T):
        np.testing.assert_array_equal(out["task_outputs"].numpy()[:, task], x)
    # With several identity experts the gates (summing to 1) mix copies of the input.
    stack = MultiGateExperts(num_tasks=T, num_levels=2, num_shared_experts=2, num_task_experts=1, expert_units=())
    np.testing.assert_allclose(stack(x)["task_outputs"].numpy(), np.stack([x] * T, axis=1), rtol=1e-6, atol=1e-6)


def test_task_never_reads_another_tasks_experts():
    x = _inputs(count=T + 1)
    level = ExtractionLevel(num_tasks=T, num_shared_experts=2, num_task_experts=2, expert_units=UNITS,
                            output_shared=True, kernel_initializer=_seeded())
    before = {key: value.numpy() for key, value in level(x).items()}
    rng = np.random.default_rng(5)
    for kernel, bias in level.task_expert_weights[1]:
        kernel.assign(rng.normal(size=kernel.shape).astype(np.float32))
        bias.assign(rng.normal(size=bias.shape).astype(np.float32))
    after = {key: value.numpy() for key, value in level(x).items()}
    np.testing.assert_array_equal(after["task_outputs"][:, 0], before["task_outputs"][:, 0])
    np.testing.assert_array_equal(after["task_gates"], before["task_gates"])
    assert not np.allclose(after["task_outputs"][:, 1], before["task_outputs"][:, 1], atol=1e-3)
    # The shared gate mixes every task's experts.
    assert not np.allclose(after["shared_output"], before["shared_output"], atol=1e-3)


def test_stack_equals_manual_composition_of_levels():
    x = _inputs()
    kwargs = {"num_tasks": T, "num_shared_experts": 2, "num_task_experts": 1, "expert_units": (4, 3),
              "activation": "tanh"}
    stack = MultiGateExperts(num_levels=3, kernel_initializer=_seeded(), **kwargs)
    stack(x)
    _randomize(stack)
    levels = [ExtractionLevel(output_shared=index < 2, **kwargs) for index in range(3)]
    inputs = x
    for level, trained in zip(levels, stack.levels):
        assert trained.output_shared == level.output_shared
        out = level(inputs)
        level.set_weights(trained.get_weights())
        out = level(inputs)
        if level.output_shared:
            inputs = [out["task_outputs"][:, task] for task in range(T)] + [out["shared_output"]]
    expected = stack(x)
    assert set(out) == set(expected) == {"task_outputs", "task_gates"}
    for key in expected:
        np.testing.assert_allclose(expected[key].numpy(), out[key].numpy(), rtol=1e-6, atol=1e-6, err_msg=key)
    # ... and the composition is the NumPy one, level by level (no level was skipped).
    numpy_inputs = x
    for level in stack.levels:
        numpy_out = _numpy_level(level, numpy_inputs, np.tanh)
        if level.output_shared:
            numpy_inputs = [numpy_out["task_outputs"][:, task] for task in range(T)] + [numpy_out["shared_output"]]
    _assert_outputs_close(expected, numpy_out)


def test_levels_and_experts_get_their_own_draws():
    stack = MultiGateExperts(num_tasks=T, num_levels=2, num_shared_experts=3, num_task_experts=0,
                             expert_units=(16,), kernel_initializer=_seeded())
    stack(tf.zeros([1, 16]))
    first, second = (level.shared_expert_weights[0][0].numpy() for level in stack.levels)
    assert not np.allclose(first, second)
    assert not np.allclose(first[0], first[1]) and not np.allclose(first[1], first[2])
    # Glorot limit of one [16, 16] Dense kernel, not of the stacked [3, 16, 16] shape (whose
    # fans are 3x larger, limit sqrt(6 / 96) = 0.25).
    limit = np.sqrt(6.0 / (16 + 16))
    assert np.abs(first).max() <= limit and np.abs(first).max() > 0.3


def test_dropout_only_in_training():
    x = _inputs()
    layer = MultiGateExperts(num_tasks=T, num_levels=2, num_shared_experts=2, num_task_experts=1,
                             expert_units=(8,), dropout=0.5)
    inference = layer(x)["task_outputs"].numpy()
    np.testing.assert_array_equal(layer(x, training=False)["task_outputs"].numpy(), inference)
    no_dropout = MultiGateExperts.from_config({**layer.get_config(), "dropout": 0.0})
    no_dropout(x)
    no_dropout.set_weights(layer.get_weights())
    np.testing.assert_allclose(no_dropout(x)["task_outputs"].numpy(), inference, rtol=1e-6, atol=1e-6)
    training = layer(x, training=True)["task_outputs"].numpy()
    assert not np.allclose(training, inference, atol=1e-3)
    assert not np.allclose(layer(x, training=True)["task_outputs"].numpy(), training, atol=1e-3)


def test_bad_inputs_raise_clear_errors():
    level = ExtractionLevel(num_tasks=T, expert_units=(4,))
    with pytest.raises(ValueError, match=r"list of num_tasks \+ 1 = 3 tensors .*got a list of 2 tensors"):
        level(_inputs(count=2))
    level(_inputs())  # built with one input; calls with a list are still checked
    with pytest.raises(ValueError, match="got a list of 4 tensors"):
        level(_inputs(count=4))
    with pytest.raises(ValueError, match="got a dict"):
        ExtractionLevel(num_tasks=T)({"a": _inputs(), "b": _inputs()})
    with pytest.raises(ValueError, match=r"\[batch, features\].*got \(6, 1, 5\)"):
        ExtractionLevel(num_tasks=T)(_inputs()[:, None, :])
    with pytest.raises(ValueError, match=r"same number of features; got \[5, 5, 3\]"):
        ExtractionLevel(num_tasks=T)(_inputs(count=2) + [_inputs()[:, :3]])
    with pytest.raises(ValueError, match="MultiGateExperts expects `inputs` as one tensor"):
        MultiGateExperts(num_tasks=T)(_inputs(count=T + 1))


@pytest.mark.parametrize("cls", [ExtractionLevel, MultiGateExperts])
@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_tasks": 0}, r"`num_tasks` must be a positive int; got 0"),
        ({"num_tasks": True}, r"`num_tasks` must be a positive int; got True"),
        ({"num_tasks": T, "num_shared_experts": -1}, r"`num_shared_experts` must be an int >= 0 .*got -1"),
        ({"num_tasks": T, "num_task_experts": 1.5}, r"`num_task_experts` must be an int >= 0 .*got 1.5"),
        ({"num_tasks": T, "num_shared_experts": 0, "num_task_experts": 0},
         r"`num_shared_experts` \+ `num_task_experts` must be >= 1; got 0 \+ 0"),
        ({"num_tasks": T, "expert_units": (8, 0)}, r"`expert_units` must be a sequence of positive ints.*got \(8, 0\)"),
        ({"num_tasks": T, "expert_units": 64}, r"`expert_units` must be a sequence.*got 64"),
        ({"num_tasks": T, "expert_units": "64"}, r"`expert_units` must be a sequence.*got '64'"),
        ({"num_tasks": T, "dropout": 1.0}, r"`dropout` must be a rate in \[0, 1\); got 1.0"),
        ({"num_tasks": T, "dropout": -0.1}, r"`dropout` must be a rate in \[0, 1\); got -0.1"),
        ({"num_tasks": T, "activation": "not-an-activation"}, r"unknown `activation` 'not-an-activation'"),
        ({"num_tasks": T, "kernel_initializer": "nope"}, r"unknown `kernel_initializer` 'nope'"),
    ],
)
def test_bad_constructor_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=f"^{cls.__name__}: .*{match}"):
        cls(**kwargs)


@pytest.mark.parametrize(
    "cls,kwargs,match",
    [
        (ExtractionLevel, {"output_shared": "yes"}, r"`output_shared` must be a bool; got 'yes'"),
        (MultiGateExperts, {"num_levels": 0}, r"`num_levels` must be a positive int; got 0"),
    ],
)
def test_bad_class_specific_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(num_tasks=T, **kwargs)


@pytest.mark.parametrize(
    "layer,inputs",
    [
        (ExtractionLevel(num_tasks=T, num_shared_experts=2, num_task_experts=1, expert_units=(4,),
                         activation=None, dropout=0.1, output_shared=True, kernel_initializer=_seeded()),
         _inputs(count=T + 1)),
        (MultiGateExperts(num_tasks=T, num_levels=2, num_shared_experts=1, num_task_experts=2, expert_units=(),
                          activation="tanh", kernel_initializer=_seeded()), _inputs()),
    ],
    ids=["level", "stack"],
)
def test_config_round_trip(layer, inputs):
    layer(inputs)
    _randomize(layer)
    expected = {key: value.numpy() for key, value in layer(inputs).items()}
    config = layer.get_config()
    assert tf.keras.utils.get_registered_name(type(layer)) == f"tf_attnrec>{type(layer).__name__}"
    clone = tf.keras.layers.deserialize(tf.keras.layers.serialize(layer))
    assert type(clone) is type(layer) and clone.get_config() == config
    clone(inputs)
    assert len(clone.weights) == len(layer.weights)
    clone.set_weights(layer.get_weights())
    actual = clone(inputs)
    assert set(actual) == set(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(actual[key].numpy(), value, err_msg=key)
    ref.assert_config_round_trip(layer, lambda current: current(inputs))


@pytest.mark.parametrize("scale", [0.0, 1e4])
def test_finite_for_zero_and_large_inputs(scale):
    x = _inputs() * scale
    x[0] = 0.0  # an all-zero row in either case
    level = ExtractionLevel(num_tasks=T, num_shared_experts=2, num_task_experts=2, expert_units=(4,),
                            output_shared=True, kernel_initializer=_seeded())
    stack = MultiGateExperts(num_tasks=T, num_levels=2, num_shared_experts=2, num_task_experts=1,
                             expert_units=(4,), kernel_initializer=_seeded())
    for out in (level(x), stack(x)):
        for key, value in out.items():
            assert np.all(np.isfinite(value.numpy())), key
        for key in ("task_gates", "shared_gates"):
            if key in out:
                np.testing.assert_allclose(out[key].numpy().sum(-1), 1.0, rtol=0, atol=1e-6, err_msg=key)


def test_gradients_finite_and_nonzero():
    x = _inputs()
    direction = np.random.default_rng(2).normal(size=(B, T, 4)).astype(np.float32)

    level = ExtractionLevel(num_tasks=T, num_shared_experts=2, num_task_experts=2, expert_units=(5, 4),
                            activation="tanh", output_shared=True, kernel_initializer=_seeded())

    def level_loss(layer):
        out = layer(x, training=True)
        return tf.reduce_sum(out["task_outputs"] * direction) + tf.reduce_sum(out["shared_output"] ** 2)

    ref.assert_gradients_finite_and_nonzero(level, level_loss)
    stack = MultiGateExperts(num_tasks=T, num_levels=2, num_shared_experts=2, num_task_experts=1,
                             expert_units=(5, 4), activation="tanh", kernel_initializer=_seeded())
    ref.assert_gradients_finite_and_nonzero(
        stack, lambda layer: tf.reduce_sum(layer(x, training=True)["task_outputs"] * direction)
    )
    assert len(stack.trainable_weights) == 2 * (2 * 2 * (1 + T) + 2 * T) + 2  # experts, task gates, shared gate


def test_mixed_float16():
    x = _inputs()
    with ref.mixed_precision():
        stack = MultiGateExperts(num_tasks=T, num_levels=2, num_shared_experts=2, num_task_experts=1, expert_units=(4,))
        with tf.GradientTape() as tape:
            out = stack(tf.cast(x, tf.float16), training=True)
            loss = tf.reduce_sum(tf.cast(out["task_outputs"], tf.float32))
    assert out["task_outputs"].dtype == tf.float16
    assert all(variable.dtype == tf.float32 for variable in stack.weights)
    np.testing.assert_allclose(out["task_gates"].numpy().astype(np.float32).sum(-1), 1.0, atol=2e-3)
    grads = tape.gradient(loss, stack.trainable_weights)
    assert all(grad is not None and np.all(np.isfinite(grad.numpy())) for grad in grads)
