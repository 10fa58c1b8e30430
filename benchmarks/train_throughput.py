"""Training throughput of SASRec on MovieLens-1M: sequences/s, seconds/epoch and GFLOP/s.

Two configurations of the `sasrec` zoo model, both on the leave-one-out training sequences of
the SASRec-form ML-1M (6,040 users, 3,416 items):

* zoo: `models/sasrec/config.yaml` (hidden 64, 2 blocks, 1 head, max length 200, batch 128,
  full-catalogue softmax), registry defaults where the file is absent;
* reference: the original SASRec setting (hidden 50, 2 blocks, 1 head, feed-forward 50, max
  length 200, batch 128, binary cross-entropy with one sampled negative).

Each is compiled like `train_sequential` compiles it (Adam, optional XLA) and its Keras train
function (`model.make_train_function()`, the step `fit` runs) is called on batches from
`next_item_dataset` (input pipeline included): `--warmup` steps (tracing) then `--steps` timed
steps. Seconds per epoch are EXTRAPOLATED: steps per epoch x mean time per timed step.

FLOPs are counted ANALYTICALLY (matmuls only; layer norms, softmax, dropout and the
optimizer update are left out), per sequence of padded length L with width d, feed-forward f,
n blocks, and per batch with P real (non-padded) target positions and C = vocab_size - 2
candidates:

    forward = n * (8 L d^2 [q, k, v, output projections] + 4 L^2 d [scores, weighted sum]
                   + 4 L d f [feed-forward]) per sequence  (attention runs on padding too)
            + 2 P d C  (full softmax)  or  4 P d  (BCE, one positive + one negative)
    training step = 3 x forward  (the backward pass costs two matmuls per forward matmul)

The achieved GFLOP/s is printed next to a plain `tf.matmul` (n x n float32) measured in the
same process, as a ceiling for this machine. Usage:

    python benchmarks/train_throughput.py [--data-dir ../shared/data] [--steps 20]
        [--warmup 3] [--compile graph xla] [--configs zoo reference] [--matmul-size 1024]

`--compile graph xla` times every configuration both as a plain `tf.function` graph and with
XLA (`jit_compile=True`) in the same process, one row each, so the two can be compared.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import platform
import sys
import time
from typing import Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import tf_attnrec  # noqa: E402,F401  (Keras 2 before TensorFlow)
import tensorflow as tf  # noqa: E402

from tf_attnrec.data import leave_one_out_split, load_dataset, next_item_dataset  # noqa: E402
from tf_attnrec.models.registry import create_model, get_model_spec  # noqa: E402
from tf_attnrec.tasks import get_task  # noqa: E402
from tf_attnrec.training import PRECISIONS, compile_for_training  # noqa: E402
from tf_attnrec.yaml_loader import load_yaml  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"
REFERENCE = {
    "model_config": {"max_length": 200, "hidden_dim": 50, "num_blocks": 2, "num_heads": 1,
                     "ff_dim": 50, "dropout": 0.2, "loss": "bce"},
    "training": {"batch_size": 128, "learning_rate": 1e-3},
}


@dataclasses.dataclass
class Measurement:
    name: str
    compile: str
    precision: str
    hidden_dim: int
    num_blocks: int
    num_heads: int
    max_length: int
    batch_size: int
    loss: str
    steps_per_epoch: int
    sequences_per_second: float
    seconds_per_step: float
    seconds_per_epoch: float
    gflop_per_step: float
    gflop_per_second: float


def zoo_config() -> dict:
    """`models/sasrec/config.yaml`, or the registry defaults when the repository is absent."""
    path = REPO / "models" / "sasrec" / "config.yaml"
    if path.is_file():
        config = load_yaml(path.read_text())
        return {"model_config": config.get("model_config") or {}, "training": config.get("training") or {}}
    spec = get_model_spec("sasrec")
    return {"model_config": {}, "training": {**get_task(spec.task).training_defaults, **spec.training}}


def training_flops(model_config: dict, vocab_size: int, batch_size: int, target_positions: float) -> float:
    """Analytic matmul FLOPs of one training step (see the module docstring)."""
    d = model_config["hidden_dim"]
    f = model_config.get("ff_dim") or d
    n, length = model_config["num_blocks"], model_config["max_length"]
    per_sequence = n * (8 * length * d * d + 4 * length * length * d + 4 * length * d * f)
    if model_config["loss"] == "softmax":
        head = 2 * target_positions * d * (vocab_size - 2)
    elif model_config["loss"] == "bce":
        head = 4 * target_positions * d
    else:
        raise ValueError(f"FLOP count implemented for loss 'softmax' and 'bce'; got {model_config['loss']!r}.")
    return 3.0 * (batch_size * per_sequence + head)


def matmul_gflops(size: int, repeats: int = 20, dtype: tf.DType = tf.float32) -> float:
    """GFLOP/s of a plain `tf.matmul` of two size x size matrices of `dtype` (after warm-up)."""
    a = tf.cast(tf.random.normal([size, size]), dtype)
    b = tf.cast(tf.random.normal([size, size]), dtype)
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    matmul(a, b).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        result = matmul(a, b)
    result.numpy()
    return 2.0 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def measure(name: str, config: dict, split, steps: int, warmup: int, jit: bool, seed: int = 0,
            precision: str = "float32") -> Measurement:
    """Times `steps` training steps of one configuration after `warmup` steps, under a Keras dtype policy."""
    tf.keras.mixed_precision.set_global_policy(precision)  # before the model's layers exist
    defaults = get_model_spec("sasrec").default_config()
    model_config = {**defaults, **config["model_config"]}
    batch_size = int(config["training"].get("batch_size", 128))
    learning_rate = float(config["training"].get("learning_rate", 1e-3))
    tf.keras.utils.set_random_seed(seed)
    model = create_model("sasrec", vocab_size=split.vocabulary.size, **config["model_config"])
    model.adapt(split.train)
    compile_for_training(model, learning_rate, jit_compile=jit)
    dataset = next_item_dataset(split.train, max_length=model_config["max_length"], batch_size=batch_size,
                                shuffle=True, seed=seed, drop_remainder=jit)
    steps_per_epoch = int(dataset.cardinality().numpy())
    train_function = model.make_train_function()
    batches = iter(dataset.repeat())
    for _ in range(warmup):
        float(train_function(batches)["loss"])
    # Re-create the iterator over the same data to count what the timed steps consume.
    counted = iter(dataset.repeat().skip(warmup).take(steps))
    sequences, positions = 0, 0
    for batch in counted:
        sequences += int(batch["targets"].shape[0])
        positions += int(np.count_nonzero(batch["targets"].numpy()))
    start = time.perf_counter()
    for _ in range(steps):
        logs = train_function(batches)
    float(logs["loss"])  # wait for the last step
    elapsed = time.perf_counter() - start
    flops = training_flops(model_config, split.vocabulary.size, sequences / steps, positions / steps)
    return Measurement(
        name=name, compile="xla" if jit else "graph", precision=precision,
        hidden_dim=model_config["hidden_dim"], num_blocks=model_config["num_blocks"],
        num_heads=model_config["num_heads"], max_length=model_config["max_length"],
        batch_size=batch_size, loss=model_config["loss"], steps_per_epoch=steps_per_epoch,
        sequences_per_second=sequences / elapsed, seconds_per_step=elapsed / steps,
        seconds_per_epoch=steps_per_epoch * elapsed / steps, gflop_per_step=flops / 1e9,
        gflop_per_second=flops * steps / elapsed / 1e9,
    )


def main(argv: Optional[Sequence[str]] = None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("TF_ATTNREC_DATA_DIR", str(DEFAULT_DATA_DIR)),
                        help="folder holding ml-1m/ml-1m.txt (default ../shared/data)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (tracing)")
    parser.add_argument("--compile", nargs="+", choices=("graph", "xla"), default=["graph"],
                        help="how the train step is compiled: tf.function graph and/or XLA")
    parser.add_argument("--configs", nargs="+", choices=("zoo", "reference"), default=["zoo", "reference"])
    parser.add_argument("--matmul-size", type=int, default=1024)
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=["float32"],
                        help="Keras dtype policies to time side by side (tf-attnrec train --precision)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be >= 1 (the first step traces the graph).")

    data = load_dataset("ml-1m", data_dir=args.data_dir, form="sasrec")
    split = leave_one_out_split(data.interactions)
    threads = tf.config.threading.get_intra_op_parallelism_threads() or "TF default"
    devices = ", ".join(d.device_type for d in tf.config.list_physical_devices()) or "CPU"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores visible, "
          f"devices {devices}, intra-op threads {threads}; TF {tf.__version__}")
    print(f"data: ml-1m (SASRec form), {split.num_users:,} training sequences, vocab_size "
          f"{split.vocabulary.size:,}")
    peak = matmul_gflops(args.matmul_size)
    print(f"plain tf.matmul {args.matmul_size}x{args.matmul_size} float32: {peak:.1f} GFLOP/s")
    for dtype in sorted({tf.bfloat16 if "bfloat16" in p else tf.float16 for p in args.precisions if p != "float32"},
                        key=str):
        print(f"plain tf.matmul {args.matmul_size}x{args.matmul_size} {dtype.name}: "
              f"{matmul_gflops(args.matmul_size, dtype=dtype):.1f} GFLOP/s")

    configs = {"zoo": zoo_config(), "reference": REFERENCE}
    results, failures = [], []
    for name in args.configs:
        for mode in args.compile:
            for precision in args.precisions:
                try:
                    results.append(measure(name, configs[name], split, args.steps, args.warmup, mode == "xla",
                                           precision=precision))
                except tf.errors.OpError as error:  # e.g. a step XLA cannot compile: report, go on
                    lines = [line.strip() for line in error.message.splitlines() if line.strip()]
                    reason = next((line for line in lines if "must be" in line), lines[0] if lines else "")
                    failures.append(f"{name} ({mode}, {precision}): {type(error).__name__}: {reason}")
    tf.keras.mixed_precision.set_global_policy("float32")
    header = (f"{'config':<10}{'compile':<8}{'precision':<15}{'d':>4}{'blk':>4}{'head':>5}{'L':>5}{'batch':>6} {'loss':<8}{'steps/ep':>9}"
              f"{'seq/s':>9}{'s/step':>8}{'s/epoch*':>10}{'GFLOP/step':>11}{'GFLOP/s':>9}{'%matmul':>8}")
    print(header)
    for r in results:
        print(f"{r.name:<10}{r.compile:<8}{r.precision:<15}{r.hidden_dim:>4}{r.num_blocks:>4}{r.num_heads:>5}{r.max_length:>5}{r.batch_size:>6} "
              f"{r.loss:<8}{r.steps_per_epoch:>9}{r.sequences_per_second:>9.1f}{r.seconds_per_step:>8.3f}"
              f"{r.seconds_per_epoch:>10.1f}{r.gflop_per_step:>11.2f}{r.gflop_per_second:>9.1f}"
              f"{100 * r.gflop_per_second / peak:>7.0f}%")
    for failure in failures:
        print(f"FAILED {failure}")
    print(f"* seconds/epoch extrapolated: steps/epoch x mean of {args.steps} timed steps after "
          f"{args.warmup} warm-up steps (tf.data input included, validation not included).")
    print("GFLOP: analytic matmul count, training step = 3 x forward (see the module docstring).")
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)
