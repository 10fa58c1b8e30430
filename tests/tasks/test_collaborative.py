"""The collaborative task (tf_attnrec.tasks.collaborative) on tiny synthetic interactions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec import runs
from tf_attnrec.data.dataset import Dataset
from tf_attnrec.data.graph import InteractionGraph
from tf_attnrec.data.ratio_split import ratio_split
from tf_attnrec.evaluation.item_sets import evaluate_item_sets
from tf_attnrec.models.registry import create_model
from tf_attnrec.tasks import CollaborativeTask, UnsupportedCommand, task_of
from tf_attnrec.tasks.collaborative import evaluate_collaborative, train_collaborative

pytestmark = [pytest.mark.xdist_group(__name__)]  # one worker trains the module's run

U, I = 20, 15
SEED = 11


def _interactions(seed: int = 0, grouped: bool = True) -> pd.DataFrame:
    """Each user 3..12 distinct items (no repeat), raw ids "u.." and ints."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(U):
        chosen = rng.choice(I, int(rng.integers(3, 13)), replace=False)
        users += [f"u{u:02d}"] * len(chosen)
        items += [int(500 + 7 * i) for i in chosen]
    df = pd.DataFrame({"user_id": users, "item_id": items})
    return df if grouped else df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _pairs_of(df: pd.DataFrame) -> set:
    return set(zip(df["user_id"].tolist(), df["item_id"].tolist()))


def _graph_pairs(graph: InteractionGraph, split) -> set:
    """The graph's edges as (raw user, raw item) pairs."""
    return {(split.users[u], int(split.vocabulary.raw_ids(i + 2))) for u, i in
            zip(graph.user_index.tolist(), graph.item_index.tolist())}


def _part_pairs(split, part) -> set:
    return {(split.users[row], int(raw)) for row, ids in enumerate(part) for raw in
            (split.vocabulary.raw_ids(ids) if len(ids) else [])}


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset(interactions=_interactions(), name="tiny")


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    task = CollaborativeTask()
    split = task.build_data(dataset, {}, {"split_seed": SEED})
    model = create_model("lightgcn", vocab_size=split.vocabulary.size, num_users=split.num_users,
                         embedding_dim=8, num_layers=2)
    run_dir = tmp_path_factory.mktemp("cf_run") / "run"
    result = train_collaborative(model, split, batch_size=64, epochs=1, learning_rate=0.01, verbose=0,
                                 run_dir=run_dir, extra_config={"model": "lightgcn"})
    return task, split, model, result, run_dir


def test_build_data_is_the_seeded_ratio_split(dataset):
    task = CollaborativeTask()
    split = task.build_data(dataset, {}, {"split_seed": SEED})
    again = ratio_split(dataset.interactions, seed=SEED)
    assert split.seed == SEED and split.ratios == (0.8, 0.1, 0.1)
    for a, b in zip((split.train, split.validation, split.test), (again.train, again.validation, again.test)):
        assert [x.tolist() for x in a] == [x.tolist() for x in b]
    assert task.build_data(dataset, {}, {}).seed == 2020  # RecBole's default seed
    assert task_of("lightgcn").name == "collaborative"


def test_the_model_trains_on_exactly_the_train_edges(trained, dataset):
    _, split, model, _, _ = trained
    edges = _graph_pairs(model.graph, split)
    assert edges == _part_pairs(split, split.train)
    assert model.graph.num_edges == sum(len(t) for t in split.train)  # no repeats in this data
    held_out = _part_pairs(split, split.validation) | _part_pairs(split, split.test)
    assert held_out and not edges & held_out
    assert edges | held_out == _pairs_of(dataset.interactions)


def test_graph_edges_are_the_users_own_interactions_with_interleaved_rows():
    # Rows in any order (users interleaved): each edge is still one of that user's interactions.
    df = _interactions(seed=1, grouped=False)
    split = CollaborativeTask().build_data(Dataset(interactions=df), {}, {"split_seed": SEED})
    graph = InteractionGraph.from_sequence_split(split)
    edges = _graph_pairs(graph, split)
    assert edges <= _pairs_of(df), sorted(edges - _pairs_of(df))[:5]
    held_out = _part_pairs(split, split.validation) | _part_pairs(split, split.test)
    assert not edges & held_out


