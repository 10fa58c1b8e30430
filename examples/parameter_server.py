"""SASRec with its item table sharded over parameter servers (`ParameterServerStrategy`), on localhost.

What it shows: an item-embedding table that need not fit in one worker's memory. The script
starts a small cluster on this host, as processes: `--num-ps` parameter servers (default 2) and
`--num-workers` workers (default 2), each a `tf.distribute.Server` started from its own
`TF_CONFIG` (free ports, picked as `tf_attnrec.distribute.local_cluster` picks them). The script
itself is the coordinator (the "chief"): it builds the zoo's SASRec under
`tf.distribute.ParameterServerStrategy` with a variable partitioner, so that the item table
becomes a `ShardedVariable` of one shard per parameter server, and trains it with Keras
`model.fit` for a few steps on MovieLens-100K, each step scheduled on whichever worker is free.
It prints the cluster, the item table's shards (name, shape, parameter-server device, bytes),
what each parameter server holds (weights and Adam slots), the loss of every step, and a final
check line. It exits with status 0 when the shards live on distinct parameter servers, every
loss is finite and row lookups on the sharded table return the right rows; the server
processes are ended in every case (also on errors).

Run it (30 to 60 s on two busy CPU cores; the servers' logs go to a temporary folder that
is printed when something fails):

    python examples/parameter_server.py --data-dir ../shared/data
    python examples/parameter_server.py --data-dir ../shared/data --dataset ml-100k --steps 20 \\
        --num-ps 2 --num-workers 2

How it scales: the partitioner (`MinSizePartitioner(min_shard_bytes, max_shards=num_ps)`, with
`min_shard_bytes` a share of the item table's bytes so that the table, and only the big tables,
split into `num_ps` shards) cuts the table by rows into contiguous blocks, one per parameter
server; the optimizer's slots for a shard are created on the same server. A worker need not
hold the table: its embedding lookups (`tf.nn.embedding_lookup`, which Keras' `Embedding` calls
and which `ShardedVariable` dispatches shard by shard) fetch only the rows a batch touches, and
the gradients of those rows go back as sparse row updates (`IndexedSlices`) that each server
applies to its own rows. Memory per parameter server is therefore about rows x dim x 4 bytes / num_ps for the
float32 table, times 3 with Adam (the table plus its two moment slots): 100M items x 64 dims is
25.6 GB of weights, 76.8 GB with Adam, so 19.2 GB per server with 4 servers, 4.8 GB with 16.
What does not scale in this example is the loss: the zoo's SASRec trains by default with a
full softmax, which multiplies each query by the whole table (`table[2:]` reads every shard in
every step; correct, but a worker then holds the table for the step). A catalogue of 100M items
needs the "in_batch" or "sampled_softmax" loss, which need only their candidates' rows. In the
library today they get the whole table too: `SequentialRetrievalModel._gather_targets` casts it
to float32 (`as_float32`, `tf.cast`), which concatenates the shards into one tensor every step.
Reading rows only needs the variable kept as it is and `tf.nn.embedding_lookup(table, ids)` in
place of `tf.gather(table, ids)`: `tf.gather` on a `ShardedVariable` goes through
`ShardedVariable.sparse_read`, which (TF 2.20) returns the rows grouped by shard instead of in
the ids' order, without an error, while `tf.nn.embedding_lookup` returns them in order (the
script prints both on its table). This example keeps the softmax.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Optional

SERVE_FLAG = "--serve-from-tf-config"
COORDINATOR_PID = "TF_ATTNREC_PS_EXAMPLE_COORDINATOR"


# ---------------------------------------------------------------------------- the servers
def serve() -> None:
    """A parameter server or worker: a `tf.distribute.Server` from `TF_CONFIG`, serving until ended.

    It ends when killed, or by itself once the coordinator that started it is gone (killed
    before it could end its servers: a test's time-out), so that no server outlives it.
    Imports TensorFlow only (not `tf_attnrec`, not Keras): the coordinator sends the servers
    graph functions and variables, never Python. The thread pools follow `TF_NUM_INTRAOP_THREADS`
    and `TF_NUM_INTEROP_THREADS` when set, with at least 2 inter-op threads (a worker's step
    waits on its reads from the parameter servers while other ops run).
    """
    import tensorflow as tf

    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=int(os.environ.get("TF_NUM_INTRAOP_THREADS", "0")),
        inter_op_parallelism_threads=max(2, int(os.environ.get("TF_NUM_INTEROP_THREADS", "0"))),
    )
    server = tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type,
                                  task_index=resolver.task_id, config=config, protocol="grpc", start=True)
    print(f"{resolver.task_type}:{resolver.task_id} serving at {server.target}", flush=True)
    coordinator = int(os.environ[COORDINATOR_PID])
    while os.getppid() == coordinator:  # the server runs in TensorFlow's threads meanwhile
        time.sleep(1.0)
    print(f"the coordinator (pid {coordinator}) is gone; ending", flush=True)
    os._exit(0)


def free_ports(count: int, host: str = "localhost") -> list[int]:
    """`count` distinct free ports: bound together, then released (as `tf_attnrec.distribute.local_cluster`)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def cluster_spec(num_ps: int, num_workers: int, host: str = "localhost") -> dict:
    """The cluster as `TF_CONFIG` names it: one chief (this process), the workers, the parameter servers."""
    ports = iter(free_ports(1 + num_workers + num_ps, host))
    return {
        "chief": [f"{host}:{next(ports)}"],
        "worker": [f"{host}:{next(ports)}" for _ in range(num_workers)],
        "ps": [f"{host}:{next(ports)}" for _ in range(num_ps)],
    }


class Servers:
    """The worker and parameter-server processes: started with their `TF_CONFIG`, ended by `close`."""

    def __init__(self, cluster: dict, log_dir: pathlib.Path) -> None:
        self.cluster = cluster
        self.log_dir = log_dir
        self.processes: list[tuple[str, subprocess.Popen]] = []

    def start(self, timeout: float = 120.0) -> None:
        for job in ("ps", "worker"):
            for index in range(len(self.cluster[job])):
                name = f"{job}:{index}"
                env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
                       "TF_CONFIG": json.dumps({"cluster": self.cluster, "task": {"type": job, "index": index}}),
                       COORDINATOR_PID: str(os.getpid())}
                log = open(self.log_dir / f"{job}-{index}.log", "w")
                process = subprocess.Popen([sys.executable, os.path.abspath(__file__), SERVE_FLAG], env=env,
                                           stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                log.close()
                self.processes.append((name, process))
        # The coordinator connects once every server listens (gRPC would retry, but a server that
        # died at start-up should fail here, with its log, not as a connection time-out later).
        deadline = time.monotonic() + timeout
        for name, process in self.processes:
            job, index = name.split(":")
            host, port = self.cluster[job][int(index)].rsplit(":", 1)
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with status {process.returncode} at start-up; "
                                       f"its log:\n{self.log(name)}")
                try:
                    socket.create_connection((host, int(port)), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{name} did not listen at {host}:{port} within {timeout:.0f} s; "
                                           f"its log:\n{self.log(name)}") from None
                    time.sleep(0.2)

    def log(self, name: str) -> str:
        job, index = name.split(":")
        path = self.log_dir / f"{job}-{index}.log"
        return path.read_text()[-3000:] if path.exists() else "(no log)"

    def check_alive(self) -> None:
        for name, process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with status {process.returncode}; its log:\n{self.log(name)}")

    def close(self) -> None:
        """Ends every server: SIGTERM, then SIGKILL for any still running after 5 s."""
        for _, process in self.processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 5
        for _, process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# ---------------------------------------------------------------------------- the coordinator
