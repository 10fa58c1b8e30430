"""Keeps AutoGraph from rewriting this package's code inside traced functions.

Inside a traced function (`Model.fit`'s train step, a serving signature), AutoGraph converts
every Python function it reaches, each layer's `call` and each loss, by parsing and
regenerating its source: 4 to 6 s at the start of every process that trains, evaluates or
exports. This package's graph code needs no conversion. Its control flow is static Python
(shapes, config) or TensorFlow ops (`tf.where`, `tf.cond`), and a tensor used as a Python bool
fails loudly at trace time, so a function that did need conversion could not go unnoticed. So
the package joins AutoGraph's do-not-convert rules, as TensorFlow itself, NumPy and Keras do.
A function that this package wraps in `tf.function` is still converted: AutoGraph ignores the
rules for a function it is explicitly asked to trace.

The rules live in a private module; TensorFlow is pinned (`~=2.20.0`), and if the module
moves, the package only loses the speed-up.
"""

from __future__ import annotations


def skip_autograph_for(package: str) -> bool:
    """Adds `package` to AutoGraph's do-not-convert rules; False if TensorFlow lacks them."""
    try:
        from tensorflow.python.autograph.core import config
    except ImportError:  # pragma: no cover - only on a TensorFlow other than the pinned one
        return False
    if not any(isinstance(rule, config.DoNotConvert) and rule.matches(package) for rule in config.CONVERSION_RULES):
        config.CONVERSION_RULES = (config.DoNotConvert(package), *config.CONVERSION_RULES)
    return True
