"""A process killed while it saves a run or writes an export leaves the old state or the new one.

Each test runs the save in a child process that SIGKILLs itself at the worst moment: after the
new files are written, before the step that commits them (the config's rename for a run, the
version folder's rename for an export). A kill there is what a crash or an OOM kill does.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec import runs
from tf_attnrec.models import create_model

pytestmark = pytest.mark.slow

REPO = pathlib.Path(__file__).resolve().parents[1]
VOCAB_SIZE = 12


def tiny_sasrec(seed: int) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(seed)
    model = create_model("sasrec", vocab_size=VOCAB_SIZE, hidden_dim=8, max_length=4, num_blocks=1)
    model.score(tf.zeros([1, 4], tf.int32))
    return model


def run_and_kill(script: str) -> subprocess.CompletedProcess:
    """Runs `script` in a fresh Python; it is expected to SIGKILL itself."""
    prelude = "import tf_attnrec, os, signal\nimport tensorflow as tf\n"
    result = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(script)], cwd=REPO,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_NUM_INTRAOP_THREADS": "1"})
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    return result


@pytest.mark.parametrize("moment", ["weights", "config"])
def test_a_run_killed_mid_save_keeps_its_previous_weights_and_config(tmp_path, moment):
    """Killed as the new weights start to be written, or once they are and the config is next."""
    run_dir = tmp_path / "run"
    old = tiny_sasrec(seed=0)
    runs.save_model(old, run_dir, extra={"generation": "old"})
    run_and_kill(f"""
        from tf_attnrec import runs
        from tf_attnrec.models import create_model
        tf.keras.utils.set_random_seed(1)
        model = create_model("sasrec", vocab_size={VOCAB_SIZE}, hidden_dim=8, max_length=4, num_blocks=1)
        model.score(tf.zeros([1, 4], tf.int32))
        original_write, original_save = runs.write_text_atomic, model.save_weights
        def write(path, text):
            if {moment!r} == "config" and path.name == runs.CONFIG_FILE:
                os.kill(os.getpid(), signal.SIGKILL)
            return original_write(path, text)
        def save_weights(*args, **kwargs):
            if {moment!r} == "weights":
                os.kill(os.getpid(), signal.SIGKILL)
            return original_save(*args, **kwargs)
        runs.write_text_atomic, model.save_weights = write, save_weights
        runs.save_model(model, {str(run_dir)!r}, extra={{"generation": "new"}})
    """)
    if moment == "config":  # the new weights were written, but never named by a config
        assert len(list(run_dir.glob(f"{runs.WEIGHTS_DIR_PREFIX}*"))) == 2
    model, _, config = runs.load_model(run_dir)
    assert config["extra"] == {"generation": "old"}
    for saved, loaded in zip(old.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(saved, loaded)
    # The next save commits and clears every other weights folder.
    new = tiny_sasrec(seed=2)
    runs.save_model(new, run_dir, extra={"generation": "new"})
    assert len(list(run_dir.glob(f"{runs.WEIGHTS_DIR_PREFIX}*"))) == 1
    model, _, config = runs.load_model(run_dir)
    assert config["extra"] == {"generation": "new"}
    np.testing.assert_array_equal(model.get_weights()[0], new.get_weights()[0])


def test_runs_saved_before_versioned_weights_still_load(tmp_path):
    model = tiny_sasrec(seed=0)
    run_dir = tmp_path / "legacy"
    runs.save_model(model, run_dir)
    config_path = run_dir / runs.CONFIG_FILE
    config = json.loads(config_path.read_text())
    # The layout of older runs: weights/model.*, and no "weights" key.
    (run_dir / config.pop("weights")).parent.rename(run_dir / pathlib.PurePath(runs.WEIGHTS_PREFIX).parent)
    config_path.write_text(json.dumps(config))
    loaded, _, _ = runs.load_model(run_dir)
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])
    runs.save_model(model, run_dir)  # saving again moves it to the versioned layout
    assert not (run_dir / "weights").exists()


def test_an_export_killed_before_its_rename_leaves_no_version_folder(tmp_path):
    serving = tmp_path / "serving" / "sasrec"
    run_and_kill(f"""
        from tf_attnrec.data.vocabulary import Vocabulary
        from tf_attnrec.export import export_retrieval
        from tf_attnrec.models import create_model
        model = create_model("sasrec", vocab_size={VOCAB_SIZE}, hidden_dim=8, max_length=4, num_blocks=1)
        model.score(tf.zeros([1, 4], tf.int32))
        save = tf.saved_model.save
        def killed_after_writing(*args, **kwargs):
            save(*args, **kwargs)  # the whole SavedModel is in the staging folder
            os.kill(os.getpid(), signal.SIGKILL)
        tf.saved_model.save = killed_after_writing
        vocabulary = Vocabulary.from_ids([str(i) for i in range({VOCAB_SIZE} - 2)])
        export_retrieval(model, {str(serving / "1")!r}, k=3, vocabulary=vocabulary)
    """)
    # TF Serving loads integer-named folders only: none exists, the staging folder is ignored.
    assert not (serving / "1").exists()
    assert [path.name for path in serving.iterdir() if path.name.isdigit()] == []
    assert any(path.name.startswith(".1.staging-") for path in serving.iterdir())
