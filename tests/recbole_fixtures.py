"""The RecBole peer benchmark's two scripts as module fixtures (import them into a test module)."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import REPO_ROOT, load_benchmark


@pytest.fixture(scope="module")
def graph():
    """`benchmarks/recbole_graph.py` (runs in the tf-attnrec environment)."""
    return load_benchmark("recbole_graph")


@pytest.fixture(scope="module")
def driver():
    """`benchmarks/peers/recbole_driver.py` (runs in the peer venv; its pure helpers load here)."""
    path = REPO_ROOT / "benchmarks" / "peers" / "recbole_driver.py"
    spec = importlib.util.spec_from_file_location("recbole_driver", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
