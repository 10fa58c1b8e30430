"""Seconds per training pass of SASRec: pmixer's PyTorch reference vs tf-attnrec, side by side.

In one run, back to back on the same data file and CPU threads, it times training passes
("epochs") of

* the PyTorch reference, pmixer/SASRec.pytorch (`git clone
  https://github.com/pmixer/SASRec.pytorch`; measured with main.py a6fcd918, utils.py
  0f250b62 and model.py 30c43cf0, see the peer folder's PROVENANCE.txt), trained by
  `benchmarks/peers/sasrec_pytorch_driver.py` in its own virtualenv (`--peer-python`) as
  pmixer's `main.py` trains it; the peer's code never enters this repository;
* our `sasrec` zoo model, trained by `tf_attnrec.training.fit_model` (the loop `tf-attnrec
  train` runs; no validation here) on `next_item_dataset` batches: one Keras epoch is one
  pass, timed by `EpochLog` (`train_seconds`);

both at the original SASRec setting, pmixer's defaults for ML-1M, which is
`benchmarks/train_throughput.py`'s REFERENCE configuration: hidden 50, 2 blocks, 1 head,
feed-forward 50, max length 200, batch 128, dropout 0.2, Adam lr 0.001, binary
cross-entropy with one uniformly sampled negative per position, no L2 on embeddings.

Each peer first runs `--warmup` untimed passes (tracing, allocator and sampler start-up),
then `--epochs` timed ones; the table shows the mean of the timed passes and the ratio
(PyTorch s / ours s) against the project's bar (ours >= 3x faster).

What a pass is differs slightly, as each implementation defines it: pmixer trains
`len(users) // 128` batches of users drawn with replacement (ML-1M: 47 x 128 = 6,016
sequences, the negatives drawn by 3 sampler processes); ours is one shuffled pass over every
training sequence (6,040 in 48 batches, the last one partial). Adam's beta_2 is 0.98 in
pmixer, Keras' default 0.999 in ours (`tf_attnrec.training.make_optimizer`); neither changes
the work done per step.

Usage:

    python benchmarks/sasrec_pytorch_peer.py --peer-src /path/to/SASRec.pytorch \\
        [--peer-python VENV/bin/python] [--data ../shared/data/ml-1m/ml-1m.txt] \\
        [--epochs 2] [--warmup 1] [--threads 2] [--output-json FILE]

`--peer-python` defaults to `$TF_ATTNREC_PEER_CACHE/sasrec-pytorch-venv/bin/python`, else
`$TF_ATTNREC_PEER_CACHE/recbole-venv/bin/python` (the RecBole peer's, which has torch);
`TF_ATTNREC_PEER_CACHE` defaults to ~/.cache/tf-attnrec-peers. `--max-length`,
`--hidden-dim`, `--num-blocks`, `--num-heads` and `--batch-size` override the reference sizes
for both peers (for quick checks; the bar is about the reference sizes).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import types
from typing import Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = pathlib.Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
DRIVER = BENCHMARKS / "peers" / "sasrec_pytorch_driver.py"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ml-1m" / "ml-1m.txt"
# The peer-virtualenv folder convention of benchmarks/recbole_graph.py.
PEER_CACHE = pathlib.Path(os.environ.get("TF_ATTNREC_PEER_CACHE", pathlib.Path.home() / ".cache" / "tf-attnrec-peers"))
PEER_VENVS = ("sasrec-pytorch-venv", "recbole-venv")
PYTORCH_NAME = "pmixer/SASRec.pytorch"
OURS_NAME = "tf-attnrec sasrec"
SPEEDUP_BAR = 3.0  # the project's bar: ours >= 3x faster than the PyTorch reference


def load_script(name: str, path: pathlib.Path) -> types.ModuleType:
    """Imports a script of the benchmarks folder (not a package) as module `benchmarks.<name>`."""
    module_name = f"benchmarks.{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # before running it: dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def reference_config(max_length: Optional[int] = None, hidden_dim: Optional[int] = None,
                     num_blocks: Optional[int] = None, num_heads: Optional[int] = None,
                     batch_size: Optional[int] = None) -> dict:
    """train_throughput.py's REFERENCE configuration (the original SASRec's), sizes overridden."""
    reference = load_script("train_throughput", BENCHMARKS / "train_throughput.py").REFERENCE
    model_config = dict(reference["model_config"])
    training = dict(reference["training"])
    if hidden_dim is not None:
        model_config.update(hidden_dim=hidden_dim, ff_dim=hidden_dim)  # SASRec: feed-forward = hidden
    for key, value in (("max_length", max_length), ("num_blocks", num_blocks), ("num_heads", num_heads)):
        if value is not None:
            model_config[key] = value
    if batch_size is not None:
        training["batch_size"] = batch_size
    if model_config["loss"] != "bce" or model_config.get("ff_dim") != model_config["hidden_dim"]:
        raise ValueError(f"the peer trains one-negative BCE with feed-forward = hidden; got {model_config}.")
    return {"model_config": model_config, "training": training}


def resolve_peer_python(peer_python: Optional[str]) -> pathlib.Path:
    """The given interpreter, or the first peer virtualenv under PEER_CACHE that exists."""
    if peer_python is not None:
        path = pathlib.Path(peer_python)
        if not path.is_file():
            raise SystemExit(f"--peer-python {path}: no such file; expected a virtualenv's python with torch "
                             "and numpy installed.")
        return path
    for venv in PEER_VENVS:
        candidate = PEER_CACHE / venv / "bin" / "python"
        if candidate.is_file():
            return candidate
    venv = PEER_CACHE / PEER_VENVS[0]
    raise SystemExit(
        f"No peer Python with torch found: looked for "
        f"{' and '.join(str(PEER_CACHE / v / 'bin' / 'python') for v in PEER_VENVS)} "
        f"(TF_ATTNREC_PEER_CACHE={PEER_CACHE}). Create one with\n"
        f"    python3 -m venv {venv} && {venv}/bin/pip install torch numpy\n"
        "or pass --peer-python PATH."
    )


def run_pytorch_peer(peer_python: pathlib.Path, peer_src: pathlib.Path, data: pathlib.Path, config: dict,
                     epochs: int, warmup: int, threads: int, seed: int = 0,
                     timeout_s: Optional[float] = None) -> dict:
    """Runs the driver in the peer's interpreter and returns its JSON report."""
    model_config, training = config["model_config"], config["training"]
    command = [
        str(peer_python), str(DRIVER), "--peer-src", str(peer_src), "--data", str(data),
        "--epochs", str(epochs), "--warmup-epochs", str(warmup), "--threads", str(threads),
        "--maxlen", str(model_config["max_length"]), "--hidden-units", str(model_config["hidden_dim"]),
        "--num-blocks", str(model_config["num_blocks"]), "--num-heads", str(model_config["num_heads"]),
        "--dropout-rate", str(model_config["dropout"]), "--batch-size", str(training["batch_size"]),
        "--lr", str(training["learning_rate"]), "--l2-emb", "0.0", "--seed", str(seed),
    ]
    try:
        finished = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"The PyTorch peer ran past --peer-timeout ({timeout_s} s): {' '.join(command)}") from error
    if finished.returncode != 0:
        raise RuntimeError(f"The PyTorch peer failed (exit status {finished.returncode}): {' '.join(command)}\n"
                           f"{finished.stderr[-3000:]}")
    lines = [line for line in finished.stdout.splitlines() if line.strip()]
    try:
        report = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError) as error:
        raise RuntimeError(f"Expected the driver's JSON report as the last line of its stdout; got "
                           f"{finished.stdout[-1000:]!r}.") from error
    expected = load_script("peers.sasrec_pytorch_driver", DRIVER).REPORT_KEYS
    missing = [key for key in expected if key not in report]
    if missing or len(report["seconds_per_epoch"]) != epochs:
        raise RuntimeError(f"The driver's report lacks {missing} or has not {epochs} timed epochs: {report}.")
    return report


