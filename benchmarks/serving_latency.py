"""p50 / p99 latency of the exported exact (brute-force) retrieval SavedModel on ML-1M.

Exports a model with `tf_attnrec.export` (a trained run directory when `--run-dir` is given,
else a freshly initialised default `sasrec` built on the ML-1M vocabulary: same shapes and
cost, meaningless recommendations; the table says which), loads the SavedModel with
`tf.saved_model.load` in a fresh process (as a server would: nothing of the exporting process,
no tf_attnrec) and times its `serving_default` signature (raw-id lookup, compaction, the
model, top-k with history exclusion) on real ML-1M histories (each user's last `--max-length`
items, as raw-id strings) for batch 1 and batch 256. The first `--warmup` calls of each batch
size are not timed.

Usage:

    python benchmarks/serving_latency.py [--run-dir runs/sasrec_ml1m]
        [--data ../shared/data/ml-1m/ml-1m.txt] [--k 10] [--calls-1 200] [--calls-256 20] [--warmup 20]
    python benchmarks/serving_latency.py --time-export serving/sasrec/1 [serving/sasrec/2 ...]
        # existing exports only, taking turns on the same requests (a side-by-side comparison)
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import tf_attnrec  # noqa: E402,F401  (Keras 2 before TensorFlow)
import tensorflow as tf  # noqa: E402

from tf_attnrec.data.readers import read_sasrec_txt  # noqa: E402
from tf_attnrec.data.vocabulary import Vocabulary  # noqa: E402
from tf_attnrec.export import export_retrieval, export_run  # noqa: E402
from tf_attnrec.models import create_model  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ml-1m" / "ml-1m.txt"


def ml1m_histories(path: pathlib.Path, max_length: int) -> tuple[list[list[str]], Vocabulary]:
    """Each user's last `max_length` raw item ids (strings, most recent last) + vocabulary."""
    interactions = read_sasrec_txt(path)
    vocabulary = Vocabulary.from_ids(interactions["item_id"])
    histories = [
        [str(v) for v in items.to_numpy()[-max_length:]]
        for _, items in interactions.groupby("user_id", sort=True)["item_id"]
    ]
    return histories, vocabulary


def export_ml1m(run_dir, export_dir, vocabulary, index="brute_force", k=10, **kwargs):
    """Exports the run (or a fresh default sasrec); returns (summary, what was exported)."""
    if run_dir:
        summary = export_run(run_dir, export_dir, k=k, index=index, **kwargs)
        return summary, f"trained run {run_dir}"
    tf.keras.utils.set_random_seed(0)
    model = create_model("sasrec", vocab_size=vocabulary.size)
    model.score(tf.zeros([1, model.encoder.max_length], tf.int32))
    summary = export_retrieval(model, export_dir, k=k, index=index, vocabulary=vocabulary, **kwargs)
    return summary, "freshly initialised sasrec (default config), ML-1M vocabulary"


def pad_batch(histories: list[list[str]]) -> tf.Tensor:
    """Right-pads a batch with "" (the serving padding token)."""
    width = max(len(h) for h in histories)
    return tf.constant([h + [""] * (width - len(h)) for h in histories], tf.string)


def time_calls(signatures: list, batches: list[tf.Tensor], warmup: int) -> np.ndarray:
    """Milliseconds per call `[signature, batch]`, the signatures taking turns on each batch
    (after `warmup` untimed calls each), so that a comparison sees the same machine state."""
    for signature in signatures:
        for batch in batches[:warmup]:
            signature(history=batch)
    times = np.zeros([len(signatures), len(batches)])
    for column, batch in enumerate(batches):
        for row, signature in enumerate(signatures):
            start = time.perf_counter()
            signature(history=batch)["item_ids"].numpy()
            times[row, column] = (time.perf_counter() - start) * 1e3
    return times


def time_exports(export_dirs: list[str], histories: list[list[str]], args: argparse.Namespace) -> list[list[tuple]]:
    """Per export, `(batch, calls, p50 ms, p99 ms, histories/s)` of its `serving_default`, in this process."""
    signatures = [tf.saved_model.load(path).signatures["serving_default"] for path in export_dirs]
    rng = np.random.default_rng(0)
    rows = [[] for _ in export_dirs]
    for batch_size, calls in ((1, args.calls_1), (256, args.calls_256)):
        batches = [
            pad_batch([histories[i] for i in rng.choice(len(histories), batch_size, False)])
            for _ in range(calls)
        ]
        for export_rows, ms in zip(rows, time_calls(signatures, batches, args.warmup)):
            p50 = float(np.percentile(ms, 50))
            export_rows.append((batch_size, calls, p50, float(np.percentile(ms, 99)), batch_size / p50 * 1e3))
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--max-length", type=int, default=200)
    parser.add_argument("--calls-1", type=int, default=200)
    parser.add_argument("--calls-256", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls before each batch size's timing")
    parser.add_argument("--time-export", metavar="EXPORT_DIR", nargs="+",
                        help="time these existing exports in this process, taking turns on the same requests "
                             "(what the default mode runs in a fresh one)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # the fresh process's output
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    histories, vocabulary = ml1m_histories(args.data, args.max_length)
    if args.time_export:
        per_export = time_exports(args.time_export, histories, args)
        if args.json:
            print(json.dumps(per_export[0]))
            return
        for path, rows in zip(args.time_export, per_export):
            print(f"export {path} (fresh process, {os.cpu_count()} CPUs visible, exports taking turns):")
            print_rows(rows)
        return
    with tempfile.TemporaryDirectory() as tmp:
        summary, what = export_ml1m(args.run_dir, pathlib.Path(tmp) / "sasrec" / "1", vocabulary,
                                    k=args.k)
        command = [sys.executable, __file__, "--time-export", str(summary.export_dir), "--json",
                   "--data", str(args.data), "--max-length", str(args.max_length), "--calls-1", str(args.calls_1),
                   "--calls-256", str(args.calls_256), "--warmup", str(args.warmup)]
        timed = subprocess.run(command, capture_output=True, text=True, check=True)
        rows = json.loads(timed.stdout.strip().splitlines()[-1])
    print(f"model: {what}")
    print(f"export: index=brute_force k={args.k} exclude_history=True "
          f"max_length={summary.max_length} items={summary.num_items:,}; "
          f"CPU threads visible: {os.cpu_count()}; timed in a fresh process")
    print_rows(rows)


def print_rows(rows: list) -> None:
    print(f"{'batch':>6} {'calls':>6} {'p50 ms':>9} {'p99 ms':>9} {'histories/s @p50':>17}")
    for batch_size, calls, p50, p99, throughput in rows:
        print(f"{batch_size:>6} {calls:>6} {p50:>9.2f} {p99:>9.2f} {throughput:>17.0f}")


if __name__ == "__main__":
    main()
