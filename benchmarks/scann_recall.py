"""Recall@k and query latency of the ScaNN export against exact (brute-force) top-k.

Two parts (needs the `ann` extra: `pip install 'tf-attnrec[ann]'`, scann==1.4.2):

1. ML-1M: exports the same model twice (`index="brute_force"` and `index="scann"`, default
   ScaNN settings from `default_scann_options`, seen items excluded), loads both SavedModels
   and serves the same ML-1M histories through both. Recall@k = |ScaNN top-k & exact top-k| / k,
   averaged over users. The model is a trained run directory when `--run-dir` is given, else a
   freshly initialised default `sasrec` on the ML-1M vocabulary (the table says which).
2. Synthetic catalogue: `--items` x `--dim` float32 item vectors drawn around `--clusters`
   Gaussian centres (`--clusters 0`: i.i.d. Gaussian, the hardest case for any ANN index)
   and `--queries` query vectors from the same distribution. Compares the tfrs ScaNN layer
   (the one the export uses) with an exact matmul + `tf.math.top_k`, and reports build time,
   recall@k, and p50 latency for batch 1 and batch 256.

Usage:

    python benchmarks/scann_recall.py [--run-dir runs/sasrec_ml1m] [--items 1000000]
        [--dim 64] [--clusters 1000] [--queries 1000] [--skip-ml1m] [--skip-synthetic]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import tf_attnrec  # noqa: E402,F401  (Keras 2 before TensorFlow)
import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402

from tf_attnrec.export import default_scann_options  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from serving_latency import (  # noqa: E402
    DEFAULT_DATA, export_ml1m, ml1m_histories, pad_batch, time_calls,
)


def recall(approximate: np.ndarray, exact: np.ndarray) -> float:
    """Mean |approximate_row & exact_row| / k."""
    k = exact.shape[1]
    overlaps = [len(set(a) & set(e)) for a, e in zip(approximate.tolist(), exact.tolist())]
    return float(np.mean(overlaps)) / k


def ml1m_part(args) -> None:
    histories, vocabulary = ml1m_histories(args.data, 200)
    rng = np.random.default_rng(0)
    users = rng.choice(len(histories), min(args.ml1m_users, len(histories)), replace=False)
    batches = [pad_batch([histories[u] for u in users[i:i + 256]])
               for i in range(0, len(users), 256)]
    results, latency = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for index in ("brute_force", "scann"):
            start = time.perf_counter()
            summary, what = export_ml1m(args.run_dir, pathlib.Path(tmp) / index / "1",
                                        vocabulary, index=index, k=args.k)
            export_s = time.perf_counter() - start
            signature = tf.saved_model.load(str(summary.export_dir)).signatures["serving_default"]
            results[index] = np.concatenate(
                [signature(history=b)["item_ids"].numpy() for b in batches])
            one = [pad_batch([histories[u]]) for u in users[:100]]
            latency[index] = (np.median(time_calls(signature, one)),
                              np.median(time_calls(signature, batches)), export_s)
    print(f"ML-1M ({what}; {len(users)} users, {vocabulary.num_items:,} items, k={args.k}, "
          f"seen items excluded; ScaNN {default_scann_options(vocabulary.num_items, args.k + 200)})")
    print(f"  recall@{args.k} of the scann export vs the brute_force export: "
          f"{recall(results['scann'], results['brute_force']):.4f}")
    print(f"  {'index':12s} {'p50 ms b=1':>11} {'p50 ms b=256':>13} {'export s':>9}")
    for index, (one_ms, batch_ms, export_s) in latency.items():
        print(f"  {index:12s} {one_ms:>11.2f} {batch_ms:>13.2f} {export_s:>9.1f}")


def synthetic_part(args) -> None:
    rng = np.random.default_rng(0)
    n, d = args.items, args.dim
    if args.clusters:
        centres = rng.standard_normal([args.clusters, d]).astype(np.float32)
        def around_centres(size: int) -> np.ndarray:
            noise = 0.5 * rng.standard_normal([size, d]).astype(np.float32)
            return centres[rng.integers(0, args.clusters, size)] + noise

        items, queries = around_centres(n), around_centres(args.queries)
    else:
        items = rng.standard_normal([n, d]).astype(np.float32)
        queries = rng.standard_normal([args.queries, d]).astype(np.float32)
    items_tensor = tf.constant(items)

    @tf.function(input_signature=[tf.TensorSpec([None, d], tf.float32)], autograph=False)
    def exact(query):
        return tf.math.top_k(tf.matmul(query, items_tensor, transpose_b=True), k=args.k).indices

    options = default_scann_options(n, args.k)
    start = time.perf_counter()
    scann = tfrs.layers.factorized_top_k.ScaNN(k=args.k, **options)
    scann.index(items_tensor)
    build_s = time.perf_counter() - start
    approximate = tf.function(lambda q: scann(q, k=args.k)[1], autograph=False,
                              input_signature=[tf.TensorSpec([None, d], tf.float32)])

    batches = [tf.constant(queries[i:i + 256]) for i in range(0, args.queries, 256)]
    exact_ids = np.concatenate([exact(b).numpy() for b in batches])
    scann_ids = np.concatenate([approximate(b).numpy() for b in batches])
    singles = [tf.constant(queries[i:i + 1]) for i in range(min(args.queries, 100))]

    def p50(fn, inputs):
        for x in inputs[:3]:
            fn(x)
        times = []
        for x in inputs:
            start = time.perf_counter()
            fn(x).numpy()
            times.append((time.perf_counter() - start) * 1e3)
        return float(np.median(times))

    kind = f"{args.clusters} Gaussian clusters" if args.clusters else "i.i.d. Gaussian"
    print(f"Synthetic catalogue: {n:,} items x {d} dims ({kind}), {args.queries} queries, "
          f"k={args.k}; ScaNN {options}; index build {build_s:.1f} s")
    print(f"  recall@{args.k} ScaNN vs exact: {recall(scann_ids, exact_ids):.4f}")
    print(f"  {'index':12s} {'p50 ms b=1':>11} {'p50 ms b=256':>13}")
    print(f"  {'brute_force':12s} {p50(exact, singles):>11.2f} {p50(exact, batches):>13.2f}")
    print(f"  {'scann':12s} {p50(approximate, singles):>11.2f} {p50(approximate, batches):>13.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--ml1m-users", type=int, default=1024)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--skip-ml1m", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    args = parser.parse_args()
    if not args.skip_ml1m:
        ml1m_part(args)
    if not args.skip_synthetic:
        synthetic_part(args)


if __name__ == "__main__":
    main()
