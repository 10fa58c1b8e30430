"""`ConfigFromAttributes`: `get_config` built from the constructor arguments a layer keeps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf


def serialize_argument(value: Any) -> Any:
    """A constructor argument as it goes into a Keras config (plain, JSON-friendly values).

    Keras objects are serialized with their own `serialize` function, so that the layer's
    `from_config` (which calls `tf.keras.initializers.get` & co.) rebuilds them: initializers,
    regularizers and constraints; any other callable is taken to be an activation. Sequences
    (tuples) become lists and mappings plain dicts (copies); everything else is returned as
    it is.
    """
    if isinstance(value, tf.keras.initializers.Initializer):
        return tf.keras.initializers.serialize(value)
    if isinstance(value, tf.keras.regularizers.Regularizer):
        return tf.keras.regularizers.serialize(value)
    if isinstance(value, tf.keras.constraints.Constraint):
        return tf.keras.constraints.serialize(value)
    if callable(value):
        return tf.keras.activations.serialize(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    if isinstance(value, Mapping):  # also Keras' tracking wrapper of a dict attribute
        return dict(value)
    return value


class ConfigFromAttributes:
    """Mixin for Keras layers whose constructor arguments are kept as same-named attributes.

    A class lists those arguments in `config_keys`; `get_config` returns the base layer's
    config (name, dtype, trainable, ...) plus `{key: getattr(self, key)}` for each key, passed
    through `serialize_argument`, so `cls.from_config(layer.get_config())` rebuilds the layer.
    An argument kept under another name (e.g. one that would shadow a `Layer` property) is
    added by the class's own `get_config` on top of `super().get_config()`.

    Put the mixin before the Keras base class: `class Pooling(ConfigFromAttributes, Layer)`.
    A subclass extends its parent's keys: `config_keys = (*Parent.config_keys, "units")`.
    """

    #: The constructor arguments that `get_config` returns, in that order.
    config_keys: tuple[str, ...] = ()

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({key: serialize_argument(getattr(self, key)) for key in self.config_keys})
        return config
