"""benchmarks/serving_latency.py: the timing of an existing export (what the fresh process runs).

A tiny sasrec export over 30 items, timed for a few calls at batch 1 and 256 on made-up raw-id
histories. No timing assertion: the rows must be well formed, and a history batch must reach
the signature as the serving padding ("" on the right) expects.
"""

from __future__ import annotations

import argparse

import numpy as np

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)

from tests.conftest import load_benchmark


def test_time_exports_reports_both_batch_sizes_for_each_export(tmp_path):
    from tests.export.conftest import tiny_model
    from tf_attnrec.data.vocabulary import Vocabulary
    from tf_attnrec.export import export_retrieval

    bench = load_benchmark("serving_latency")
    vocabulary = Vocabulary.from_ids(np.arange(1, 31))
    export_dir = tmp_path / "sasrec" / "1"
    export_retrieval(tiny_model(vocabulary, seed=0), export_dir, vocabulary=vocabulary, k=5)
    rng = np.random.default_rng(0)
    histories = [[str(i) for i in rng.choice(np.arange(1, 31), size=rng.integers(1, 12), replace=False)]
                 for _ in range(300)]
    padded = bench.pad_batch(histories[:3]).numpy()
    assert padded.shape == (3, max(len(h) for h in histories[:3])) and padded[0, len(histories[0]):].tolist() == [
        b""] * (padded.shape[1] - len(histories[0]))
    args = argparse.Namespace(calls_1=5, calls_256=2, warmup=1)
    per_export = bench.time_exports([str(export_dir), str(export_dir)], histories, args)  # side by side
    assert len(per_export) == 2
    for rows in per_export:
        assert [(batch, calls) for batch, calls, *_ in rows] == [(1, 5), (256, 2)]
        for batch, _, p50, p99, throughput in rows:
            assert 0 < p50 <= p99 and np.isclose(throughput, batch / p50 * 1e3)
