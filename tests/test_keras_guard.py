"""The package must select Keras 2 itself, and refuse clearly when it is too late to."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.fresh_process import plain_environment

pytestmark = pytest.mark.slow  # each test starts a Python process


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=plain_environment(), timeout=300
    )


def test_import_selects_keras_2_and_tfrs_works():
    result = _run(
        "import tf_attnrec, os\n"
        "import tensorflow as tf, tensorflow_recommenders as tfrs\n"
        "assert os.environ['TF_USE_LEGACY_KERAS'] == '1'\n"
        "print(tf.keras.__name__)\n"
        "print(isinstance(tfrs.tasks.Retrieval(), tf.keras.layers.Layer))\n"
        # `import tf_attnrec` alone registers every family, ranking ones included.
        "sizes = {'item': 10, 'genre': 5, 'year': 5, 'gender': 4, 'age': 4, 'occupation': 4}\n"
        "print(type(tf_attnrec.create_model('din', vocab_size=10, feature_sizes=sizes)).__name__)\n"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[0].startswith("tf_keras"), lines
    assert lines[1] == "True"
    assert lines[2] == "DIN"


def test_import_after_keras_3_raises_actionable_error():
    result = _run("import tensorflow as tf\nimport tf_attnrec\n")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError:"), result.stderr[-2000:]
    assert "Keras 3" in last and "TF_USE_LEGACY_KERAS=1" in last
    assert "Import tf_attnrec before TensorFlow" in last
