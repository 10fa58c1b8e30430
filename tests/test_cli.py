"""`tf-attnrec` end to end on real MovieLens-100K with a tiny SASRec (in-process `main`)."""

from __future__ import annotations

import contextlib
import io
import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf
import yaml

from tf_attnrec import cli, runs
from tf_attnrec.data import load_dataset
from tf_attnrec.models.registry import get_model_spec, list_models
from tf_attnrec.tasks import get_task
from tf_attnrec.runs import load_model

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(__name__)]  # one worker builds the module's fixtures

TINY = ["--epochs", "1", "--eval-every", "1", "--max-length", "20", "--set", "hidden_dim=16",
        "--set", "num_blocks=1", "--seed", "0"]


@pytest.fixture(scope="module")
def ml100k_dir(shared_data_dir) -> pathlib.Path:
    return shared_data_dir / "ml-100k"


@pytest.fixture(scope="module")
def trained_run(ml100k_dir, tmp_path_factory):
    """(run_dir, printed stdout) of one tiny `train` run."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(["train", "--dataset", "ml-100k", "--data-dir", str(ml100k_dir),
                           "--output", str(run_dir), *TINY])
    assert status == 0, out.getvalue()
    return run_dir, out.getvalue()


def _run(argv, capsys) -> tuple[int, str, str]:
    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_train_saves_a_complete_run_and_prints_test_metrics(trained_run, ml100k_dir):
    run_dir, printed = trained_run
    for name in ("config.yaml", "items.json", "metrics.json", "model_config.json", "vocabulary.json",
                 "history.csv"):
        assert (run_dir / name).is_file(), name
    assert runs.weights_prefix(run_dir, json.loads((run_dir / "model_config.json").read_text())).with_suffix(
        ".index").is_file()
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (config["model"], config["dataset"]) == ("sasrec", "ml-100k")
    assert pathlib.Path(config["data_dir"]) == ml100k_dir.resolve()
    assert config["model_config"]["hidden_dim"] == 16 and config["model_config"]["max_length"] == 20
    assert config["training"]["epochs"] == 1

    test = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert test["protocol"] == "full" and test["num_users"] == 943
    assert 0.0 <= test["ndcg@10"] <= test["hr@10"] <= test["hr@20"] <= 1.0
    assert 0.0 < test["coverage@10"] <= test["coverage@20"] <= 1.0
    # The printed table shows the saved numbers; Keras' progress bar ran (943 users / 128).
    assert "test (full catalogue" in printed and f"{test['ndcg@10']:.4f}" in printed
    assert f"{test['coverage@10']:.4f}" in printed
    assert "8/8 [" in printed and "val_ndcg@10" in printed
    # The saved model is the trained one: same shapes as the requested tiny config.
    model, vocabulary, _ = load_model(run_dir)
    assert model.encoder.hidden_dim == 16 and vocabulary.num_items == 1682


def test_evaluate_rebuilds_the_split_and_reproduces_the_test_metrics(trained_run, tmp_path, capsys):
    run_dir, _ = trained_run
    output = tmp_path / "eval.json"
    status, out, _ = _run(["evaluate", str(run_dir), "--output", str(output)], capsys)
    assert status == 0
    saved = json.loads((run_dir / "metrics.json").read_text())["test"]
    again = json.loads(output.read_text())
    for key in ("hr@10", "ndcg@10", "mrr", "coverage@10", "num_users"):
        assert again[key] == pytest.approx(saved[key], abs=1e-6), key
    assert f"{saved['hr@10']:.4f}" in out


def test_a_warm_started_run_records_its_origin_and_can_be_evaluated(trained_run, ml100k_dir, tmp_path, capsys):
    run_dir, _ = trained_run
    continued = tmp_path / "continued"
    status, _, err = _run(["train", "--dataset", "ml-100k", "--data-dir", str(ml100k_dir), "--output",
                           str(continued), "--init-from", str(run_dir), "--quiet", *TINY], capsys)
    assert status == 0, err
    config = yaml.safe_load((continued / "config.yaml").read_text())
    assert config["init_from"] == str(run_dir)
    status, out, err = _run(["evaluate", str(continued)], capsys)
    assert status == 0, err
    saved = json.loads((continued / "metrics.json").read_text())["test"]
    assert f"{saved['ndcg@10']:.4f}" in out


def test_evaluate_sampled_protocol_is_labelled_and_never_below_full(trained_run, tmp_path, capsys):
    run_dir, _ = trained_run
    output = tmp_path / "sampled.json"
    status, out, _ = _run(["evaluate", str(run_dir), "--protocol", "sampled", "--ks", "10",
                           "--output", str(output)], capsys)
    assert status == 0 and "100 sampled negatives" in out
    sampled = json.loads(output.read_text())
    full = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert sampled["protocol"] == "sampled-100"
    # 100 negatives are a subset of the full catalogue: the target can only rank higher.
    assert sampled["sampled100_hr@10"] >= full["hr@10"]
    assert sampled["sampled100_hr@10"] > 0


def test_recommend_returns_the_models_top_unseen_items_with_titles(trained_run, ml100k_dir, capsys):
    run_dir, _ = trained_run
    status, out, _ = _run(["recommend", str(run_dir), "--history", "1, 50,181", "-k", "5",
                           "--format", "json"], capsys)
    assert status == 0
    result = json.loads(out)
    assert result["history"] == [1, 50, 181]
    recommended = [row["item_id"] for row in result["recommendations"]]
    assert len(recommended) == 5 and not {1, 50, 181} & set(recommended)

    model, vocabulary, _ = load_model(run_dir)
    history = vocabulary.lookup([1, 50, 181])
    scores = model.score(np.pad(history, (20 - 3, 0))[None, :].astype(np.int32)).numpy()[0]
    scores[history] = -np.inf
    expected = vocabulary.raw_ids(np.argsort(-scores, kind="stable")[:5]).tolist()
    assert recommended == expected
    titles = load_dataset("ml-100k", data_dir=ml100k_dir).items.set_index("item_id")["title"]
    assert [row["title"] for row in result["recommendations"]] == [titles[i] for i in expected]

    status, out, _ = _run(["recommend", str(run_dir), "--history", "1,50,181", "-k", "3"], capsys)
    assert status == 0 and "Toy Story (1995)" in out and titles[expected[0]] in out


def test_recommend_warns_about_unknown_ids_and_fails_without_known_ones(trained_run, capsys):
    run_dir, _ = trained_run
    status, out, err = _run(["recommend", str(run_dir), "--history", "1,999999,abc", "-k", "2",
                             "--format", "json"], capsys)
    assert status == 0 and "999999, abc" in err and "warning" in err
    assert json.loads(out)["history"] == [1]
    status, _, err = _run(["recommend", str(run_dir), "--history", "999999"], capsys)
    assert status == 1 and "none of the history ids" in err and len(err.strip().splitlines()) == 1


def test_list_models_names_every_zoo_model(capsys):
    status, out, _ = _run(["list-models"], capsys)
    assert status == 0
    assert [line.split()[0] for line in out.strip().splitlines()] == list_models()


def test_train_defaults_to_the_zoo_config_then_registry_defaults(monkeypatch):
    parser = cli.build_parser()
    config = cli.resolve_train_config(parser.parse_args(["train", "--dataset", "ml-1m"]))
    zoo = yaml.safe_load((pathlib.Path(cli.__file__).parents[1] / "models/sasrec/config.yaml").read_text())
    assert config["model"] == "sasrec" and config["data_dir"] is None
    assert config["model_config"] == zoo["model_config"] and config["training"] == zoo["training"]

    monkeypatch.setattr(cli, "zoo_config_path", lambda model: None)  # installed without models/
    config = cli.resolve_train_config(
        parser.parse_args(["train", "--dataset", "ml-1m", "--epochs", "3", "--set", "loss=bce"]))
    assert config["model_config"] == {"loss": "bce"}
    spec = get_model_spec("sasrec")
    assert config["training"] == {**get_task(spec.task).training_defaults, **spec.training, "epochs": 3}



def test_precision_comes_from_the_flag_else_the_config_and_is_recorded_only_when_not_float32(tmp_path):
    parser = cli.build_parser()
    assert "precision" not in cli.resolve_train_config(parser.parse_args(["train", "--dataset", "ml-1m"]))
    config_file = tmp_path / "config.yaml"
    config_file.write_text("model: sasrec\nprecision: mixed_bfloat16\n")
    from_file = cli.resolve_train_config(parser.parse_args(["train", "--dataset", "ml-1m", "--config", str(config_file)]))
    assert from_file["precision"] == "mixed_bfloat16"
    flag = cli.resolve_train_config(parser.parse_args(
        ["train", "--dataset", "ml-1m", "--config", str(config_file), "--precision", "float32"]))
    assert "precision" not in flag
    config_file.write_text("model: sasrec\nprecision: float8\n")
    with pytest.raises(ValueError, match="precision 'float8'"):
        cli.resolve_train_config(parser.parse_args(["train", "--dataset", "ml-1m", "--config", str(config_file)]))

def test_set_reaches_training_keys_that_are_not_model_keys():
    parser = cli.build_parser()
    config = cli.resolve_train_config(parser.parse_args(
        ["train", "--model", "nais", "--dataset", "ml-1m", "--set", "split=ratio", "--set", "split_seed=7",
         "--set", "beta=0.7"]))
    assert config["training"]["split"] == "ratio" and config["training"]["split_seed"] == 7
    assert config["model_config"]["beta"] == 0.7 and "split" not in config["model_config"]
    # max_length is a model key: it stays in the model config.
    config = cli.resolve_train_config(parser.parse_args(["train", "--model", "nais", "--dataset", "ml-1m",
                                                         "--set", "max_length=9"]))
    assert config["model_config"]["max_length"] == 9 and "max_length" not in config["training"]


def test_exponent_floats_are_floats_in_set_and_in_config_files(tmp_path):
    """PyYAML alone reads `1e-3` as a string (YAML 1.1 wants `1.0e-3`)."""
    parser = cli.build_parser()
    config = cli.resolve_train_config(parser.parse_args(
        ["train", "--model", "nais", "--dataset", "ml-1m", "--set", "attention_l2=1e-2", "--set", "name=1e3x"]))
    assert config["model_config"]["attention_l2"] == 0.01 and config["model_config"]["name"] == "1e3x"
    config_file = tmp_path / "config.yaml"
    config_file.write_text("model: sasrec\ntraining:\n  learning_rate: 5E-4\n  epochs: 3\n")
    config = cli.resolve_train_config(parser.parse_args(["train", "--dataset", "ml-1m", "--config", str(config_file)]))
    assert config["training"]["learning_rate"] == 0.0005 and config["training"]["epochs"] == 3


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "{tmp}/missing"], "not found"),
    (["recommend", "{tmp}/missing", "--history", "1"], "not found"),
    (["train", "--model", "nope", "--dataset", "ml-100k"], "unknown model 'nope'"),
    (["train", "--dataset", "ml-100k", "--set", "hidden_dim"], "KEY=VALUE"),
    (["train", "--config", "{tmp}/missing.yaml", "--dataset", "ml-100k"], "missing.yaml not found"),
    (["train", "--config", "{tmp}/bad.yaml"], "unknown training keys ['epoch']"),
    (["train", "--dataset", "ml-100k", "--data-dir", "{data}", "--set", "hidden_size=8",
      "--output", "{tmp}/run"], "unknown config keys ['hidden_size']"),
    (["train", "--dataset", "ml-10m"], "Unknown dataset 'ml-10m'"),
])
def test_user_errors_print_one_line_and_exit_1(argv, message, tmp_path, ml100k_dir, capsys):
    (tmp_path / "bad.yaml").write_text("model: sasrec\ndataset: ml-100k\ntraining: {epoch: 3}\n")
    argv = [a.format(tmp=tmp_path, data=ml100k_dir) for a in argv]
    status, _, err = _run(argv, capsys)
    assert status == 1
    assert len(err.strip().splitlines()) == 1 and err.startswith("tf-attnrec ")
    assert message in err and "Traceback" not in err


def test_train_refuses_to_overwrite_a_run(trained_run, ml100k_dir, capsys):
    run_dir, _ = trained_run
    status, _, err = _run(["train", "--dataset", "ml-100k", "--data-dir", str(ml100k_dir),
                           "--output", str(run_dir), *TINY], capsys)
    assert status == 1 and "already holds a trained model" in err


def test_bad_flags_exit_2_with_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--epochs", "zero"])
    assert exit_info.value.code == 2
    assert "--epochs: expected a positive integer, got 'zero'" in capsys.readouterr().err


def test_a_malformed_file_is_one_line_naming_file_and_line(tmp_path, capsys):
    """The error the console script prints (it is `cli.main`; tests/test_console_script.py)."""
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("196\t242\t3\t881250949\n186\tabc\t3\t891717742\n")
    status, _, err = _run(["train", "--dataset", "ml-100k", "--data-dir", str(tmp_path), "--no-download",
                           "--output", str(tmp_path / "run")], capsys)
    assert status == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("tf-attnrec train: error:") and "u.data" in err and "line 2" in err


def test_export_serves_the_same_top_k_as_recommend(trained_run, tmp_path, capsys):
    run_dir, _ = trained_run
    export_dir = tmp_path / "serving" / "sasrec" / "1"
    status, out, _ = _run(["export", str(run_dir), "--output", str(export_dir), "-k", "5"], capsys)
    assert status == 0 and "serving_default" in out and "item_ids" in out
    status, out, _ = _run(["recommend", str(run_dir), "--history", "1,50,181", "-k", "5",
                           "--format", "json"], capsys)
    expected = [str(row["item_id"]) for row in json.loads(out)["recommendations"]]

    # A fresh process reloads every export in tests/test_zoo.py; here the served top-k must be
    # recommend's, so the export is loaded in this process.
    serve = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    out = serve(history=tf.constant([["1", "50", "181"], ["", "no-such-item", ""]]))
    served = [[item.decode() for item in row] for row in out["item_ids"].numpy()]
    assert served[0] == expected
    assert len(served[1]) == 5 and all(served[1])  # unknown id only: still k valid items


def test_train_evaluate_export_on_a_sasrec_text_file(ml100k_dir, tmp_path, capsys):
    ratings = np.loadtxt(ml100k_dir / "u.data", dtype=np.int64)
    ratings = ratings[ratings[:, 0] <= 200]
    ratings = ratings[np.lexsort((ratings[:, 3], ratings[:, 0]))]  # per user, oldest first
    text = tmp_path / "log.txt"
    text.write_text("".join(f"{user} {item}\n" for user, item in ratings[:, :2]))
    run_dir = tmp_path / "run"
    status, out, err = _run(["train", "--data", str(text), "--model", "sasrec", "--output", str(run_dir),
                             "--quiet", *TINY], capsys)
    assert status == 0, err
    assert "SASRec text" in out
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["data"] == {"kind": "file", "interactions": str(text.resolve())}
    saved = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert saved["num_users"] == 200
    status, out, err = _run(["evaluate", str(run_dir)], capsys)
    assert status == 0 and f"{saved['ndcg@10']:.4f}" in out, err
    status, out, err = _run(["export", str(run_dir), "--output", str(tmp_path / "serving" / "txt" / "1")], capsys)
    assert status == 0 and "serving_default" in out, err


def test_multitask_train_evaluate_explain_export_on_ml100k(ml100k_dir, tmp_path, capsys):
    """The multi-task task through every command: its ratings, its named outputs, its gates."""
    run_dir = tmp_path / "mmoe"
    tiny = ["--set", "embedding_dim=8", "--set", "num_experts=2", "--set", "expert_units=[8]",
            "--set", "rating_units=[8]", "--set", "click_units=[8]"]
    status, out, err = _run(["train", "--model", "mmoe", "--dataset", "ml-100k", "--data-dir", str(ml100k_dir),
                             "--output", str(run_dir), "--epochs", "1", "--seed", "0", *tiny], capsys)
    assert status == 0, err
    assert "accuracy" in out and "rmse" in out
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["split"]["test"] == 20000 and saved["split"]["validation"] == 10000

    status, out, err = _run(["evaluate", str(run_dir)], capsys)
    assert status == 0, err
    rmse = next(line for line in out.splitlines() if line.strip().startswith("rmse"))
    assert f"{saved['test']['rmse']:.4f}" in rmse

    status, out, err = _run(["explain", str(run_dir), "--user", "1", "--output", str(tmp_path / "gates.png")], capsys)
    assert status == 0, err
    assert "gate weights of user 1" in out and (tmp_path / "gates.png").is_file()

    status, out, err = _run(["export", str(run_dir), "--output", str(tmp_path / "serving" / "mmoe" / "1")], capsys)
    assert status == 0, err
    served = tf.saved_model.load(str(tmp_path / "serving" / "mmoe" / "1")).signatures["serving_default"]
    answer = served(user_id=tf.constant(["1", "no such user"]), item_id=tf.constant(["50", "50"]))
    assert {"top_k_item_ids", "rating", "click_probability", "task_gates"} <= set(answer)
    assert answer["known_user"].numpy().tolist() == [True, False]