def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder holding ml-100k/ (e.g. ../shared/data)")
    parser.add_argument("--dataset", default="ml-100k", help="a dataset name of tf_attnrec.data (default ml-100k)")
    parser.add_argument("--steps", type=int, default=20, help="training steps (default 20)")
    parser.add_argument("--num-ps", type=int, default=2, help="parameter servers = item-table shards (default 2)")
    parser.add_argument("--num-workers", type=int, default=2, help="workers (default 2)")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per step (default 64)")
    parser.add_argument("--max-length", type=int, default=50, help="history length (default 50)")
    parser.add_argument("--hidden-dim", type=int, default=32, help="item-embedding width (default 32)")
    parser.add_argument("--learning-rate", type=float, default=5e-3, help="Adam's learning rate (default 5e-3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("steps", "num_ps", "num_workers", "batch_size", "max_length", "hidden_dim"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1.")
    return args


def human(num_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num_bytes < 1024 or unit == "GiB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    return ""


def short_device(device: str) -> str:
    """"/job:ps/replica:0/task:1/device:CPU:0" -> "/job:ps/task:1"."""
    parts = [part for part in device.split("/") if part.startswith(("job:", "task:"))]
    return "/" + "/".join(parts) if parts else device or "(coordinator)"


def train(args: argparse.Namespace, cluster: dict) -> bool:
    """Builds SASRec under `ParameterServerStrategy`, trains it, prints the shards; True when the checks pass."""
    import tf_attnrec  # before TensorFlow: selects Keras 2 (tf-keras) for tf.keras
    import numpy as np
    import tensorflow as tf
    from tf_attnrec.data.datasets import load_dataset
    from tf_attnrec.data.pipelines import next_item_dataset
    from tf_attnrec.data.splits import leave_one_out_split
    from tf_attnrec.training import compile_for_training

    # Keras warns at every epoch end under this strategy that it reads the logs of the last step
    # function: with one step per epoch (below) those are exactly that step's loss.
    tf.get_logger().addFilter(lambda record: "Could not get Model metric results" not in record.getMessage())
    tf.keras.utils.set_random_seed(args.seed)
    data = load_dataset(args.dataset, data_dir=args.data_dir, download=False)
    split = leave_one_out_split(data.interactions)
    vocab_size = split.vocabulary.size
    print(f"data: {args.dataset}, {len(split.train)} users, {split.vocabulary.num_items} items "
          f"(item table: {vocab_size} rows x {args.hidden_dim})")

    # The partitioner sees every variable the strategy creates; one that is at least
    # `num_ps` x `min_shard_bytes` big splits into `num_ps` shards (`max_shards`), a smaller one
    # into fewer, and one under `min_shard_bytes` stays whole on one server (round robin). With
    # `min_shard_bytes` a `num_ps`-th of the item table, the table (and nothing much smaller:
    # positions, kernels, biases) splits into one shard per parameter server.
    table_bytes = vocab_size * args.hidden_dim * 4
    min_shard_bytes = max(1, table_bytes // args.num_ps)
    partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
        min_shard_bytes=min_shard_bytes, max_shards=args.num_ps)
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type="chief", task_id=0, rpc_layer="grpc")
    strategy = tf.distribute.experimental.ParameterServerStrategy(resolver, variable_partitioner=partitioner)
    print(f"strategy: ParameterServerStrategy, MinSizePartitioner(min_shard_bytes={min_shard_bytes}, "
          f"max_shards={args.num_ps})")

    with strategy.scope():
        model = tf_attnrec.create_model("sasrec", vocab_size=vocab_size, max_length=args.max_length,
                                        hidden_dim=args.hidden_dim, num_blocks=1, dropout=0.1)
        model.adapt(split.train)
        compile_for_training(model, args.learning_rate)  # the variables and Adam's slots, up front

    table = model.encoder.embedding.item_embeddings.embeddings
    shards = list(getattr(table, "variables", [table]))
    table_name = shards[0].name.split("/part_")[0].split(":")[0]
    print(f"item table: {type(table).__name__} {table_name} shape={list(table.shape)}, {len(shards)} shards")
    for shard in shards:
        shard_bytes = shard.shape.num_elements() * shard.dtype.size
        print(f"  shard {shard.name} shape={list(shard.shape)} device={shard.device} "
              f"bytes={shard_bytes} ({human(shard_bytes)})")

    # What each server holds: the model's weights and the optimizer's slots, by device.
    held: dict = {}
    variables = [(v, "weights") for v in model.variables] + [(v, "optimizer") for v in model.optimizer.variables]
    for variable, kind in variables:
        for part in getattr(variable, "variables", [variable]):
            device = short_device(part.device)
            held.setdefault(device, {"weights": 0, "optimizer": 0})[kind] += part.shape.num_elements() * part.dtype.size
    for device in sorted(held):
        sizes = held[device]
        print(f"  memory on {device}: weights {human(sizes['weights'])} + optimizer (Adam's slots) "
              f"{human(sizes['optimizer'])}")

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        # Traced by the coordinator; the dataset it builds runs on each worker, its own shuffled stream.
        return next_item_dataset(split.train, max_length=args.max_length, batch_size=args.batch_size,
                                 shuffle=True, seed=args.seed + context.input_pipeline_id).repeat()

    class StepLosses(tf.keras.callbacks.Callback):
        # One Keras "epoch" is one step here, so each epoch's logs are that step's loss.
        def __init__(self) -> None:
            super().__init__()
            self.losses: list[float] = []
            self.started = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
            loss = float((logs or {})["loss"])
            self.losses.append(loss)
            print(f"step {epoch + 1:3d}/{args.steps}: loss {loss:.4f} "
                  f"({time.monotonic() - self.started:.1f} s)", flush=True)

    steps = StepLosses()
    model.fit(tf.keras.utils.experimental.DatasetCreator(dataset_fn), epochs=args.steps, steps_per_epoch=1,
              callbacks=[steps], verbose=0)

    # Rows read by id, as a batch reads them, against the table gathered whole. Keras' `Embedding`
    # (SASRec's input) calls `tf.nn.embedding_lookup`, which `ShardedVariable` dispatches shard by
    # shard and puts back in the ids' order. `tf.gather` on a `ShardedVariable` goes through
    # `ShardedVariable.sparse_read`, which in TF 2.20 returns the rows grouped by shard, not in the
    # ids' order (no error): what the zoo's "in_batch", "sampled_softmax" and "bce" losses would get
    # from their `tf.gather(table, ids)` if they were given the variable rather than the dense
    # float32 copy of the whole table they get now (see the module docstring).
    ids = tf.constant([vocab_size - 1, 2, vocab_size // 2 + 1, 3, vocab_size - 2])  # both shards, out of order
    whole = tf.concat([tf.convert_to_tensor(shard) for shard in shards], axis=0)
    expected = tf.gather(whole, ids).numpy()
    lookup_ok = bool(np.array_equal(tf.nn.embedding_lookup(table, ids).numpy(), expected))
    gather_ok = bool(np.array_equal(tf.gather(table, ids).numpy(), expected))
    print(f"row lookup of ids {ids.numpy().tolist()} on the sharded table: tf.nn.embedding_lookup "
          f"{'matches' if lookup_ok else 'DOES NOT match'} the whole table's rows; tf.gather "
          f"{'matches' if gather_ok else 'returns them in another order (ShardedVariable.sparse_read)'}")

    devices = sorted({short_device(shard.device) for shard in shards})
    distinct = len(shards) == args.num_ps and len(devices) == args.num_ps and all("/job:ps" in d for d in devices)
    finite = bool(steps.losses) and all(math.isfinite(loss) for loss in steps.losses)
    window = max(1, min(5, len(steps.losses) // 4))
    first, last = float(np.mean(steps.losses[:window])), float(np.mean(steps.losses[-window:]))
    decreased = last < first
    print(f"CHECK: {len(shards)} item-table shards on {len(devices)} distinct parameter servers "
          f"({', '.join(devices)}): {'ok' if distinct else 'FAILED'}; losses finite: {'ok' if finite else 'FAILED'}; "
          f"loss decreased (mean of first {window} {first:.4f} -> last {window} {last:.4f}): "
          f"{'yes' if decreased else 'no'}")
    return distinct and finite and lookup_ok


def main(argv: Optional[list] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == [SERVE_FLAG]:
        serve()
        return 0
    args = parse_args(argv)
    cluster = cluster_spec(args.num_ps, args.num_workers)
    print("cluster: " + json.dumps(cluster))
    log_dir = pathlib.Path(tempfile.mkdtemp(prefix="tf_attnrec_ps_"))
    servers = Servers(cluster, log_dir)
    ok = False
    try:
        servers.start()
        print(f"started {len(servers.processes)} server processes "
              f"({', '.join(f'{name} pid {process.pid}' for name, process in servers.processes)}); logs in {log_dir} (removed on success)",
              flush=True)
        ok = train(args, cluster)
    except BaseException:
        alive = [name for name, process in servers.processes if process.poll() is None]
        print(f"failed; servers still running: {alive}; server logs in {log_dir}", file=sys.stderr, flush=True)
        raise
    finally:
        servers.close()
    if ok:
        shutil.rmtree(log_dir, ignore_errors=True)  # kept when something failed
    print("servers stopped; " + ("PASSED" if ok else f"FAILED (server logs in {log_dir})"), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    # The coordinator's gRPC threads can outlive `main` and hold the interpreter at exit:
    # flush, then leave with the status without waiting for them.
    try:
        status = main()
    except SystemExit as exit_:  # argparse's errors and --help
        status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # noqa: BLE001 - printed, then the status says it failed
        import traceback

        traceback.print_exc()
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
