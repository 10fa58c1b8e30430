"""tf-attnrec: attention-based recommenders as Keras layers and TFRS models.

Importing this package selects Keras 2 (`tf-keras`) for `tf.keras`, because TensorFlow
Recommenders does not support Keras 3. Import it before TensorFlow.
"""

from tf_attnrec._keras_guard import ensure_legacy_keras as _ensure_legacy_keras

_ensure_legacy_keras()

from tf_attnrec.version import __version__  # noqa: E402

__all__ = ["__version__"]
