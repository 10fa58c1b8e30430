"""Where a SASRec training step spends its time: a TensorBoard profiler trace, summarised by op type.

The script builds the `sasrec` zoo model as `tf-attnrec train --model sasrec --dataset ml-1m`
does. The config comes from the CLI's own parser and `resolve_train_config`, so
`models/sasrec/config.yaml` < flags. The data and model come from the task's `build_data` and
`build_model`, as in `cmd_train`. The step is then set up as `train_sequential` and
`fit_model` set it up: seed, `adapt`, `next_item_dataset`, `compile_for_training`. The step
is the Keras train function, `model.make_train_function()`, the step `fit` runs. As in
`benchmarks/train_throughput.py`, its batches come from the tf.data pipeline.

The script runs in four phases:

1. `--warmup` untimed steps, which trace the graph.
2. `--steps` timed steps without the profiler. This is the per-step wall time.
3. `--steps` steps under `tf.profiler.experimental.start(logdir)` / `stop()`. The trace
   under `--logdir` (`plugins/profile/<run>/<host>.xplane.pb`) opens in TensorBoard's Profile
   tab: `tensorboard --logdir LOGDIR`.
4. A summary of that trace, read with TensorFlow's own XSpace proto, without
   tensorboard_plugin_profile.

How the trace is read. On CPU the executor records one host-plane event per op kernel,
named "op_name:OpType", on the thread that ran it (`tf_Compute` lines). The input
iterator's async kernel appears only as "IteratorGetNextOp::DoCompute", counted here as
`IteratorGetNext`. A step is one call of the train `tf.function` on the Python thread. Only
op time inside those calls is counted.

Ops that nest on one thread (a function-call op and the ops it runs) are charged as
self-time. Each instant goes to the innermost op, so nothing is counted twice. Ops that
overlap on different threads (inter-op parallelism) share the wall clock: when k ops run at
once, each is charged 1/k of that time. With this attribution, "total ms" sums to at most the
profiled step time, and "% step" sums to at most 100. What remains is time with no op
running: executor scheduling, waiting for the input pipeline, and the function call itself.
"thread ms" is the plain self-time on the op's own thread. Summed over threads, it can exceed
the wall time.

Usage:

    python benchmarks/profile_step.py [--dataset ml-1m] [--data-dir ../shared/data] [--steps 30]
        [--warmup 5] [--logdir DIR] [--output-json FILE] [--top 15] [--note TEXT]
        [--batch-size N] [--max-length L] [--set hidden_dim=16 ...] [--seed S] [--jit]
"""

# No `from __future__ import annotations`: `tests.conftest.load_benchmark` loads this file
# without registering it in sys.modules, and dataclasses then cannot resolve string annotations.
import argparse
import bisect
import collections
import dataclasses
import datetime
import json
import os
import pathlib
import platform
import re
import shlex
import sys
import tempfile
import time
from typing import Iterable, Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tf_attnrec  # noqa: E402,F401  (Keras 2 before TensorFlow)
import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

from tf_attnrec import cli  # noqa: E402
from tf_attnrec.data import next_item_dataset  # noqa: E402
from tf_attnrec.models.registry import get_model_spec  # noqa: E402
from tf_attnrec.tasks import get_task  # noqa: E402
from tf_attnrec.training import compile_for_training  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"
MODEL = "sasrec"
HOST_PLANE = "/host:CPU"
# An executor op event: "op_name:OpType". Op names never contain ':', so this regex does
# not match runtime events such as "ExecutorState::Process".
OP_EVENT = re.compile(r"^(?P<name>[A-Za-z0-9.][A-Za-z0-9_./>\-]*):(?P<type>[A-Za-z_][A-Za-z0-9_]*)$")
# Async kernels get no "name:Type" event. Their work shows up under these names instead.
ASYNC_OP_EVENTS = {"IteratorGetNextOp::DoCompute": ("IteratorGetNext", "IteratorGetNext")}
PS_PER_MS = 1e9


@dataclasses.dataclass(frozen=True)
class OpEvent:
    """One op execution on one thread, in picoseconds since the trace's epoch."""

    start_ps: int
    end_ps: int
    op_type: str
    op_name: str


@dataclasses.dataclass
class OpTypeRow:
    op_type: str
    total_ms: float  # wall time charged to this type (shared 1/k where k ops overlap)
    percent_of_step: float
    thread_ms: float  # self-time on the op's own thread, not shared
    count: int
    ms_per_step: float


