"""Data-parallel training on `tf.distribute`: a strategy by name, which worker is the chief, local clusters.

`tf-attnrec train --strategy multiworker` runs one process per worker, each with `TF_CONFIG`
naming the cluster and its own place in it (TensorFlow's convention). Every worker reads the
same data with the same seed; Keras splits each global batch (`--batch-size`) into one slice
per replica, so N workers train the model that one worker would train on the same global batch,
with the gradients averaged by an all-reduce (`RecommenderModel.train_step` scales each
replica's loss by 1 / replicas). The learning rate therefore stays as configured for the global
batch. `python -m tf_attnrec.launch --workers N -- train ...` starts N workers on this host.
"""

from __future__ import annotations

import json
import os
import socket
import numpy as np
import tensorflow as tf

STRATEGIES = ("none", "mirrored", "multiworker")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy `--strategy NAME` trains under.

    "none": TensorFlow's default (one device); "mirrored": `MirroredStrategy` over this
    machine's GPUs (one replica on a CPU-only machine); "multiworker":
    `MultiWorkerMirroredStrategy` over the cluster in `TF_CONFIG`. Create it before any other
    TensorFlow op runs: the multi-worker strategy configures the collective ops at start-up.
    """
    if name not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {list(STRATEGIES)}; got {name!r}.")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        config = os.environ.get("TF_CONFIG")
        if not config:
            raise ValueError(
                "--strategy multiworker needs TF_CONFIG (the cluster and this worker's index) in the environment; "
                "start the workers with `python -m tf_attnrec.launch --workers N -- train ...` on one host, or set "
                "TF_CONFIG on each host as the README's multi-worker section shows."
            )
        try:
            json.loads(config)
        except json.JSONDecodeError as error:
            raise ValueError(f"TF_CONFIG is not JSON ({error}): {config[:200]!r}.") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run (the chief, or the only worker)."""
    return bool(strategy.extended.should_checkpoint)


def local_cluster(num_workers: int, host: str = "localhost") -> list[dict]:
    """`TF_CONFIG` values for `num_workers` workers on this host, on free ports (worker 0 is the chief)."""
    if num_workers < 1:
        raise ValueError(f"the number of workers must be positive; got {num_workers}.")
    sockets = [socket.socket() for _ in range(num_workers)]
    try:
        for sock in sockets:  # bound together, so no two workers get the same port
            sock.bind((host, 0))
        addresses = [f"{host}:{sock.getsockname()[1]}" for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    return [{"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
            for index in range(num_workers)]


def weights_fingerprint(model: tf.keras.Model) -> float:
    """Sum of the squares of every weight: workers whose weights agree print the same number."""
    return float(sum(np.sum(np.square(np.asarray(weight, np.float64))) for weight in model.get_weights()))


__all__ = ["STRATEGIES", "is_chief", "local_cluster", "make_strategy", "weights_fingerprint"]
