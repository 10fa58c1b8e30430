"""One TensorFlow-only interpreter per test worker, for the "reloads in a fresh process" checks.

A serving environment has TensorFlow and nothing of ours: no tf_attnrec, no TFRS, no ScaNN, no
TF_USE_LEGACY_KERAS. Each check used to start such an interpreter of its own and pay
TensorFlow's start-up (about 9 s of CPU) every time. This one is started once, on first use,
and answers requests over stdin / stdout, one JSON line each: load a SavedModel, call its
signatures on the given inputs, return the outputs and the foreign packages it has imported.
A model loaded by an earlier request cannot help a later one: every request loads its own
directory, and nothing from our packages can be imported there (the reply says so).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Mapping, Optional

import numpy as np

# Keras 2 included: a stock TensorFlow install loads SavedModels without it.
FOREIGN_PACKAGES = ("tf_attnrec", "tensorflow_recommenders", "scann", "tf_keras")

_SERVER = r"""
import json, sys, traceback
import tensorflow as tf

FOREIGN = tuple(sys.argv[1].split(","))
for line in sys.stdin:
    request = json.loads(line)
    try:
        signatures = tf.saved_model.load(request["export_dir"]).signatures
        answers = {}
        for name in request["signatures"]:
            function = signatures[name]
            specs = function.structured_input_signature[1]
            inputs = {key: tf.constant(value, specs[key].dtype) for key, value in request["inputs"].items()}
            answers[name] = {key: value.numpy().tolist() for key, value in function(**inputs).items()}
        reply = {"answers": answers}
    except Exception:
        reply = {"error": traceback.format_exc()}
    reply["foreign_modules"] = sorted(m for m in sys.modules if m.split(".")[0] in FOREIGN)
    print(json.dumps(reply, default=lambda b: b.decode()), flush=True)
"""


def plain_environment() -> dict:
    """The environment of a plain TensorFlow install: ours without Keras 2 selection or paths."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "PYTHONPATH")}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "3"}


class FreshTensorFlow:
    """A TensorFlow-only interpreter that loads SavedModels and serves requests on them."""

    def __init__(self) -> None:
        self._process: Optional[subprocess.Popen] = None
        self._stderr = tempfile.TemporaryFile(mode="w+")  # a file, so TensorFlow's logging never blocks it

    def serve(self, export_dir: Any, inputs: Mapping[str, Any],
              signatures: tuple = ("serving_default",)) -> dict:
        """Outputs of each signature as NumPy arrays (strings as `str`), keyed by signature name.

        Inputs are nested lists, cast to the signature's dtypes there. Fails if the process
        has imported any of `FOREIGN_PACKAGES`.
        """
        process = self._start()
        request = {"export_dir": str(export_dir), "signatures": list(signatures),
                   "inputs": {key: np.asarray(value).tolist() for key, value in inputs.items()}}
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        line = process.stdout.readline()
        if not line:
            self._stderr.seek(0)
            raise AssertionError(f"the fresh TensorFlow process died: {self._stderr.read()[-3000:]}")
        reply = json.loads(line)
        assert reply["foreign_modules"] == [], f"the serving process imported {reply['foreign_modules']}"
        assert "error" not in reply, reply.get("error")
        return {name: {key: np.asarray(value) for key, value in outputs.items()}
                for name, outputs in reply["answers"].items()}

    def close(self) -> None:
        if self._process is not None:
            self._process.stdin.close()
            self._process.wait(timeout=60)
            self._process = None
        self._stderr.close()

    def _start(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _SERVER, ",".join(FOREIGN_PACKAGES)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=plain_environment(),
            )
        return self._process
