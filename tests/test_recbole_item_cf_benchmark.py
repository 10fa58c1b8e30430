"""FISM / NAIS and `--split loo` in benchmarks/recbole_graph.py (the RecBole peer harness).

Cheap: configs, fingerprints, run folder names and the split files, written from a small
SASRec-form file and from the real ML-100K (skipped when ../shared/data has no ml-100k/);
nothing here needs torch, RecBole or the peer virtualenv (one test reads RecBole's model YAML
files from the peer venv when it exists, and skips otherwise).
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SHARED_DATA
from tests.recbole_fixtures import driver, graph  # noqa: F401  (fixtures)


def _args(**kw) -> argparse.Namespace:
    base = dict(train_batch_size=4096, eval_batch_size=2 ** 24, stopping_step=10, epochs=1000, seed=2020,
                split="ratio", neg_samples=1)
    base.update(kw)
    return argparse.Namespace(**base)


# User 10 has 2 interactions (too short for leave-one-out: train only); the others 3..7.
ROWS = {10: [5, 6], 3: [1, 2, 3, 4, 5, 6, 7], 7: [7, 1, 2], 4: [2, 4, 6, 8, 9], 5: [9, 8, 7, 3]}


@pytest.fixture()
def sasrec_file(tmp_path) -> pathlib.Path:
    path = tmp_path / "tiny.txt"
    path.write_text("".join(f"{u} {i}\n" for u, items in ROWS.items() for i in items))
    return path


def _read(folder: pathlib.Path, name: str, suffix: str) -> pd.DataFrame:
    return pd.read_csv(folder / name / f"{name}.{suffix}.inter", sep="\t")


# --------------------------------------------------------------------------------------
# Configs.
# --------------------------------------------------------------------------------------
def test_fism_and_nais_configs_are_recbole_defaults_with_bounded_evaluation(graph):
    fism, nais = graph.MODEL_CONFIGS["FISM"], graph.MODEL_CONFIGS["NAIS"]
    assert fism == {"learning_rate": 0.001, "embedding_size": 64, "reg_weights": [1e-2, 1e-2], "alpha": 0.0,
                    "split_to": graph.SPLIT_TO}
    assert nais == {"learning_rate": 0.001, "algorithm": "prod", "embedding_size": 64, "weight_size": 64,
                    "reg_weights": [1e-7, 1e-7, 1e-5], "alpha": 0.0, "beta": 0.5, "pretrain_path": None,
                    "split_to": graph.SPLIT_TO}
    # split_to 0 would score all 3,417 ML-1M items against a whole history at once.
    assert graph.SPLIT_TO > 0 and -(-3417 // graph.SPLIT_TO) * 2275 * 64 * 4 < 256 * 2 ** 20


def _floats(value):
    if isinstance(value, list):
        return [_floats(v) for v in value]
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def test_model_configs_match_recboles_yaml_when_the_peer_venv_is_there(graph):
    yaml = pytest.importorskip("yaml")
    found = sorted(graph.DEFAULT_VENV.glob("lib/python*/site-packages/recbole/properties/model"))
    if not found:
        pytest.skip(f"no peer venv at {graph.DEFAULT_VENV}")
    for model in ("FISM", "NAIS"):
        # RecBole's loader reads `1e-2` as a float (an extra resolver); plain YAML 1.1 as a string.
        defaults = {k: _floats(v) for k, v in yaml.safe_load((found[0] / f"{model}.yaml").read_text()).items()}
        ours = graph.MODEL_CONFIGS[model]
        assert set(defaults) | {"learning_rate"} == set(ours)
        assert {k: v for k, v in defaults.items() if k != "split_to"} == \
            {k: v for k, v in ours.items() if k in defaults and k != "split_to"}


def test_pointwise_config_and_negatives(graph):
    config = graph.recbole_config("NAIS", _args(neg_samples=4), pathlib.Path("/d"), pathlib.Path("/r"))
    assert config["train_neg_sample_args"]["sample_num"] == 4
    assert config["train_neg_sample_args"]["distribution"] == "uniform"
    assert "LABEL_FIELD" not in config  # RecBole's default `label`: the loader adds it for pointwise models
    assert config["algorithm"] == "prod" and config["split_to"] == graph.SPLIT_TO
    assert graph.recbole_config("FISM", _args(), pathlib.Path("/d"), pathlib.Path("/r"))[
        "train_neg_sample_args"]["sample_num"] == 1


def test_loo_config_uses_hit_and_ndcg_with_full_ranking(graph):
    ratio = graph.recbole_config("FISM", _args(), pathlib.Path("/d"), pathlib.Path("/r"))
    loo = graph.recbole_config("FISM", _args(split="loo"), pathlib.Path("/d"), pathlib.Path("/r"))
    assert ratio["metrics"] == ["Recall", "NDCG"] and loo["metrics"] == ["Hit", "NDCG"]
    assert loo["eval_args"]["mode"] == "full" and "LS" in loo["eval_args"]["split"]
    assert loo["topk"] == [10, 20] and loo["valid_metric"] == "NDCG@10"
    assert graph.METRICS_BY_SPLIT["loo"] == ("hit@10", "hit@20", "ndcg@10", "ndcg@20")
    with pytest.raises(ValueError):
        graph.recbole_config("FISM", _args(split="temporal"), pathlib.Path("/d"), pathlib.Path("/r"))


# --------------------------------------------------------------------------------------
# Fingerprints and run folders.
# --------------------------------------------------------------------------------------
def test_graph_model_fingerprints_are_unchanged(graph):
    # Computed with the harness before FISM / NAIS / --split existed: a checkpoint of a running
    # ratio-split LightGCN / NGCF run must still resume.
    for model, expected in (("LightGCN", "e9eafd2be049378e105dce5bb516fdfae0ab03884b8503d20a8981d3d5743e08"),
                            ("NGCF", "7c63630e4d8bc231b6f42fd6b15e389ffef893114681f28b27273d0757fb8608")):
        config = graph.recbole_config(model, _args(), pathlib.Path("/d"), pathlib.Path("/r"))
        assert graph.run_fingerprint(model, "ml1m_s2020", config, "abc") == expected
        assert graph.run_fingerprint(model, "ml1m_s2020", config, "abc", "ratio") == expected
        assert graph.run_dir_name("ml1m_s2020", model) == f"ml1m_s2020-{model}"


def test_fingerprint_includes_the_split_kind(graph):
    config = graph.recbole_config("NAIS", _args(), pathlib.Path("/d"), pathlib.Path("/r"))
    ratio = graph.run_fingerprint("NAIS", "same", config, "abc", "ratio")
    assert graph.run_fingerprint("NAIS", "same", config, "abc", "loo") != ratio
    assert graph.run_fingerprint("FISM", "same", config, "abc", "ratio") != ratio
    with pytest.raises(ValueError):
        graph.run_fingerprint("NAIS", "same", config, "abc", "random")
    more_negatives = graph.recbole_config("NAIS", _args(neg_samples=4), pathlib.Path("/d"), pathlib.Path("/r"))
    assert graph.run_fingerprint("NAIS", "same", more_negatives, "abc", "ratio") != ratio


def test_run_folders_differ_per_split_negatives_and_profile(graph):
    names = {graph.dataset_name(kind, 2020, users) for kind in graph.SPLITS for users in (None, 300)}
    assert names == {"ml1m_s2020", "ml1m_s2020_u300", "ml1m_loo_s2020", "ml1m_loo_s2020_u300"}
    folders = {graph.run_dir_name(name, "NAIS", neg, profile)
               for name in names for neg in (1, 4) for profile in (False, True)}
    assert len(folders) == 16
    assert graph.run_dir_name("ml1m_loo_s2020", "NAIS", 4, True) == "ml1m_loo_s2020-NAIS-neg4-profile"


def test_dataset_names_name_the_dataset_and_keep_ml1m_names(graph):
    assert graph.dataset_name("ratio", 2020, None) == graph.dataset_name("ratio", 2020, None, "ml-1m") == "ml1m_s2020"
    assert graph.dataset_name("loo", 2020, None, "ml-1m") == "ml1m_loo_s2020"
    assert graph.dataset_name("ratio", 2020, None, "ml-100k") == "ml100k_s2020"
    assert graph.dataset_name("loo", 2020, None, "ml-100k") == "ml100k_loo_s2020"
    assert graph.dataset_name("loo", 7, 40, "ml-100k") == "ml100k_loo_s7_u40"
    with pytest.raises(ValueError, match="dataset must be one of"):
        graph.dataset_name("ratio", 2020, None, "ml-20m")


# --------------------------------------------------------------------------------------
# The split files.
# --------------------------------------------------------------------------------------
def test_loo_files_hold_one_valid_and_one_test_row_per_user_as_leave_one_out_split(graph, sasrec_file, tmp_path):
    from tf_attnrec.data.readers import read_sasrec_txt
    from tf_attnrec.data.splits import leave_one_out_split

    info = graph.write_split(graph.read_interactions(sasrec_file, None), 2020, tmp_path / "data", "tiny_loo", "loo")
    train, valid, test = (_read(tmp_path / "data", "tiny_loo", s) for s in ("train", "valid", "test"))
    assert list(train.columns) == ["user_id:token", "item_id:token"]
    long_users = sorted(u for u, items in ROWS.items() if len(items) >= 3)
    for part in (valid, test):
        assert part["user_id:token"].tolist() == long_users  # exactly one row per user, sorted
    for u in long_users:
        assert valid.loc[valid["user_id:token"] == u, "item_id:token"].item() == ROWS[u][-2]
        assert test.loc[test["user_id:token"] == u, "item_id:token"].item() == ROWS[u][-1]
        assert train.loc[train["user_id:token"] == u, "item_id:token"].tolist() == ROWS[u][:-2]
    assert train.loc[train["user_id:token"] == 10, "item_id:token"].tolist() == ROWS[10]  # too short: train only

    split = leave_one_out_split(read_sasrec_txt(sasrec_file))
    raw = split.vocabulary.raw_ids
    rows = np.flatnonzero(split.evaluable)
    assert valid["item_id:token"].tolist() == raw(split.validation_target[rows]).tolist()
    assert test["item_id:token"].tolist() == raw(split.test_target[rows]).tolist()
    assert train["item_id:token"].tolist() == raw(np.concatenate(split.train)).tolist()
    assert info["kind"] == "loo" and info["users"] == len(ROWS) and info["items"] == 9
    assert info["interactions"] == {"train": len(train), "valid": 4, "test": 4}
    assert info["valid_users"] == info["test_users"] == 4


def test_ratio_files_are_the_ratio_split_and_differ_from_loo(graph, sasrec_file, tmp_path):
    from tf_attnrec.data.ratio_split import ratio_split
    from tf_attnrec.data.readers import read_sasrec_txt

    interactions = graph.read_interactions(sasrec_file, None)
    ratio = graph.write_split(interactions, 7, tmp_path / "data", "tiny", "ratio")
    loo = graph.write_split(interactions, 7, tmp_path / "data", "tiny_loo", "loo")
    assert ratio["kind"] == "ratio" and ratio["sha256"] != loo["sha256"]
    split = ratio_split(read_sasrec_txt(sasrec_file), ratios=(0.8, 0.1, 0.1), seed=7)
    test = _read(tmp_path / "data", "tiny", "test")
    assert test["item_id:token"].tolist() == split.vocabulary.raw_ids(np.concatenate(split.test)).tolist()
    # The same call writes the same bytes (the fingerprint's split hash is stable).
    assert graph.write_split(interactions, 7, tmp_path / "again", "tiny_loo", "loo")["sha256"] == loo["sha256"]


def test_loo_of_ml1m_users_matches_the_library_split(graph, tmp_path):
    if not graph.DEFAULT_DATA.is_file():
        pytest.skip(f"no {graph.DEFAULT_DATA}")
    from tf_attnrec.data.splits import leave_one_out_split

    info = graph.write_split(graph.read_interactions(graph.DEFAULT_DATA, 40), 2020, tmp_path, "ml1m_loo_s2020_u40",
                             "loo")
    valid, test = (_read(tmp_path, "ml1m_loo_s2020_u40", s) for s in ("valid", "test"))
    assert valid["user_id:token"].is_unique and test["user_id:token"].is_unique
    assert len(valid) == len(test) == info["users"] == 40
    split = leave_one_out_split(graph.read_interactions(graph.DEFAULT_DATA, 40))
    assert test["item_id:token"].tolist() == split.vocabulary.raw_ids(split.test_target).tolist()


# --------------------------------------------------------------------------------------
# ML-100K: the split `tf-attnrec train --dataset ml-100k` makes.
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ml100k_dir() -> pathlib.Path:
    if not (SHARED_DATA / "ml-100k").is_dir():
        pytest.skip(f"no {SHARED_DATA / 'ml-100k'}")
    return SHARED_DATA


def _train_command_split(data_dir: pathlib.Path, *flags: str):
    """(dataset, split) of `tf-attnrec train --model nais --dataset ml-100k --data-dir DIR FLAGS`:
    cmd_train's own steps up to `task.build_data`, so a change there shows here."""
    from tf_attnrec import cli
    from tf_attnrec.models.registry import get_model_spec
    from tf_attnrec.tasks import get_task

    argv = ["train", "--model", "nais", "--dataset", "ml-100k", "--data-dir", str(data_dir), *flags]
    config = cli.resolve_train_config(cli.build_parser().parse_args(argv))
    task = get_task(get_model_spec(config["model"]).task)
    dataset = config["data"].load(download=False)
    training = dict(config["training"])
    options = {key: training.pop(key) for key in task.data_keys if key in training}
    return dataset, task.build_data(dataset, config["model_config"], options)


