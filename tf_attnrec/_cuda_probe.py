"""Keep TensorFlow's "no GPU here" line out of CPU-only starts, and every other message in.

A CUDA build of TensorFlow probes for a GPU when its devices are first listed, and on a
machine without one it logs `failed call to cuInit: ...` at ERROR level: the first line of
every `tf-attnrec` command on a laptop or a CPU Colab runtime, and not an error at all. Raising
`TF_CPP_MIN_LOG_LEVEL` to 3 would hide real errors too. Instead, when the machine has no
NVIDIA device, the devices are listed once at import with the C++ stderr captured, and all it
said is printed again except that one line. With a GPU present, or when the user set
`TF_CPP_MIN_LOG_LEVEL` themselves, nothing is touched.
"""

from __future__ import annotations

import os
import pathlib
import sys
import tempfile

NO_GPU_LINE = "failed call to cuInit"
_NVIDIA_DEVICES = ("/dev/nvidia0", "/proc/driver/nvidia/version")


def has_nvidia_device() -> bool:
    """True where a CUDA probe can succeed (or on systems this module cannot tell about)."""
    if not sys.platform.startswith("linux"):
        return True
    return any(pathlib.Path(path).exists() for path in _NVIDIA_DEVICES)


def without_no_gpu_line(text: str) -> str:
    """`text` without the lines of the failed GPU probe."""
    return "".join(line for line in text.splitlines(keepends=True) if NO_GPU_LINE not in line)


def list_devices_quietly() -> None:
    """Lists TensorFlow's devices once, re-printing what it wrote to stderr but the no-GPU line."""
    import tensorflow as tf

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            tf.config.list_physical_devices()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        said = without_no_gpu_line(capture.read().decode("utf-8", errors="replace"))
    if said:
        sys.stderr.write(said)
        sys.stderr.flush()


def quiet_cuda_probe(user_set_log_level: bool) -> None:
    if not user_set_log_level and not has_nvidia_device():
        list_devices_quietly()
