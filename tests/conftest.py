"""Shared test set-up: select Keras 2 before TensorFlow loads, and locate the real data."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys
import types

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(
    os.environ.get("TF_ATTNREC_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")
)


def pytest_configure(config):
    """Imports tf_attnrec, which selects Keras 2, before any test module imports TensorFlow.

    Not in the pytest-xdist controller: it runs no test, and TensorFlow's import would cost it
    about 9 s of CPU while the workers start.
    """
    is_xdist_controller = bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")
    if not is_xdist_controller:
        import tf_attnrec  # noqa: F401


@pytest.fixture(autouse=True)
def _isolated_from_the_users_settings(monkeypatch):
    """No test reads the data or cache folder a user has configured for the library.

    With `TF_ATTNREC_DATA_DIR` set (as the README suggests), a download test would find the
    user's real data instead of its own server's. Tests that need a variable set it.
    """
    from tf_attnrec.data.datasets import DATA_DIR_ENV
    from tf_attnrec.data.downloads import CACHE_DIR_ENV

    for name in (DATA_DIR_ENV, CACHE_DIR_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def shared_data_dir() -> pathlib.Path:
    """The read-only real datasets (../shared/data); tests fail loudly if they are missing."""
    if not SHARED_DATA.is_dir():
        pytest.fail(
            f"Real datasets not found at {SHARED_DATA}. Set TF_ATTNREC_SHARED_DATA to the folder "
            "holding ml-1m/ and ml-100k/."
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def fresh_tensorflow():
    """A TensorFlow-only interpreter, started once per test worker (see tests/fresh_process.py)."""
    from tests.fresh_process import FreshTensorFlow

    process = FreshTensorFlow()
    yield process
    process.close()


def pytest_collection_modifyitems(items):
    """Slow tests first, so that no worker is left running one alone at the end of the suite."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def float32_policy_afterwards():
    """Restores Keras' float32 dtype policy after a test that sets another (it is process-wide)."""
    yield
    import tensorflow as tf

    tf.keras.mixed_precision.set_global_policy("float32")


def load_script(folder: str, name: str) -> types.ModuleType:
    """Imports `<folder>/<name>.py` of the repo (a script folder, not a package) as a module.

    It is registered in `sys.modules` first, as an import would, so that what looks a module up
    by name while it runs (dataclasses resolving annotations) finds it.
    """
    spec = importlib.util.spec_from_file_location(f"{folder}.{name}", REPO_ROOT / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def load_benchmark(name: str) -> types.ModuleType:
    """Imports `benchmarks/<name>.py` as a module (`load_script`)."""
    return load_script("benchmarks", name)


@pytest.fixture(scope="session")
def synthetic_train() -> dict:
    """Synthetic click examples whose label needs the history x candidate interaction."""
    from tests.ranking_data import as_int32, synthetic_examples

    return as_int32(synthetic_examples(3072, seed=1))


@pytest.fixture(scope="session")
def synthetic_test() -> dict:
    from tests.ranking_data import as_int32, synthetic_examples

    return as_int32(synthetic_examples(512, seed=2))