def _split_rows(split, kind: str) -> dict:
    """{suffix: sorted raw (user, item) pairs} of a library split."""
    raw = split.vocabulary.raw_ids
    if kind == "ratio":
        per_user = {"train": split.train, "valid": split.validation, "test": split.test}
        return {suffix: sorted((int(u), int(i)) for u, items in zip(split.users, parts) if len(items)
                               for i in raw(np.asarray(items)))
                for suffix, parts in per_user.items()}
    rows = {"train": sorted((int(u), int(i)) for u, items in zip(split.users, split.train) if len(items)
                            for i in raw(np.asarray(items)))}
    for suffix, targets in (("valid", split.validation_target), ("test", split.test_target)):
        rows[suffix] = sorted((int(u), int(raw(np.array([t]))[0])) for u, t in zip(split.users, targets) if t > 0)
    return rows


def _file_rows(folder: pathlib.Path, name: str, suffix: str) -> list:
    part = _read(folder, name, suffix)
    return sorted(zip(part["user_id:token"].tolist(), part["item_id:token"].tolist()))


@pytest.mark.parametrize(("kind", "flags"), [("ratio", ("--set", "split=ratio")), ("loo", ())])
def test_ml100k_files_hold_the_split_of_our_train_command(graph, ml100k_dir, tmp_path, kind, flags):
    dataset, split = _train_command_split(ml100k_dir, *flags)
    assert split.num_users == 943 and split.vocabulary.num_items == 1682
    name = graph.dataset_name(kind, 2020, None, "ml-100k")
    args = argparse.Namespace(dataset="ml-100k", data_dir=ml100k_dir, max_users=None)
    info = graph.write_split(graph.read_dataset(args), 2020, tmp_path, name, kind)
    expected = _split_rows(split, kind)
    written = {suffix: _file_rows(tmp_path, name, suffix) for suffix in ("train", "valid", "test")}
    for suffix in ("train", "valid", "test"):
        assert written[suffix] == expected[suffix], suffix
    # Raw ids round-trip: the three parts are ML-100K's 100,000 (user, item) rows, each once.
    frame = dataset.interactions
    assert sorted(written["train"] + written["valid"] + written["test"]) == \
        sorted(zip(frame["user_id"].tolist(), frame["item_id"].tolist()))
    # The sizes the driver checks RecBole's parts against.
    assert info["interactions"] == {suffix: len(rows) for suffix, rows in written.items()}
    assert info["users"] == 943 and info["items"] == 1682
    assert info["valid_users"] == len({u for u, _ in written["valid"]})
    assert info["test_users"] == len({u for u, _ in written["test"]})


