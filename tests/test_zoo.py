"""One harness over `list_models()`: every registered model, through its task, end to end.

For each model, with its spec's tiny config on a small synthetic dataset (interactions with
timestamps, item genres / years, user attributes): build, `get_config` round trip, one fit
pass through the shared loop, save and reload with identical evaluation, export, and a reload
of the export in a fresh process that imports only TensorFlow, serving the same answer. A new
family is tested by registering it.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tf_attnrec.data.dataset import Dataset
from tf_attnrec.models.registry import get_model_spec, list_models
from tf_attnrec.tasks import get_task

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("fresh_tensorflow")]  # one worker starts the fresh TF process

NUM_USERS, NUM_ITEMS = 24, 30
DATA_OPTIONS = {"ranking": {"train_positions_per_user": 3, "num_negatives": 1}}
GENRES = ("Action", "Comedy", "Drama", "Horror")


def tiny_dataset(seed: int = 0) -> Dataset:
    """Users with 6..14 timestamped, rated interactions, items with genres / year, user attributes."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, NUM_USERS + 1):
        items = rng.choice(np.arange(100, 100 + NUM_ITEMS), size=int(rng.integers(6, 15)), replace=False)
        rows += [(user, int(item), 1_000 * user + t, int(rng.integers(1, 6))) for t, item in enumerate(items)]
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"])
    items = pd.DataFrame({
        "item_id": np.arange(100, 100 + NUM_ITEMS),
        "title": [f"Movie {i}" for i in range(NUM_ITEMS)],
        "genres": [tuple(rng.choice(GENRES, size=int(rng.integers(1, 3)), replace=False)) for _ in range(NUM_ITEMS)],
        "year": pd.array(rng.integers(1990, 2000, NUM_ITEMS), dtype="Int64"),
    })
    users = pd.DataFrame({
        "user_id": np.arange(1, NUM_USERS + 1),
        "gender": rng.choice(["F", "M"], NUM_USERS),
        "age": rng.choice([18, 25, 35], NUM_USERS),
        "occupation": rng.integers(0, 5, NUM_USERS),
    })
    return Dataset(interactions, items, users, name="tiny", source="memory")


def serving_request(signature) -> dict:
    """String inputs for any export: raw ids as the dataset spells them, plus unknown ones."""
    request = {}
    for spec in signature.structured_input_signature[1].values():
        if spec.shape.rank == 2:  # a history: known ids, an unknown one, padding
            request[spec.name] = [["101", "107", "999999", ""], ["", "", "", ""]]
        else:
            request[spec.name] = {"item_id": ["103", "999999"], "user_id": ["1", "2"], "gender": ["F", "X"],
                                  "age": ["25", "18"], "occupation": ["3", "77"]}[spec.name]
    return request


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return tiny_dataset()


def check_model(name: str, dataset: Dataset, folder: pathlib.Path) -> dict:
    """Build, fit one pass, round-trip the config, save / reload, export; returns the export case."""
    spec = get_model_spec(name)
    task = get_task(spec.task)
    data = task.build_data(dataset, dict(spec.tiny), DATA_OPTIONS.get(spec.task, {}))
    model = task.build_model(spec, data, dict(spec.tiny))

    # One pass of the shared training loop (one batch holds all the tiny data, so the train
    # step is traced once), saved as a run directory.
    result = task.fit(model, data, epochs=1, batch_size=256, run_dir=folder / "run", extra_config={"model": name},
                      verbose=0)
    if model.requires_training:
        losses = result.history["loss"]
        assert len(losses) == 1 and np.isfinite(losses[0]) and losses[0] > 0, (name, losses)
        assert (folder / "run" / "logs").is_dir(), f"{name}: TensorBoard logs belong in the run directory"
    else:  # fitted by counting or reading content: some statistic must have been stored
        assert result.fit is None and any(np.abs(w.numpy()).sum() > 0 for w in model.non_trainable_weights), name

    # get_config round trip: same config, same variables.
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config, name
    clone.build_variables()
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights], name

    # The saved run reloads with identical evaluation, equal to what metrics.json holds.
    run = task.load_run(folder / "run", {"model": name})
    original = task.evaluate(model, data, "test")
    numeric = {k: v for k, v in original.items() if isinstance(v, float)}
    assert numeric, (name, original)
    reloaded = task.evaluate(run.model, data, "test")
    saved = json.loads((folder / "run" / "metrics.json").read_text())["test"]
    for key, value in numeric.items():
        assert reloaded[key] == pytest.approx(value, abs=1e-6), (name, key)
        assert saved[key] == pytest.approx(value, abs=1e-6), (name, key)

    # Export; what it serves here is what the fresh process must serve.
    export_dir = folder / "serving" / name / "1"
    task.export(run, export_dir)
    served = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    request = serving_request(served)
    expected = {key: value.numpy().tolist() for key, value in
                served(**{key: tf.constant(value) for key, value in request.items()}).items()}
    return {"export_dir": str(export_dir), "request": request, "expected": expected}


@pytest.mark.parametrize("task_name", ["retrieval", "ranking", "collaborative", "multitask"])
def test_every_registered_model_end_to_end(task_name, dataset, tmp_path, fresh_tensorflow):
    """Every model of one task; each export then reloads in a TensorFlow-only process."""
    names = list_models(task=task_name)
    assert names
    for name in names:
        case = check_model(name, dataset, tmp_path / name)
        answers = fresh_tensorflow.serve(case["export_dir"], case["request"])["serving_default"]
        assert set(answers) == set(case["expected"]), name
        for key, value in case["expected"].items():
            if isinstance(np.asarray(value).flat[0], bytes):
                assert answers[key].tolist() == [[v.decode() for v in row] for row in value], (name, key)
            else:
                np.testing.assert_allclose(answers[key], value, rtol=1e-5, atol=1e-6, err_msg=f"{name} {key}")
                assert np.isfinite(answers[key].astype(float)).all(), (name, key)
