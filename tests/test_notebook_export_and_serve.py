"""examples/export_and_serve.ipynb executes top to bottom in smoke mode (ML-100K, one epoch, tiny model)."""

from __future__ import annotations

import json
import pathlib

import pytest

from test_notebooks import _execute_smoke, _text_outputs

pytestmark = pytest.mark.slow

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "examples" / "export_and_serve.ipynb"
K = 10


def _json_after(text: str, marker: str):
    """The JSON value that follows the first `marker` in `text` (trailing text ignored)."""
    start = text.index(marker) + len(marker)
    return json.JSONDecoder().raw_decode(text[start:].lstrip())[0]


def test_export_and_serve_notebook_runs_in_smoke_mode(shared_data_dir, tmp_path, monkeypatch):
    code = _execute_smoke(NOTEBOOK, shared_data_dir, tmp_path, monkeypatch)
    text = [_text_outputs(cell) for cell in code]
    assert len(code) == 10
    assert "dataset ml-100k" in text[1]  # the smoke setting was picked up
    assert "pass 1:" in text[2] and "pass 2:" not in text[2]  # one validated training pass
    assert (tmp_path / "runs" / "sasrec-serving" / "vocabulary.json").is_file()

    # The export: the returned summary was printed, and the SavedModel is where it says.
    assert "SavedModel serving/sasrec/1" in text[3] and "k=10" in text[3]
    assert "input  history" in text[3] and "output item_ids" in text[3]
    export_dir = tmp_path / "serving" / "sasrec" / "1"
    assert (export_dir / "saved_model.pb").is_file()
    assert (export_dir / "assets" / "item_ids.txt").is_file()

    # saved_model_cli listed serving_default with its string history input and [-1, k] outputs.
    shown = text[4]
    assert "signature_def['serving_default']" in shown
    serving_default = shown.split("signature_def['serving_default']", 1)[1].split("signature_def[", 1)[0]
    serving_default = serving_default.split("The MetaGraph", 1)[0]
    assert "inputs['history']" in serving_default and "dtype: DT_STRING" in serving_default
    assert "outputs['item_ids']" in serving_default and f"shape: (-1, {K})" in serving_default

    # The request body in both layouts, padded with "" to one length, and written for curl.
    row_body = _json_after(text[5], "row format:")
    assert row_body["signature_name"] == "serving_default"
    histories = [instance["history"] for instance in row_body["instances"]]
    assert len(histories) == 2 and len({len(history) for history in histories}) == 1
    assert histories[1][-1] == "" and all(isinstance(raw, str) for history in histories for raw in history)
    assert _json_after(text[5], "columnar format:") == {"signature_name": "serving_default",
                                                        "inputs": {"history": histories}}
    assert json.loads((tmp_path / "request.json").read_text()) == row_body

    # The body check passed for both layouts and rejected an unpadded body.
    check = text[6]
    assert "check passed (row format): history string [2, 5]" in check
    assert "check passed (columnar format): history string [2, 5]" in check
    assert "unpadded body rejected:" in check and "ragged" in check

    # The TF Serving response: k raw item ids and k scores per instance, no history item among them.
    response = _json_after(text[7], "")
    assert list(response) == ["predictions"] and len(response["predictions"]) == 2
    for history, prediction in zip(histories, response["predictions"]):
        assert set(prediction) == {"item_ids", "scores"}
        assert len(prediction["item_ids"]) == K and len(prediction["scores"]) == K
        assert all(raw.isdigit() for raw in prediction["item_ids"])  # ML-100K movie ids
        assert prediction["scores"] == sorted(prediction["scores"], reverse=True)
        assert not set(history) & set(prediction["item_ids"])

    # The commands to serve it for real.
    commands = text[8]
    assert "docker run" in commands and "tensorflow/serving" in commands and "target=/models/sasrec" in commands
    assert "curl -X POST http://localhost:8501/v1/models/sasrec:predict" in commands

    # An unknown id and an empty history are answered, not failed.
    lines = text[9].splitlines()
    unknown = next(line for line in lines if line.startswith("unknown id "))
    empty = next(line for line in lines if line.startswith("empty history "))
    assert '"history": ["no-such-movie"]' in unknown and '"history": [""]' in empty
    for line in (unknown, empty):
        prediction = _json_after(line, " -> ")["predictions"][0]
        assert len(prediction["item_ids"]) == K and all(prediction["item_ids"]) and len(prediction["scores"]) == K
    # Nothing known: the most popular training movies, by log(1 + count), best first.
    popular = _json_after(empty, " -> ")["predictions"][0]["scores"]
    assert popular == sorted(popular, reverse=True) and popular[0] > popular[-1] > 0
    assert f"no known item: the {K} most popular training movies" in text[9]
