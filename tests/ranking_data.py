"""Synthetic click data whose label needs the history x candidate interaction (fixtures: conftest)."""

from __future__ import annotations

import numpy as np

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
from tf_attnrec.data import schema

MAX_LENGTH = 8
MAX_GENRES = 2
ITEMS_PER_GROUP = 20
FEATURE_SIZES = {"item": 2 + 2 * ITEMS_PER_GROUP, "genre": 5, "year": 6, "gender": 4, "age": 5, "occupation": 6}


def synthetic_examples(num_examples: int, seed: int) -> dict:
    """Each user likes one of two item groups; label 1 iff the candidate is in that group.

    The history holds 2..6 items of the user's group (left-padded to MAX_LENGTH); the
    candidate is from either group with probability 1/2. Neither the history alone nor the
    candidate alone says anything about the label, so a model must combine them. Group A
    items carry genre 2, group B genre 3; years and user features are noise.
    """
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 2, num_examples)
    lengths = rng.integers(2, MAX_LENGTH - 1, num_examples)
    history = 2 + group[:, None] * ITEMS_PER_GROUP + rng.integers(0, ITEMS_PER_GROUP, (num_examples, MAX_LENGTH))
    history = np.where(np.arange(MAX_LENGTH)[None, :] >= MAX_LENGTH - lengths[:, None], history, 0)
    candidate_group = rng.integers(0, 2, num_examples)
    candidate = 2 + candidate_group * ITEMS_PER_GROUP + rng.integers(0, ITEMS_PER_GROUP, num_examples)

    def genres_of(items: np.ndarray) -> np.ndarray:
        first = np.where(items == 0, 0, np.where(items < 2 + ITEMS_PER_GROUP, 2, 3))
        return np.stack([first, np.zeros_like(first)], axis=-1)

    def years_of(items: np.ndarray) -> np.ndarray:
        return np.where(items == 0, 0, rng.integers(2, FEATURE_SIZES["year"], items.shape))

    return {
        schema.USER_GENDER: rng.integers(2, FEATURE_SIZES["gender"], num_examples),
        schema.USER_AGE: rng.integers(2, FEATURE_SIZES["age"], num_examples),
        schema.USER_OCCUPATION: rng.integers(2, FEATURE_SIZES["occupation"], num_examples),
        schema.ITEM_ID: candidate,
        schema.ITEM_GENRES: genres_of(candidate),
        schema.ITEM_YEAR: years_of(candidate),
        schema.HISTORY_ITEM_IDS: history,
        schema.HISTORY_GENRES: genres_of(history),
        schema.HISTORY_YEAR: years_of(history),
        schema.LABEL: (candidate_group == group).astype(np.float32),
        schema.USER_INDEX: np.arange(num_examples),
    }


def as_int32(features: dict) -> dict:
    return {k: v.astype(np.float32 if k == schema.LABEL else np.int32) for k, v in features.items()}

