"""The resume bookkeeping of benchmarks/recbole_graph.py and benchmarks/peers/recbole_driver.py.

Cheap: only the helpers that need neither torch, RecBole nor the peer virtualenv. The resume
itself (stop, kill, rerun, bitwise-equal history) is checked by hand; see README_recbole.md.
"""

from __future__ import annotations

import json

import pytest

from tests.recbole_fixtures import driver, graph  # noqa: F401  (fixtures)


def test_fingerprint_ignores_paths_but_not_settings_or_split(graph):
    config = {"data_path": "/a", "checkpoint_dir": "/a/saved", "learning_rate": 0.002, "epochs": 1000}
    base = graph.run_fingerprint("LightGCN", "ml1m_s2020", config, "abc")
    moved = dict(config, data_path="/b", checkpoint_dir="/b/saved")
    assert graph.run_fingerprint("LightGCN", "ml1m_s2020", moved, "abc") == base
    assert graph.run_fingerprint("LightGCN", "ml1m_s2020", dict(config, learning_rate=0.001), "abc") != base
    assert graph.run_fingerprint("LightGCN", "ml1m_s2020", config, "abd") != base
    assert graph.run_fingerprint("NGCF", "ml1m_s2020", config, "abc") != base


def test_time_limit_stops_before_an_epoch_that_would_overrun(driver):
    assert not driver.time_is_up(1e9, 1e9, None)
    assert not driver.time_is_up(elapsed_s=100, last_epoch_s=40, limit_s=150)
    assert driver.time_is_up(elapsed_s=120, last_epoch_s=40, limit_s=150)


def test_stop_reason_follows_recbole_early_stopping(driver):
    # RecBole stops when cur_step > stopping_step, i.e. after stopping_step + 1 validations without a new best.
    assert driver.stop_reason(epoch_idx=20, cur_step=10, stopping_step=10, epochs=1000) is None
    assert driver.stop_reason(epoch_idx=21, cur_step=11, stopping_step=10, epochs=1000) == "early_stopping"
    assert driver.stop_reason(epoch_idx=999, cur_step=0, stopping_step=10, epochs=1000) == "epochs"


def test_totals_sum_over_sessions(driver):
    history = [{"epoch": e, "train_s": 10.0, "valid_s": 1.0} for e in range(5)]
    sessions = [{"fit_s": 30.0, "wall_s": 40.0}, {"fit_s": 25.0, "wall_s": 31.0}]
    out = driver.totals(history, sessions, best_epoch=2)
    assert out == {"train_s_total": 50.0, "valid_s_total": 5.0, "time_to_best_s": 33.0,
                   "fit_s_total": 55.0, "total_s": 71.0}
    assert driver.totals([], [], None)["time_to_best_s"] is None


def test_atomic_save_keeps_the_old_file_when_the_write_fails(driver, tmp_path):
    path = tmp_path / "last.json"

    def save(obj, f):
        f.write(json.dumps(obj).encode())

    driver.atomic_save({"epoch": 1}, str(path), save)

    def broken(obj, f):
        f.write(b'{"epo')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        driver.atomic_save({"epoch": 2}, str(path), broken)
    assert json.loads(path.read_text()) == {"epoch": 1}


def test_timed_batches_yields_every_batch(driver):
    batches = driver.TimedBatches([1, 2, 3])
    assert list(batches) == [1, 2, 3]
    assert batches.batches == 3 and batches.seconds >= 0.0


def test_summary_and_table_show_a_partial_run(graph):
    epoch = {"train_s": 600.0, "valid_s": 2.0, "batch_wait_s": 20.0, "forward_s": 250.0,
             "optimizer_step_s": 5.0, "backward_other_s": 325.0}
    result = {"model": "LightGCN", "status": "partial", "sessions": 2, "best_epoch": 3, "epochs_run": 4,
              "stopped_by": "time_limit", "time_to_best_s": 2408.0, "train_s_total": 2400.0, "valid_s_total": 8.0,
              "fit_s_total": 2410.0, "total_s": 2450.0, "data_s": 11.0, "test_eval_s": 1.0,
              "history": [epoch] * 4, "best_valid": {"ndcg@10": 0.13}, "threads": 1,
              "test": {"recall@10": 0.09, "recall@20": 0.14, "ndcg@10": 0.15, "ndcg@20": 0.16}}
    row = graph.summary(result)
    assert row["status"] == "partial" and row["sessions"] == 2
    assert row["train_s_mean"] == 600.0 and row["forward_s_mean"] == 250.0
    assert "partial" in graph.table([row])
