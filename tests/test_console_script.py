"""The console script, for one model of every kind: train, evaluate, recommend, export, explain.

Each of the five commands runs as a user runs it (`tf-attnrec ...` in a subprocess); the
refusals (a flag or a command that a kind of model cannot use) run in-process through
`cli.main`, which is what the console script calls. The retrieval model
trains on a user's own CSV log with custom column names; the ranking model on ML-100K with
its side features. A command a kind of model cannot do must refuse in one line.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def tf_attnrec(*argv: str) -> subprocess.CompletedProcess:
    return concurrently(argv)[0]


def concurrently(*commands: tuple) -> list:
    """Runs `tf-attnrec` commands side by side (each pays TensorFlow's start-up); their results."""
    script = shutil.which("tf-attnrec")
    prefix = [script] if script else [sys.executable, "-m", "tf_attnrec.cli"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    processes = [subprocess.Popen([*prefix, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=env) for argv in commands]
    results = []
    for argv, process in zip(commands, processes):
        out, err = process.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(argv, process.returncode, out, err))
    return results


def in_process(*argv: str) -> subprocess.CompletedProcess:
    """The same command through `cli.main` in this process (for refusals: no TF start-up cost)."""
    import contextlib
    import io

    from tf_attnrec import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(list(argv))
    return subprocess.CompletedProcess(argv, status, out.getvalue(), err.getvalue())


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def refused(result: subprocess.CompletedProcess, *phrases: str) -> str:
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for phrase in phrases:
        assert phrase in err, err
    return err


@pytest.fixture(scope="module")
def log_csv(shared_data_dir, tmp_path_factory) -> pathlib.Path:
    """The first 300 ML-100K users as a user's CSV log with columns u, i, t."""
    ratings = pd.read_csv(shared_data_dir / "ml-100k" / "u.data", sep="\t", names=["u", "i", "rating", "t"])
    path = tmp_path_factory.mktemp("log") / "log.csv"
    ratings[ratings["u"] <= 300][["u", "i", "t"]].to_csv(path, index=False)
    return path


def test_retrieval_on_a_users_csv_log(log_csv, tmp_path):
    run_dir = tmp_path / "sasrec"
    out = ok(tf_attnrec("train", "--data", str(log_csv), "--user-col", "u", "--item-col", "i", "--time-col", "t",
                        "--model", "sasrec", "--output", str(run_dir), "--epochs", "1", "--eval-every", "1",
                        "--max-length", "20", "--set", "hidden_dim=16", "--set", "num_blocks=1", "--quiet"))
    assert "log.csv (CSV; user=u item=i time=t)" in out and "test (full catalogue" in out
    test = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert test["num_users"] == 300 and 0 <= test["ndcg@10"] <= test["hr@10"] <= 1

    # The four commands on the saved run are independent: run them side by side.
    again = tmp_path / "again.json"
    evaluated, recommended, export, explained = concurrently(
        ("evaluate", str(run_dir), "--output", str(again)),
        ("recommend", str(run_dir), "--history", "1,50,181", "-k", "5", "--format", "json"),
        ("export", str(run_dir), "--output", str(tmp_path / "serving" / "sasrec" / "1"), "-k", "5"),
        ("explain", str(run_dir), "--user", "1", "--output", str(tmp_path / "e.png")),
    )
    ok(evaluated)  # evaluate reloads the recorded CSV: same numbers
    assert json.loads(again.read_text())["ndcg@10"] == pytest.approx(test["ndcg@10"], abs=1e-6)
    recommended = json.loads(ok(recommended))["recommendations"]
    assert len(recommended) == 5 and not {1, 50, 181} & {row["item_id"] for row in recommended}
    export = ok(export)
    assert "serving_default" in export and "item_ids" in export and "k=5" in export
    assert "rank" in ok(explained) and (tmp_path / "e.png").read_bytes().startswith(b"\x89PNG")

    refused(in_process("evaluate", str(run_dir), "--data", str(tmp_path / "gone.csv")), "gone.csv")


def test_ranking_on_ml100k_with_side_features(shared_data_dir, tmp_path):
    config = tmp_path / "din.yaml"  # few examples per user: one pass takes seconds
    config.write_text("model: din\nmodel_config: {max_length: 20, embedding_dim: 8}\n"
                      "training: {epochs: 1, patience: null, train_positions_per_user: 2, num_negatives: 1}\n")
    run_dir = tmp_path / "din"
    out = ok(tf_attnrec("train", "--config", str(config), "--dataset", "ml-100k", "--data-dir", str(shared_data_dir),
                        "--output", str(run_dir), "--quiet"))
    assert "din (ranking)" in out and "AUC" in out
    test = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert 0.5 < test["auc"] <= 1

    evaluated, export, explained = concurrently(
        ("evaluate", str(run_dir)),
        ("export", str(run_dir), "--output", str(tmp_path / "serving" / "din" / "1")),
        ("explain", str(run_dir), "--user", "1", "--item", "50", "--output", str(tmp_path / "din.png")),
    )
    assert f"{test['auc']:.4f}" in ok(evaluated)
    refused(in_process("recommend", str(run_dir), "--history", "1,50"), "ranking model", "retrieval run")
    export = ok(export)
    assert "probability" in export and "'explain'" in export
    assert "probability" in ok(explained) and (tmp_path / "din.png").is_file()
    refused(in_process("evaluate", str(run_dir), "--protocol", "sampled"), "drop --protocol")
    refused(in_process("export", str(run_dir), "--output", str(tmp_path / "serving" / "din" / "2"), "-k", "5"),
            "-k do not apply to ranking exports")


def test_a_model_whose_features_the_data_lacks_is_named(log_csv, tmp_path):
    err = refused(in_process("train", "--data", str(log_csv), "--user-col", "u", "--item-col", "i", "--model", "din",
                             "--output", str(tmp_path / "din"), "--epochs", "1"))
    assert "genres" in err and "gender" in err, err


def test_collaborative_on_a_users_csv_log(log_csv, tmp_path):
    """gat_cf through the command line (in-process: the other kinds pay the subprocesses)."""
    run_dir = tmp_path / "gat_cf"
    data = ("--data", str(log_csv), "--user-col", "u", "--item-col", "i")
    trained = ok(in_process("train", "--model", "gat_cf", *data, "--output", str(run_dir), "--epochs", "1",
                            "--set", "embedding_dim=8", "--set", "num_layers=1", "--quiet"))
    assert "collaborative" in trained and (run_dir / "graph.npz").is_file()
    test = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert f"{test['ndcg@10']:.4f}" in ok(in_process("evaluate", str(run_dir)))
    exported = ok(in_process("export", str(run_dir), "--output", str(tmp_path / "serving" / "gat_cf" / "1"), "-k", "5"))
    assert "user_id" in exported and "known_user" in exported
    explained = ok(in_process("explain", str(run_dir), "--user", "1", "--output", str(tmp_path / "gat.png")))
    assert "Items the user's vector attends to" in explained and (tmp_path / "gat.png").is_file()
    refused(in_process("recommend", str(run_dir), "--history", "1,50"), "collaborative model", "user_id")
    refused(in_process("export", str(run_dir), "--output", str(tmp_path / "serving" / "gat_cf" / "2"), "--index",
                       "scann"), "--index does not apply to gat_cf", "user ids")

    # The inductive model of the same task serves raw histories: recommend and a history export.
    sage_dir = tmp_path / "graphsage_cf"
    ok(in_process("train", "--model", "graphsage_cf", *data, "--output", str(sage_dir), "--epochs", "1",
                  "--set", "embedding_dim=8", "--set", "num_samples=3", "--quiet"))
    recommended = ok(in_process("recommend", str(sage_dir), "--history", "1,50", "-k", "3"))
    assert "rank" in recommended
    exported = ok(in_process("export", str(sage_dir), "--output", str(tmp_path / "serving" / "sage" / "1"), "-k", "5"))
    assert "history" in exported and "user_id" not in exported