# ----------------------------------------------------------------------- the training step
def train_command(args: argparse.Namespace) -> list:
    """The `tf-attnrec train` arguments that configure the step being profiled."""
    argv = ["train", "--model", MODEL, "--dataset", args.dataset, "--data-dir", str(args.data_dir), "--no-download"]
    for flag in ("batch_size", "max_length", "seed"):
        if getattr(args, flag) is not None:
            argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    for assignment in args.set or ():
        argv += ["--set", assignment]
    if args.jit:
        argv.append("--jit")
    return argv


def build_training_step(train_argv: Sequence[str]):
    """The Keras train function, its batch iterator and the resolved config, as `tf-attnrec train` builds them.

    Returns:
        `(train_function, batches, config, split, steps_per_epoch)`, where `config` holds the
        `model_config` (spec defaults included) and the `training` settings the step uses.
    """
    train_args = cli.build_parser().parse_args(list(train_argv))
    config = cli.resolve_train_config(train_args)
    spec = get_model_spec(MODEL)
    task = get_task(spec.task)
    dataset = config["data"].load(download=False)
    training = dict(config["training"])
    data_options = {key: training.pop(key) for key in task.data_keys if key in training}
    model_config = {"max_length": spec.default_config().get("max_length"), **config["model_config"]}
    split = task.build_data(dataset, model_config, data_options)
    model = task.build_model(spec, split, config["model_config"])
    # From here on, this follows what `train_sequential` and `fit_model` do before `fit`.
    seed = int(training.get("seed", 0))
    batch_size = int(training.get("batch_size", 128))
    jit_compile = bool(training.get("jit_compile", False))
    length_buckets = int(training.get("length_buckets", 1))
    tf.keras.utils.set_random_seed(seed)
    model.adapt(split.train)
    train_batches = next_item_dataset(
        split.train, max_length=model.max_length, batch_size=batch_size, shuffle=True, seed=seed,
        split_long_sequences=bool(training.get("split_long_sequences", False)), drop_remainder=jit_compile,
        length_buckets=length_buckets,
    )
    compile_for_training(model, float(training.get("learning_rate", 1e-3)), jit_compile,
                         training.get("optimizer", "adam"))
    steps_per_epoch = int(train_batches.cardinality().numpy())
    step_config = {
        "dataset": config["dataset"],
        "form": dataset.form,
        "model_config": {**spec.default_config(), **config["model_config"]},
        "training": {"batch_size": batch_size, "learning_rate": float(training.get("learning_rate", 1e-3)),
                     "optimizer": training.get("optimizer", "adam"), "jit_compile": jit_compile, "seed": seed,
                     "length_buckets": length_buckets},
    }
    return model.make_train_function(), iter(train_batches.repeat()), step_config, split, steps_per_epoch


def run_steps(train_function, batches, steps: int) -> float:
    """Runs `steps` training steps and returns their wall time in seconds (the last one awaited)."""
    start = time.perf_counter()
    for _ in range(steps):
        logs = train_function(batches)
    float(logs["loss"])
    return time.perf_counter() - start


def profile_steps(train_function, batches, steps: int, logdir: pathlib.Path) -> tuple:
    """Runs `steps` steps under the TensorBoard profiler and returns `(wall seconds, xplane path)`."""
    before = set(logdir.glob("plugins/profile/*/*.xplane.pb"))
    tf.profiler.experimental.start(str(logdir))
    try:
        seconds = run_steps(train_function, batches, steps)
    finally:
        tf.profiler.experimental.stop()
    written = sorted(set(logdir.glob("plugins/profile/*/*.xplane.pb")) - before, key=lambda p: p.stat().st_mtime)
    if not written:
        raise FileNotFoundError(f"the profiler wrote no .xplane.pb under {logdir}/plugins/profile")
    return seconds, written[-1]


# ------------------------------------------------------------------------ reading the trace
def read_host_plane(xplane_path: pathlib.Path) -> xplane_pb2.XPlane:
    """The host (CPU) plane of a profiler trace file."""
    space = xplane_pb2.XSpace()
    space.ParseFromString(xplane_path.read_bytes())
    for plane in space.planes:
        if plane.name == HOST_PLANE:
            return plane
    raise ValueError(f"{xplane_path} has no {HOST_PLANE!r} plane; planes: {[p.name for p in space.planes]}")


def _event_bounds(line: xplane_pb2.XLine, event: xplane_pb2.XEvent) -> tuple:
    start = line.timestamp_ns * 1000 + event.offset_ps
    return start, start + event.duration_ps