def test_ml100k_max_users_keeps_the_first_users(graph, ml100k_dir, tmp_path):
    args = argparse.Namespace(dataset="ml-100k", data_dir=ml100k_dir, max_users=40)
    name = graph.dataset_name("loo", 2020, 40, "ml-100k")
    info = graph.write_split(graph.read_dataset(args), 2020, tmp_path, name, "loo")
    assert info["users"] == info["valid_users"] == info["test_users"] == 40
    assert _read(tmp_path, name, "test")["user_id:token"].tolist() == list(range(1, 41))


# --------------------------------------------------------------------------------------
# Reporting, flags, profile helpers.
# --------------------------------------------------------------------------------------
def test_loo_table_shows_hit_rate(graph):
    result = {"model": "NAIS", "status": "finished", "sessions": 1, "best_epoch": 0, "epochs_run": 2,
              "stopped_by": "epochs", "time_to_best_s": 5.0, "train_s_total": 8.0, "valid_s_total": 2.0,
              "fit_s_total": 10.0, "total_s": 20.0, "data_s": 1.0, "test_eval_s": 1.0,
              "history": [{"train_s": 4.0, "valid_s": 1.0, "batch_wait_s": 0.1, "forward_s": 2.0,
                           "optimizer_step_s": 0.1, "backward_other_s": 1.8}] * 2,
              "best_valid": {"ndcg@10": 0.05}, "threads": 1,
              "test": {"hit@10": 0.1, "hit@20": 0.2, "ndcg@10": 0.05, "ndcg@20": 0.07}}
    row = graph.summary(result, graph.METRICS_BY_SPLIT["loo"])
    assert row["test_hit@10"] == 0.1 and "test_recall@10" not in row
    text = graph.table([row], graph.METRICS_BY_SPLIT["loo"])
    assert "HR@10" in text and "0.2000" in text


