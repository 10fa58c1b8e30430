"""Size, recall and latency of the compressed (float16, int8) retrieval exports against float32.

Exports one trained run three times with `tf_attnrec.export.export_retrieval` (exact index,
seen items excluded, the run's `max_length`): `quantize=None` (float32), "float16" and "int8".
Each SavedModel is loaded with `tf.saved_model.load` and answers the same requests: `--users`
users drawn from the run's own data (read from the source its `config.yaml` records), each
sending their latest `max_length` items as raw-id strings, the way `scann_recall.py` reads ML-1M.

Printed per export:

* size on disk: the whole version folder, `variables/`, and in the checkpoint the bytes of the
  item table (the float32 `[vocab_size, D]` table, or the compressed values and per-row scales)
  and of every other variable (the encoder, item counts);
* recall@k of its top-k against the float32 export's top-k: |top-k & exact top-k| / k, averaged
  over the users (float32 against itself is 1 by definition);
* p50 and p99 latency of `serving_default` (the call and reading its outputs) at batch 1 and 256,
  the three exports called in turn on the same batches, so that other load on the machine falls
  on all three alike; the first calls are warm-up and not timed.

Usage:

    python benchmarks/quantized_export.py --run RUN_DIR [--users 1024] [--k 10]
        [--calls-1 200] [--calls-256 20]
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import shlex
import sys
import tempfile
import time
from typing import Any, Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import tf_attnrec  # noqa: E402,F401  (Keras 2 before TensorFlow)
import tensorflow as tf  # noqa: E402

from tf_attnrec import runs  # noqa: E402
from tf_attnrec.data.sources import DataSource  # noqa: E402
from tf_attnrec.data.splits import group_sequences  # noqa: E402
from tf_attnrec.data.vocabulary import FIRST_ID, Vocabulary  # noqa: E402
from tf_attnrec.export import export_retrieval  # noqa: E402
from tf_attnrec.export.common import raw_id_strings  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from serving_latency import pad_batch  # noqa: E402

EXPORTS = {"float32": None, "float16": "float16", "int8": "int8"}  # name -> `quantize`
BATCH = 256
WARM_UP_CALLS = 3
# Checkpoint keys of the compressed table: `_RetrievalModule.item_table` (values, and int8 scales).
COMPRESSED_TABLE_PREFIX = "item_table/"


def run_histories(run_dir: pathlib.Path, vocabulary: Vocabulary, max_length: int) -> list[list[str]]:
    """Each user's latest `max_length` items of the run's data, as the raw-id strings a request sends."""
    source = runs.read_run_config(run_dir).get("data")
    if not source:
        raise SystemExit(f"{run_dir} records no data source (config.yaml `data`); pass a run of `tf-attnrec train`.")
    interactions = DataSource.from_config(source).load(download=False).interactions
    catalogue = raw_id_strings(vocabulary)
    _, sequences = group_sequences(interactions, vocabulary)
    return [[catalogue[item - FIRST_ID] for item in sequence[-max_length:] if item >= FIRST_ID]
            for sequence in sequences]


def folder_bytes(folder: pathlib.Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def checkpoint_bytes(export_dir: pathlib.Path, table_shape: list[int]) -> tuple[int, int]:
    """`(item table, everything else)`: bytes of the saved variables' values, by what they are.

    The item table is the compressed table's variables, or (float32) every `[vocab_size, D]` one:
    the id table, and for a model with an item tower the fused table too.
    """
    reader = tf.train.load_checkpoint(str(export_dir / "variables" / "variables"))
    dtypes = reader.get_variable_to_dtype_map()
    table = other = 0
    for key, shape in reader.get_variable_to_shape_map().items():
        if key == "_CHECKPOINTABLE_OBJECT_GRAPH":
            continue
        size = int(np.prod(shape)) * dtypes[key].size
        if key.startswith(COMPRESSED_TABLE_PREFIX) or list(shape) == table_shape:
            table += size
        else:
            other += size
    return table, other


def recall(served: np.ndarray, exact: np.ndarray) -> float:
    """Mean over rows of |served & exact| / |exact| ("" = no item, left out; rows without any skipped)."""
    overlaps = [len(set(s) & set(e) - {b""}) / len(set(e) - {b""})
                for s, e in zip(served.tolist(), exact.tolist()) if set(e) - {b""}]
    return float(np.mean(overlaps))


def timed_in_turn(signatures: dict[str, Any], batches: list[tf.Tensor]) -> dict[str, np.ndarray]:
    """Milliseconds per call of each signature, calling all of them on one batch before the next."""
    for signature in signatures.values():
        for batch in batches[:WARM_UP_CALLS]:
            signature(history=batch)
    times: dict[str, list] = {name: [] for name in signatures}
    for batch in batches:
        for name, signature in signatures.items():
            start = time.perf_counter()
            signature(history=batch)["item_ids"].numpy()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: np.asarray(ms) for name, ms in times.items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=pathlib.Path, required=True, help="a run directory written by tf-attnrec train")
    parser.add_argument("--users", type=int, default=1024, help="users whose histories are served (default 1024)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--calls-1", type=int, default=200, help="timed calls at batch 1 per export")
    parser.add_argument("--calls-256", type=int, default=20, help="timed calls at batch 256 per export")
    args = parser.parse_args(argv)
    if min(args.users, args.k, args.calls_1, args.calls_256) < 1:
        parser.error("--users, --k, --calls-1 and --calls-256 must be positive")

    command = shlex.join(["python", "benchmarks/quantized_export.py",
                          *(sys.argv[1:] if argv is None else argv)])
    # Set in the program, or else by the environment variables TensorFlow reads at start-up.
    threads = (tf.config.threading.get_intra_op_parallelism_threads() or os.environ.get("TF_NUM_INTRAOP_THREADS")
               or "default",
               tf.config.threading.get_inter_op_parallelism_threads() or os.environ.get("TF_NUM_INTEROP_THREADS")
               or "default")
    print(f"quantized_export {datetime.datetime.now().isoformat(timespec='seconds')}: {platform.platform()}, "
          f"{os.cpu_count()} CPUs (load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}); "
          f"TensorFlow {tf.__version__}, intra-op threads {threads[0]}, inter-op {threads[1]}")
    print(f"command: {command}")

    model, vocabulary, config = runs.load_model(args.run)
    max_length = int(config.get("max_length") or model.max_length)
    dim = int(model.item_embeddings.shape[-1])
    histories = run_histories(args.run, vocabulary, max_length)
    rng = np.random.default_rng(0)
    users = rng.choice(len(histories), min(args.users, len(histories)), replace=False)
    served_batches = [pad_batch([histories[u] for u in users[i:i + BATCH]]) for i in range(0, len(users), BATCH)]
    large = min(BATCH, len(users))  # the large batch: 256 users, or all of them when fewer
    singles = [pad_batch([histories[u]]) for u in rng.choice(users, args.calls_1)]
    fulls = [pad_batch([histories[u] for u in rng.choice(users, large, replace=False)]) for _ in range(args.calls_256)]

    rows, signatures, top_k = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="quantized_export_") as scratch:
        for name, quantize in EXPORTS.items():
            export_dir = pathlib.Path(scratch) / name / "1"
            start = time.perf_counter()
            export_retrieval(model, export_dir, k=args.k, vocabulary=vocabulary, max_length=max_length,
                             quantize=quantize)
            export_s = time.perf_counter() - start
            table, other = checkpoint_bytes(export_dir, [vocabulary.size, dim])
            rows[name] = {"total": folder_bytes(export_dir), "variables": folder_bytes(export_dir / "variables"),
                          "graph": (export_dir / "saved_model.pb").stat().st_size, "table": table, "other": other,
                          "export_s": export_s}
            signatures[name] = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
            top_k[name] = np.concatenate([signatures[name](history=b)["item_ids"].numpy() for b in served_batches])
        latency_one, latency_large = timed_in_turn(signatures, singles), timed_in_turn(signatures, fulls)

    print(f"run: {args.run} ({model.name}, D={dim}, "
          f"max_length={max_length}); {vocabulary.num_items:,} items; exact top-{args.k}, seen items excluded; "
          f"{len(users)} users of the run's data")
    reference = rows["float32"]
    print(f"\n{'export':8s} {'total KiB':>10} {'variables KiB':>14} {'graph KiB':>10} {'item table B':>13} "
          f"{'table/f32':>10} {'other vars B':>13} {'table share':>12} {'export s':>9}")
    for name, row in rows.items():
        print(f"{name:8s} {row['total'] / 1024:>10,.1f} {row['variables'] / 1024:>14,.1f} "
              f"{row['graph'] / 1024:>10,.1f} {row['table']:>13,} {row['table'] / reference['table']:>10.1%} "
              f"{row['other']:>13,} {row['table'] / (row['table'] + row['other']):>12.1%} {row['export_s']:>9.1f}")
    print("(table share: the item table's part of the variables' values; the rest of a version folder is the graph, "
          "saved_model.pb, and the assets: item_ids.txt, and item_embeddings.npy for float32 only)")
    print(f"\n{'export':8s} {f'recall@{args.k}':>10} {'b=1 p50 ms':>11} {'b=1 p99 ms':>11} "
          f"{f'b={large} p50 ms':>13} {f'b={large} p99 ms':>13}")
    for name in rows:
        one, many = latency_one[name], latency_large[name]
        print(f"{name:8s} {recall(top_k[name], top_k['float32']):>10.4f} {np.percentile(one, 50):>11.2f} "
              f"{np.percentile(one, 99):>11.2f} {np.percentile(many, 50):>13.2f} {np.percentile(many, 99):>13.2f}")
    print(f"(recall against the float32 export's top-{args.k}; latency over {args.calls_1} calls at batch 1 and "
          f"{args.calls_256} at batch {large} per export, after {WARM_UP_CALLS} untimed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