def step_windows(plane: xplane_pb2.XPlane, function_name: str) -> list:
    """`(start_ps, end_ps)` of every call of the `tf.function` named `function_name`, in order."""
    call_stat = next((key for key, stat in plane.stat_metadata.items() if stat.name == "tf_function_call"), None)
    windows = []
    for line in plane.lines:
        for event in line.events:
            if plane.event_metadata[event.metadata_id].name != function_name:
                continue
            if call_stat is None or any(stat.metadata_id == call_stat for stat in event.stats):
                windows.append(_event_bounds(line, event))
    if not windows:
        raise ValueError(f"no call of the tf.function {function_name!r} in the trace")
    return sorted(windows)


def op_events_by_thread(plane: xplane_pb2.XPlane) -> dict:
    """The op events of every thread (line) of the host plane: `{line id: [OpEvent, ...]}`."""
    op_of_metadata = {}
    for key, metadata in plane.event_metadata.items():
        match = OP_EVENT.match(metadata.name)
        if match:
            op_of_metadata[key] = (match["type"], match["name"])
        elif metadata.name in ASYNC_OP_EVENTS:
            op_of_metadata[key] = ASYNC_OP_EVENTS[metadata.name]
    threads = {}
    for line in plane.lines:
        events = [OpEvent(*_event_bounds(line, event), *op_of_metadata[event.metadata_id])
                  for event in line.events if event.metadata_id in op_of_metadata]
        if events:
            threads[line.id] = events
    return threads


# -------------------------------------------------------------------- attributing the time
def innermost_segments(events: Iterable[OpEvent]) -> list:
    """Splits one thread's (possibly nested) op events into disjoint `(start, end, event)` pieces.

    Each instant goes to the innermost open event. A function-call op is then charged only
    for the time none of its inner ops is running.
    """
    segments, stack, cursor = [], [], 0

    def close_until(time_ps: float, cursor: int) -> int:
        while stack and stack[-1].end_ps <= time_ps:
            event = stack.pop()
            if event.end_ps > cursor:
                segments.append((cursor, event.end_ps, event))
                cursor = event.end_ps
        return cursor

    for event in sorted(events, key=lambda e: (e.start_ps, -e.end_ps)):
        cursor = close_until(event.start_ps, cursor)
        if stack and event.start_ps > cursor:
            segments.append((cursor, event.start_ps, stack[-1]))
        stack.append(event)
        cursor = event.start_ps
    close_until(float("inf"), cursor)
    return segments


def clip_to_windows(segments: Iterable[tuple], windows: Sequence[tuple]) -> list:
    """The parts of `segments` that lie inside the (sorted, disjoint) step windows."""
    clipped = []
    for start, end, event in segments:
        for window_start, window_end in windows:
            if window_start >= end:
                break
            low, high = max(start, window_start), min(end, window_end)
            if high > low:
                clipped.append((low, high, event))
    return clipped


def starts_in_a_window(event: OpEvent, windows: Sequence[tuple]) -> bool:
    """Whether `event` starts inside one of the (sorted, disjoint) step windows."""
    index = bisect.bisect_right(windows, (event.start_ps, float("inf"))) - 1
    return index >= 0 and windows[index][0] <= event.start_ps < windows[index][1]


def share_wall_time(segments: Sequence[tuple]) -> collections.Counter:
    """Picoseconds of wall time per op event. Where k segments overlap, each gets 1/k."""
    boundaries = []
    for index, (start, end, _) in enumerate(segments):
        boundaries.append((start, 1, index))
        boundaries.append((end, 0, index))  # at equal times, ends sort before starts
    boundaries.sort()
    wall_ps, active, previous = collections.Counter(), set(), 0
    for time_ps, is_start, index in boundaries:
        if active and time_ps > previous:
            share = (time_ps - previous) / len(active)
            for running in active:
                wall_ps[segments[running][2]] += share
        previous = time_ps
        (active.add if is_start else active.discard)(index)
    return wall_ps


