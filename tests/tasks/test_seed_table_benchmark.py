"""benchmarks/seed_table.py: mean/std over seeds and the "beats the baseline" verdict.

The training runs themselves are the CLI's (tested in tests/test_cli.py); here the table
arithmetic is checked on hand-made metrics, so a wrong spread or verdict fails.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess

import numpy as np
import pytest

from tests.conftest import load_benchmark



@pytest.fixture(scope="module")
def table_script():
    return load_benchmark("seed_table")


def _run(seed: int, gauc: float, auc: float = 0.8, log_loss: float = 0.4) -> dict:
    return {"seed": seed, "test": {"auc": auc, "gauc": gauc, "log_loss": log_loss, "num_examples": 50},
            "train_seconds": 10.0 + seed, "best_pass": seed + 1, "num_train_examples": 100}


def test_summary_is_mean_and_sample_std_over_seeds(table_script):
    gaucs = [0.70, 0.72, 0.77]
    table = table_script.summarise({"din": [_run(s, g) for s, g in enumerate(gaucs)]})
    mean, std = table["din"]["gauc"]
    assert mean == pytest.approx(np.mean(gaucs))
    assert std == pytest.approx(np.std(gaucs, ddof=1))
    assert table["din"]["best_epochs"] == [1, 2, 3]
    assert table["din"]["train_seconds"] == pytest.approx(11.0)


def test_verdict_needs_a_difference_larger_than_the_seeds_spread(table_script):
    base = [_run(s, g) for s, g in enumerate([0.70, 0.71, 0.72])]      # std 0.01
    clear = [_run(s, g) for s, g in enumerate([0.75, 0.76, 0.77])]     # +0.05, std 0.01
    within = [_run(s, g) for s, g in enumerate([0.70, 0.73, 0.76])]    # +0.02, std 0.03
    table = table_script.summarise({"din": clear, "bst": within, "embedding_mlp": base})
    lines = {line.split()[0]: line for line in table_script.verdicts(table)}
    assert "din beats embedding_mlp" in lines["din"]
    assert "bst does NOT beat embedding_mlp" in lines["bst"]
    assert "+0.0500" in lines["din"] and "0.0200" in lines["din"]


def test_markdown_has_one_row_per_model(table_script):
    table = table_script.summarise({"din": [_run(0, 0.7), _run(1, 0.8)], "dcn": [_run(0, 0.6), _run(1, 0.6)]})
    text = table_script.markdown(table, [0, 1])
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == ["din", "dcn"]
    assert "0.7500 ± 0.0707" in rows[0]


def _cf_run(seed: int, ndcg: float, stopped_by: str = "early_stopping") -> dict:
    return {"seed": seed, "test": {"recall@10": 0.17, "ndcg@10": ndcg, "recall@20": 0.26, "ndcg@20": 0.27,
                                   "users": 6040},
            "train_seconds": 100.0, "best_pass": 70 + seed, "stopped_by": stopped_by}


def test_collaborative_table_compares_attention_models_with_lightgcn_on_ndcg(table_script):
    spec = table_script.TABLES["collaborative"]
    table = table_script.summarise({
        "lightgcn": [_cf_run(s, n) for s, n in enumerate([0.265, 0.266, 0.264])],
        "gat_cf": [_cf_run(s, n) for s, n in enumerate([0.275, 0.276, 0.274])],
        "graphsage_cf": [_cf_run(s, n, "time_limit") for s, n in enumerate([0.250, 0.255, 0.260])],
    }, spec)
    lines = {line.split()[0]: line for line in table_script.verdicts(table, spec)}
    assert "gat_cf beats lightgcn on NDCG@10: difference +0.0100" in lines["gat_cf"]
    assert "graphsage_cf does NOT beat lightgcn" in lines["graphsage_cf"]
    assert table["lightgcn"]["num_test_examples"] == 6040
    text = table_script.markdown(table, [0, 1, 2], spec)
    assert text.splitlines()[0].startswith("| model | test Recall@10 | test NDCG@10 | test Recall@20 | test NDCG@20 |")
    sage = next(line for line in text.splitlines() if line.startswith("| `graphsage_cf`"))
    assert "0.2550 ± 0.0050" in sage and "time_limit" in sage


def _mt_run(seed: int, accuracy: float, rmse: float, auc: float) -> dict:
    return {"seed": seed, "test": {"accuracy@100": accuracy, "rmse": rmse, "auc": auc, "rows": 20000},
            "train_seconds": 30.0, "best_pass": 20 + seed, "stopped_by": "early_stopping"}


def test_multitask_table_compares_with_shared_bottom_and_single_task_rows(table_script):
    spec = table_script.TABLES["multitask"]
    assert spec.dataset == "ml-100k" and "mmoe:rating" in spec.models
    table = table_script.summarise({
        "shared_bottom": [_mt_run(s, a, r, 0.80) for s, (a, r) in enumerate([(0.30, 1.00), (0.31, 1.01), (0.32, 0.99)])],
        "mmoe": [_mt_run(s, a, r, 0.80) for s, (a, r) in enumerate([(0.36, 0.93), (0.37, 0.94), (0.38, 0.92)])],
        "mmoe:rating": [_mt_run(s, 0.1, r, 0.5) for s, r in enumerate([0.90, 0.91, 0.89])],
    }, spec)
    lines = table_script.verdicts(table, spec)
    assert "mmoe beats shared_bottom on top-100 accuracy: difference +0.0600" in lines[0]
    # RMSE: lower is better, so -0.07 beats the spread of 0.02.
    assert lines[1].startswith("mmoe beats shared_bottom on RMSE: difference -0.0700")
    assert lines[2].startswith("mmoe does NOT beat shared_bottom on AUC (within the seeds' spread)")
    assert lines[3].startswith("mmoe does NOT beat mmoe:rating on RMSE (worse): difference +0.0300")
    assert len(lines) == 4  # ple and the other single-task rows did not run


def test_single_task_rows_zero_the_other_weights(table_script):
    spec = table_script.TABLES["multitask"]
    assert table_script.row_command("mmoe", spec) == ("mmoe", [])
    model, flags = table_script.row_command("ple:click", spec)
    assert model == "ple" and flags == ["--set", "retrieval_weight=0", "--set", "rating_weight=0"]
    with pytest.raises(ValueError, match="must be one of"):
        table_script.row_command("mmoe:ctr", spec)


def test_item_cf_tables_run_both_protocols(table_script):
    loo, ratio = table_script.TABLES["itemcf"], table_script.TABLES["itemcf_ratio"]
    assert table_script.row_command("nais", loo) == ("nais", [])
    assert table_script.row_command("nais:ratio", ratio) == ("nais", ["--set", "split=ratio"])
    with pytest.raises(ValueError, match="must be one of"):
        table_script.row_command("nais:ratio", loo)
    assert ("nais", "fism", "ndcg@10") in loo.comparisons and "hr@10" in loo.metrics
    assert ("nais:ratio", "fism:ratio", "ndcg@10") in ratio.comparisons and "recall@10" in ratio.metrics
    # The pretrained row starts from the same seed's fism run of the same table.
    assert table_script.row_command("nais:pretrained", loo, "/runs/t", 2) == ("nais", ["--init-from", "/runs/t/fism-seed2"])


def test_cold_start_table_compares_the_fused_tower_on_cold_and_warm_users(table_script):
    spec = table_script.TABLES["cold_start"]
    model, flags = table_script.row_command("sasrec:fused", spec)
    assert model == "sasrec" and "split=cold_items" in flags and "item_features=[genres,title,year]" in flags
    assert table_script.row_command("sasrec:cold", spec) == ("sasrec", ["--set", "split=cold_items"])
    assert ("sasrec:fused", "content_similarity:cold", "cold_ndcg@10") in spec.comparisons
    assert ("sasrec:fused", "sasrec:cold", "warm_ndcg@10") in spec.comparisons


def test_each_run_trains_the_requested_dataset_with_the_zoo_command(table_script, tmp_path, monkeypatch):
    commands = []

    def fake_run(command, **kwargs):
        commands.append(command)
        run_dir = pathlib.Path(command[command.index("--output") + 1])
        (run_dir / "metrics.json").write_text(json.dumps({"test": {}, "seed": 0}))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(table_script.subprocess, "run", fake_run)
    args = argparse.Namespace(task="itemcf", output=str(tmp_path), resume=False, time_limit=5, threads=1,
                              data_dir="/data", dataset="ml-100k")
    table_script.run_one("nais", 1, args)
    command = commands[0]
    assert command[command.index("--dataset") + 1] == "ml-100k"
    assert command[command.index("--model") + 1] == "nais" and command[command.index("--seed") + 1] == "1"
    assert command[command.index("--config") + 1].endswith("models/nais/config.yaml")
