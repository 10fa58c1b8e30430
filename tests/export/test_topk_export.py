"""The exact (brute-force) retrieval SavedModel: layout, signatures and served results."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tests.export.conftest import K, MAX_LENGTH, python_top_k, serve, tiny_model
from tf_attnrec.data.pipelines import pad_sequences
from tf_attnrec.data.vocabulary import Vocabulary
from tf_attnrec.export import export_retrieval
from tf_attnrec.models import PopularityModel

pytestmark = [pytest.mark.xdist_group("fresh_tensorflow")]  # one worker: its fixtures and one fresh TF process

STRING_HISTORIES = [
    ["m03", "m07", "m11", "", ""],          # right-padded
    ["", "", "m03", "m07", "m11"],          # the same, left-padded
    ["m39", "m00", "m21", "m05", "m18"],
    ["", "", "", "", ""],                    # empty
]
INT_HISTORIES = [["7", "10", "", ""], ["", "94", "13", "16"], ["", "", "", ""]]

def test_fresh_process_top_k_equals_python_model(string_export, int_export, fresh_tensorflow):
    for exported, histories in ((string_export, STRING_HISTORIES), (int_export, INT_HISTORIES)):
        answer = fresh_tensorflow.serve(exported.export_dir, {"history": histories})["serving_default"]
        expected_ids, expected_scores = python_top_k(
            exported.model, exported.vocabulary, histories,
            exclude_history=exported.exclude_history,
        )
        assert answer["item_ids"].tolist() == expected_ids
        np.testing.assert_allclose(answer["scores"], expected_scores, rtol=1e-5, atol=1e-5)


def test_saved_model_cli_lists_named_inputs_and_outputs(string_export):
    # The tool of this interpreter's environment, found without an activated venv's PATH.
    script = pathlib.Path(sys.executable).with_name("saved_model_cli")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    result = subprocess.run(
        [*command, "show", "--dir", str(string_export.export_dir), "--all"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    serving = text[text.index("signature_def['serving_default']"):]
    for expected in ("inputs['history']", "outputs['item_ids']", "outputs['scores']",
                     "DT_STRING", "DT_FLOAT", f"shape: (-1, {K})", "shape: (-1, -1)"):
        assert expected in serving, expected
    encode = text[text.index("signature_def['encode']"):text.index("signature_def['serving")]
    assert "inputs['history']" in encode and "outputs['query_embedding']" in encode


def test_layout_and_summary(string_export):
    summary = string_export.summary
    assert string_export.export_dir.parent.name == "tiny" and summary.version == 1
    assert (string_export.export_dir / "saved_model.pb").is_file()
    assert summary.model_name == "tiny" and summary.k == K and summary.max_length == MAX_LENGTH
    outputs = summary.signatures["serving_default"]["outputs"]
    assert str(outputs["item_ids"]) == f"string [None, {K}]"
    assert str(outputs["scores"]) == f"float32 [None, {K}]"
    assert str(summary.signatures["serving_default"]["inputs"]["history"]) == "string [None, None]"
    assert "query_embedding" in str(summary) and json.dumps(summary.to_dict())


def test_right_and_left_padding_give_the_same_answer(string_export):
    ids, scores = serve(string_export, STRING_HISTORIES[:2])
    assert ids[0] == ids[1]
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-5)  # rows of one batch may round apart
    inner, _ = serve(string_export, [["m03", "", "m07", "", "m11"]])  # padding in between
    assert inner[0] == ids[0]


def test_unknown_ids_map_to_oov_and_never_fail(string_export, int_export):
    histories = [["m03", "not-an-item", "m11"], ["??", "", "x" * 300], ["m03", "", "m11"]]
    ids, scores = serve(string_export, histories)
    expected, _ = python_top_k(string_export.model, string_export.vocabulary, histories)
    assert ids == expected
    assert ids[0] != ids[2]  # the OOV token is read as an item, not dropped
    assert np.isfinite(scores).all()
    int_histories = [["abc", "1.5", "-3", "99999999999999999999"], ["7", "", "0010", "10"]]
    ids, scores = serve(int_export, int_histories)
    expected, _ = python_top_k(int_export.model, int_export.vocabulary, int_histories,
                               exclude_history=False)
    assert ids == expected and np.isfinite(scores).all()


def _assert_valid_items(exported, ids):
    known = {str(v) for v in exported.vocabulary.raw_ids(np.arange(2, exported.vocabulary.size))}
    for row in ids:
        assert len(row) == K and len(set(row)) == K and set(row) <= known


def test_empty_history_returns_k_valid_items(string_export, int_export):
    for exported in (string_export, int_export):
        for histories in (tf.fill([3, 4], ""), tf.zeros([2, 0], tf.string)):
            out = exported.served(history=histories)
            ids = [[v.decode() for v in row] for row in out["item_ids"].numpy()]
            _assert_valid_items(exported, ids)
            assert np.isfinite(out["scores"].numpy()).all()


def test_long_history_keeps_the_most_recent_items(string_export):
    rng = np.random.default_rng(0)
    long = [f"m{i:02d}" for i in rng.integers(0, 40, size=4 * MAX_LENGTH)]
    encode = string_export.loaded.signatures["encode"]
    whole = encode(history=tf.constant([long]))["query_embedding"].numpy()
    recent = encode(history=tf.constant([long[-MAX_LENGTH:]]))["query_embedding"].numpy()
    older = encode(history=tf.constant([long[:MAX_LENGTH]]))["query_embedding"].numpy()
    np.testing.assert_allclose(whole, recent, rtol=1e-6, atol=1e-6)
    assert not np.allclose(whole, older)
    ids, _ = serve(string_export, [long])
    expected, _ = python_top_k(string_export.model, string_export.vocabulary, [long])
    assert ids == expected
    assert not set(ids[0]) & set(long)  # the whole history is excluded, not just the window


def test_history_items_are_excluded_when_asked(string_export, int_export):
    ids, _ = serve(string_export, STRING_HISTORIES)
    for history, row in zip(STRING_HISTORIES, ids):
        assert not set(row) & set(history)
    # With exclusion off, a seen item comes back: feed the history its own top item.
    first, _ = serve(int_export, [["7", "10"]])
    again, _ = serve(int_export, [["7", "10"] + [first[0][0]]])
    unexcluded, _ = python_top_k(int_export.model, int_export.vocabulary,
                                 [["7", "10", first[0][0]]], exclude_history=False)
    assert again == unexcluded


def test_when_fewer_than_k_items_are_unseen_the_rest_is_blank(string_export):
    all_items = [f"m{i:02d}" for i in range(40)]
    history = all_items[:-2]  # 2 unseen items left, k = 5
    ids, scores = serve(string_export, [history])
    assert sorted(ids[0][:2]) == ["m38", "m39"]
    assert ids[0][2:] == ["", "", ""]
    assert (scores[0, 2:] == np.finfo(np.float32).min).all()


def test_encode_signature_and_embedding_files(string_export):
    model, vocabulary = string_export.model, string_export.vocabulary
    histories = STRING_HISTORIES[2:]
    query = string_export.loaded.signatures["encode"](history=tf.constant(histories))
    padded = pad_sequences([vocabulary.lookup([h for h in row if h]) for row in histories[:1]]
                           + [np.zeros([0], np.int32)], MAX_LENGTH)
    np.testing.assert_allclose(query["query_embedding"].numpy(), model(padded).numpy(),
                               rtol=1e-5, atol=1e-6)
    files = string_export.summary.files
    raw_ids = files["item_ids"].read_text().splitlines()
    assert raw_ids == [str(v) for v in vocabulary.raw_ids(np.arange(2, vocabulary.size))]
    embeddings = np.load(files["item_embeddings"])
    np.testing.assert_array_equal(embeddings, model.item_embeddings.numpy()[2:])
    # A user's own index over the files gives the served answer (exclusion aside).
    scores = query["query_embedding"].numpy()[:1] @ embeddings.T
    scores[0, vocabulary.lookup(histories[0]) - 2] = -np.inf
    served, _ = serve(string_export, histories[:1])
    assert [raw_ids[i] for i in np.argsort(-scores[0], kind="stable")[:K]] == served[0]


def test_popularity_model_exports_without_encode(tmp_path):
    vocabulary = Vocabulary.from_ids(["a", "b", "c", "d", "e", "f", "g"])
    model = PopularityModel(vocabulary.size, max_length=4)
    model.adapt([vocabulary.lookup(["a", "b", "b", "c", "c", "c", "d", "d", "d", "d"])])
    summary = export_retrieval(model, tmp_path / "pop" / "1", k=3, vocabulary=vocabulary)
    assert list(summary.signatures) == ["serving_default"]
    assert "item_embeddings" not in summary.files
    served = tf.saved_model.load(str(tmp_path / "pop" / "1")).signatures["serving_default"]
    out = served(history=tf.constant([["d", ""], ["", ""]]))["item_ids"].numpy().tolist()
    assert out == [[b"c", b"b", b"a"], [b"d", b"c", b"b"]]


def test_nais_serves_the_history_attention_of_each_returned_item(tmp_path):
    from tf_attnrec.models.item_similarity import NAIS

    vocabulary = Vocabulary.from_ids(["a", "b", "c", "d", "e", "f", "g"])
    tf.keras.utils.set_random_seed(0)
    model = NAIS(vocabulary.size, embedding_dim=8, attention_dim=4, max_length=4, name="nais")
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in model.get_weights()])
    summary = export_retrieval(model, tmp_path / "nais" / "1", k=3, vocabulary=vocabulary)
    assert list(summary.signatures) == ["serving_default"]  # no query vector: the weights depend on the item
    served = tf.saved_model.load(str(tmp_path / "nais" / "1")).signatures["serving_default"]
    out = served(history=tf.constant([["", "a", "zz", "c"], ["", "", "", ""]]))
    weights = out["history_attention"].numpy()
    assert weights.shape == (2, 3, 4) and np.isfinite(weights).all()
    history = tf.constant([[0, 2, 1, 4]])  # "zz" is unknown (id 1): weight 0, like padding
    items = vocabulary.lookup(np.array([i.decode() for i in out["item_ids"].numpy()[0]], dtype=object))
    expected = model.history_attention(history, tf.constant(items[None].astype(np.int32))).numpy()[0]
    np.testing.assert_allclose(weights[0], expected, rtol=1e-5, atol=1e-6)
    assert (weights[0][:, [0, 2]] == 0).all() and (weights[0][:, [1, 3]] > 0).all()
    assert (weights[1] == 0).all(), "an empty history has nothing to weigh"


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"k": 0}, ValueError, "k must be an int in"),
        ({"k": 41}, ValueError, "k must be an int in"),
        ({"index": "annoy"}, ValueError, "index must be one of"),
        ({"vocabulary": Vocabulary.from_ids(["a", "b"])}, ValueError, "vocabulary has"),
        ({"vocabulary": ["m00"]}, TypeError, "must be the tf_attnrec Vocabulary"),
        ({"export_dir": "latest"}, ValueError, "integer version folder"),
    ],
)
def test_bad_arguments_are_explained(string_export, tmp_path, kwargs, error, message):
    arguments = {"k": K, "vocabulary": string_export.vocabulary, **kwargs}
    export_dir = tmp_path / "serving" / "m" / arguments.pop("export_dir", "1")
    with pytest.raises(error, match=message):
        export_retrieval(string_export.model, export_dir, **arguments)


def test_existing_version_needs_overwrite(string_export):
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_retrieval(string_export.model, string_export.export_dir, k=K,
                         vocabulary=string_export.vocabulary)


def test_raw_ids_that_cannot_be_served_are_rejected(tmp_path):
    vocabulary = Vocabulary.from_ids(["a", "two\nlines"])
    with pytest.raises(ValueError, match="single-line"):
        export_retrieval(tiny_model(vocabulary, 0), tmp_path / "m" / "1", k=1,
                         vocabulary=vocabulary)


def test_a_history_of_nothing_known_gets_the_most_popular_training_items(tmp_path):
    vocabulary = Vocabulary.from_ids([f"m{i:02d}" for i in range(12)])
    model = tiny_model(vocabulary, seed=3)
    # Training counts: m05 most often, then m09 and m02 (tied: the lower id first), then m07.
    model.adapt([np.array([7, 7, 7, 11, 11, 4, 4, 9]), np.array([7, 11, 4, 9])])
    export_dir = tmp_path / "serving" / "popular" / "1"
    export_retrieval(model, export_dir, k=3, vocabulary=vocabulary)
    served = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    answer = served(history=tf.constant([["", ""], ["nobody", "knows"], ["m01", ""]]))
    items = answer["item_ids"].numpy().astype(str)
    assert items[0].tolist() == items[1].tolist() == ["m05", "m02", "m09"]
    np.testing.assert_allclose(answer["scores"].numpy()[0], np.log1p([4.0, 3.0, 3.0]), rtol=1e-6)
    # A history the model knows is the model's own answer.
    expected, _ = python_top_k(model, vocabulary, [["m01"]], k=3)
    assert items[2].tolist() == expected[0]


# The option check needs no ScaNN, so it runs without the `ann` extra (the ScaNN tests skip there).
def test_scann_needs_item_embeddings(tmp_path):
    from tf_attnrec.models import PopularityModel

    vocabulary = Vocabulary.from_ids(["a", "b", "c"])
    with pytest.raises(ValueError, match="needs a model with item embeddings"):
        export_retrieval(PopularityModel(vocabulary.size), tmp_path / "p" / "1", k=1,
                         index="scann", vocabulary=vocabulary)