def test_profile_summary_and_table(graph):
    result = {"model": "NAIS", "threads": 1, "profile": {
        "batches": 20, "rows_per_batch": 4096, "batches_per_epoch": 394, "s_per_batch": 8.5,
        "s_per_batch_after_first": 8.0, "epoch_s_estimate": 3152.0, "history_max_len": 1823,
        "eval_users": 200, "eval_s": 30.0, "eval_s_all_users_estimate": 900.0}}
    row = graph.summary(result)
    assert row["epoch_s_estimate"] == 3152.0
    text = graph.profile_table([row, {"model": "FISM", "error": "driver exited 1"}])
    assert "3152" in text and "ERROR" in text


def test_flags_are_checked_before_the_venv_is_touched(graph, tmp_path):
    for argv in (["--neg-samples", "0"], ["--profile-eval-users", "5"], ["--split", "temporal"],
                 ["--models", "BPR"], ["--dataset", "ml-20m"], ["--dataset", "ml-100k", "--data", "x.txt"],
                 ["--data-dir", str(tmp_path)]):
        with pytest.raises(SystemExit):
            graph.main([*argv, "--work-dir", str(tmp_path), "--venv", str(tmp_path / "no-venv")])
    assert not (tmp_path / "no-venv").exists()


def test_timed_batches_stops_at_the_limit_and_times_each_batch(driver):
    batches = driver.TimedBatches(range(10), limit=3)
    assert list(batches) == [0, 1, 2]
    assert batches.batches == 3 and len(batches.batch_s) == 3 and min(batches.batch_s) >= 0.0
    unlimited = driver.TimedBatches([1, 2])
    assert list(unlimited) == [1, 2] and len(unlimited.batch_s) == 2


def test_extrapolation_by_history_length(driver):
    assert driver.extrapolate(seconds=10.0, measured_cost=1_000, total_cost=50_000) == 500.0
    assert driver.extrapolate(seconds=10.0, measured_cost=0, total_cost=50_000) is None

