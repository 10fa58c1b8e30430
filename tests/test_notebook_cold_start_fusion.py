"""examples/cold_start_fusion.ipynb executes top to bottom in smoke mode (ML-100K, one epoch, tiny models)."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from test_notebooks import _execute_smoke, _text_outputs

pytestmark = pytest.mark.slow

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "examples" / "cold_start_fusion.ipynb"
MODELS = ("id-only sasrec", "fused sasrec")
NEW_ID = "1683"  # ML-100K's movie ids end at 1682


def _number(text: str, pattern: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in:\n{text}"
    return float(match.group(1).replace(",", ""))


def test_cold_start_fusion_notebook_runs_in_smoke_mode(shared_data_dir, tmp_path, monkeypatch):
    code = _execute_smoke(NOTEBOOK, shared_data_dir, tmp_path, monkeypatch)
    text = [_text_outputs(cell) for cell in code]
    assert len(code) == 8
    assert "dataset ml-100k" in text[1]  # the smoke setting was picked up

    # The modalities of one movie, and the cold split of ML-100K with the card's default seed.
    data = text[2]
    assert "users=943, items=1,682" in data
    assert "title  'Toy Story'" in data and "genres \"Animation|Children's|Comedy\"" in data and "year   1995" in data
    assert "168 of 1,682 movies are cold" in data
    assert "78 with a cold test movie, 865 with a warm one" in data
    assert "(cold: never in training)" in data

    # Both models: one validated pass each, saved; only the fused one has an item tower.
    training = text[3]
    assert training.count("pass 1:") == 2 and "pass 2:" not in training
    assert "id-only sasrec: item tower no" in training and "fused sasrec: item tower yes" in training
    for name in MODELS:
        assert f"{name}: best pass 1" in training
        assert (tmp_path / "runs" / name.replace(" ", "-") / "metrics.json").is_file()

    # The test table: cold and warm HR@10 / NDCG@10 per model.
    table = text[4]
    assert "78 cold users, 865 warm users" in table
    header, *rows = [line for line in table.splitlines()[1:] if line.strip()]
    assert header.split() == ["cold", "hr@10", "cold", "ndcg@10", "warm", "hr@10", "warm", "ndcg@10",
                              "all", "hr@10", "all", "ndcg@10"]
    values = {}
    for row in rows:
        name, numbers = row.rsplit("sasrec", 1)
        values[name.strip() + " sasrec"] = [float(v) for v in numbers.split()]
    assert sorted(values) == sorted(MODELS) and all(len(v) == 6 and all(0 <= x <= 1 for x in v)
                                                    for v in values.values())
    assert values["id-only sasrec"][:2] == [0.0, 0.0]  # an untrained id cannot place a cold movie
    assert values["fused sasrec"][0] > 0  # content does, even after one epoch (0.1026 here)

    # Which modality mattered: the table, the inline PNG and the JSON.
    explained = text[5]
    assert "modality weights of user 1's top 10" in explained
    assert re.search(r"id +genres +title +year", explained)
    assert "mean over warm items" in explained and "mean over cold items" in explained
    assert any("image/png" in output.get("data", {}) for output in code[5].outputs)
    assert (tmp_path / "modalities_user1.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "modalities_user1.json").read_text())
    assert saved["modalities"] == ["id", "genres", "title", "year"] and len(saved["items"]) == 10
    assert all(abs(sum(row) - 1) < 1e-4 for row in saved["weights"])

    # The export serves embed_items, and it embedded the new movie's raw content.
    embedded = text[6]
    assert "signature 'embed_items'" in embedded and "output item_embedding   float32 [None, 16]" in embedded
    assert (tmp_path / "serving" / "sasrec" / "1" / "saved_model.pb").is_file()
    assert "embed_items('Monsters, Inc.'): a vector of 16 numbers" in embedded
    assert _number(embedded, r"norm ([\d.]+)") > 0
    assert "modality weights: id 0.000, genres " in embedded  # a new movie has no trained id

    # The new movie was added to the served catalogue without retraining, and served.
    served = text[7]
    assert re.search(rf"^ *{NEW_ID} +Monsters, Inc\. ", served, flags=re.MULTILINE)  # the CSV, read back
    assert "serving/sasrec/2: 1,683 movies in the catalogue" in served
    assert "served vector == embed_items vector: True" in served
    assert (tmp_path / "serving" / "sasrec" / "2" / "saved_model.pb").is_file()
    rank = _number(served, rf"new movie {NEW_ID} 'Monsters, Inc.' served at rank ([\d,]+) of 1,678 candidates")
    assert 1 <= rank <= 1678  # the whole catalogue less the 5-movie history
    assert len(re.findall(r"^ +\d+\. ", served, flags=re.MULTILINE)) == 10  # a top 10 was listed
    assert "id-only sasrec: sasrec embeds items by id only" in served
