"""`RandomDraws`: its draws, and a generator state that replays them once restored."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec.backup import random_generators
from tf_attnrec.layers.random_draws import RandomDraws


def test_weighted_draws_follow_the_weights_and_never_draw_a_zero_weight():
    draws = RandomDraws(seed=0)
    weights = np.array([0.0, 1.0, 0.0, 3.0, 0.0], np.float32)
    samples = draws.weighted(weights, 40_000).numpy()
    assert samples.dtype == np.int32
    counts = np.bincount(samples, minlength=5)
    assert counts[[0, 2, 4]].sum() == 0
    assert counts[3] / counts[1] == pytest.approx(3.0, rel=0.05)


def test_integer_draws_stay_in_bounds_and_a_permutation_is_one():
    draws = RandomDraws(seed=1)
    values = draws.uniform([1000], 2, 9, tf.int32).numpy()
    assert values.min() == 2 and values.max() == 8
    order = draws.permutation(50).numpy()
    assert sorted(order) == list(range(50)) and list(order) != list(range(50))


def test_restoring_the_generator_state_replays_the_draws():
    model = tf.keras.Sequential([tf.keras.layers.Dropout(0.5), RandomDraws(seed=2)])
    generators = random_generators(model)
    assert len(generators) == 2  # the dropout's and the draws'
    saved = [generator.state.numpy() for generator in generators]
    first = model.layers[1].uniform([8]).numpy(), model.layers[0](tf.ones([1, 8]), training=True).numpy()
    for generator, state in zip(generators, saved):
        generator.reset(state)
    again = model.layers[1].uniform([8]).numpy(), model.layers[0](tf.ones([1, 8]), training=True).numpy()
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], model.layers[1].uniform([8]).numpy())


def test_the_generator_stays_out_of_weights_and_the_config_round_trips():
    draws = RandomDraws(seed=5, name="draws")
    draws.uniform([2])
    assert draws.weights == []
    clone = RandomDraws.from_config(draws.get_config())
    assert (clone.name, clone.seed) == ("draws", 5)
    np.testing.assert_array_equal(clone(tf.ones([2, 3])), tf.ones([2, 3]))
