"""Tiny next-item batches shared by the model tests."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)

VOCAB_SIZE = 30
MAX_LENGTH = 8


def tiny_sequences(num_users: int = 16, seed: int = 0) -> list:
    """Random item sequences (ids 2..VOCAB_SIZE-1) of varied lengths."""
    rng = np.random.default_rng(seed)
    return [
        rng.integers(2, VOCAB_SIZE, size=int(rng.integers(3, 2 * MAX_LENGTH))).astype(np.int32)
        for _ in range(num_users)
    ]


@pytest.fixture
def sequences() -> list:
    return tiny_sequences()
