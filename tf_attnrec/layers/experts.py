"""Multi-gate mixtures of experts for multi-task recommenders: MMoE and PLE.

`ExtractionLevel` is one level of the "customized gate control" of Progressive Layered
Extraction (Tang et al., RecSys 2020, "Progressive Layered Extraction (PLE): A Novel
Multi-Task Learning (MTL) Model for Personalized Recommendations"): shared experts plus
experts of each task's own, and one softmax gate per task over its own and the shared experts.
MMoE (Ma et al., KDD 2018, "Modeling Task Relationships in Multi-task Learning with
Multi-gate Mixture-of-Experts") is the level without task experts, and a shared bottom the
level with one shared expert only. `MultiGateExperts` stacks levels as PLE does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import tensorflow as tf

from tf_attnrec.layers.checks import (check_positive_int, get_activation, get_initializer, is_positive_int,
                                      is_several_inputs)
from tf_attnrec.layers.config import ConfigFromAttributes
from tf_attnrec.layers.multi_head_attention import clone_initializer
from tf_attnrec.layers.pooling import masked_softmax

# Seed offset between the levels of a `MultiGateExperts`: each level clones its initializer
# once per weight with offsets 0, 1, 2, ..., so a seeded initializer must not give two levels
# the same seeds (and so the same values wherever their shapes agree).
_LEVEL_SEED_STRIDE = 10_000


def _check_count(owner: str, name: str, value: Any, meaning: str) -> int:
    """An expert count that may be 0 (`is_positive_int(value, 0)`), else a ValueError."""
    if not is_positive_int(value, 0):
        raise ValueError(f"{owner}: `{name}` must be an int >= 0 ({meaning}); got {value!r}.")
    return value


def _check_expert_arguments(
    owner: str,
    num_tasks: Any,
    num_shared_experts: Any,
    num_task_experts: Any,
    expert_units: Any,
    dropout: Any,
) -> tuple[int, ...]:
    """Checks the arguments `ExtractionLevel` and `MultiGateExperts` share; returns `expert_units`."""
    check_positive_int(owner, "`num_tasks`", num_tasks)
    _check_count(owner, "num_shared_experts", num_shared_experts, "experts every task shares")
    _check_count(owner, "num_task_experts", num_task_experts, "experts of each task's own; 0 = MMoE")
    if num_shared_experts + num_task_experts < 1:
        raise ValueError(
            f"{owner}: every task's gate needs at least one expert, so `num_shared_experts` + "
            f"`num_task_experts` must be >= 1; got {num_shared_experts} + {num_task_experts}."
        )
    if (
        isinstance(expert_units, (str, bytes))
        or not isinstance(expert_units, Sequence)
        or not all(is_positive_int(units) for units in expert_units)
    ):
        raise ValueError(
            f"{owner}: `expert_units` must be a sequence of positive ints (the sizes of each "
            f"expert's layers, e.g. (64,); () makes every expert the identity); got "
            f"{expert_units!r}."
        )
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"{owner}: `dropout` must be a rate in [0, 1); got {dropout!r}.")
    return tuple(expert_units)



@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class ExtractionLevel(ConfigFromAttributes, tf.keras.layers.Layer):
    """One PLE extraction level: shared and task-specific experts mixed by per-task gates.

    Every expert is an MLP (`Dense(units, activation)` for each entry of `expert_units`,
    dropout after each layer in training), or the identity when `expert_units` is empty. The
    experts come in groups: `num_shared_experts` shared ones and, for each task,
    `num_task_experts` of its own. Task `t`'s gate is `softmax(W_t x_t + b_t)` over task `t`'s
    own experts followed by the shared experts (`n = num_task_experts + num_shared_experts`),
    and task `t`'s output is the gate-weighted sum of those experts' outputs: task `t` never
    reads another task's experts. With `output_shared=True` a shared gate, over every task's
    experts (in task order) then the shared experts, also mixes a shared output, which the
    next level's shared experts read.

    The gates are softmax-normalised in float32, so each row sums to 1 even under a
    mixed_float16 policy. A gate over a single expert has no weights: it is exactly 1.

    Settings:

    * MMoE: `num_task_experts=0` (every gate mixes the shared experts).
    * Shared bottom: `num_shared_experts=1, num_task_experts=0` (every gate is 1).

    Args:
        num_tasks: Number of tasks `T` (one gate, and one output, per task).
        num_shared_experts: Experts every task's gate mixes (>= 0).
        num_task_experts: Experts of each task's own (>= 0; 0 = MMoE). Shared plus task
            experts must be at least one.
        expert_units: Sizes of each expert's layers; the output size `U` is the last one.
            `()` makes every expert the identity (`U` = the input size `F`).
        activation: Activation of every expert layer (default "relu"); None or any
            tf.keras activation.
        dropout: Dropout rate after each expert layer, in training only.
        output_shared: If True, also mix and return the shared output and its gate.
        kernel_initializer: Initializer of the expert and gate kernels (a fresh draw for
            each expert, with its own seed if seeded). Biases start at zero.
        **kwargs: Standard `tf.keras.layers.Layer` arguments (name, dtype, ...).

    Call arguments:
        inputs: One tensor `[B, F]` that every expert and gate reads (a first level), or a
            list of `T + 1` tensors `[B, F]`: task `t`'s experts and gate read `inputs[t]`,
            the shared experts and the shared gate read `inputs[-1]` (a later level, fed
            with the previous level's task outputs and shared output).
        training: Python bool; dropout is applied only when True.

    Returns:
        A dict with `"task_outputs"` `[B, T, U]` and `"task_gates"` `[B, T, n]` (task `t`'s
        weights of its own experts, then the shared ones); with `output_shared=True` also
        `"shared_output"` `[B, U]` and `"shared_gates"`
        `[B, T * num_task_experts + num_shared_experts]`.

    Example:
        >>> level = ExtractionLevel(num_tasks=2, num_shared_experts=2, num_task_experts=1,
        ...                         expert_units=(16,), output_shared=True)
        >>> out = level(tf.random.normal([4, 8]))
        >>> out["task_outputs"].shape, out["task_gates"].shape, out["shared_gates"].shape
        (TensorShape([4, 2, 16]), TensorShape([4, 2, 3]), TensorShape([4, 4]))
    """

    config_keys = (
        "num_tasks", "num_shared_experts", "num_task_experts", "expert_units", "activation",
        "dropout", "output_shared", "kernel_initializer",
    )

    def __init__(
        self,
        num_tasks: int,
        num_shared_experts: int = 4,
        num_task_experts: int = 0,
        expert_units: Sequence[int] = (64,),
        activation: Any = "relu",
        dropout: float = 0.0,
        output_shared: bool = False,
        kernel_initializer: Any = "glorot_uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.expert_units = _check_expert_arguments(
            "ExtractionLevel", num_tasks, num_shared_experts, num_task_experts, expert_units, dropout
        )
        if not isinstance(output_shared, bool):
            raise ValueError(f"ExtractionLevel: `output_shared` must be a bool; got {output_shared!r}.")
        self.num_tasks = num_tasks
        self.num_shared_experts = num_shared_experts
        self.num_task_experts = num_task_experts
        self.activation = get_activation("ExtractionLevel", activation, "relu")
        self.dropout = float(dropout)
        self.output_shared = output_shared
        self.kernel_initializer = get_initializer("ExtractionLevel", kernel_initializer)
        self._dropout = tf.keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="dropout")

    @property
    def num_gate_experts(self) -> int:
        """`n`: the experts each task's gate mixes (its own, then the shared ones)."""
        return self.num_task_experts + self.num_shared_experts

    @property
    def num_experts(self) -> int:
        """All experts of the level, which the shared gate mixes."""
        return self.num_tasks * self.num_task_experts + self.num_shared_experts

    def _feature_dim(self, shape: Any, argument: str) -> int:
        shape = tf.TensorShape(shape)
        if shape.rank != 2 or shape[-1] is None:
            raise ValueError(
                f"ExtractionLevel expects {argument} of shape [batch, features] with known "
                f"features; got {shape}."
            )
        return int(shape[-1])

    def _wrong_structure(self, received: str) -> ValueError:
        return ValueError(
            f"ExtractionLevel(num_tasks={self.num_tasks}) expects `inputs` as one tensor "
            f"[batch, features] or a list of num_tasks + 1 = {self.num_tasks + 1} tensors "
            f"[batch, features] (one per task, then the shared input); got {received}."
        )

    def build(self, input_shape: Any) -> None:
        if isinstance(input_shape, dict):
            raise self._wrong_structure(f"a dict with keys {sorted(input_shape)}")
        if is_several_inputs(input_shape):
            if len(input_shape) != self.num_tasks + 1:
                raise self._wrong_structure(f"a list of {len(input_shape)} tensors")
            dims = [
                self._feature_dim(shape, f"`inputs[{index}]`") for index, shape in enumerate(input_shape)
            ]
            if len(set(dims)) != 1:
                raise ValueError(
                    "ExtractionLevel expects the task and shared inputs to have the same number "
                    f"of features; got {dims}."
                )
            features = dims[0]
        else:
            features = self._feature_dim(input_shape, "`inputs`")

        self._seed_offset = 0
        self.shared_expert_weights = self._expert_group("shared_expert", self.num_shared_experts, features)
        self.task_expert_weights = tuple(
            self._expert_group(f"task_{task}_expert", self.num_task_experts, features)
            for task in range(self.num_tasks)
        )
        self.task_gate_weights = tuple(
            self._gate(f"task_{task}_gate", self.num_gate_experts, features)
            for task in range(self.num_tasks)
        )
        self.shared_gate_weights = (
            self._gate("shared_gate", self.num_experts, features) if self.output_shared else None
        )
        super().build(input_shape)

    def _next_initializer(self) -> tf.keras.initializers.Initializer:
        # A fresh instance per draw: one instance called twice returns the same values.
        initializer = clone_initializer(self.kernel_initializer, self._seed_offset)
        self._seed_offset += 1
        return initializer

    def _expert_group(
        self, name: str, count: int, features: int
    ) -> tuple[tuple[tf.Variable, tf.Variable], ...]:
        """`(kernel [count, in, units], bias [count, units])` for each expert layer; () if none."""
        if count == 0:
            return ()
        weights = []
        fan_in = features
        for index, units in enumerate(self.expert_units):
            # Each expert's [in, units] slice is drawn on its own: on the stacked rank-3
            # shape, variance scaling would count `count * in` and `count * units` as the
            # fans, shrinking every expert's weights compared with a Dense layer's.
            draws = [self._next_initializer() for _ in range(count)]

            def initializer(shape: Any, dtype: Any = None, draws: list = draws, **kwargs: Any) -> tf.Tensor:
                return tf.stack([draw(shape[1:], dtype=dtype) for draw in draws])

            kernel = self.add_weight(
                name=f"{name}_kernel_{index}", shape=(count, fan_in, units),
                initializer=initializer, trainable=True,
            )
            bias = self.add_weight(
                name=f"{name}_bias_{index}", shape=(count, units), initializer="zeros", trainable=True
            )
            weights.append((kernel, bias))
            fan_in = units
        return tuple(weights)

    def _gate(self, name: str, count: int, features: int) -> Optional[tuple[tf.Variable, tf.Variable]]:
        """`(kernel [features, count], bias [count])`, or None for one expert (the gate is 1)."""
        if count == 1:
            # softmax over one logit is 1 whatever the weights: they would never be trained.
            return None
        kernel = self.add_weight(
            name=f"{name}_kernel", shape=(features, count),
            initializer=self._next_initializer(), trainable=True,
        )
        bias = self.add_weight(name=f"{name}_bias", shape=(count,), initializer="zeros", trainable=True)
        return kernel, bias

    def _split_inputs(self, inputs: Any) -> tuple[list[tf.Tensor], tf.Tensor]:
        """`([task inputs], shared input)` from one tensor or a list of `num_tasks + 1`."""
        if isinstance(inputs, dict):
            raise self._wrong_structure(f"a dict with keys {sorted(inputs)}")
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != self.num_tasks + 1:
                raise self._wrong_structure(f"a list of {len(inputs)} tensors")
            tensors = [tf.convert_to_tensor(tensor) for tensor in inputs]
            for index, tensor in enumerate(tensors):
                self._feature_dim(tensor.shape, f"`inputs[{index}]`")
            return tensors[:-1], tensors[-1]
        inputs = tf.convert_to_tensor(inputs)
        self._feature_dim(inputs.shape, "`inputs`")
        return [inputs] * self.num_tasks, inputs

    def _experts(
        self, inputs: tf.Tensor, weights: Sequence[tuple[tf.Variable, tf.Variable]], count: int,
        training: Optional[bool],
    ) -> tf.Tensor:
        """The outputs `[B, count, U]` of one group of experts that all read `inputs [B, F]`."""
        if not weights:  # identity experts
            return tf.tile(inputs[:, tf.newaxis, :], [1, count, 1])
        hidden = None
        for kernel, bias in weights:
            if hidden is None:
                hidden = tf.einsum("bf,efu->beu", inputs, kernel)
            else:
                hidden = tf.einsum("bef,efu->beu", hidden, kernel)
            hidden = self._dropout(self.activation(hidden + bias), training=training)
        return hidden

    @staticmethod
    def _mix(
        inputs: tf.Tensor, experts: tf.Tensor, gate: Optional[tuple[tf.Variable, tf.Variable]]
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """`(sum_e g_e experts[:, e] [B, U], g [B, E])` with `g = softmax(inputs W + b)`."""
        if gate is None:
            gates = tf.ones_like(experts[:, :, 0])
        else:
            kernel, bias = gate
            gates = masked_softmax(tf.matmul(inputs, kernel) + bias, None)
        return tf.einsum("be,beu->bu", tf.cast(gates, experts.dtype), experts), gates

    def call(self, inputs: Any, training: Optional[bool] = None) -> dict[str, tf.Tensor]:
        task_inputs, shared_input = self._split_inputs(inputs)
        groups = []  # [B, experts, U] for each task with experts of its own
        if self.num_task_experts:
            groups = [
                self._experts(task_input, weights, self.num_task_experts, training)
                for task_input, weights in zip(task_inputs, self.task_expert_weights)
            ]
        shared = (
            [self._experts(shared_input, self.shared_expert_weights, self.num_shared_experts, training)]
            if self.num_shared_experts
            else []
        )
        task_outputs, task_gates = [], []
        for task, (task_input, gate) in enumerate(zip(task_inputs, self.task_gate_weights)):
            experts = tf.concat(groups[task:task + 1] + shared, axis=1)
            output, gates = self._mix(task_input, experts, gate)
            task_outputs.append(output)
            task_gates.append(gates)
        result = {
            "task_outputs": tf.stack(task_outputs, axis=1),
            "task_gates": tf.stack(task_gates, axis=1),
        }
        if self.output_shared:
            experts = tf.concat(groups + shared, axis=1)
            result["shared_output"], result["shared_gates"] = self._mix(
                shared_input, experts, self.shared_gate_weights
            )
        return result


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class MultiGateExperts(ConfigFromAttributes, tf.keras.layers.Layer):
    """Multi-gate mixture of experts for multi-task models: MMoE, PLE or a shared bottom.

    A stack of `num_levels` `ExtractionLevel`s, PLE's progressive extraction: the first level
    reads the input `[B, F]`; every level but the last also mixes a shared output, and level
    `l + 1` reads level `l`'s task outputs (task `t`'s experts and gate read task `t`'s) and
    its shared output (for the shared experts). The last level mixes the task outputs only.

    Settings:

    =============  =====================================================================
    MMoE           `num_levels=1, num_task_experts=0` (each task's gate mixes the
                   `num_shared_experts` shared experts; Ma et al., KDD 2018)
    PLE            `num_task_experts >= 1`, any `num_levels` (Tang et al., RecSys 2020;
                   `num_levels=1` is CGC, the single-level model of the paper)
    Shared bottom  `num_shared_experts=1, num_task_experts=0` (one expert every task
                   reads; the gates are identically 1)
    =============  =====================================================================

    Args:
        num_tasks: Number of tasks `T`.
        num_levels: Number of extraction levels (>= 1).
        num_shared_experts: Shared experts of each level (>= 0).
        num_task_experts: Experts of each task's own in each level (>= 0; 0 = MMoE).
        expert_units: Sizes of each expert's layers (every level); `U` is the last one, or
            the input size `F` when empty (identity experts).
        activation: Activation of every expert layer (default "relu").
        dropout: Dropout rate after each expert layer, in training only.
        kernel_initializer: Initializer of the expert and gate kernels (each level, and each
            weight in it, gets its own draw, and its own seed if seeded).
        **kwargs: Standard `tf.keras.layers.Layer` arguments (name, dtype, ...).

    Call arguments:
        inputs: One tensor `[B, F]`, e.g. the concatenated feature embeddings.
        training: Python bool; dropout is applied only when True.

    Returns:
        A dict of the last level's `"task_outputs"` `[B, T, U]` (feed `[:, t]` to task `t`'s
        tower) and `"task_gates"` `[B, T, num_task_experts + num_shared_experts]`: the weights
        with which each task mixes its own experts (first) and the shared experts (then),
        i.e. which experts each task attends to.

    Example:
        >>> mmoe = MultiGateExperts(num_tasks=2, num_shared_experts=4, expert_units=(16,))
        >>> out = mmoe(tf.random.normal([3, 8]))
        >>> out["task_outputs"].shape, out["task_gates"].shape
        (TensorShape([3, 2, 16]), TensorShape([3, 2, 4]))
    """

    config_keys = (
        "num_tasks", "num_levels", "num_shared_experts", "num_task_experts", "expert_units",
        "activation", "dropout", "kernel_initializer",
    )

    def __init__(
        self,
        num_tasks: int,
        num_levels: int = 1,
        num_shared_experts: int = 4,
        num_task_experts: int = 0,
        expert_units: Sequence[int] = (64,),
        activation: Any = "relu",
        dropout: float = 0.0,
        kernel_initializer: Any = "glorot_uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.expert_units = _check_expert_arguments(
            "MultiGateExperts", num_tasks, num_shared_experts, num_task_experts, expert_units, dropout
        )
        self.num_levels = check_positive_int("MultiGateExperts", "`num_levels`", num_levels)
        self.num_tasks = num_tasks
        self.num_shared_experts = num_shared_experts
        self.num_task_experts = num_task_experts
        self.activation = get_activation("MultiGateExperts", activation, "relu")
        self.dropout = float(dropout)
        self.kernel_initializer = get_initializer("MultiGateExperts", kernel_initializer)
        self.levels = [
            ExtractionLevel(
                num_tasks=num_tasks,
                num_shared_experts=num_shared_experts,
                num_task_experts=num_task_experts,
                expert_units=self.expert_units,
                activation=self.activation,
                dropout=self.dropout,
                output_shared=level < num_levels - 1,
                kernel_initializer=clone_initializer(self.kernel_initializer, level * _LEVEL_SEED_STRIDE),
                name=f"level_{level}",
                dtype=self.dtype_policy,
            )
            for level in range(num_levels)
        ]

    def call(self, inputs: Any, training: Optional[bool] = None) -> dict[str, tf.Tensor]:
        if isinstance(inputs, (list, tuple, dict)):
            raise ValueError(
                "MultiGateExperts expects `inputs` as one tensor [batch, features]; got a "
                f"{type(inputs).__name__} of {len(inputs)}. (ExtractionLevel takes the per-task "
                "list a later level reads.)"
            )
        level_inputs: Any = inputs
        for level in self.levels:
            outputs = level(level_inputs, training=training)
            if level.output_shared:
                task_outputs = outputs["task_outputs"]
                level_inputs = [task_outputs[:, task] for task in range(self.num_tasks)]
                level_inputs.append(outputs["shared_output"])
        return {"task_outputs": outputs["task_outputs"], "task_gates": outputs["task_gates"]}
