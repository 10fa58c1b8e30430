"""examples/ranking_din_explain.ipynb executes top to bottom in smoke mode (ML-100K, one epoch, tiny
DIN and embedding_mlp) and explains one DIN test prediction."""

from __future__ import annotations

import json
import re

import pytest

from test_notebooks import EXAMPLES, _execute_smoke, _text_outputs

pytestmark = pytest.mark.slow

NOTEBOOK = EXAMPLES / "ranking_din_explain.ipynb"
MODELS = ("din", "embedding_mlp")
# The first user's test positive in ML-100K: the example the notebook shows and explains.
USER, ITEM, TITLE = 1, 102, "Aristocats, The (1970)"


def _table_rows(table: str) -> dict[str, list[float]]:
    """{model: [test AUC, test GAUC, test log loss, val AUC, passes]} from the printed table."""
    lines = table.splitlines()
    header = next(line for line in lines if "test AUC" in line)
    assert header.split() == ["test", "AUC", "test", "GAUC", "test", "log", "loss", "val", "AUC", "passes"]
    return {line.split()[0]: [float(v) for v in line.split()[1:]] for line in lines
            if line.split() and line.split()[0] in MODELS}


def test_ranking_din_explain_notebook_runs_in_smoke_mode(shared_data_dir, tmp_path, monkeypatch):
    code = _execute_smoke(NOTEBOOK, shared_data_dir, tmp_path, monkeypatch)
    text = [_text_outputs(cell) for cell in code]
    assert len(code) == 7
    assert "dataset ml-100k" in text[1]  # the smoke setting was picked up

    # Leave-one-out click examples of ML-100K: one test and one validation positive per user, 1:4.
    data = text[2]
    assert "users=943, items=1,682" in data and "history of 20" in data
    assert re.search(r"^ +test +4,715 examples, +943 positives$", data, flags=re.MULTILINE)
    assert re.search(r"^ +validation +4,715 examples, +943 positives$", data, flags=re.MULTILINE)
    assert re.search(r"^ +train +23,575 examples, +4,715 positives$", data, flags=re.MULTILINE)
    assert "'item': 1684" in data and "'occupation': 23" in data

    example = text[3]  # one test example, decoded back to raw values
    assert f"user {USER}: gender M, age 24, occupation technician" in example
    assert f"candidate: item {ITEM} {TITLE}, genres Animation, Children's, year 1970, label 1" in example
    assert "history: 20 movies (at most 20)" in example and "history_genres (1, 20, 6)" in example
    assert len(example.split("sampled test negatives (label 0): ")[1].splitlines()[0].split("; ")) == 4

    trained = text[4]  # one validated pass per model, then evaluated on the test examples
    assert trained.count("val_auc: ") == 2
    for name in MODELS:
        assert f"{name}: best pass 1 of 1, stopped by max_epochs" in trained
        assert re.search(rf"^{name}: .*evaluated on 4,715 test examples$", trained, flags=re.MULTILINE)

    table = text[5]
    assert "test: 4,715 examples of 943 users" in table
    rows = _table_rows(table)
    assert set(rows) == set(MODELS)
    for name, (auc, gauc, log_loss, val_auc, passes) in rows.items():
        assert 0.0 < auc < 1.0 and 0.0 < gauc < 1.0 and 0.0 < val_auc < 1.0 and passes == 1, name
        assert 0.3 < log_loss < 1.0, name  # near the 0.50 of a constant 0.2 on a 1:4 set, after one epoch

    explained = text[6]
    assert f"din: user {USER}, candidate {ITEM} {TITLE}" in explained
    assert "the candidate is the user's held-out test item" in explained
    assert "weight = target attention, unnormalised activation-unit score" in explained
    assert "Top 10 history items by weight" in explained
    assert "embedding_mlp on the same example: click probability 0." in explained
    assert any("image/png" in output.get("data", {}) for output in code[6].outputs)  # the heatmap, inline
    png = tmp_path / f"din_explain_user{USER}_item{ITEM}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads(png.with_suffix(".json").read_text())
    assert saved["model"] == "din" and saved["user"] == USER and saved["item"] == ITEM and saved["is_test_item"]
    assert len(saved["history"]) == len(saved["weights"]) == 20 and "features" not in saved
    # The printed table lists the saved weights, highest first, with their titles.
    assert f"click probability {saved['probability']:.4f}" in explained
    top = sorted(zip(saved["weights"], saved["history"]), key=lambda pair: -pair[0])[0]
    first = explained.split("  title\n")[1].splitlines()[0].split()
    assert first[:2] == ["1", str(20 - saved["history"].index(top[1]))]
    assert first[2:4] == [str(top[1]), f"{top[0]:.4f}"]
