"""Ranking SavedModel export: raw features in, probability (and attention weights) out."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec.cli import main
from tf_attnrec.data.datasets import load_dataset
from tf_attnrec.models.registry import create_model
from tf_attnrec.data import schema
from tf_attnrec.export.score import SERVING_INPUTS, export_ranking_model
from tf_attnrec.data.ranking_examples import build_ranking_data
from tf_attnrec.tasks.ranking import train_ranker

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("fresh_tensorflow")]  # one worker: its fixtures and one fresh TF process

MAX_LENGTH = 10
ROWS = np.arange(0, 200, 7)  # real test examples (positives and negatives of several users)

@pytest.fixture(scope="module")
def ranking(shared_data_dir, tmp_path_factory):
    """ML-100K click data, a DIN trained one epoch (saved as a run) and an untrained BST."""
    data = build_ranking_data(
        load_dataset("ml-100k", data_dir=shared_data_dir, download=False),
        max_length=MAX_LENGTH, train_positions_per_user=1,
    )
    vocabularies = data.vocabularies
    root = tmp_path_factory.mktemp("ranking_export")
    tf.keras.utils.set_random_seed(0)
    din = create_model("din", vocab_size=vocabularies.item.size, feature_sizes=vocabularies.sizes(),
                       max_length=MAX_LENGTH, embedding_dim=8, hidden_units=(16,), attention_units=(8,))
    train_ranker(din, data, epochs=1, batch_size=1024, run_dir=root / "din_run", verbose=0)
    tables = {"item_genres": data.item_genres, "item_year": data.item_year}
    export_ranking_model(din, root / "serving" / "din" / "1", vocabularies=vocabularies, **tables)
    # BST exports from memory (no training needed: the export must reproduce any weights).
    bst = create_model("bst", vocab_size=vocabularies.item.size, feature_sizes=vocabularies.sizes(),
                       max_length=MAX_LENGTH, embedding_dim=8, hidden_dim=16, hidden_units=(16,))
    bst.build_variables()
    bst_summary = export_ranking_model(bst, root / "serving" / "bst" / "2", vocabularies=vocabularies, **tables)
    return {"data": data, "root": root, "din": din, "bst": bst, "bst_summary": bst_summary}


def _export_dir(ranking: dict, name: str) -> pathlib.Path:
    return ranking["root"] / "serving" / name / ("1" if name == "din" else "2")


def _raw_request(data, features: dict, right_pad_rows=()) -> dict:
    """The raw request that means `features` (model ids mapped back through the vocabularies)."""
    vocabularies = data.vocabularies

    def raw(vocabulary, ids, default):
        return [str(v) for v in vocabulary.raw_ids(ids, default=default)]

    history = [raw(vocabularies.item, row, "") for row in features[schema.HISTORY_ITEM_IDS]]
    for row in right_pad_rows:  # "" may sit anywhere, not only in front
        history[row] = [h for h in history[row] if h] + [h for h in history[row] if not h]
    return {
        "user_id": [f"u{i}" for i in range(len(history))],
        "gender": raw(vocabularies.gender, features[schema.USER_GENDER], "?"),
        "age": raw(vocabularies.age, features[schema.USER_AGE], "?"),
        "occupation": raw(vocabularies.occupation, features[schema.USER_OCCUPATION], "?"),
        "history": history,
        "item_id": raw(vocabularies.item, features[schema.ITEM_ID], "?"),
    }


def _test_features(data) -> dict:
    """Real test examples; row i keeps only its most recent L - (i % L) history items, so
    short (left-padded) histories occur too (every ML-100K user has a long one)."""
    features = data.features("test", ROWS)
    history = features[schema.HISTORY_ITEM_IDS].copy()
    history[np.arange(MAX_LENGTH)[None, :] < (np.arange(len(ROWS)) % MAX_LENGTH)[:, None]] = 0
    features[schema.HISTORY_ITEM_IDS] = history
    features[schema.HISTORY_GENRES] = data.item_genres[history]
    features[schema.HISTORY_YEAR] = data.item_year[history]
    return features


def _model_features(features: dict) -> dict:
    return {key: tf.constant(features[key]) for key in schema.MODEL_FEATURES}


def _serve(export_dir: pathlib.Path, request: dict, signature: str = "serving_default") -> dict:
    function = tf.saved_model.load(str(export_dir)).signatures[signature]
    inputs = {key: tf.constant(value, tf.string) for key, value in request.items()}
    return {key: value.numpy() for key, value in function(**inputs).items()}


def test_fresh_process_reproduces_the_python_model_on_real_examples(ranking, fresh_tensorflow):
    data = ranking["data"]
    features = _test_features(data)
    request = _raw_request(data, features, right_pad_rows=range(0, len(ROWS), 3))
    for name in ("din", "bst"):
        model = ranking[name]
        expected = model.predict_proba(_model_features(features)).numpy()
        weights = model.attention_weights(_model_features(features)).numpy()
        answer = fresh_tensorflow.serve(_export_dir(ranking, name), request, ("serving_default", "explain"))
        np.testing.assert_allclose(answer["serving_default"]["probability"], expected, atol=1e-5)
        np.testing.assert_allclose(answer["explain"]["probability"], expected, atol=1e-5)
        np.testing.assert_allclose(answer["explain"]["attention_weights"], weights, atol=1e-5)


def test_explain_weights_are_zero_at_padding_and_match_the_model(ranking):
    data, model = ranking["data"], ranking["din"]
    features = _test_features(data)
    out = _serve(_export_dir(ranking, "din"), _raw_request(data, features), "explain")
    assert out["attention_weights"].shape == (len(ROWS), MAX_LENGTH)
    padding = features[schema.HISTORY_ITEM_IDS] == 0
    assert padding.any() and (out["attention_weights"][padding] == 0).all()
    expected = model.attention_weights(_model_features(features)).numpy()
    np.testing.assert_allclose(out["attention_weights"], expected, atol=1e-5)
    summary = ranking["bst_summary"]
    assert list(summary.signatures) == ["serving_default", "explain"]
    assert tuple(summary.signatures["explain"]["inputs"]) == SERVING_INPUTS
    assert str(summary.signatures["explain"]["outputs"]["attention_weights"]) == "float32 [None, 10]"
    assert str(summary.signatures["serving_default"]["outputs"]["probability"]) == "float32 [None]"


def test_unknown_values_and_empty_histories_map_to_oov_and_never_fail(ranking):
    data, model = ranking["data"], ranking["din"]
    known = data.features("test", ROWS[:1])
    raw = _raw_request(data, known)
    raw_history = [h for h in raw["history"][0] if h]
    history_ids = known[schema.HISTORY_ITEM_IDS][0][known[schema.HISTORY_ITEM_IDS][0] > 0]
    request = {  # rows: unknown user attributes + item; unknown history ids; empty; all ""
        "user_id": ["", "new-user", "x", "y"],
        "gender": ["X", raw["gender"][0], "", raw["gender"][0]],
        "age": ["999", raw["age"][0], "25.0", raw["age"][0]],
        "occupation": ["astronaut", raw["occupation"][0], "", raw["occupation"][0]],
        "history": [[""] + raw_history[-3:], ["no-such-item", "", "nope", raw_history[-1]],
                    [""] * 4, [""] * 4],
        "item_id": ["no-such-item", raw["item_id"][0], raw["item_id"][0], ""],
    }
    out = _serve(_export_dir(ranking, "din"), request)["probability"]
    assert out.shape == (4,) and np.isfinite(out).all() and ((0 < out) & (out < 1)).all()

    # Unknown means the OOV id 1 (with the OOV item's genres / year), "" in a history padding.
    def history(ids):
        return [0] * (MAX_LENGTH - len(ids)) + list(ids)

    user = {key: known[key][0] for key in schema.USER_FEATURES}
    rows = [
        ({schema.USER_GENDER: 1, schema.USER_AGE: 1, schema.USER_OCCUPATION: 1}, 1,
         history_ids[-3:]),
        (user, known[schema.ITEM_ID][0], [1, 1, history_ids[-1]]),
        ({schema.USER_GENDER: 1, schema.USER_AGE: 1, schema.USER_OCCUPATION: 1},
         known[schema.ITEM_ID][0], []),
        (user, 1, []),
    ]
    histories = np.array([history(ids) for _, _, ids in rows], np.int32)
    items = np.array([candidate for _, candidate, _ in rows], np.int32)
    expected = {key: np.array([attrs[key] for attrs, _, _ in rows], np.int32) for key in schema.USER_FEATURES}
    expected.update({
        schema.ITEM_ID: items, schema.ITEM_GENRES: data.item_genres[items],
        schema.ITEM_YEAR: data.item_year[items], schema.HISTORY_ITEM_IDS: histories,
        schema.HISTORY_GENRES: data.item_genres[histories], schema.HISTORY_YEAR: data.item_year[histories],
    })
    np.testing.assert_allclose(out, model.predict_proba(_model_features(expected)).numpy(), atol=1e-5)

    # A history with no columns at all, and one longer than max_length (keeps the most recent).
    empty = {key: value[2:3] for key, value in request.items() if key != "history"}
    zero_width = _serve(_export_dir(ranking, "din"), {**empty, "history": np.zeros([1, 0], object)})
    np.testing.assert_allclose(zero_width["probability"], out[2:3], atol=1e-6)
    full = data.features("test", ROWS)
    row = int(np.argmax((full[schema.HISTORY_ITEM_IDS] > 0).all(axis=1)))
    assert (full[schema.HISTORY_ITEM_IDS][row] > 0).all()
    one = {key: value[row:row + 1] for key, value in _raw_request(data, full).items()}
    longer = {**one, "history": [["no-such-item", raw_history[0], ""] + one["history"][0]]}
    served = _serve(_export_dir(ranking, "din"), longer)["probability"]
    python = model.predict_proba(_model_features({k: v[row:row + 1] for k, v in full.items()})).numpy()
    np.testing.assert_allclose(served, python, atol=1e-5)


def test_cli_exports_a_ranking_run(ranking, capsys):
    run_dir, output = ranking["root"] / "din_run", ranking["root"] / "serving" / "din_cli" / "3"
    output.mkdir(parents=True)
    (output / "stale.txt").write_text("an older export")

    def error(argv) -> str:
        assert main(argv) == 1
        captured = capsys.readouterr()
        assert captured.err.count("\n") == 1, captured.err
        return captured.err

    assert "overwrite" in error(["export", str(run_dir), "--output", str(output)])
    assert "--index" in error(["export", str(run_dir), "--output", str(output), "--index", "scann"])
    assert "--include-seen" in error(["export", str(run_dir), "--output", str(output), "--include-seen"])
    not_a_run = ranking["root"] / "empty"
    not_a_run.mkdir()
    message = error(["export", str(not_a_run), "--output", str(ranking["root"] / "x" / "1")])
    assert "not a run directory" in message and "model_config.json" in message

    assert main(["export", str(run_dir), "--output", str(output), "--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert "signature 'explain'" in printed and "attention_weights" in printed
    assert not (output / "stale.txt").exists() and (output / "saved_model.pb").is_file()
    assert (output / "assets" / "feature_vocabularies.json").is_file()
    assert (output / "assets" / "item_ids.txt").read_text().splitlines()[:2] == ["1", "2"]
    features = ranking["data"].features("test", ROWS[:3])
    served = _serve(output, _raw_request(ranking["data"], features))["probability"]
    expected = ranking["din"].predict_proba(_model_features(features)).numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)