def summarise(plane: xplane_pb2.XPlane, function_name: str, steps: int, top: int) -> dict:
    """Per-op-type table of the profiled steps (see the module docstring for the attribution)."""
    windows = step_windows(plane, function_name)
    step_ps = sum(end - start for start, end in windows)
    threads = op_events_by_thread(plane)
    segments = [piece for events in threads.values()
                for piece in clip_to_windows(innermost_segments(events), windows)]
    wall_ps = share_wall_time(segments)
    thread_ps = collections.Counter()
    for start, end, event in segments:
        thread_ps[event] += end - start
    in_a_step = {event for events in threads.values() for event in events if starts_in_a_window(event, windows)}
    by_type = collections.defaultdict(lambda: {"wall": 0.0, "thread": 0, "count": 0})
    by_name = collections.defaultdict(collections.Counter)
    for event in in_a_step | set(wall_ps):
        totals = by_type[event.op_type]
        totals["wall"] += wall_ps.get(event, 0.0)
        totals["thread"] += thread_ps.get(event, 0)
        totals["count"] += event in in_a_step
        by_name[event.op_type][event.op_name] += wall_ps.get(event, 0.0)
    rows = [OpTypeRow(op_type, totals["wall"] / PS_PER_MS, 100.0 * totals["wall"] / step_ps,
                      totals["thread"] / PS_PER_MS, totals["count"], totals["wall"] / PS_PER_MS / len(windows))
            for op_type, totals in by_type.items()]
    rows.sort(key=lambda row: row.total_ms, reverse=True)
    op_wall_ps = sum(wall_ps.values())
    return {
        "profiled_steps": len(windows),
        "requested_steps": steps,
        "profiled_step_time_ms": step_ps / PS_PER_MS,
        "profiled_ms_per_step": step_ps / PS_PER_MS / len(windows),
        "op_time_ms": op_wall_ps / PS_PER_MS,
        "no_op_running_ms": (step_ps - op_wall_ps) / PS_PER_MS,
        "op_types": len(rows),
        "threads_with_ops": len(threads),
        "rows": rows[:top],
        "other_types": {"total_ms": sum(row.total_ms for row in rows[top:]),
                        "percent_of_step": sum(row.percent_of_step for row in rows[top:]),
                        "count": sum(row.count for row in rows[top:])},
        "top_op_names": {row.op_type: [(name, ps / PS_PER_MS) for name, ps in by_name[row.op_type].most_common(3)]
                         for row in rows[:5]},
    }


# -------------------------------------------------------------------------------- printing
def describe_threads() -> str:
    """The thread settings TensorFlow runs with: an env var or an API call, else its default."""
    def setting(env: str, configured: int) -> str:
        if os.environ.get(env):
            return f"{os.environ[env]} ({env})"
        return str(configured) if configured else "TF default"

    threading = tf.config.threading
    intra = setting("TF_NUM_INTRAOP_THREADS", threading.get_intra_op_parallelism_threads())
    inter = setting("TF_NUM_INTEROP_THREADS", threading.get_inter_op_parallelism_threads())
    return f"intra-op threads {intra}, inter-op threads {inter}"


def print_header(args: argparse.Namespace, train_argv: Sequence[str], step_config: dict, split,
                 steps_per_epoch: int) -> dict:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    thread_env = " ".join(f"{name}={os.environ[name]}" for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
                          if os.environ.get(name))
    header = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores visible, "
                   f"load average (1 min) {load:.2f} at start; {describe_threads()}",
        "tf_version": tf.__version__,
        "command": " ".join(filter(None, [thread_env, "python", shlex.join(sys.argv)])),
        "equivalent_train_command": "tf-attnrec " + shlex.join(train_argv),
        "note": args.note,
        **step_config,
        "training_sequences": split.num_users,
        "vocab_size": split.vocabulary.size,
        "steps_per_epoch": steps_per_epoch,
    }
    print(f"date: {header['date']}")
    print(f"machine: {header['machine']}; TF {header['tf_version']}")
    if args.note:
        print(f"note: {args.note}")
    print(f"command: {header['command']}")
    print(f"builds the step of: {header['equivalent_train_command']}")
    print(f"data: {header['dataset']} (form: {header['form']}), {header['training_sequences']:,} training sequences, "
          f"vocab_size {header['vocab_size']:,}, {steps_per_epoch} steps/epoch")
    print("model_config: " + ", ".join(f"{key}={value}" for key, value in header["model_config"].items()))
    print("training: " + ", ".join(f"{key}={value}" for key, value in header["training"].items()))
    return header


