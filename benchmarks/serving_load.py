"""Serving under load: one loaded retrieval SavedModel answering many threads at once.

Loads an exported top-k retrieval SavedModel once (`--export`, a version folder, or `--run`, a
trained run directory that is first exported with `tf_attnrec.export.export_run` into a temporary
folder: exact top-k, default k) and drives its `serving_default` signature from `--threads`
threads (a `ThreadPoolExecutor`) with `--requests` seeded requests:

* batch sizes: `--batch-sizes` (default the powers of two 1, 2, 4, ..., 256, equally likely, i.e.
  log-uniform over 1..256);
* history length: each row's own, uniform in 0..`--max-history` (default 1,000; the model reads
  the last `max_length` of them); a request's rows are right-padded with "" to its longest row
  (`serving_latency.pad_batch`, the serving padding convention);
* ids: the export's own catalogue (`assets/item_ids.txt`), each entry replaced with probability
  `--unknown-fraction` (default 5%) by an unknown id: a third "", a third the odd raw values of
  the signature fuzzing (whitespace, odd unicode, NUL bytes, numeric-looking strings, bytes
  that are not UTF-8), a third random strings (none of them a catalogue id).

Each answer is checked: `item_ids` and `scores` of shape [batch, k], finite scores, only catalogue
ids ("" only where a row has fewer than k unseen items left) and none of the row's known history
items. An exception or a failed check is an error. Latency is the signature call plus reading
its outputs (building the request tensor and checking the answer are not timed). Resident memory
(VmRSS) is read after loading, then each time another 1/`--checkpoints` of the requests has
completed; the first checkpoint past `--warm-up` of the requests (20% by default) ends the
warm-up, and growth is reported from there to the end, with a least-squares slope over those
checkpoints.

Prints the machine, then one row per batch size (requests, rows, errors, p50 and p99 ms,
rows/s at p50 = batch / p50, the rate of one stream), the totals (requests, rows, errors, wall
seconds, requests/s and rows/s over all threads) and the memory. `--output-json` writes the same
as JSON with the keys "machine", "config", "per_batch_size", "totals", "memory" and "errors"
(the first failures, each with its request number). Exits 1 if any request failed; memory
growth is reported, not judged.

Usage:
    python benchmarks/serving_load.py (--export serving/sasrec/1 | --run runs/sasrec_ml1m)
        [--requests 10000] [--threads 8] [--batch-sizes 1,2,4,8,16,32,64,128,256]
        [--max-history 1000] [--unknown-fraction 0.05] [--seed 0] [--checkpoints 10] [--warm-up 0.2]
        [--output-json serving_load.json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import pathlib
import platform
import sys
import tempfile
import time
from typing import Any, NamedTuple, Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import tf_attnrec  # noqa: E402,F401  (Keras 2 before TensorFlow)
import tensorflow as tf  # noqa: E402

from tf_attnrec.export import ITEM_IDS_FILE, export_run  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from fuzz_signatures import load_fuzz_module  # noqa: E402
from serving_latency import pad_batch  # noqa: E402

DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
MAX_ERRORS_KEPT = 20  # failures listed in the report; all of them are counted


# ----------------------------------------------------------------------------- the export
def read_catalogue(export_dir: pathlib.Path) -> list[bytes]:
    """The raw item ids the export serves: the lines of its `assets/item_ids.txt`.

    Split on "\\n" only: an id may hold other line breaks (U+2028, ...), which the graph's
    text-file table reads as part of the line.
    """
    return (export_dir / "assets" / ITEM_IDS_FILE).read_bytes().split(b"\n")[:-1]


def serving_signature(loaded: Any) -> Any:
    """The signature under load (the test swaps in a faulty one)."""
    return loaded.signatures["serving_default"]


def unknown_pool(catalogue: Sequence[bytes], rng: np.random.Generator) -> np.ndarray:
    """Ids the export does not know, in three equal parts: "", odd raw values, random strings."""
    fuzz = load_fuzz_module()
    known = set(catalogue)
    odd = [v for v in fuzz.WHITESPACE + fuzz.ODD_UNICODE + fuzz.NUMERIC + fuzz.NOT_UTF8 if v not in known]
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"))
    random_strings = []
    while len(random_strings) < len(odd):
        value = "".join(rng.choice(alphabet, rng.integers(1, 17))).encode()
        if value not in known:
            random_strings.append(value)
    # "" inside a row is padding the graph must drop, wherever it sits.
    return np.array([b""] * len(odd) + odd + random_strings, dtype=object)


# ----------------------------------------------------------------------------- requests
# NamedTuples, not dataclasses: tests import this script without registering it as a module,
# and dataclasses look their string annotations up in the defining module.
class Request(NamedTuple):
    """One planned request; its ids are drawn from `seed` when it is sent (see `materialize`)."""

    number: int
    lengths: np.ndarray  # history length of each row; len = batch size
    seed: int

    @property
    def batch_size(self) -> int:
        return len(self.lengths)


def plan_requests(count: int, batch_sizes: Sequence[int], max_history: int, seed: int) -> list[Request]:
    """The seeded list of requests. Only sizes and seeds are kept: 10,000 requests of up to
    256 x 1,000 ids would be gigabytes as tensors, and would swamp the memory being measured."""
    rng = np.random.default_rng(seed)
    sizes = rng.choice(np.asarray(batch_sizes), count)
    return [Request(number, rng.integers(0, max_history + 1, size), int(rng.integers(2**63)))
            for number, size in enumerate(sizes)]


class Catalogue(NamedTuple):
    """What requests are drawn from and answers are checked against."""

    items: np.ndarray  # known raw ids (object array of bytes), line order of item_ids.txt
    unknown: np.ndarray  # `unknown_pool`
    unknown_fraction: float
    index: dict  # raw id -> position in `items`

    @classmethod
    def of(cls, items: Sequence[bytes], unknown: np.ndarray, unknown_fraction: float) -> "Catalogue":
        return cls(np.array(items, dtype=object), unknown, unknown_fraction,
                   {raw: position for position, raw in enumerate(items)})


def materialize(request: Request, catalogue: Catalogue) -> tuple[tf.Tensor, list[np.ndarray]]:
    """The request's `history` tensor, and each row's known items (catalogue indices)."""
    rng = np.random.default_rng(request.seed)
    rows, known_rows = [], []
    for length in request.lengths:
        items = rng.integers(len(catalogue.items), size=length)
        unknown = rng.random(length) < catalogue.unknown_fraction
        unknown_ids = catalogue.unknown[rng.integers(len(catalogue.unknown), size=length)]
        rows.append(np.where(unknown, unknown_ids, catalogue.items[items]).tolist())
        known_rows.append(items[~unknown])
    return pad_batch(rows), known_rows


def check_answer(outputs: dict, known_rows: list[np.ndarray], catalogue: Catalogue, k: int,
                 history_excluded: bool) -> Optional[str]:
    """What is wrong with an answer (None: nothing)."""
    batch_size, num_items = len(known_rows), len(catalogue.items)
    ids, scores = outputs["item_ids"], outputs["scores"]
    if ids.shape != (batch_size, k) or scores.shape != (batch_size, k):
        return f"shapes item_ids {ids.shape}, scores {scores.shape}; expected {(batch_size, k)}"
    if not np.isfinite(scores).all():
        return f"non-finite scores in rows {sorted(set(np.nonzero(~np.isfinite(scores))[0].tolist()))[:5]}"
    returned = np.array([[catalogue.index.get(raw, -1) for raw in row] for row in ids.tolist()])
    blank = ids == b""
    if ((returned < 0) & ~blank).any():
        row = int(np.nonzero(((returned < 0) & ~blank).any(axis=1))[0][0])
        return f"row {row}: ids the export does not serve: {ids[row].tolist()}"
    seen = np.zeros([batch_size, num_items], bool)  # row x catalogue index: in that row's history
    seen[np.repeat(np.arange(batch_size), [len(r) for r in known_rows]), np.concatenate(known_rows)] = True
    unseen = num_items - seen.sum(axis=1) if history_excluded else np.full(batch_size, num_items)
    wrong_blanks = blank.sum(axis=1) != np.maximum(0, k - unseen)
    if wrong_blanks.any():
        row = int(np.nonzero(wrong_blanks)[0][0])
        return f"row {row}: {int(blank[row].sum())} blank ids with {int(unseen[row])} unseen items"
    if history_excluded:
        returned_seen = np.take_along_axis(seen, np.maximum(returned, 0), axis=1) & ~blank
        if returned_seen.any():
            row, column = (int(i) for i in np.argwhere(returned_seen)[0])
            return f"row {row}: returned history item {ids[row, column]!r}"
    return None


# ----------------------------------------------------------------------------- the load
class Record(NamedTuple):
    number: int
    batch_size: int
    latency_ms: float
    error: Optional[str] = None


def serve(signature: Any, request: Request, catalogue: Catalogue, k: int, history_excluded: bool) -> Record:
    """Sends one request; times the call and the read of its outputs only."""
    history, known_rows = materialize(request, catalogue)
    start = time.perf_counter()
    try:
        outputs = {name: value.numpy() for name, value in signature(history=history).items()}
    except Exception as error:  # noqa: BLE001  (any failure of the signature is a finding)
        latency_ms = (time.perf_counter() - start) * 1e3
        message = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        return Record(request.number, request.batch_size, latency_ms, f"{type(error).__name__}: {message}")
    latency_ms = (time.perf_counter() - start) * 1e3
    problem = check_answer(outputs, known_rows, catalogue, k, history_excluded)
    return Record(request.number, request.batch_size, latency_ms, problem)


def rss_mib() -> float:
    """This process's resident memory now (Linux /proc; elsewhere the peak, from `resource`)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def drive(signature: Any, requests: list[Request], catalogue: Catalogue, k: int, history_excluded: bool,
          threads: int, checkpoints: int) -> tuple[list[Record], float, list[tuple[int, float]]]:
    """Serves every request from `threads` threads; returns the records, the wall seconds and
    (requests completed, RSS MiB) at the start and each checkpoint."""
    marks = sorted({max(1, round(len(requests) * i / checkpoints)) for i in range(1, checkpoints + 1)})
    memory = [(0, rss_mib())]
    records = []
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(serve, signature, request, catalogue, k, history_excluded) for request in requests]
        for future in concurrent.futures.as_completed(futures):
            records.append(future.result())
            if marks and len(records) == marks[0]:
                memory.append((marks.pop(0), rss_mib()))
    return sorted(records, key=lambda record: record.number), time.perf_counter() - start, memory