@pytest.mark.parametrize("stage", ["validation", "test"])
def test_evaluate_collaborative_equals_brute_force_scoring(trained, stage):
    _, split, model, result, _ = trained
    users, items = (t.numpy() for t in model.final_embeddings())
    scores = np.full((split.num_users, split.vocabulary.size), -np.inf, np.float32)
    scores[:, 2:] = users @ items.T
    rows = split.evaluable_users(stage)
    seen, targets = split.seen(stage), split.targets(stage)
    expected = evaluate_item_sets(lambda r: scores[r.numpy()], rows, [seen[r] for r in rows],
                                  [targets[r] for r in rows], ks=(5, 10))
    metrics = evaluate_collaborative(model, split, stage, ks=(5, 10))
    assert metrics.keys() == expected.keys()
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-6), key
    assert metrics["users"] == len(rows)
    reported = result.validation if stage == "validation" else result.test
    assert reported["ndcg@10"] == pytest.approx(evaluate_collaborative(model, split, stage)["ndcg@10"], abs=1e-6)
    first = evaluate_collaborative(model, split, stage, ks=(10,), max_users=4)
    assert first["users"] == min(4, len(rows))


def test_metrics_json_records_the_split(trained):
    _, split, model, result, run_dir = trained
    metrics = json.loads((run_dir / runs.METRICS_FILE).read_text())
    assert metrics["split"]["seed"] == SEED
    assert metrics["split"]["ratios"] == [0.8, 0.1, 0.1]
    for part in ("train", "validation", "test"):
        assert metrics["split"][part] == sum(len(x) for x in getattr(split, part))
    assert metrics["graph"]["edges"] == model.graph.num_edges
    assert result.fit.passes == 1
    assert "val_ndcg@10" in result.history


def test_saved_run_accepts_its_data_and_refuses_other_data(trained, dataset):
    task, split, model, _, run_dir = trained
    run = task.load_run(run_dir, {"model": "lightgcn"})
    stored = run.artifacts["graph"]
    np.testing.assert_array_equal(stored.user_index, model.graph.user_index)
    np.testing.assert_array_equal(stored.item_index, model.graph.item_index)
    # The reloaded model has the trained weights and the graph: same scores.
    rows = tf.constant(np.arange(U, dtype=np.int32))
    np.testing.assert_allclose(run.model(rows).numpy(), model(rows).numpy(), rtol=1e-5, atol=1e-6)

    again = task.build_data(dataset, {}, {"split_seed": SEED}, run)
    assert [t.tolist() for t in again.test] == [t.tolist() for t in split.test]
    with pytest.raises(ValueError, match="trained on"):
        task.build_data(dataset, {}, {"split_seed": SEED + 1}, run)
    other = dataset.interactions.copy()
    other.loc[0, "item_id"] = int(other["item_id"].max()) + 7  # a new item
    with pytest.raises(ValueError, match="trained on"):
        task.build_data(Dataset(interactions=other), {}, {"split_seed": SEED}, run)
    fewer = Dataset(interactions=dataset.interactions.iloc[1:].reset_index(drop=True))
    with pytest.raises(ValueError, match="trained on"):
        task.build_data(fewer, {}, {"split_seed": SEED}, run)


def test_unsupported_commands(trained):
    task, split, model, _, run_dir = trained
    with pytest.raises(UnsupportedCommand, match="protocol"):
        task.evaluate(model, split, protocol="sampled")
    with pytest.raises(UnsupportedCommand, match="user_id"):
        task.recommend(task.load_run(run_dir, {"model": "lightgcn"}), ["500"])


def test_init_from_refuses_a_run_of_another_split(trained, dataset):
    task, _, _, _, run_dir = trained
    other = task.build_data(dataset, {}, {"split_seed": SEED + 1})
    model = create_model("lightgcn", vocab_size=other.vocabulary.size, num_users=other.num_users,
                         embedding_dim=8, num_layers=2)
    with pytest.raises(ValueError, match="trained on"):
        train_collaborative(model, other, epochs=1, verbose=0, init_from=run_dir)
