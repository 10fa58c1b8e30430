"""`explain` on a gat_cf run: the attention over the user's and the item's graph neighbours."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
from tf_attnrec.explain_graph import format_graph_explanation, plot_graph_attention
from tf_attnrec.models.registry import get_model_spec
from tf_attnrec.tasks import UnsupportedCommand, get_task
from tests.test_zoo import tiny_dataset

pytestmark = pytest.mark.xdist_group(__name__)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny gat_cf (2 layers) trained for one pass, saved and reloaded as a run."""
    dataset, task = tiny_dataset(), get_task("collaborative")
    runs = {}
    for name in ("gat_cf", "lightgcn"):
        spec = get_model_spec(name)
        config = {**spec.tiny, "num_layers": 2}
        split = task.build_data(dataset, config, {})
        model = task.build_model(spec, split, config)
        run_dir = tmp_path_factory.mktemp(name)
        task.fit(model, split, epochs=1, batch_size=256, run_dir=run_dir, verbose=0)
        runs[name] = (task.load_run(run_dir, {"model": name}), split)
    return dataset, task, runs


def test_neighbours_are_the_training_graph_and_weights_are_a_softmax(trained):
    dataset, task, runs = trained
    run, split = runs["gat_cf"]
    user = split.users[3]
    explanation = task.explain(run, dataset, user, None)
    vocabulary = split.vocabulary
    trained_items = set(vocabulary.raw_ids(split.train[3]).tolist())
    assert set(explanation["user_neighbours"]) == trained_items
    # The recommendation is the user's best unseen item, never a training item.
    assert explanation["item"] not in trained_items and explanation["rank"] == 1
    item_id = int(vocabulary.lookup(explanation["item"]))
    item_users = {split.users[u] for u in range(split.num_users) if item_id in split.train[u]}
    assert set(explanation["item_neighbours"]) == item_users
    for side in ("user", "item"):
        weights, self_loop = explanation[f"{side}_weights"], explanation[f"{side}_self"]
        assert weights.shape[0] == 2 and np.all(weights >= 0)
        np.testing.assert_allclose(weights.sum(axis=1) + self_loop, 1.0, rtol=1e-5)  # softmax over each node's edges
    assert np.all(np.diff(explanation["user_weights"].mean(axis=0)) <= 1e-7)  # heaviest first


def test_a_given_item_is_explained_with_its_rank(trained):
    dataset, task, runs = trained
    run, split = runs["gat_cf"]
    top = task.explain(run, dataset, split.users[0], None)
    other = [raw for raw in split.vocabulary.raw_ids(np.arange(2, split.vocabulary.size)).tolist()
             if raw not in set(top["user_neighbours"]) and raw != top["item"]][0]
    explanation = task.explain(run, dataset, split.users[0], other)
    assert explanation["item"] == other and explanation["rank"] > 1


def test_table_png_and_refusals(trained, tmp_path):
    dataset, task, runs = trained
    run, split = runs["gat_cf"]
    explanation = task.explain(run, dataset, split.users[1], None)
    text = format_graph_explanation(explanation, top=3)
    assert "layer 2" in text and f"User {split.users[1]}" in text
    png = plot_graph_attention(explanation, tmp_path / "explain.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="not a user of this run"):
        task.explain(run, dataset, "nobody", None)
    with pytest.raises(UnsupportedCommand, match="no attention"):
        task.explain(runs["lightgcn"][0], dataset, split.users[1], None)