# ----------------------------------------------------------------------------- the report
def summarize(records: list[Record], wall_s: float, memory: list[tuple[int, float]],
              warm_up: float = 0.2) -> dict:
    per_batch_size = []
    for batch_size in sorted({record.batch_size for record in records}):
        group = [record for record in records if record.batch_size == batch_size]
        ms = np.array([record.latency_ms for record in group])
        p50, p99 = float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
        per_batch_size.append({"batch_size": batch_size, "requests": len(group), "rows": batch_size * len(group),
                               "errors": sum(record.error is not None for record in group),
                               "p50_ms": p50, "p99_ms": p99, "rows_per_s_at_p50": batch_size / p50 * 1e3})
    rows = sum(record.batch_size for record in records)
    errors = [record for record in records if record.error is not None]
    totals = {"requests": len(records), "rows": rows, "errors": len(errors), "wall_s": wall_s,
              "requests_per_s": len(records) / wall_s, "rows_per_s": rows / wall_s}
    # Warm-up (TensorFlow's per-shape kernel caches filling up) ends at the first checkpoint
    # past `warm_up` of the requests; growth and slope are measured from there.
    after_warm_up = [mark for mark in memory[1:] if mark[0] >= warm_up * len(records)] or memory[-1:]
    done = np.array([n for n, _ in after_warm_up], float)
    rss = np.array([mib for _, mib in after_warm_up])
    slope = float(np.polyfit(done / 1000, rss, 1)[0]) if len(after_warm_up) >= 2 else 0.0
    growth = float(rss[-1] - rss[0])
    memory_report = {"loaded_mib": memory[0][1], "warm_up_requests": int(done[0]), "warm_up_mib": float(rss[0]),
                     "end_mib": float(rss[-1]), "growth_mib": growth, "growth_percent": 100 * growth / rss[0],
                     "slope_mib_per_1000_requests": slope, "checkpoints": [[n, mib] for n, mib in memory]}
    return {"per_batch_size": per_batch_size, "totals": totals, "memory": memory_report,
            "errors": [record._asdict() for record in errors[:MAX_ERRORS_KEPT]]}


