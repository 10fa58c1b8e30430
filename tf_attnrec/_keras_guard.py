"""Make sure `tf.keras` is Keras 2 (tf-keras) before anything else in the package runs.

TensorFlow Recommenders 0.7.7 only works with Keras 2. From TensorFlow 2.16 on, `tf.keras`
is Keras 3 unless the environment variable ``TF_USE_LEGACY_KERAS=1`` is set *before*
TensorFlow decides which Keras to expose. This module sets it and verifies the outcome.
"""

from __future__ import annotations

import os
import sys

_FIX = (
    "tf_attnrec needs Keras 2 (the `tf-keras` package) because TensorFlow Recommenders does "
    "not support Keras 3, but `tf.keras` in this process already resolved to Keras {version}. "
    "Import tf_attnrec before TensorFlow, or set the environment variable TF_USE_LEGACY_KERAS=1 "
    "before starting Python (e.g. `export TF_USE_LEGACY_KERAS=1`, or "
    "`os.environ['TF_USE_LEGACY_KERAS'] = '1'` as the first line of a notebook) and restart "
    "the process. Also check that `pip install tf-keras~=2.20.0` succeeded."
)


def ensure_legacy_keras() -> None:
    """Select Keras 2 for `tf.keras`, or raise ImportError if it is too late to do so.

    Raises:
        ImportError: TensorFlow was imported earlier with Keras 3 behind `tf.keras`.
    """
    tensorflow_loaded = "tensorflow" in sys.modules
    if not tensorflow_loaded:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf  # noqa: E402  (must come after the environment variable)

    keras_module = tf.keras.__name__  # e.g. "tf_keras.api._v2.keras" or "keras._tf_keras.keras"
    if not keras_module.startswith("tf_keras"):
        import keras  # the package that `tf.keras` resolved to

        raise ImportError(_FIX.format(version=getattr(keras, "__version__", keras_module)))
