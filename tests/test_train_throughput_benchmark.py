"""benchmarks/train_throughput.py: a step timed under each dtype policy, on a tiny split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tests.conftest import load_benchmark
from tf_attnrec.data import leave_one_out_split

throughput = load_benchmark("train_throughput")


pytestmark = pytest.mark.usefixtures("float32_policy_afterwards")

@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_measure_times_a_tiny_step_under_a_policy(precision):
    rng = np.random.default_rng(0)
    split = leave_one_out_split(pd.DataFrame(
        [(user, item, step) for user in range(1, 33)
         for step, item in enumerate(rng.choice(np.arange(1, 40), size=12, replace=False))],
        columns=["user_id", "item_id", "timestamp"]))
    config = {"model_config": {"max_length": 10, "hidden_dim": 8, "num_blocks": 1}, "training": {"batch_size": 8}}
    result = throughput.measure("tiny", config, split, steps=2, warmup=1, jit=False, precision=precision)
    assert result.precision == precision and result.seconds_per_step > 0 and result.steps_per_epoch == 4
    assert throughput.matmul_gflops(64, repeats=2, dtype=tf.bfloat16) > 0