def set_tensorflow_threads(threads: int):
    """Intra- and inter-op threads of this process's TensorFlow; what it uses if already started."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError as error:  # the runtime has started (e.g. in a test process): it keeps its pools
        print(f"warning: TensorFlow threads not set to {threads}: {error}", file=sys.stderr)
    return tf.config.threading.get_intra_op_parallelism_threads() or "TF default"


def time_ours(data: pathlib.Path, config: dict, epochs: int, warmup: int, threads: int, seed: int = 0,
              length_buckets: int = 1) -> dict:
    """Seconds per `fit` pass of our `sasrec` (`fit_model`, no validation), `warmup` passes untimed first.

    `length_buckets` > 1 batches histories of similar length (the training key of that name).
    """
    actual_threads = set_tensorflow_threads(threads)
    import tensorflow as tf

    from tf_attnrec.data import leave_one_out_split, next_item_dataset, read_sasrec_txt
    from tf_attnrec.models.registry import create_model
    from tf_attnrec.training import fit_model

    model_config, training = config["model_config"], config["training"]
    split = leave_one_out_split(read_sasrec_txt(data))
    tf.keras.utils.set_random_seed(seed)
    model = create_model("sasrec", vocab_size=split.vocabulary.size, **model_config)
    model.adapt(split.train)
    dataset = next_item_dataset(split.train, max_length=model_config["max_length"],
                                batch_size=training["batch_size"], shuffle=True, seed=seed,
                                length_buckets=length_buckets)
    sequences = sum(1 for sequence in split.train if len(sequence) >= 2)  # next_item_dataset's examples
    result = fit_model(model, dataset, monitor="loss", monitor_mode="min", patience=None,
                       epochs=warmup + epochs, learning_rate=training["learning_rate"])
    seconds = [float(s) for s in result.history["train_seconds"]]
    name = OURS_NAME if length_buckets == 1 else f"{OURS_NAME} (length_buckets {length_buckets})"
    return {
        "peer": name, "length_buckets": length_buckets, "seconds_per_epoch": seconds[warmup:],
        "warmup_seconds_per_epoch": seconds[:warmup],
        "steps_per_epoch": int(dataset.cardinality().numpy()), "sequences_per_epoch": sequences,
        "threads": actual_threads, "tensorflow_version": tf.__version__,
        "config": {**model_config, **training}, "last_loss": float(result.history["loss"][-1]),
    }


def print_table(pytorch: dict, ours: Sequence[dict]) -> None:
    """One row per peer, then each of our rows' ratio (`ratio_pytorch_over_ours`) against the bar."""
    print(f"{'peer':<42}{'s/pass':>9}{'passes timed':>14}{'threads':>9}{'seq/pass':>10}{'steps/pass':>12}")
    for report in (pytorch, *ours):
        seconds = report["seconds_per_epoch"]
        print(f"{report['peer']:<42}{statistics.fmean(seconds):>9.2f}{len(seconds):>14}"
              f"{str(report['threads']):>9}{report['sequences_per_epoch']:>10}{report['steps_per_epoch']:>12}")
    for report in ours:
        ratio = report["ratio_pytorch_over_ours"]
        print(f"ratio (pytorch / {report['peer']}): {ratio:.2f}x; bar >= {SPEEDUP_BAR:g}x: "
              f"{'met' if ratio >= SPEEDUP_BAR else 'not met'}")


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer-src", required=True, type=pathlib.Path,
                        help=f"a checkout of {PYTORCH_NAME} (git clone https://github.com/pmixer/SASRec.pytorch)")
    parser.add_argument("--peer-python", help="python of a virtualenv with torch and numpy (default: see above)")
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA,
                        help="SASRec-form 'user item' text file (default ../shared/data/ml-1m/ml-1m.txt)")
    parser.add_argument("--epochs", type=int, default=2, help="timed passes per peer")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes per peer first")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of each peer (torch / TensorFlow)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peer-timeout", type=float, default=1800.0, help="seconds the PyTorch peer may run")
    parser.add_argument("--output-json", type=pathlib.Path, help="also write the numbers here")
    parser.add_argument("--length-buckets", type=int, nargs="+", default=[1],
                        help="time ours once per value of the training key length_buckets (1: plain batches)")
    for flag in ("--max-length", "--hidden-dim", "--num-blocks", "--num-heads", "--batch-size"):
        parser.add_argument(flag, type=int, help="override the reference size (both peers)")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.warmup < 0 or args.threads < 1 or min(args.length_buckets) < 1:
        parser.error("--epochs, --threads and --length-buckets must be >= 1, --warmup >= 0.")
    if not args.data.is_file():
        parser.error(f"--data {args.data}: expected a SASRec-form 'user item' text file (e.g. ml-1m/ml-1m.txt).")
    if not (args.peer_src / "model.py").is_file() or not (args.peer_src / "utils.py").is_file():
        parser.error(f"--peer-src {args.peer_src}: expected a checkout of {PYTORCH_NAME} with model.py and utils.py "
                     "at its root (git clone https://github.com/pmixer/SASRec.pytorch).")
    peer_python = resolve_peer_python(args.peer_python)
    config = reference_config(args.max_length, args.hidden_dim, args.num_blocks, args.num_heads, args.batch_size)

    load = os.getloadavg()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, 1-min load average "
          f"{load[0]:.2f} (a busy machine slows both peers); data: {args.data}")
    print(f"config: {json.dumps({**config['model_config'], **config['training']})}; "
          f"{args.warmup} warm-up + {args.epochs} timed passes per peer, {args.threads} threads")
    print(f"running {PYTORCH_NAME} ({peer_python}) ...", flush=True)
    pytorch = run_pytorch_peer(peer_python, args.peer_src, args.data, config, args.epochs, args.warmup,
                               args.threads, seed=args.seed, timeout_s=args.peer_timeout)
    ours = []
    for buckets in args.length_buckets:
        print(f"running {OURS_NAME} (length_buckets {buckets}) ...", flush=True)
        report = time_ours(args.data, config, args.epochs, args.warmup, args.threads, seed=args.seed,
                           length_buckets=buckets)
        ratio = statistics.fmean(pytorch["seconds_per_epoch"]) / statistics.fmean(report["seconds_per_epoch"])
        ours.append({**report, "ratio_pytorch_over_ours": ratio, "bar_met": ratio >= SPEEDUP_BAR})
    print_table(pytorch, ours)

    result = {
        "pytorch": pytorch, "ours": ours, "bar": SPEEDUP_BAR,
        "data": str(args.data), "peer_src": str(args.peer_src),
        "peer_python": str(peer_python), "threads": args.threads, "epochs": args.epochs, "warmup": args.warmup,
        "machine": {"cpu_count": os.cpu_count(), "load_average_before": list(load),
                    "python": platform.python_version()},
    }
    if args.output_json is not None:
        args.output_json.parent.mkdir(parents=True, exist_ok=True)
        args.output_json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
