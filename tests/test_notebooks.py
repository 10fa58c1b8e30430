"""examples/*.ipynb execute top to bottom (smoke setting: ML-100K, one epoch, tiny model)."""

from __future__ import annotations

import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
NOTEBOOK = EXAMPLES / "sasrec_movielens.ipynb"


def _text_outputs(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output["text"])
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)


def test_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_sasrec_notebook_runs_in_smoke_mode(shared_data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TF_ATTNREC_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("TF_ATTNREC_DATA_DIR", str(shared_data_dir))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError (with the cell's traceback) on any error

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    text = [_text_outputs(cell) for cell in code]
    assert not any(output.get("output_type") == "error" for cell in code for output in cell.outputs)
    assert "dataset ml-100k" in text[1]  # the smoke setting was picked up
    assert "943 users, 1,682 items" in text[2]
    assert "pass 1:" in text[3] and "val_ndcg@10" in text[3]  # one validated training pass
    assert "ndcg@10" in text[4] and "test" in text[4]
    assert "coverage@10" in text[5]
    assert "most recently rated" in text[6] and "rank" in text[6]
    # The run was saved where the notebook said, in its working directory.
    assert (tmp_path / "runs" / "sasrec-notebook" / "metrics.json").is_file()
