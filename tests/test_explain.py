"""`explain`: attention weights of one (user, item) example of a tiny DIN / BST on ML-100K."""

from __future__ import annotations

import json

import pathlib
import struct
import sys

import numpy as np
import pytest
import yaml

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec import cli
from tf_attnrec.data import load_dataset
from tf_attnrec.models.registry import create_model
from tf_attnrec import explain, runs
from tf_attnrec.data import schema
from tf_attnrec.data.ranking_examples import build_ranking_data

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(__name__)]  # one worker builds the module's fixtures

MAX_LENGTH = 30
SHORT_USER = 19  # 20 ratings in ML-100K: 19 history items before the test item, 11 padded slots
TINY_DIN = {
    "model": "din",
    "dataset": "ml-100k",
    "model_config": {"max_length": MAX_LENGTH, "embedding_dim": 8, "hidden_units": [16], "attention_units": [16]},
    "training": {"epochs": 1, "batch_size": 512, "patience": None, "train_positions_per_user": 2,
                 "num_negatives": 1},
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def din_run(shared_data_dir, tmp_path_factory) -> pathlib.Path:
    """A DIN ranking run trained for one pass by `tf-attnrec train` (about 10 s)."""
    folder = tmp_path_factory.mktemp("explain")
    config = folder / "din.yaml"
    config.write_text(yaml.safe_dump(TINY_DIN))
    run_dir = folder / "din"
    status = cli.main(["train", "--config", str(config), "--data-dir", str(shared_data_dir),
                       "--output", str(run_dir), "--quiet"])
    assert status == 0
    return run_dir


@pytest.fixture(scope="module")
def ml100k(shared_data_dir):
    return load_dataset("ml-100k", data_dir=shared_data_dir, download=False)


@pytest.fixture(scope="module")
def loaded(din_run):
    model, _, config = runs.load_model(din_run)
    vocabularies, item_tables = runs.load_feature_tables(din_run)
    return model, vocabularies, item_tables, config


@pytest.fixture(scope="module")
def split(loaded, ml100k):
    return explain.split_for(ml100k, loaded[1].item)


def _test_item(split, user) -> int:
    row = int(np.flatnonzero(split.users == user)[0])
    return split.vocabulary.raw_ids([split.test_target[row]])[0].item()


@pytest.fixture(scope="module")
def short_user_explanation(loaded, ml100k, split):
    model, vocabularies, item_tables, _ = loaded
    return explain.explain_example(model, vocabularies, item_tables, ml100k, SHORT_USER,
                                   _test_item(split, SHORT_USER), split=split)


def test_features_are_those_of_the_users_test_example(loaded, ml100k, split):
    """The explained example is exactly the user's test positive of build_ranking_data."""
    model, vocabularies, item_tables, config = loaded
    data = build_ranking_data(ml100k, max_length=MAX_LENGTH, **{
        key: value for key, value in config["extra"]["data"].items()})
    user = 7
    row = int(np.flatnonzero(data.split.users == user)[0])
    test = data.examples["test"]
    index = int(np.flatnonzero((test.user_row == row) & (test.label == 1))[0])
    expected = data.features("test", rows=[index])
    item = data.split.vocabulary.raw_ids([test.candidate[index]])[0]

    explanation = explain.explain_example(model, vocabularies, item_tables, ml100k, str(user), str(item))
    assert explanation["user"] == user and explanation["item"] == item and explanation["is_test_item"]
    for name in schema.MODEL_FEATURES:
        np.testing.assert_array_equal(explanation["features"][name], expected[name], err_msg=name)
    probability = model.predict_proba({k: tf.constant(v) for k, v in expected.items()}).numpy()[0]
    assert explanation["probability"] == pytest.approx(float(probability), abs=1e-6)


def test_weights_are_the_models_attention_and_zero_exactly_on_padding(loaded, split, short_user_explanation):
    model, *_ = loaded
    e = short_user_explanation
    features = {key: tf.constant(value) for key, value in e["features"].items()}
    direct = model.attention_weights(features).numpy()[0]
    np.testing.assert_allclose(e["position_weights"], direct, rtol=0, atol=1e-6)

    padding = e["features"][schema.HISTORY_ITEM_IDS][0] == 0
    assert padding.sum() == MAX_LENGTH - 19 and not padding[-19:].any()  # left-padded
    assert np.all(e["position_weights"][padding] == 0.0)
    assert np.all(e["position_weights"][~padding] != 0.0)
    np.testing.assert_array_equal(e["weights"], e["position_weights"][~padding])

    # The history is the user's sequence before the test item, oldest first, as raw ids.
    row = int(np.flatnonzero(split.users == SHORT_USER)[0])
    expected = np.append(split.train[row], split.validation_target[row])
    assert e["history"] == split.vocabulary.raw_ids(expected).tolist()
    assert e["sequence_length"] == 19 and e["head_weights"] is None


def test_bst_gives_per_head_weights_whose_mean_is_the_explained_weight(loaded, ml100k, split, tmp_path):
    _, vocabularies, item_tables, _ = loaded
    bst = create_model("bst", vocab_size=vocabularies.item.size, feature_sizes=vocabularies.sizes(),
                       max_length=MAX_LENGTH, hidden_dim=8, num_heads=2, embedding_dim=4, hidden_units=[8])
    bst.build_variables()
    e = explain.explain_example(bst, vocabularies, item_tables, ml100k, SHORT_USER, 50, split=split)
    features = {key: tf.constant(value) for key, value in e["features"].items()}
    per_head = bst.attention_weights(features, per_head=True).numpy()[0]
    assert per_head.shape == (2, MAX_LENGTH) and e["head_weights"].shape == (2, 19)
    np.testing.assert_allclose(per_head.mean(axis=0), bst.attention_weights(features).numpy()[0], atol=1e-6)
    np.testing.assert_allclose(e["weights"], e["head_weights"].mean(axis=0), atol=1e-6)
    assert np.all(per_head[:, :MAX_LENGTH - 19] == 0.0)
    assert np.all(per_head.sum(axis=1) < 1.0)  # the rest goes to the candidate token itself
    path = explain.plot_attention(e, tmp_path / "bst.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def _png_size(path: pathlib.Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_heatmap_is_a_png_whose_height_grows_with_the_rows(short_user_explanation, din_run, tmp_path):
    titles = runs.read_items(din_run)
    full = explain.plot_attention(short_user_explanation, tmp_path / "all.png", titles=titles)
    few = explain.plot_attention(short_user_explanation, tmp_path / "nested" / "top3.png", titles=titles, top=3)
    assert full.stat().st_size > 20_000
    (width, height), (_, few_height) = _png_size(full), _png_size(few)
    assert height > 1.8 * few_height and width > 400


def test_plot_without_matplotlib_says_how_to_install(short_user_explanation, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "tf-attnrec\[plot\]"'):
        explain.plot_attention(short_user_explanation, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_cli_without_matplotlib_says_how_to_install(din_run, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli.main(["explain", str(din_run), "--user", "1", "--item", "50"]) == 1
    assert 'pip install "tf-attnrec[plot]"' in capsys.readouterr().err


def test_cli_explain_prints_the_top_items_with_titles_and_writes_the_png(din_run, split, short_user_explanation,
                                                                        capsys):
    item = _test_item(split, SHORT_USER)
    assert cli.main(["explain", str(din_run), "--user", str(SHORT_USER), "--item", str(item), "--top", "3"]) == 0
    out = capsys.readouterr().out
    png = din_run / f"explain_user{SHORT_USER}_item{item}.png"
    assert png.is_file() and png.read_bytes()[:8] == PNG_MAGIC and str(png) in out
    saved = json.loads(png.with_suffix(".json").read_text())  # the weights beside the picture
    assert saved["item"] == item and len(saved["weights"]) == len(saved["history"]) > 0
    titles = runs.read_items(din_run)
    top = explain.top_items(short_user_explanation, 3)
    assert f"click probability {short_user_explanation['probability']:.4f}" in out
    assert titles[str(item)]["title"] in out  # the candidate
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Top 3 history items"))
    for row, line in zip(top, lines[header + 2: header + 5]):
        assert titles[str(row["item_id"])]["title"] in line and f"{row['weight']:.4f}" in line


@pytest.fixture()
def embedding_mlp_run(loaded, tmp_path) -> pathlib.Path:
    """An (untrained) embedding_mlp ranking run: a model without attention."""
    _, vocabularies, item_tables, _ = loaded
    model = create_model("embedding_mlp", vocab_size=vocabularies.item.size, feature_sizes=vocabularies.sizes(),
                         max_length=MAX_LENGTH)
    model.build_variables()
    run_dir = tmp_path / "mlp"
    runs.save_model(model, run_dir, vocabularies.item)
    runs.save_feature_tables(run_dir, vocabularies, **item_tables)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({**TINY_DIN, "model": "embedding_mlp"}))
    return run_dir


@pytest.fixture()
def retrieval_run(loaded, tmp_path) -> pathlib.Path:
    """A popularity (retrieval) run: a model without attention."""
    _, vocabularies, _, _ = loaded
    run_dir = tmp_path / "popularity"
    runs.save_model(create_model("popularity", vocab_size=vocabularies.item.size), run_dir, vocabularies.item)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"model": "popularity", "dataset": "ml-100k"}))
    return run_dir


def test_cli_errors_are_one_line(din_run, embedding_mlp_run, retrieval_run, tmp_path, capsys):
    cases = [
        ([str(din_run), "--user", "99999", "--item", "50"], "user 99999 is not in the dataset"),
        ([str(din_run), "--user", "1", "--item", "123456"], "item 123456 is not one the model knows"),
        ([str(embedding_mlp_run), "--user", "1", "--item", "50"], "the embedding_mlp model has no attention"),
        ([str(retrieval_run), "--user", "1", "--item", "50"], "the popularity model has no attention"),
        ([str(din_run), "--user", "1"], "pass --item ITEM_ID"),
        ([str(tmp_path / "missing"), "--user", "1", "--item", "50"], "not found"),
    ]
    for argv, message in cases:
        assert cli.main(["explain", *argv]) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("tf-attnrec explain: error: ") and message in err, err
        assert err.count("\n") == 1
    assert not list(din_run.glob("explain_user99999*"))


def test_library_rejects_models_without_attention(loaded, ml100k, split):
    _, vocabularies, item_tables, _ = loaded
    for name in ("embedding_mlp", "dcn", "autoint"):
        model = create_model(name, vocab_size=vocabularies.item.size, feature_sizes=vocabularies.sizes(),
                             max_length=MAX_LENGTH)
        with pytest.raises(ValueError, match=f"the {name} model has no attention.*bst, din, gcsan, lstm_attention, nais, sasrec"):
            explain.explain_example(model, vocabularies, item_tables, ml100k, 1, 50, split=split)
    assert explain.explainable_models() == ["attention_pooling", "bst", "din", "gcsan", "lstm_attention", "nais",
                                            "sasrec"]
