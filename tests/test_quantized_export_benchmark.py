"""benchmarks/quantized_export.py on a tiny run: three exports side by side, their sizes, recall and latency.

The run is a tiny sasrec (D = 32, so that int8 can be at most 30% of float32) saved with a
`config.yaml` that records its data, a small interaction log, as `tf-attnrec train` does.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tests.conftest import load_benchmark

USERS, ITEMS, DIM = 40, 50, 32


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from tf_attnrec.data.sources import DataSource
    from tf_attnrec.data.vocabulary import Vocabulary
    from tf_attnrec.models import create_model
    from tf_attnrec.runs import save_model, write_run_config

    root = tmp_path_factory.mktemp("quantized_benchmark")
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 12, USERS)
    log = pd.DataFrame({"user_id": np.repeat(np.arange(USERS), lengths),
                        "item_id": [f"i{i:02d}" for i in rng.permutation(np.arange(lengths.sum()) % ITEMS)],
                        "timestamp": np.arange(lengths.sum())})
    log.to_csv(root / "log.csv", index=False)
    source = DataSource.from_file(root / "log.csv", time_col="timestamp")
    vocabulary = Vocabulary.from_ids(source.load().interactions["item_id"])
    tf.keras.utils.set_random_seed(0)
    model = create_model("sasrec", vocab_size=vocabulary.size, hidden_dim=DIM, max_length=8, num_blocks=1)
    model.score(tf.zeros([1, 8], tf.int32))
    save_model(model, root / "run", vocabulary, {"model": "sasrec"})
    write_run_config(root / "run", {"model": "sasrec", "data": source.to_config()})
    return root / "run"


def test_prints_size_recall_and_latency_of_each_export(tiny_run, capsys):
    benchmark = load_benchmark("quantized_export")
    argv = ["--run", str(tiny_run), "--users", "32", "--calls-1", "5", "--calls-256", "3"]
    assert benchmark.main(argv) == 0
    printed = capsys.readouterr().out

    assert re.search(r"^quantized_export \d{4}-\d\d-\d\dT.*\d+ CPUs .*TensorFlow \d", printed, re.M)
    assert f"command: python benchmarks/quantized_export.py {' '.join(argv)}" in printed
    sizes = {m[0]: m[1:] for m in re.findall(r"^(float32|float16|int8) +([\d,.]+) +([\d,.]+) +([\d,.]+) +([\d,]+) "
                                             r"+([\d.]+)% +([\d,]+) +([\d.]+)% +[\d.]+$", printed, re.M)}
    quality = {m[0]: [float(x) for x in m[1:]] for m in re.findall(
        r"^(float32|float16|int8) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+)$", printed, re.M)}
    assert list(sizes) == list(quality) == ["float32", "float16", "int8"], printed
    table = {name: int(row[3].replace(",", "")) for name, row in sizes.items()}
    rows = ITEMS + 2
    assert table == {"float32": rows * DIM * 4, "float16": rows * DIM * 2, "int8": rows * (DIM + 4)}
    assert float(sizes["int8"][4]) <= 30.0
    other = {row[5] for row in sizes.values()}
    assert len(other) == 1  # the encoder's variables are the same in every export
    variables = {name: float(row[1].replace(",", "")) for name, row in sizes.items()}
    assert variables["int8"] < variables["float16"] < variables["float32"]
    assert quality["float32"][0] == 1.0 and quality["float16"][0] >= 0.9 and quality["int8"][0] >= 0.9
    for recall, *latencies in quality.values():
        assert all(ms > 0 for ms in latencies) and latencies[0] <= latencies[1] and latencies[2] <= latencies[3]
    assert "b=32 p50 ms" in printed  # 32 users: the large batch is all of them
