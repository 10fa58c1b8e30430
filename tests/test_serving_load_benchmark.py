"""benchmarks/serving_load.py: a tiny trained-run export under a short threaded load.

A tiny sasrec (tests/export/conftest.py's) over string ids, odd ones included (the fuzzing's
`ODD_ITEM_IDS`), saved as a run directory. 200 requests from 4 threads, histories of up to 50 ids:
with 40 items some rows leave fewer than k (10) unseen, so blank ids are exercised too. No timing
assertion. A faulty signature (raises on batch 2, returns a history item on batch 8) shows that
failures are counted and make the exit status non-zero.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tests.conftest import load_benchmark

REQUESTS, THREADS, MAX_HISTORY = 200, 4, 50
LOAD_ARGS = ["--requests", str(REQUESTS), "--threads", str(THREADS), "--max-history", str(MAX_HISTORY)]
K = 10  # the export's default
REPORT_KEYS = {"machine", "config", "per_batch_size", "totals", "memory", "errors"}


@pytest.fixture(scope="module")
def load():
    return load_benchmark("serving_load")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """(run directory, its export): a tiny sasrec over 40 string ids, 12 of them odd."""
    from tests.export.conftest import tiny_model
    from tests.export.test_signature_fuzz import ODD_ITEM_IDS
    from tf_attnrec.data.vocabulary import Vocabulary
    from tf_attnrec.export import export_run
    from tf_attnrec.runs import save_model

    root = tmp_path_factory.mktemp("serving_load")
    vocabulary = Vocabulary.from_ids(ODD_ITEM_IDS + [f"m{i:02d}" for i in range(28)])
    save_model(tiny_model(vocabulary, seed=1), root / "run", vocabulary)
    export_run(root / "run", root / "serving" / "tiny" / "1")  # default k, as --run
    return root / "run", root / "serving" / "tiny" / "1"


def test_a_run_under_threaded_load_answers_every_request(load, tiny_run, tmp_path, capsys):
    run_dir, _ = tiny_run
    output = tmp_path / "load.json"
    status = load.main(["--run", str(run_dir), *LOAD_ARGS, "--output-json", str(output)])
    printed = capsys.readouterr().out
    report = json.loads(output.read_text())

    assert status == 0, printed
    assert set(report) == REPORT_KEYS
    totals = report["totals"]
    assert totals["errors"] == 0 and report["errors"] == []
    assert totals["requests"] == REQUESTS and totals["wall_s"] > 0 and totals["rows_per_s"] > 0
    drawn = {request.batch_size for request in load.plan_requests(REQUESTS, load.DEFAULT_BATCH_SIZES,
                                                                  MAX_HISTORY, report["config"]["seed"] + 1)}
    rows = report["per_batch_size"]
    assert [row["batch_size"] for row in rows] == sorted(drawn)
    assert sum(row["requests"] for row in rows) == REQUESTS
    assert totals["rows"] == sum(row["rows"] for row in rows)
    for row in rows:
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert f"\n{row['batch_size']:>6} {row['requests']:>9,}" in printed
    memory = report["memory"]
    assert {"loaded_mib", "warm_up_mib", "end_mib", "growth_mib", "growth_percent",
            "slope_mib_per_1000_requests", "checkpoints"} <= set(memory)
    assert [n for n, _ in memory["checkpoints"]] == [0] + [REQUESTS * i // 10 for i in range(1, 11)]
    assert report["config"]["k"] == K and report["config"]["catalogue_items"] == 40


def test_unknown_ids_are_unknown_and_blank_ids_are_exercised(load, tiny_run):
    _, export_dir = tiny_run
    items = load.read_catalogue(export_dir)
    assert len(items) == 40 and "\U0001f642".encode() in items and b"a\x00b" in items
    unknown = load.unknown_pool(items, np.random.default_rng(0))
    assert b"" in unknown.tolist() and not set(unknown.tolist()) & set(items)
    # Some rows of the plan see more than 30 of the 40 items: fewer than k=10 unseen, so blank ids.
    catalogue = load.Catalogue.of(items, unknown, 0.05)
    big = [request for request in load.plan_requests(REQUESTS, load.DEFAULT_BATCH_SIZES, MAX_HISTORY, 1)
           if request.batch_size >= 128]
    most_seen = max(len(set(row.tolist())) for request in big for row in load.materialize(request, catalogue)[1])
    assert most_seen > 40 - K


def test_failures_of_the_signature_are_counted(load, tiny_run, tmp_path, monkeypatch, capsys):
    _, export_dir = tiny_run
    items = set(load.read_catalogue(export_dir))

    def faulty(loaded):
        served = loaded.signatures["serving_default"]

        def signature(history):
            if history.shape[0] == 2:
                raise tf.errors.InvalidArgumentError(None, None, "injected failure")
            outputs = dict(served(history=history))
            if history.shape[0] == 8:  # answer row r with one of its own history items
                ids = outputs["item_ids"].numpy()
                row, column = next((r, c) for r, c in np.ndindex(*history.shape)
                                   if history[r, c].numpy() in items)
                ids[row, 0] = history[row, column].numpy()
                outputs["item_ids"] = tf.constant(ids)
            return outputs

        return signature

    monkeypatch.setattr(load, "serving_signature", faulty)
    output = tmp_path / "load.json"
    status = load.main(["--export", str(export_dir), *LOAD_ARGS, "--output-json", str(output)])
    printed = capsys.readouterr().out
    report = json.loads(output.read_text())

    assert status == 1
    by_size = {row["batch_size"]: row for row in report["per_batch_size"]}
    assert by_size[2]["errors"] == by_size[2]["requests"] > 0
    assert by_size[8]["errors"] == by_size[8]["requests"] > 0
    assert report["totals"]["errors"] == by_size[2]["errors"] + by_size[8]["errors"]
    messages = [error["error"] for error in report["errors"]]
    assert any("InvalidArgumentError: injected failure" in message for message in messages)
    assert any("returned history item" in message for message in messages)
    assert "ERROR request" in printed
