"""Kill and resume: `tf-attnrec train` killed with SIGKILL mid-epoch, then rerun, ends as a run never stopped.

Each case trains one run straight through, and one that SIGKILLs itself in the middle of an
epoch (`tests/kill_training.py`), after step backups, and is then resumed by rerunning the
same command. With the same seed and `--deterministic` (op determinism), every logged value of
every epoch (losses, running training metrics, validation metrics, learning rate) and the final
validation and test metrics must be equal: the tolerance is zero. The cases cover a sequential
model with dropout and the plateau schedule, and a ranking model with a running training AUC.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tf_attnrec import cli, runs

pytestmark = pytest.mark.slow

REPO = pathlib.Path(__file__).resolve().parents[1]
# Wall-clock values differ between any two runs.
TIMINGS = {"train_seconds", "val_seconds"}


def _train(argv: list, output: pathlib.Path, kill_after_steps: int = 0) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tests.kill_training", str(kill_after_steps)] if kill_after_steps else \
        [sys.executable, "-m", "tf_attnrec.cli"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    return subprocess.run([*command, *argv, "--output", str(output)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def _metrics(run_dir: pathlib.Path) -> dict:
    return json.loads((run_dir / runs.METRICS_FILE).read_text())


def _assert_same_run(straight: dict, resumed: dict) -> None:
    assert set(straight["history"]) == set(resumed["history"])
    for key, values in straight["history"].items():
        if key not in TIMINGS:
            assert resumed["history"][key] == values, key
    for stage in ("validation", "test"):
        assert resumed[stage] == straight[stage], stage
    for key in ("best_pass", "passes", "stopped_by"):
        assert resumed[key] == straight[key], key


def _kill_and_resume(argv: list, tmp_path: pathlib.Path, kill_after_steps: int) -> tuple[dict, dict]:
    straight = _train(argv, tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert not (tmp_path / "straight" / runs.BACKUP_DIR).exists()  # a finished run keeps no backup

    killed = _train(argv, tmp_path / "resumed", kill_after_steps)
    assert killed.returncode == -9, killed.stderr[-3000:]
    backup = tmp_path / "resumed" / runs.BACKUP_DIR
    states = sorted(backup.glob("state-*.json"))
    assert states and not (tmp_path / "resumed" / runs.METRICS_FILE).exists()
    # A state file newer than the newest checkpoint (a kill between the two writes) is ignored:
    # the state is the one written with the checkpoint the run resumes from.
    (backup / "state-999999-00000000.json").write_text(states[-1].read_text())

    resumed = _train(argv, tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming" in resumed.stdout
    assert not backup.exists()
    return _metrics(tmp_path / "straight"), _metrics(tmp_path / "resumed")


@pytest.fixture
def sasrec_file(tmp_path) -> pathlib.Path:
    """120 users with 8 to 29 distinct items each, from 80 items."""
    rng = np.random.default_rng(0)
    lines = []
    for user in range(1, 121):
        items = rng.choice(np.arange(1, 81), size=rng.integers(8, 30), replace=False)
        lines += [f"{user} {item}\n" for item in items]
    path = tmp_path / "tiny.txt"
    path.write_text("".join(lines))
    return path


def sasrec_argv(path: pathlib.Path) -> list:
    # 8 steps per pass, 2 passes per epoch (the zoo's eval_every), a step backup every 3 steps. Seed 0's
    # validation stalls once, so the plateau cuts the rate (asserted below: the resume must restore it).
    return ["train", "--model", "sasrec", "--data", str(path), "--max-length", "20", "--set", "hidden_dim=8",
            "--set", "num_blocks=1", "--batch-size", "16", "--epochs", "6", "--patience", "3",
            "--set", "reduce_lr_patience=1", "--seed", "0", "--set", "backup_steps=3", "--deterministic", "--quiet"]


def test_a_killed_sequential_run_resumes_to_the_metrics_of_an_uninterrupted_one(sasrec_file, tmp_path):
    # Killed at step 21: epoch 2, step 5, three steps after its last backup.
    straight, resumed = _kill_and_resume(sasrec_argv(sasrec_file), tmp_path, kill_after_steps=21)
    _assert_same_run(straight, resumed)
    assert len(straight["history"]["loss"]) == 3  # the kill landed in a run of several epochs
    assert min(straight["history"]["lr"]) < max(straight["history"]["lr"])  # the plateau cut the rate


def test_a_killed_ranking_run_resumes_to_the_metrics_of_an_uninterrupted_one(shared_data_dir, tmp_path):
    argv = ["train", "--model", "din", "--dataset", "ml-100k", "--data-dir", str(shared_data_dir),
            "--set", "embedding_dim=4", "--set", "max_length=10", "--set", "hidden_units=[8]",
            "--set", "attention_units=[8]", "--batch-size", "512", "--epochs", "4", "--patience", "2",
            "--set", "train_positions_per_user=2", "--set", "num_negatives=1", "--learning-rate", "0.01",
            "--seed", "1", "--set", "backup_steps=2", "--deterministic", "--quiet"]
    # 8 steps an epoch: killed at epoch 2, step 5, with the epoch's running AUC half summed.
    straight, resumed = _kill_and_resume(argv, tmp_path, kill_after_steps=13)
    _assert_same_run(straight, resumed)
    assert len(straight["history"]["auc"]) == 4


def test_the_same_seed_gives_identical_metrics(sasrec_file, tmp_path):
    first = _train(sasrec_argv(sasrec_file), tmp_path / "first")
    second = _train(sasrec_argv(sasrec_file), tmp_path / "second")
    assert first.returncode == 0 and second.returncode == 0, second.stderr[-3000:]
    _assert_same_run(_metrics(tmp_path / "first"), _metrics(tmp_path / "second"))


def test_a_backup_resumes_only_under_its_own_config(sasrec_file, tmp_path, capsys):
    argv = sasrec_argv(sasrec_file)
    killed = _train(argv, tmp_path / "run", kill_after_steps=5)
    assert killed.returncode == -9
    changed = [arg.replace("hidden_dim=8", "hidden_dim=16") for arg in argv]
    assert cli.main([*changed, "--output", str(tmp_path / "run")]) == 1
    error = capsys.readouterr().err
    assert "interrupted run" in error and "model_config" in error and "--overwrite" in error
    # The dtype policy is part of the config a backup resumes under.
    assert cli.main([*argv, "--precision", "mixed_bfloat16", "--output", str(tmp_path / "run")]) == 1
    assert "precision differ" in capsys.readouterr().err
    assert (tmp_path / "run" / runs.BACKUP_DIR).is_dir()  # refused, not discarded
