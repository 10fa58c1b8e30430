"""Single source of the package version (read by setup.cfg without importing TensorFlow)."""

__version__ = "0.1.0"
