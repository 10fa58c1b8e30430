"""examples/*.ipynb execute top to bottom (smoke setting: ML-100K, one epoch, tiny model)."""

from __future__ import annotations

import pathlib
import re

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
NOTEBOOK = EXAMPLES / "sasrec_movielens.ipynb"
GRAPH_NOTEBOOK = EXAMPLES / "graph_attention_movielens.ipynb"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def _text_outputs(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output["text"])
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)


def _execute_smoke(path: pathlib.Path, shared_data_dir, tmp_path, monkeypatch) -> list:
    """Runs the notebook in smoke mode with `tmp_path` as its working directory; its code cells."""
    monkeypatch.setenv("TF_ATTNREC_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("TF_ATTNREC_DATA_DIR", str(shared_data_dir))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError (with the cell's traceback) on any error
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert not any(output.get("output_type") == "error" for cell in code for output in cell.outputs)
    return code


def test_every_example_notebook_is_listed():
    assert NOTEBOOK in NOTEBOOKS and GRAPH_NOTEBOOK in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)



def _sync_script():
    from tests.conftest import load_script

    return load_script("examples", "sync_install_cells")


def test_every_install_cell_is_the_one_setup_cfg_gives():
    """The install cells name the repository of setup.cfg, never a package index name."""
    assert _sync_script().main(["--check"]) == 0, "run python examples/sync_install_cells.py"


@pytest.mark.parametrize("url", ["", "https://example.org/owner/tf-attnrec"])
def test_install_cell_installs_from_the_repository_or_says_it_cannot(url, monkeypatch):
    from IPython.core.inputtransformer2 import TransformerManager
    import importlib.util

    code = TransformerManager().transform_cell(_sync_script().install_cell(url))
    magics = []

    class Shell:
        def run_line_magic(self, name, line, *args):
            magics.append((name, line))

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # a fresh Colab kernel
    namespace = {"get_ipython": lambda: Shell()}
    if not url:
        with pytest.raises(RuntimeError, match="setup.cfg names no repository"):
            exec(code, namespace)
        assert not magics
    else:
        exec(code, namespace)
        assert namespace["SOURCE"] == url
        assert magics == [("pip", 'install -q "tf-attnrec[plot] @ git+{SOURCE}"')]

def test_sasrec_notebook_runs_in_smoke_mode(shared_data_dir, tmp_path, monkeypatch):
    code = _execute_smoke(NOTEBOOK, shared_data_dir, tmp_path, monkeypatch)
    text = [_text_outputs(cell) for cell in code]
    assert "dataset ml-100k" in text[1]  # the smoke setting was picked up
    assert "943 users, 1,682 items" in text[2]
    assert "pass 1:" in text[3] and "val_ndcg@10" in text[3]  # one validated training pass
    assert "ndcg@10" in text[4] and "test" in text[4]
    assert "coverage@10" in text[5]
    assert "most recently rated" in text[6] and "rank" in text[6]
    # The run was saved where the notebook said, in its working directory.
    assert (tmp_path / "runs" / "sasrec-notebook" / "metrics.json").is_file()


def test_graph_attention_notebook_runs_in_smoke_mode(shared_data_dir, tmp_path, monkeypatch):
    code = _execute_smoke(GRAPH_NOTEBOOK, shared_data_dir, tmp_path, monkeypatch)
    text = [_text_outputs(cell) for cell in code]
    assert "dataset ml-100k" in text[1]  # the smoke setting was picked up
    # The 80/10/10 split of ML-100K, and a graph of the training interactions only.
    assert "split (seed 2020): {'train': 80808, 'validation': 9596, 'test': 9596}" in text[2]
    assert "training graph: 943 users, 1,682 items, 80,808 edges" in text[2]
    for cell, name in ((3, "lightgcn"), (4, "gat_cf")):  # one validated pass each, run saved
        assert "pass 1:" in text[cell] and "val_ndcg@10=" in text[cell] and "pass 2:" not in text[cell]
        assert f"{name}: best pass 1" in text[cell]
        assert (tmp_path / "runs" / f"{name}-notebook" / "metrics.json").is_file()
    table = text[5]
    assert "943 users, full ranking over 1,682 items" in table
    assert all(column in table for column in ("test recall@10", "test ndcg@10", "test recall@20", "test ndcg@20"))
    assert "lightgcn" in table and "gat_cf" in table
    explained = text[6]
    assert "User 1 -> " in explained and "rank 1 (gat_cf attention" in explained
    assert "Items the user's vector attends to" in explained and "Users the item's vector attends to" in explained
    assert "layer 1" in explained
    assert any("image/png" in output.get("data", {}) for output in code[6].outputs)  # the heatmap, inline
    assert (tmp_path / "gat_cf_explain_user1.png").read_bytes()[:4] == b"\x89PNG"
    assert "serving_default" in text[7] and "user_id" in text[7] and "known_user" in text[7]
    assert (tmp_path / "serving" / "gat_cf" / "1" / "saved_model.pb").is_file()
    known, unknown = text[8].split("user 'no-such-user'")
    assert "user '1': known_user=True" in known and len(known.strip().splitlines()) == 11
    # The unknown user gets the most popular training items (the notebook checks the scores).
    assert unknown.startswith(": known_user=False") and "Star Wars (1977)" in unknown.splitlines()[1]
    # The inductive model: trained, tested, exported with the history signature, and serving a
    # history no training user has (the history itself is excluded, the notebook checks).
    assert "pass 1:" in text[9] and "graphsage_cf: best pass 1" in text[9] and "graphsage_cf test: recall@10=" in text[9]
    assert "history" in text[10] and "new user's history: Star Wars (1977)" in text[10]
    assert len(re.findall(r"^ *\d+\. +\d+ ", text[10], flags=re.MULTILINE)) == 10  # ten ranked movies
