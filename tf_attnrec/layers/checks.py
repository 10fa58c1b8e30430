"""Checks of constructor arguments shared by the layers and models."""

from __future__ import annotations

from typing import Any

import tensorflow as tf


def is_positive_int(value: Any, minimum: int = 1) -> bool:
    """True for an int `>= minimum` (a bool is not taken for an int)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def check_positive_int(owner: str, name: str, value: Any, minimum: int = 1) -> int:
    """Returns `value` if `is_positive_int(value, minimum)`, else raises a ValueError.

    Args:
        owner: Who checks, the start of the message (e.g. the class name).
        name: The argument as the message names it (e.g. "num_blocks" or "`units`").
        value: The argument.
        minimum: The smallest accepted value (0 for a count that may be zero).

    Raises:
        ValueError: "<owner>: <name> must be a positive int; got <value>."
    """
    if not is_positive_int(value, minimum):
        raise ValueError(f"{owner}: {name} must be a positive int; got {value!r}.")
    return value


def get_activation(owner: str, value: Any, example: str = "relu") -> Any:
    """`tf.keras.activations.get(value)`, or a ValueError that names `owner` and the argument."""
    try:
        return tf.keras.activations.get(value)
    except ValueError as error:
        raise ValueError(
            f"{owner}: unknown `activation` {value!r}; use None or a tf.keras activation name such as {example!r}."
        ) from error


def get_initializer(owner: str, value: Any, name: str = "kernel_initializer") -> Any:
    """`tf.keras.initializers.get(value)`, or a ValueError that names `owner` and `name`."""
    try:
        return tf.keras.initializers.get(value)
    except ValueError as error:
        raise ValueError(f"{owner}: unknown `{name}` {value!r}.") from error


def is_several_inputs(inputs: Any) -> bool:
    """True for a list / tuple of tensors or of their shapes, False for one tensor or one shape.

    A layer's `build` receives one input's shape as a `TensorShape` or a plain tuple such as
    `(None, 8)`, and several inputs' shapes as a list of those.
    """
    if isinstance(inputs, tf.TensorShape) or not isinstance(inputs, (tuple, list)):
        return False
    return not all(d is None or isinstance(d, int) for d in inputs)