def print_summary(summary: dict, timing: dict) -> None:
    steps = summary["profiled_steps"]
    print(f"\nwall time per step without the profiler: {timing['unprofiled_ms_per_step']:.1f} ms "
          f"(mean of {timing['steps']} steps after {timing['warmup']} warm-up steps)")
    print(f"wall time per step under the profiler:   {timing['profiled_wall_ms_per_step']:.1f} ms")
    print(f"profiled step time in the trace: {summary['profiled_step_time_ms']:.1f} ms over {steps} steps "
          f"({summary['profiled_ms_per_step']:.1f} ms/step; the train tf.function calls)")
    op_share = 100 * summary["op_time_ms"] / summary["profiled_step_time_ms"]
    print(f"op time: {summary['op_time_ms']:.1f} ms ({op_share:.1f}%) in {summary['op_types']} op types on "
          f"{summary['threads_with_ops']} threads; no op running: {summary['no_op_running_ms']:.1f} ms "
          f"({100 - op_share:.1f}%: executor scheduling, input wait, function-call overhead)")
    print(f"\n{'op type':<34}{'total ms':>10}{'% step':>8}{'thread ms':>11}{'count':>8}{'ms/step':>9}")
    for row in summary["rows"]:
        print(f"{row.op_type:<34}{row.total_ms:>10.1f}{row.percent_of_step:>8.1f}{row.thread_ms:>11.1f}"
              f"{row.count:>8}{row.ms_per_step:>9.2f}")
    other = summary["other_types"]
    print(f"{'(other types)':<34}{other['total_ms']:>10.1f}{other['percent_of_step']:>8.1f}{'':>11}{other['count']:>8}"
          f"{other['total_ms'] / steps:>9.2f}")
    print("\ntotal ms: wall time of the type's own work (self-time; 1/k each where k ops overlap on different "
          "threads), summed over the profiled steps; % step: of the profiled step time; thread ms: self-time "
          "on the op's thread, not shared.")
    print("\nlargest ops of the top 5 types (total ms):")
    for op_type, names in summary["top_op_names"].items():
        print(f"  {op_type}: " + "; ".join(f"{name} {ms:.1f}" for name, ms in names))


# ------------------------------------------------------------------------------------ main
def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("ml-1m", "ml-100k"), default="ml-1m",
                        help="ml-1m (the zoo's data) or ml-100k for a quick run")
    parser.add_argument("--data-dir", default=os.environ.get("TF_ATTNREC_DATA_DIR", str(DEFAULT_DATA_DIR)),
                        help="folder holding ml-1m/ml-1m.txt (default ../shared/data)")
    parser.add_argument("--steps", type=int, default=30, help="profiled steps (and as many timed without the profiler)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (tracing)")
    parser.add_argument("--logdir", type=pathlib.Path, help="where the trace is written (default: a new temp folder)")
    parser.add_argument("--output-json", type=pathlib.Path, help="also write the header, timings and table as JSON")
    parser.add_argument("--top", type=int, default=15, help="op types in the table")
    parser.add_argument("--note", help="a line printed at the top (e.g. what else ran on the machine)")
    parser.add_argument("--batch-size", type=int, help="as `tf-attnrec train --batch-size` (default: the zoo's)")
    parser.add_argument("--max-length", type=int, help="as `tf-attnrec train --max-length`")
    parser.add_argument("--seed", type=int, help="as `tf-attnrec train --seed`")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="as `tf-attnrec train --set` (repeatable)")
    parser.add_argument("--jit", action="store_true", help="as `tf-attnrec train --jit` (XLA)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be >= 1 (the first step traces the graph).")
    return args


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    logdir = args.logdir or pathlib.Path(tempfile.mkdtemp(prefix="profile_step-"))
    logdir.mkdir(parents=True, exist_ok=True)
    train_argv = train_command(args)
    train_function, batches, step_config, split, steps_per_epoch = build_training_step(train_argv)
    header = print_header(args, train_argv, step_config, split, steps_per_epoch)

    run_steps(train_function, batches, args.warmup)
    unprofiled_seconds = run_steps(train_function, batches, args.steps)
    profiled_seconds, xplane_path = profile_steps(train_function, batches, args.steps, logdir)
    timing = {"steps": args.steps, "warmup": args.warmup,
              "unprofiled_ms_per_step": 1000 * unprofiled_seconds / args.steps,
              "profiled_wall_ms_per_step": 1000 * profiled_seconds / args.steps}
    summary = summarise(read_host_plane(xplane_path), train_function.__name__, args.steps, args.top)
    print_summary(summary, timing)
    print(f"\ntrace: {xplane_path} (open with: tensorboard --logdir {logdir}, Profile tab)")

    result = {**header, **timing, **summary, "trace_file": str(xplane_path), "logdir": str(logdir),
              "rows": [dataclasses.asdict(row) for row in summary["rows"]]}
    if args.output_json:
        args.output_json.parent.mkdir(parents=True, exist_ok=True)
        args.output_json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
