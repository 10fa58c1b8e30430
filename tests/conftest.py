"""Shared test set-up: select Keras 2 before TensorFlow loads, and locate the real data."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import types

import pytest

import tf_attnrec  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(
    os.environ.get("TF_ATTNREC_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")
)


@pytest.fixture(scope="session")
def shared_data_dir() -> pathlib.Path:
    """The read-only real datasets (../shared/data); tests fail loudly if they are missing."""
    if not SHARED_DATA.is_dir():
        pytest.fail(
            f"Real datasets not found at {SHARED_DATA}. Set TF_ATTNREC_SHARED_DATA to the folder "
            "holding ml-1m/ and ml-100k/."
        )
    return SHARED_DATA


def load_benchmark(name: str) -> types.ModuleType:
    """Imports `benchmarks/<name>.py` (a script folder, not a package) as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


from tests.ranking_data import synthetic_test, synthetic_train  # noqa: E402,F401  (shared fixtures)
