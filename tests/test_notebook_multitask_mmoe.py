"""examples/multitask_mmoe.ipynb executes top to bottom in smoke mode (ML-100K, one epoch, tiny
shared_bottom, mmoe and ple): every task's test metrics, the MMoE gates of one user, the export."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from test_notebooks import EXAMPLES, _execute_smoke, _text_outputs

pytestmark = pytest.mark.slow

NOTEBOOK = EXAMPLES / "multitask_mmoe.ipynb"
MODELS = ("shared_bottom", "mmoe", "ple")
TASKS = ("retrieval", "rating", "click")
COLUMNS = ["acc@10", "acc@100", "rmse", "auc", "gauc", "log_loss", "passes"]
METRICS = ("accuracy@10", "accuracy@100", "rmse", "auc", "gauc", "log_loss")
EXPERTS = ["shared 1", "shared 2", "shared 3", "shared 4"]  # the zoo config's 4 MMoE experts


def _table_rows(table: str) -> dict[str, list[float]]:
    """{row name: [acc@10, acc@100, rmse, auc, gauc, log_loss, passes]} from the printed table."""
    lines = table.splitlines()
    header = next(line for line in lines if "acc@100" in line)
    assert header.split() == COLUMNS
    return {line.split()[0]: [float(v) for v in line.split()[1:]] for line in lines
            if line.split() and line.split()[0] in (*MODELS, "priors")}


def _gate_rows(text: str, title: str) -> dict[str, list[float]]:
    """{task: weights} of the gate table printed under `title`."""
    lines = text.split(title + "\n")[1].splitlines()
    assert lines[0].split() == ["task", *" ".join(EXPERTS).split()]
    return {line.split()[0]: [float(v) for v in line.split()[1:]] for line in lines[1:1 + len(TASKS)]}


def test_multitask_mmoe_notebook_runs_in_smoke_mode(shared_data_dir, tmp_path, monkeypatch):
    code = _execute_smoke(NOTEBOOK, shared_data_dir, tmp_path, monkeypatch)
    text = [_text_outputs(cell) for cell in code]
    assert len(code) == 8
    assert "dataset ml-100k, smoke run: 1 epoch, tiny models" in text[1]  # the smoke setting was picked up

    # The TFRS tutorial's cut of ML-100K (seed 42), with 10k of its 80k training rows for validation.
    data = text[2]
    assert "users=943, items=1,682, interactions=100,000" in data
    assert "{'split_seed': 42, 'split_fractions': [0.7, 0.1, 0.2], 'click_threshold': 4}" in data
    assert "train 70,000 rows, validation 10,000 rows, test 20,000 rows" in data
    assert "test rows whose movie never occurs in training: 37" in data
    mean_rating, click_rate = re.search(r"rating mean (\d\.\d{3}) \(1 to 5\), click = rating >= 4: ([\d.]+)% of rows",
                                        data).groups()
    weights = data.split("task weights in the loss (model_config):\n")[1].splitlines()
    assert weights[0].split() == ["retrieval_weight", "rating_weight", "click_weight", "logq_correction"]
    assert {line.split()[0]: line.split()[1:] for line in weights[1:4]} == {
        name: ["1.0", "1000.0", "1000.0", "True"] for name in MODELS}  # the zoo configs' weights

    trained = text[3]  # one validated pass per model, each run saved where the notebook says
    saved = {}
    for name in MODELS:
        assert re.search(rf"^  {name} pass 1: val_loss=[\d.]+, val_rmse=[\d.]+, val_auc=0\.\d+$", trained,
                         flags=re.MULTILINE), name
        assert re.search(rf"^{name}: [\d,]+ weights, best pass 1 of 1, stopped by max_epochs, [\d.]+ s per pass, "
                         rf"saved to runs/{name}-notebook$", trained, flags=re.MULTILINE), name
        saved[name] = json.loads((tmp_path / "runs" / f"{name}-notebook" / "metrics.json").read_text())
        assert saved[name]["split"]["test"] == 20000 and saved[name]["test"]["rows"] == 20000
    assert "pass 2" not in trained

    table = text[4]  # every task's test metrics per model: the saved runs' numbers, beside the priors
    assert "test: 20,000 rows; retrieval ranks all 1,682 movies" in table
    rows = _table_rows(table)
    assert set(rows) == {*MODELS, "priors"}
    for name in MODELS:
        for key, value in zip(METRICS, rows[name]):
            assert value == pytest.approx(saved[name]["test"][key], abs=6e-5), (name, key)
        acc10, acc100, rmse, auc, gauc, log_loss, passes = rows[name]
        assert 0 <= acc10 <= acc100 <= 1 and 0.5 < rmse < 4 and 0 < auc < 1 and 0 < gauc < 1 and passes == 1, name
    acc10, acc100, rmse, auc, gauc, log_loss, passes = rows["priors"]
    assert auc == gauc == 0.5 and passes == 0 and 0 < acc10 < acc100 < 1 and 1 < rmse < 1.2

    gates = text[5]  # which experts each task attends to: user 1, and the mean over every user
    user = _gate_rows(gates, "gate weights of user 1")
    mean = _gate_rows(gates, "mean over 943 users")
    for table_rows in (user, mean):
        assert list(table_rows) == list(TASKS)
        for row in table_rows.values():
            assert len(row) == len(EXPERTS) and sum(row) == pytest.approx(1.0, abs=3e-3)
    for task in TASKS:
        best = int(np.argmax(user[task]))
        assert (f"{task}: user 1's gate attends most to {EXPERTS[best]} ({user[task][best]:.3f}; "
                f"{mean[task][best]:.3f} on average over all users)") in gates
    assert "heatmap: mmoe_gates_user1.png, weights: mmoe_gates_user1.json" in gates
    assert any("image/png" in output.get("data", {}) for output in code[5].outputs)  # the heatmap, inline
    assert (tmp_path / "mmoe_gates_user1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    explanation = json.loads((tmp_path / "mmoe_gates_user1.json").read_text())
    assert explanation["kind"] == "multitask gates" and explanation["user"] == 1 and explanation["users"] == 943
    assert explanation["tasks"] == list(TASKS) and explanation["experts"] == EXPERTS
    np.testing.assert_allclose(explanation["gates"], [user[task] for task in TASKS], atol=6e-4)  # printed = saved
    np.testing.assert_allclose(explanation["mean_gates"], [mean[task] for task in TASKS], atol=6e-4)

    exported = text[6]
    assert "SavedModel serving/mmoe/1  (model_name='mmoe', version=1)" in exported
    assert "signature 'serving_default':" in exported and "WARNING" not in exported
    for output in ("top_k_item_ids    string [None, 10]", "top_k_scores      float32 [None, 10]",
                   "rating            float32 [None]", "click_probability float32 [None]",
                   "task_gates        float32 [None, 3, 4]", "known_user        bool [None]"):
        assert f"output {output}" in exported, output
    assert (tmp_path / "serving" / "mmoe" / "1" / "saved_model.pb").is_file()

    served = text[7]  # one call, a named output per task (the notebook checks them against the model)
    assert ("outputs: click_probability, known_item, known_user, rating, task_gates, top_k_item_ids, top_k_scores"
            in served)
    assert "row 0: user '1' (known_user=True), movie '50' (known_item=True)" in served
    assert "row 1: user '1' (known_user=True), movie 'no-such-movie' (known_item=False)" in served
    assert "row 2: user 'no-such-user' (known_user=False), movie '50' (known_item=True)" in served
    retrieval = served.split("retrieval (top_k_item_ids, top_k_scores):\n")[1].splitlines()
    assert retrieval[0].startswith("  row 0, user '1': ") and retrieval[0].count("; ") == 5
    # The unknown user gets the most popular training movies: ML-100K's most rated movie first.
    assert retrieval[1].startswith("  row 2, user 'no-such-user': Star Wars (1977); ")
    rating = re.search(r"^rating \(rating\): +row 0 (\d\.\d{3}), row 1 (\d\.\d{3}), row 2 (\d\.\d{3})$", served,
                       flags=re.MULTILINE).groups()
    assert rating[1] == rating[2] == mean_rating  # the training mean: an unknown movie, an unknown user
    click = re.search(r"^click \(click_probability\): +row 0 (0\.\d{3}), row 1 (0\.\d{3}), row 2 (0\.\d{3})$",
                      served, flags=re.MULTILINE).groups()
    assert click[1] == click[2] and float(click[1]) == pytest.approx(float(click_rate) / 100, abs=1.5e-3)
    gates_line = next(line for line in served.splitlines() if line.startswith("gates (task_gates, row 0):"))
    served_gates = dict(re.findall(r"(retrieval|rating|click) ((?:\d\.\d{3} ?){4})", gates_line))
    assert {task: [float(v) for v in served_gates[task].split()] for task in TASKS} == user  # the gates above
