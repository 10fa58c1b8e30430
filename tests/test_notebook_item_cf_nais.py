"""examples/item_cf_nais.ipynb executes top to bottom in smoke mode (ML-100K, one pass, tiny fism and nais)."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from test_notebooks import _execute_smoke, _text_outputs

pytestmark = pytest.mark.slow

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "examples" / "item_cf_nais.ipynb"
USERS, ITEMS, MAX_LENGTH, K = 943, 1682, 50, 10  # ML-100K, and the smoke models' history length
# A table row: the model, test hr@10 ndcg@10 hr@20 ndcg@20, val ndcg@10, passes, s/pass, test s.
TABLE_ROW = re.compile(r"^(fism|nais) +((?:\S+ +){7}\S+) *$", re.MULTILINE)
# A served row: rank, title, score, then the weights of the 5 history items (t-5 ... t-1).
SERVED_ROW = re.compile(r"^(\d+) +.*? +(-?\d+\.\d{4})((?: +\d+\.\d{4}){5}) *$", re.MULTILINE)


def test_item_cf_nais_notebook_runs_in_smoke_mode(shared_data_dir, tmp_path, monkeypatch):
    code = _execute_smoke(NOTEBOOK, shared_data_dir, tmp_path, monkeypatch)
    text = [_text_outputs(cell) for cell in code]
    assert len(code) == 10
    assert "dataset ml-100k" in text[1]  # the smoke setting was picked up
    # The zoo configs were read from the repository, not the notebook's copy.
    assert "fism (from models/fism/config.yaml)" in text[2] and "nais (from models/nais/config.yaml)" in text[2]
    assert "'attention': 'prod'" in text[2] and "'beta': 0.5" in text[2]
    # Leave one out: one validation and one test item per user, the whole catalogue.
    assert f"leave one out: {USERS} users, {ITEMS:,} items" in text[3]
    assert f"{USERS} validation and {USERS} test items" in text[3]

    for cell, name in ((4, "fism"), (5, "nais")):  # one validated pass each, the run saved
        assert "pass 1:" in text[cell] and "val_ndcg@10=" in text[cell] and "pass 2:" not in text[cell]
        assert f"{name}: best pass 1, stopped by max_epochs" in text[cell]
        saved = json.loads((tmp_path / "runs" / f"{name}-notebook" / "metrics.json").read_text())
        assert saved["validation"]["ndcg@10"] > 0

    table = text[6]
    assert f"test: {USERS} users, full ranking over {ITEMS:,} items, seen items excluded" in table
    assert f"nais scored {USERS * ITEMS * MAX_LENGTH:,} (history slot, candidate) pairs" in table
    assert all(column in table for column in ("test hr@10", "test ndcg@10", "passes", "test s"))
    rows = {name: [float(value) for value in values.split()] for name, values in TABLE_ROW.findall(table)}
    assert sorted(rows) == ["fism", "nais"], table
    for name, (hr10, ndcg10, hr20, ndcg20, val_ndcg10, passes, _, seconds) in rows.items():
        # Far above chance (10 of 1,682 items: 0.006) after one pass, and consistent.
        assert 0.02 < hr10 <= hr20 <= 1 and 0 < ndcg10 <= hr10 and ndcg10 <= ndcg20, (name, table)
        assert 0 < val_ndcg10 <= 1 and passes == 1 and seconds > 0

    explained = text[7]
    assert "nais: user 1, recommendation " in explained and "rank 1 of " in explained
    assert "NAIS prod attention of the history item for this item" in explained
    assert f"the sum of {MAX_LENGTH} shares" in explained  # the shares add up (the notebook checks)
    assert any("image/png" in output.get("data", {}) for output in code[7].outputs)  # the heatmap, inline
    assert (tmp_path / "nais_explain_user1.png").read_bytes()[:4] == b"\x89PNG"
    explanation = json.loads((tmp_path / "nais_explain_user1.json").read_text())
    assert explanation["model"] == "nais" and explanation["rank"] == 1 and explanation["recommended"]
    assert len(explanation["weights"]) == len(explanation["history"]) == MAX_LENGTH
    assert all(weight > 0 for weight in explanation["weights"])
    assert len(explanation["position_weights"]) == MAX_LENGTH

    exported = text[8]
    assert "SavedModel serving/nais/1" in exported and f"max_length={MAX_LENGTH}" in exported
    assert f"output history_attention float32 [None, {K}, {MAX_LENGTH}]" in exported
    assert "signature 'encode'" not in exported  # NAIS has no query vector
    assert (tmp_path / "serving" / "nais" / "1" / "saved_model.pb").is_file()

    served = text[9]
    assert f"history_attention: shape (1, {K}, {MAX_LENGTH}) (batch, returned items, max_length)" in served
    # The served history is the explained user's 5 most recent items, oldest first.
    history = re.findall(r"^ +t-\d +(\d+) ", served, flags=re.MULTILINE)
    assert history == [str(raw) for raw in explanation["history"][-5:]]
    ranked = SERVED_ROW.findall(served)
    assert [int(rank) for rank, _, _ in ranked] == list(range(1, K + 1)), served
    for _, _, weights in ranked:  # each returned item weighs every history item
        assert all(float(weight) > 0 for weight in weights.split())
