"""Scale of graph recommenders on a synthetic power-law user-item graph: time and peak memory vs edges.

The graph (`power_law_edges`): U users, I items and exactly E distinct (user, item) edges.
Each edge's user is drawn with probability proportional to rank^-0.5 (user activity) and its
item, independently, proportional to rank^-0.8 (item popularity), ranks 1.. in a random order
of the node ids, so heavy nodes are spread over the index range. Rank exponents s give degree
tails P(degree >= d) ~ d^(-1/s): about d^-2 for users and d^-1.25 for items, inside the
2-3 range of P(d) exponents usually reported for interaction data. Counts are drawn by
multinomial (no loop over edges), repeated pairs are dropped, and the draw is topped up until
at least E distinct pairs exist; then a uniform random subset of exactly E is kept.

Each edge count runs in a fresh Python process (so one size's memory cannot inflate the next
one's peak): generate, `InteractionGraph.from_pairs`, then the selected measurement. Every
phase records its wall time and its peak resident memory: the kernel's high-water mark
(VmHWM) is reset through /proc/self/clear_refs before the phase and read after it, so a
phase's peak is that phase's own. The process peak is the largest of them; the baseline is the
RSS right after importing TensorFlow.

Measurements (`--measure`, one function each in MEASURES):

* `lightgcn_propagation`: `LightGCN` (embedding 64, 3 layers) on the graph; its variables with
  Adam's slots, the adjacency build (`set_graph`, i.e. `graph.adjacency()`), the forward
  propagation of all users and items (`final_embeddings()` in a `tf.function`), one BPR
  training step as `fit` runs it (Keras train function, Adam, batch 8192 of random edges with
  uniform negatives: a negative that happens to be a positive costs the same), and a
  breakdown of one sparse product: the whole `sparse_matmul` call, the same with its
  gradient, and the CSR kernel alone on a prebuilt CSR matrix.
* `graphsage_cf_epoch`: one training epoch of the zoo's `graphsage_cf` (attention aggregator,
  S = 10, embedding 64) as the collaborative task runs it (`fit` on `bpr_triples`, batch
  8192): the epoch's wall time and peak memory, the median step, and edges trained per
  second. `--max-steps` cuts the epoch short.

Timed phases are called once to trace (reported as `first_call_seconds`), then `--repeats`
times; the median is reported. Usage:

    python benchmarks/graph_scale.py --measure lightgcn_propagation \
        [--users 1000000] [--items 200000] [--edges 1000000 5000000 20000000] [--repeats 3] \
        [--output-json PATH] [--plot PATH] [--in-process]
    python benchmarks/graph_scale.py --measure graphsage_cf_epoch --edges 20000000 [--max-steps N]

`--in-process` measures every size in this process (tests; peaks then carry earlier sizes).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import pathlib
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import tf_attnrec  # noqa: E402,F401  (Keras 2 before TensorFlow)
import tensorflow as tf  # noqa: E402

from tf_attnrec.data.graph import InteractionGraph  # noqa: E402
from tf_attnrec.data.pair_batches import bpr_triples  # noqa: E402
from tf_attnrec.data.vocabulary import FIRST_ID  # noqa: E402
from tf_attnrec.layers.sparse_ops import sparse_matmul  # noqa: E402
from tf_attnrec.models.graphsage_cf import GraphSAGECF  # noqa: E402
from tf_attnrec.models.lightgcn import LightGCN  # noqa: E402
from tf_attnrec.training import compile_for_training  # noqa: E402

USER_EXPONENT, ITEM_EXPONENT = 0.5, 0.8
DEFAULT_EDGES = (1_000_000, 5_000_000, 20_000_000)
RESULT_MARKER = "GRAPH_SCALE_RESULT "
GIB = 2.0 ** 30


# ---------------------------------------------------------------------------- the graph
def _zipf_probabilities(count: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """p[node] proportional to rank^-exponent, ranks assigned to the nodes in random order."""
    weights = np.arange(1, count + 1, dtype=np.float64) ** -exponent
    weights = weights[rng.permutation(count)]
    return weights / weights.sum()


def power_law_edges(num_users: int, num_items: int, num_edges: int, *, user_exponent: float = USER_EXPONENT,
                    item_exponent: float = ITEM_EXPONENT, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Exactly `num_edges` distinct (user, item) pairs with power-law user and item degrees.

    Args:
        num_users: U.
        num_items: I.
        num_edges: E, at most U * I.
        user_exponent: rank exponent of user activity (p ~ rank^-s).
        item_exponent: rank exponent of item popularity.
        seed: the same seed gives the same edges.

    Returns:
        `(users, items)`: int32 [E] each, sorted by (user, item), no repeated pair.
    """
    if num_edges > num_users * num_items:
        raise ValueError(f"{num_edges} distinct edges cannot fit in {num_users} x {num_items} pairs.")
    rng = np.random.default_rng(seed)
    user_p = _zipf_probabilities(num_users, user_exponent, rng)
    item_p = _zipf_probabilities(num_items, item_exponent, rng)
    keys = np.zeros(0, np.int64)  # user * I + item, sorted and distinct
    drawn = 0
    while len(keys) < num_edges:
        # Draw the shortfall scaled by the distinct fraction seen so far, plus 2%: one round
        # suffices unless the heaviest pairs collide often.
        distinct_rate = len(keys) / drawn if drawn else 1.0
        size = int((num_edges - len(keys)) / max(distinct_rate, 0.01) * 1.02) + 1
        drawn += size
        # Multinomial counts per node, expanded: exact categorical draws without searching a
        # cumulative table per edge. Users come out sorted, so the items are shuffled to pair
        # them independently.
        users = np.repeat(np.arange(num_users, dtype=np.int64), rng.multinomial(size, user_p))
        items = np.repeat(np.arange(num_items, dtype=np.int64), rng.multinomial(size, item_p))
        rng.shuffle(items)
        keys = np.sort(np.concatenate([keys, users * num_items + items]))
        keys = keys[np.r_[True, keys[1:] != keys[:-1]]]  # sort + compare: np.unique is far slower
    # Drop the surplus uniformly at random: np.delete keeps the rest sorted.
    keys = np.delete(keys, rng.choice(len(keys), len(keys) - num_edges, replace=False))
    return (keys // num_items).astype(np.int32), (keys % num_items).astype(np.int32)


def degree_summary(users: np.ndarray, items: np.ndarray, num_users: int, num_items: int) -> dict[str, Any]:
    """How skewed the graph is: nodes with edges, largest degrees, the top 1% items' share."""
    user_degree = np.bincount(users, minlength=num_users)
    item_degree = np.sort(np.bincount(items, minlength=num_items))[::-1]
    top = max(1, num_items // 100)
    return {
        "users_with_edges": int(np.count_nonzero(user_degree)),
        "items_with_edges": int(np.count_nonzero(item_degree)),
        "max_user_degree": int(user_degree.max()),
        "median_user_degree": float(np.median(user_degree)),
        "max_item_degree": int(item_degree[0]),
        "top1pct_item_edge_share": float(item_degree[:top].sum() / max(len(items), 1)),
    }


# ---------------------------------------------------------------------------- memory and time
def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as handle:
        return int(re.search(rf"^{field}:\s+(\d+) kB", handle.read(), re.M).group(1)) * 1024


class Phases:
    """Wall time and peak RSS of named phases of one process (see the module docstring)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.process_peak = _status_bytes("VmHWM")
        self.per_phase_peaks = self._reset_peak()

    def _reset_peak(self) -> bool:
        """Resets VmHWM to the current RSS (Linux >= 4.0); False where that is not allowed."""
        self.process_peak = max(self.process_peak, _status_bytes("VmHWM"))
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
            return True
        except OSError:
            return False

    @contextlib.contextmanager
    def phase(self, name: str):
        """Records `seconds`, `rss_before_bytes` and `peak_rss_bytes` of the block."""
        self._reset_peak()
        record = {"rss_before_bytes": _status_bytes("VmRSS")}
        start = time.perf_counter()
        yield record
        record["seconds"] = record.get("seconds", time.perf_counter() - start)
        record["peak_rss_bytes"] = _status_bytes("VmHWM")
        self.process_peak = max(self.process_peak, record["peak_rss_bytes"])
        self.records[name] = record

    def timed(self, name: str, function: Callable[[], Any], repeats: int) -> dict[str, Any]:
        """One tracing call, then the median of `repeats` calls, as phase `name`."""
        with self.phase(name) as record:
            start = time.perf_counter()
            function()
            record["first_call_seconds"] = time.perf_counter() - start
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                function()  # results dropped at once: only the call's own memory counts
                times.append(time.perf_counter() - start)
            record["repeat_seconds"] = times
            record["seconds"] = statistics.median(times)
        return record


# ---------------------------------------------------------------------------- measurements
def measure_lightgcn_propagation(graph: InteractionGraph, phases: Phases, args: argparse.Namespace) -> dict[str, Any]:
    """LightGCN's adjacency build, forward propagation, BPR step and one sparse product."""
    with phases.phase("model"):  # ego tables and Adam's two slots: 3 x (U + I) x D floats
        model = LightGCN(graph.num_users, graph.num_items + FIRST_ID, embedding_dim=args.embedding_dim,
                         num_layers=args.num_layers)
        compile_for_training(model, learning_rate=0.005)  # the zoo config's Adam
    with phases.phase("adjacency"):
        model.set_graph(graph)  # graph.adjacency(normalize=True), once

    forward = tf.function(lambda: model.final_embeddings())
    phases.timed("forward", forward, args.repeats)

    features = tf.random.normal([graph.num_users + graph.num_items, args.embedding_dim], seed=0)
    adjacency = model._adjacency
    one_product = tf.function(lambda: sparse_matmul(adjacency, features))
    phases.timed("sparse_matmul", one_product, args.repeats)

    @tf.function
    def product_and_gradient():  # the backward half is the transposed product of sparse_matmul
        with tf.GradientTape() as tape:
            tape.watch(features)
            product = sparse_matmul(adjacency, features)
        return tape.gradient(product, features, output_gradients=product)

    phases.timed("sparse_matmul_fwd_bwd", product_and_gradient, args.repeats)
    # The kernel alone: the CSR matrix built once, outside the timed call. Eager, because a
    # tf.function cannot take a captured CSR variant (its shape and dtype are lost); one eager
    # op costs microseconds of dispatch against milliseconds of product.
    csr = tf.raw_ops.SparseTensorToCSRSparseMatrix(indices=adjacency.indices, values=adjacency.values,
                                                   dense_shape=adjacency.dense_shape)
    phases.timed("csr_kernel", lambda: tf.raw_ops.SparseMatrixMatMul(a=csr, b=features), args.repeats)
    del csr, features

    if args.train_step:
        rng = np.random.default_rng(0)
        edges = rng.integers(0, graph.num_edges, args.batch_size)
        batch = {
            "user": graph.user_index[edges].astype(np.int32),
            "positive": (graph.item_index[edges] + FIRST_ID).astype(np.int32),
            "negative": (rng.integers(0, graph.num_items, args.batch_size) + FIRST_ID).astype(np.int32),
        }
        batches = iter(tf.data.Dataset.from_tensors(batch).repeat())
        train_function = model.make_train_function()  # the step `fit` runs
        phases.timed("train_step", lambda: train_function(batches), args.repeats)
    return {"adjacency_entries": int(adjacency.values.shape[0]), "embedding_dim": args.embedding_dim,
            "num_layers": args.num_layers}


class _StepClock(tf.keras.callbacks.Callback):
    """Wall time of every training batch (the first one includes tracing the step)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_batch_begin(self, batch: int, logs: Optional[dict] = None) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def measure_graphsage_cf_epoch(graph: InteractionGraph, phases: Phases, args: argparse.Namespace) -> dict[str, Any]:
    """One training epoch of `graphsage_cf` as the collaborative task runs it: `fit` on BPR triples.

    The model is the zoo's (attention aggregator, S = 10, embedding 64), built and compiled
    by `compile_for_training`; the data is `bpr_triples` (every edge once, one unseen
    negative each). `--max-steps` cuts the epoch short (tests); edges per second count the
    edges the measured steps trained on.
    """
    with phases.phase("model"):  # id tables, the attention layers and Adam's slots
        model = GraphSAGECF(graph.num_users, graph.num_items + FIRST_ID, embedding_dim=args.embedding_dim,
                            aggregator=args.aggregator, num_samples=args.num_samples)
        compile_for_training(model, learning_rate=0.005)  # the zoo config's Adam
    with phases.phase("set_graph"):  # CSR neighbour lists and the fixed serving neighbourhoods
        model.set_graph(graph)
    batches = bpr_triples(graph, batch_size=args.batch_size, seed=args.seed)
    steps = int(batches.cardinality().numpy())
    if args.max_steps:
        steps = min(steps, args.max_steps)
        batches = batches.take(steps)
    clock = _StepClock()
    with phases.phase("epoch") as record:
        model.fit(batches, epochs=1, verbose=0, callbacks=[clock])
    trained_edges = min(graph.num_edges, steps * args.batch_size)
    steady = clock.seconds[1:] or clock.seconds  # without the step that traced
    record["steps"] = steps
    record["first_step_seconds"] = clock.seconds[0]
    record["median_step_seconds"] = statistics.median(steady)
    return {"aggregator": args.aggregator, "num_samples": args.num_samples, "embedding_dim": args.embedding_dim,
            "batch_size": args.batch_size, "steps": steps, "trained_edges": trained_edges,
            "full_epoch": trained_edges == graph.num_edges,
            "edges_per_second": trained_edges / record["seconds"],
            "steady_edges_per_second": args.batch_size / record["median_step_seconds"]}


MEASURES: dict[str, Callable[[InteractionGraph, Phases, argparse.Namespace], dict[str, Any]]] = {
    "lightgcn_propagation": measure_lightgcn_propagation,
    "graphsage_cf_epoch": measure_graphsage_cf_epoch,
}


def run_size(num_edges: int, args: argparse.Namespace) -> dict[str, Any]:
    """Generates one graph and measures it in this process."""
    phases = Phases()
    baseline = _status_bytes("VmRSS")
    with phases.phase("generate"):
        users, items = power_law_edges(args.users, args.items, num_edges, seed=args.seed)
    summary = degree_summary(users, items, args.users, args.items)
    with phases.phase("from_pairs"):
        graph = InteractionGraph.from_pairs(users, items, num_users=args.users, num_items=args.items)
    del users, items  # the graph holds its own copies
    details = MEASURES[args.measure](graph, phases, args)
    return {
        "edges": graph.num_edges, "users": args.users, "items": args.items, **summary, **details,
        "baseline_rss_bytes": baseline, "peak_rss_bytes": max(phases.process_peak, _status_bytes("VmHWM")),
        "per_phase_peaks": phases.per_phase_peaks, "phases": phases.records, "load_average": os.getloadavg(),
    }


def _size_in_subprocess(num_edges: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", "--measure", args.measure, "--edges", str(num_edges),
               "--users", str(args.users), "--items", str(args.items), "--seed", str(args.seed),
               "--repeats", str(args.repeats), "--embedding-dim", str(args.embedding_dim),
               "--num-layers", str(args.num_layers), "--batch-size", str(args.batch_size),
               "--aggregator", args.aggregator, "--num-samples", str(args.num_samples),
               "--max-steps", str(args.max_steps)]
    if not args.train_step:
        command.append("--no-train-step")
    done = subprocess.run(command, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    # No result line: killed (for memory, -9) or crashed. Say so instead of losing the size.
    return {"edges": num_edges, "error": f"worker exited with {done.returncode}",
            "stderr_tail": done.stderr[-2000:]}


# ---------------------------------------------------------------------------- report
def machine_info() -> dict[str, Any]:
    cpu = platform.processor()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        found = re.search(r"^model name\s*:\s*(.+)$", handle.read(), re.M)
        cpu = found.group(1) if found else cpu
    with contextlib.suppress(OSError), open("/proc/meminfo") as handle:
        memory = int(re.search(r"MemTotal:\s+(\d+) kB", handle.read()).group(1)) * 1024
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_bytes": memory, "platform": platform.platform(),
            "python": platform.python_version(), "tensorflow": tf.__version__, "numpy": np.__version__}


def _cell(result: dict[str, Any], phase: str, key: str = "seconds", scale: float = 1.0) -> str:
    value = result.get("phases", {}).get(phase, {}).get(key)
    return "-" if value is None else f"{value / scale:.2f}"


def _lightgcn_row(r: dict[str, Any]) -> str:
    build = sum(r["phases"][p]["seconds"] for p in ("from_pairs", "adjacency") if p in r["phases"])
    return (f"| {r['edges']:,} | {r.get('adjacency_entries', 0):,} | {_cell(r, 'generate')} | {build:.2f} "
            f"| {_cell(r, 'forward')} | {_cell(r, 'sparse_matmul')} | {_cell(r, 'sparse_matmul_fwd_bwd')} "
            f"| {_cell(r, 'csr_kernel')} "
            f"| {_cell(r, 'train_step')} | {r['baseline_rss_bytes'] / GIB:.2f} "
            f"| {_cell(r, 'forward', 'peak_rss_bytes', GIB)} | {_cell(r, 'train_step', 'peak_rss_bytes', GIB)} "
            f"| {r['peak_rss_bytes'] / GIB:.2f} |")


def _graphsage_row(r: dict[str, Any]) -> str:
    epoch = r["phases"]["epoch"]
    return (f"| {r['edges']:,} | {r['users']:,} | {r['items']:,} | {r['steps']:,} | {r['trained_edges']:,} "
            f"| {_cell(r, 'from_pairs')} | {_cell(r, 'set_graph')} | {epoch['seconds']:.1f} "
            f"| {epoch['median_step_seconds']:.3f} | {r['edges_per_second']:,.0f} "
            f"| {r['steady_edges_per_second']:,.0f} | {_cell(r, 'epoch', 'peak_rss_bytes', GIB)} "
            f"| {r['peak_rss_bytes'] / GIB:.2f} |")


# Per measurement: the table header and the row of one size.
TABLES: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "lightgcn_propagation": (
        "| edges | adj. entries | generate s | from_pairs + adjacency s | forward s | sparse_matmul s "
        "| product + gradient s | CSR kernel s | train step s | baseline RSS GiB | peak forward GiB "
        "| peak train GiB | process peak GiB |", _lightgcn_row),
    "graphsage_cf_epoch": (
        "| edges | users | items | steps | trained edges | from_pairs s | set_graph s | epoch s "
        "| median step s | edges/s (epoch) | edges/s (median step) | peak epoch GiB | process peak GiB |",
        _graphsage_row),
}


def format_table(results: Sequence[dict[str, Any]], measure: str) -> str:
    header, row = TABLES[measure]
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in results:
        lines.append(f"| {r['edges']:,} | {r['error']} |" if "error" in r else row(r))
    return "\n".join(lines)


def plot(report: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [r for r in report["results"] if "error" not in r]
    if not results:
        raise ValueError("no size was measured: nothing to plot.")
    edges = np.array([r["edges"] for r in results], dtype=np.float64)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for phase, label in (("forward", "forward propagation"), ("train_step", "BPR train step (fwd + bwd)"),
                         ("adjacency", "adjacency build"), ("sparse_matmul", "one sparse product")):
        seconds = [r["phases"].get(phase, {}).get("seconds") for r in results]
        if all(s is not None for s in seconds):
            left.loglog(edges, seconds, "o-", label=label)
    if len(edges):  # a slope-1 guide through the first forward point
        first = results[0]["phases"]["forward"]["seconds"]
        left.loglog(edges, first * edges / edges[0], "k:", label="proportional to edges")
    left.set(xlabel="edges", ylabel="seconds (median)", title="Time")
    left.legend(fontsize=8)
    millions = edges / 1e6
    for key, label in (("forward", "peak during forward"), ("train_step", "peak during train step")):
        peaks = [r["phases"].get(key, {}).get("peak_rss_bytes") for r in results]
        if all(p is not None for p in peaks):
            right.plot(millions, np.array(peaks) / GIB, "o-", label=label)
    right.plot(millions, [r["peak_rss_bytes"] / GIB for r in results], "s--", label="process peak")
    right.plot(millions, [r["baseline_rss_bytes"] / GIB for r in results], "k:", label="after imports")
    right.set(xlabel="edges (millions)", ylabel="peak resident memory (GiB)", title="Peak RSS")
    right.set_ylim(bottom=0)
    right.legend(fontsize=8)
    first = results[0]
    figure.suptitle(f"{report['measure']}: {first['users']:,} users x {first['items']:,} items, power-law graph, "
                    f"{report['machine']['cores']} cores, TF {report['machine']['tensorflow']}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--measure", choices=sorted(MEASURES), default="lightgcn_propagation")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--edges", type=int, nargs="+", default=list(DEFAULT_EDGES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--num-layers", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--no-train-step", dest="train_step", action="store_false")
    parser.add_argument("--aggregator", default="attention", help="graphsage_cf_epoch: GraphSAGE aggregator")
    parser.add_argument("--num-samples", type=int, default=10, help="graphsage_cf_epoch: neighbours per node")
    parser.add_argument("--max-steps", type=int, default=0, help="graphsage_cf_epoch: cut the epoch (0: whole)")
    parser.add_argument("--in-process", action="store_true", help="no subprocess per size (tests)")
    parser.add_argument("--output-json")
    parser.add_argument("--plot")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plot and args.measure != "lightgcn_propagation":
        parser.error(f"--plot draws lightgcn_propagation's time and memory curves; {args.measure} has none.")
    return args


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.worker:
        print(RESULT_MARKER + json.dumps(run_size(args.edges[0], args)), flush=True)
        return {}
    report = {
        "benchmark": "graph_scale", "measure": args.measure,
        "command": shlex.join(["python", "benchmarks/graph_scale.py", *(sys.argv[1:] if argv is None else argv)]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(), "load_average_before": os.getloadavg(),
        "generator": {"user_exponent": USER_EXPONENT, "item_exponent": ITEM_EXPONENT, "seed": args.seed},
        "config": {"repeats": args.repeats, "embedding_dim": args.embedding_dim, "num_layers": args.num_layers,
                   "batch_size": args.batch_size, "train_step": args.train_step, "in_process": args.in_process,
                   "aggregator": args.aggregator, "num_samples": args.num_samples, "max_steps": args.max_steps},
        "results": [],
    }
    for num_edges in args.edges:
        result = run_size(num_edges, args) if args.in_process else _size_in_subprocess(num_edges, args)
        report["results"].append(result)
        print(format_table([result], args.measure).splitlines()[-1], flush=True)  # the row, as soon as it exists
    report["load_average_after"] = os.getloadavg()
    print(format_table(report["results"], args.measure))
    print(f"load average before {report['load_average_before']}, after {report['load_average_after']}")
    if args.output_json:
        pathlib.Path(args.output_json).write_text(json.dumps(report, indent=2) + "\n")
    if args.plot:
        plot(report, args.plot)
    return report


if __name__ == "__main__":
    main()