def machine() -> dict:
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "load_average": [round(load, 2) for load in os.getloadavg()] if hasattr(os, "getloadavg") else None,
            "python": platform.python_version(), "tensorflow": tf.__version__,
            "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}


def print_report(report: dict) -> None:
    host, config, totals, memory = report["machine"], report["config"], report["totals"], report["memory"]
    print("\nper batch size:")
    print(f"{'batch':>6} {'requests':>9} {'rows':>9} {'errors':>7} {'p50 ms':>9} {'p99 ms':>9} {'rows/s @p50':>12}")
    for row in report["per_batch_size"]:
        print(f"{row['batch_size']:>6} {row['requests']:>9,} {row['rows']:>9,} {row['errors']:>7} "
              f"{row['p50_ms']:>9.2f} {row['p99_ms']:>9.2f} {row['rows_per_s_at_p50']:>12,.0f}")
    print(f"\ntotal: {totals['requests']:,} requests, {totals['rows']:,} rows, {totals['errors']} errors in "
          f"{totals['wall_s']:.1f} s wall from {config['threads']} threads: {totals['requests_per_s']:.1f} requests/s, "
          f"{totals['rows_per_s']:,.0f} rows/s")
    print(f"memory (RSS): {memory['loaded_mib']:.1f} MiB loaded, {memory['warm_up_mib']:.1f} MiB after warm-up "
          f"({memory['warm_up_requests']:,} requests), {memory['end_mib']:.1f} MiB at the end: growth "
          f"{memory['growth_mib']:+.1f} MiB ({memory['growth_percent']:+.2f}%), slope "
          f"{memory['slope_mib_per_1000_requests']:+.2f} MiB per 1,000 requests")
    print("  checkpoints (requests: MiB): "
          + ", ".join(f"{n:,}: {mib:.1f}" for n, mib in memory["checkpoints"]))
    for error in report["errors"]:
        print(f"ERROR request {error['number']} (batch {error['batch_size']}): {error['error']}")
    if totals["errors"] > len(report["errors"]):
        print(f"... and {totals['errors'] - len(report['errors'])} more errors")
    print(f"(machine at the start: {host['cpu_count']} CPUs, load average {host['load_average']})")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--export", type=pathlib.Path, help="an exported SavedModel version folder")
    source.add_argument("--run", type=pathlib.Path, help="a trained run directory (exported first)")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--batch-sizes", default=",".join(map(str, DEFAULT_BATCH_SIZES)),
                        help="comma-separated, drawn with equal probability")
    parser.add_argument("--max-history", type=int, default=1000)
    parser.add_argument("--unknown-fraction", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoints", type=int, default=10, help="memory readings over the run")
    parser.add_argument("--warm-up", type=float, default=0.2,
                        help="share of the requests before memory growth is measured (default 0.2)")
    parser.add_argument("--history-allowed", action="store_true",
                        help="the export was made with exclude_history=False: returned history items are fine")
    parser.add_argument("--output-json", type=pathlib.Path)
    args = parser.parse_args(argv)
    batch_sizes = [int(size) for size in args.batch_sizes.split(",")]
    if args.requests < 1 or args.threads < 1 or args.checkpoints < 2 or min(batch_sizes) < 1:
        parser.error("--requests, --threads and the batch sizes must be positive, --checkpoints at least 2")

    host = machine()
    print(f"serving_load {host['date']}: {host['platform']} ({host['processor']}), {host['cpu_count']} CPUs, "
          f"load average {host['load_average']}; Python {host['python']}, TensorFlow {host['tensorflow']} "
          f"(intra-op threads {host['tf_intra_op_threads'] or 'default'}, "
          f"inter-op {host['tf_inter_op_threads'] or 'default'})")
    with tempfile.TemporaryDirectory(prefix="serving_load_") as scratch:
        export_dir = args.export
        if args.run is not None:
            start = time.perf_counter()
            export_dir = pathlib.Path(scratch) / (args.run.name or "model") / "1"
            export_run(args.run, export_dir)  # exact top-k, default k
            print(f"exported {args.run} to {export_dir} in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        loaded = tf.saved_model.load(str(export_dir))  # once, shared by every thread
        signature = serving_signature(loaded)
        k = int(loaded.signatures["serving_default"].structured_outputs["item_ids"].shape[1])
        items = read_catalogue(export_dir)
        rng = np.random.default_rng(args.seed)
        catalogue = Catalogue.of(items, unknown_pool(items, rng), args.unknown_fraction)
        requests = plan_requests(args.requests, batch_sizes, args.max_history, args.seed + 1)
        config = {"export": str(args.export) if args.export else None, "run": str(args.run) if args.run else None,
                  "k": k, "catalogue_items": len(items), "unknown_ids": len(catalogue.unknown),
                  "requests": args.requests, "threads": args.threads, "batch_sizes": batch_sizes,
                  "max_history": args.max_history, "unknown_fraction": args.unknown_fraction, "seed": args.seed,
                  "history_excluded": not args.history_allowed}
        print(f"loaded in {time.perf_counter() - start:.1f} s: k={k}, {len(items):,} catalogue ids; "
              f"{args.requests:,} requests from {args.threads} threads, batch sizes {batch_sizes} (equally likely), "
              f"history 0..{args.max_history} per row, {args.unknown_fraction:.0%} unknown ids, seed {args.seed}",
              flush=True)
        # One untimed call: the first run of a loaded function sets things up once.
        serve(signature, requests[0], catalogue, k, not args.history_allowed)
        records, wall_s, memory = drive(signature, requests, catalogue, k, not args.history_allowed,
                                        args.threads, args.checkpoints)
    report = {"machine": host, "config": config, **summarize(records, wall_s, memory, args.warm_up)}
    print_report(report)
    if args.output_json:
        args.output_json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if report["totals"]["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
