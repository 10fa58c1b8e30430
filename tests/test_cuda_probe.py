"""A CPU-only start prints no "failed call to cuInit" line, and every other message still shows."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec import _cuda_probe

NO_GPU = ("2026-12-03 12:00:00.000000: E external/local_xla/xla/stream_executor/cuda/cuda_platform.cc:51] "
          "failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n")
REAL = "2026-12-03 12:00:00.000001: E tensorflow/core/some_kernel.cc:7] a real error\n"


def test_only_the_no_gpu_line_is_dropped():
    assert _cuda_probe.without_no_gpu_line(NO_GPU + REAL + "W a warning\n") == REAL + "W a warning\n"


def test_what_tensorflow_says_while_listing_devices_is_printed_again_but_the_probe(monkeypatch, capfd):
    def list_physical_devices():  # TensorFlow's C++ logging writes straight to file descriptor 2
        os.write(2, (NO_GPU + REAL).encode())
        return []

    monkeypatch.setattr(tf.config, "list_physical_devices", list_physical_devices)
    _cuda_probe.list_devices_quietly()
    err = capfd.readouterr().err
    assert REAL in err and "cuInit" not in err


@pytest.mark.skipif(_cuda_probe.has_nvidia_device(), reason="a machine with an NVIDIA device probes for real")
def test_a_cpu_only_start_prints_no_cuda_error():
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    code = "import tf_attnrec, tensorflow as tf; print(float(tf.reduce_sum(tf.ones([3]))))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "3.0"
    assert "cuInit" not in done.stderr and "CUDA" not in done.stderr, done.stderr
