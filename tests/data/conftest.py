"""Fixtures for tests/data: the real ML-1M / ML-100K files, read once per test session."""

from __future__ import annotations

import pytest

from tf_attnrec.data.readers import read_movielens_100k, read_sasrec_movielens_1m
from tf_attnrec.data.splits import leave_one_out_split


@pytest.fixture(scope="session")
def ml1m(shared_data_dir):
    """SASRec-form ML-1M joined to GroupLens metadata (the 1M-line file, read once)."""
    return read_sasrec_movielens_1m(shared_data_dir / "ml-1m")


@pytest.fixture(scope="session")
def ml1m_split(ml1m):
    """Leave-one-out split of the real ML-1M interactions."""
    return leave_one_out_split(ml1m.interactions)


@pytest.fixture(scope="session")
def ml100k(shared_data_dir):
    return read_movielens_100k(shared_data_dir / "ml-100k")
