"""tf-attnrec: attention-based recommenders as Keras layers and TFRS models.

Importing this package selects Keras 2 (`tf-keras`) for `tf.keras`, because TensorFlow
Recommenders does not support Keras 3, and registers every model family of the zoo, so
`create_model` and `list_models` see them all. Import it before TensorFlow.
"""

import os as _os

# TensorFlow's C++ start-up chatter (CUDA probing, CPU features) is noise for CLI and notebook
# users; a value the user set wins.
_USER_SET_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL" in _os.environ
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tf_attnrec._keras_guard import ensure_legacy_keras as _ensure_legacy_keras  # noqa: E402

_ensure_legacy_keras()

import tensorflow as _tf  # noqa: E402

# Keras' random layers (dropout, `RandomDraws`) then draw from `tf.random.Generator`s, whose
# state a training backup can save, so a resumed run draws what an uninterrupted one would
# (`tf_attnrec.backup`); stateful `tf.random` ops keep theirs where no checkpoint reaches.
_tf.keras.backend.experimental.enable_tf_random_generator()

from tf_attnrec._cuda_probe import quiet_cuda_probe as _quiet_cuda_probe  # noqa: E402

_quiet_cuda_probe(_USER_SET_LOG_LEVEL)

from tf_attnrec._autograph import skip_autograph_for as _skip_autograph_for  # noqa: E402

_skip_autograph_for(__name__)

from tf_attnrec import models as _models  # noqa: E402,F401  (registers every family)
from tf_attnrec.models.registry import create_model, get_model_spec, list_models  # noqa: E402
from tf_attnrec.runs import load_model, save_model  # noqa: E402
from tf_attnrec.tasks import (  # noqa: E402
    evaluate_ranker,
    evaluate_sequential,
    get_task,
    train_ranker,
    train_sequential,
)
from tf_attnrec.version import __version__  # noqa: E402

__all__ = [
    "__version__",
    "create_model",
    "evaluate_ranker",
    "evaluate_sequential",
    "get_model_spec",
    "get_task",
    "list_models",
    "load_model",
    "save_model",
    "train_ranker",
    "train_sequential",
]
