"""Data parallelism on tf.distribute: 2 workers on localhost train what 1 worker trains on the same global batch.

`python -m tf_attnrec.launch --workers 2` starts two `MultiWorkerMirroredStrategy` workers
(ML-100K, `din`, two epochs of 8 steps, dropout off so that no replica draws its own masks).
Both must finish with equal weights (their printed fingerprints agree to 10 digits), only the
chief writes the run directory, and the result matches a single-worker run at the same global
batch: weights within 1e-6 relative, test AUC and log loss within 1e-5. Not bit-exact, because
the gradient of the global batch is summed from two halves in another order.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)

from tf_attnrec import runs
from tf_attnrec.distribute import local_cluster, make_strategy

pytestmark = pytest.mark.slow

REPO = pathlib.Path(__file__).resolve().parents[1]
FINGERPRINT = re.compile(r"(\d+) replicas; weights fingerprint \(sum of squares\): (\S+)")


def _train_argv(data_dir: pathlib.Path) -> list:
    return ["train", "--model", "din", "--dataset", "ml-100k", "--data-dir", str(data_dir),
            "--set", "embedding_dim=4", "--set", "max_length=10", "--set", "hidden_units=[8]",
            "--set", "attention_units=[8]", "--set", "dropout=0.0", "--batch-size", "256", "--epochs", "2",
            "--set", "train_positions_per_user=2", "--set", "num_negatives=1", "--learning-rate", "0.01",
            "--seed", "1", "--deterministic", "--quiet"]


def _run(command: list) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", *command], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=400)


def test_two_workers_train_what_one_worker_trains(shared_data_dir, tmp_path):
    argv = _train_argv(shared_data_dir)
    launched = _run(["tf_attnrec.launch", "--workers", "2", "--", *argv, "--output", str(tmp_path / "two")])
    assert launched.returncode == 0, launched.stderr[-3000:]
    worker_log = (tmp_path / "two.worker-1.log").read_text()
    chief = FINGERPRINT.findall(launched.stdout)
    worker = FINGERPRINT.findall(worker_log)
    assert chief and worker and chief[0][0] == worker[0][0] == "2"
    assert chief[0][1] == worker[0][1]  # the replicas' weights agree
    # Only the chief writes the run; the worker's scratch copy is gone.
    assert (tmp_path / "two" / runs.METRICS_FILE).is_file() and "Saved the model" not in worker_log
    scratch = re.search(r"-> (\S+)", worker_log).group(1)
    assert "tf-attnrec-worker-" in scratch and not pathlib.Path(scratch).exists()

    single = _run(["tf_attnrec.cli", *argv, "--strategy", "mirrored", "--output", str(tmp_path / "one")])
    assert single.returncode == 0, single.stderr[-3000:]
    one = FINGERPRINT.findall(single.stdout)
    assert one[0][0] == "1"
    assert float(chief[0][1]) == pytest.approx(float(one[0][1]), rel=1e-6)
    two_metrics, one_metrics = (json.loads((tmp_path / name / runs.METRICS_FILE).read_text()) for name in ("two", "one"))
    for key in ("auc", "log_loss"):
        assert two_metrics["test"][key] == pytest.approx(one_metrics["test"][key], abs=1e-5)
    assert two_metrics["history"]["val_auc"] == pytest.approx(one_metrics["history"]["val_auc"], abs=1e-5)


def test_local_clusters_give_each_worker_its_own_port():
    configs = local_cluster(3)
    addresses = configs[0]["cluster"]["worker"]
    assert len(set(addresses)) == 3 and [config["task"]["index"] for config in configs] == [0, 1, 2]
    assert all(config["cluster"] == configs[0]["cluster"] for config in configs)


def test_the_multiworker_strategy_names_what_it_needs(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG.*tf_attnrec.launch"):
        make_strategy("multiworker")
    with pytest.raises(ValueError, match="--strategy must be one of"):
        make_strategy("parameter_server")


def test_the_launcher_reports_a_failing_worker_and_exits_with_its_status(tmp_path):
    launched = _run(["tf_attnrec.launch", "--workers", "2", "--", "train", "--model", "no_such_model",
                     "--dataset", "ml-100k", "--output", str(tmp_path / "run")])
    assert launched.returncode == 1
    assert "unknown model 'no_such_model'" in launched.stderr  # the chief's own error line
    assert f"worker 1 exited with status 1; its output is {tmp_path / 'run'}.worker-1.log" in launched.stderr
