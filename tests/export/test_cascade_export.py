"""The retrieval-then-ranking cascade: one SavedModel, loaded with TensorFlow alone, that
answers exactly as the Python cascade (`tf_attnrec.cascade.Cascade`) does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec.cascade import Cascade
from tf_attnrec.cli import main
from tf_attnrec.data.dataset import Dataset
from tf_attnrec.data.ranking_examples import build_ranking_data
from tf_attnrec.data.vocabulary import Vocabulary
from tf_attnrec.export.cascade import SERVING_INPUTS, export_cascade
from tf_attnrec.models.registry import create_model
from tf_attnrec.runs import save_model
from tf_attnrec.tasks.ranking import train_ranker

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("fresh_tensorflow")]

ITEMS = np.arange(100, 130)
RANKER_LENGTH, RETRIEVAL_LENGTH = 6, 5
CANDIDATES, K = 12, 5


def dataset() -> Dataset:
    rng = np.random.default_rng(3)
    rows = [(user, int(item), t) for user in range(1, 31)
            for t, item in enumerate(rng.choice(ITEMS, size=int(rng.integers(5, 10)), replace=False))]
    items = pd.DataFrame({"item_id": ITEMS, "title": [f"m{i}" for i in ITEMS],
                          "genres": [("Drama",) if i % 2 else ("Comedy", "Horror") for i in ITEMS],
                          "year": pd.array(1990 + ITEMS % 7, dtype="Int64")})
    users = pd.DataFrame({"user_id": np.arange(1, 31), "gender": rng.choice(["F", "M"], 30),
                          "age": rng.choice([18, 25, 35], 30), "occupation": rng.integers(0, 4, 30)})
    return Dataset(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]), items, users,
                   name="tiny", source="memory")


@pytest.fixture(scope="module")
def cascade(tmp_path_factory):
    """A trained tiny din (a run folder), and a sasrec whose catalogue has 2 items the ranker never saw."""
    root = tmp_path_factory.mktemp("cascade")
    data = build_ranking_data(dataset(), max_length=RANKER_LENGTH, train_positions_per_user=3)
    tf.keras.utils.set_random_seed(0)
    din = create_model("din", vocab_size=data.vocabularies.item.size, feature_sizes=data.vocabularies.sizes(),
                       max_length=RANKER_LENGTH, embedding_dim=8, hidden_units=(16,), attention_units=(8,))
    train_ranker(din, data, epochs=1, batch_size=256, run_dir=root / "din", verbose=0)
    retrieval_vocabulary = Vocabulary.from_ids([*ITEMS, 998, 999])
    sasrec = create_model("sasrec", vocab_size=retrieval_vocabulary.size, hidden_dim=8,
                          max_length=RETRIEVAL_LENGTH, num_blocks=1, dropout=0.0)
    sasrec.score(tf.zeros([1, RETRIEVAL_LENGTH], tf.int32))
    save_model(sasrec, root / "sasrec", retrieval_vocabulary)
    python = Cascade(sasrec, retrieval_vocabulary, din, data.vocabularies, data.item_genres, data.item_year)
    export_dir = root / "serving" / "cascade" / "1"
    summary = export_cascade(sasrec, din, export_dir, retrieval_vocabulary=retrieval_vocabulary,
                             ranking_vocabularies=data.vocabularies, item_genres=data.item_genres,
                             item_year=data.item_year, candidates=CANDIDATES, k=K)
    return {"root": root, "python": python, "export_dir": export_dir, "summary": summary, "data": data}


def _request(histories, genders=None) -> dict:
    count = len(histories)
    width = max(len(h) for h in histories) or 1
    return {"user_id": [f"u{i}" for i in range(count)],
            "gender": genders or (["F", "M", "X", ""] * count)[:count],
            "age": (["25", "35", "18", "99"] * count)[:count],
            "occupation": (["1", "3", "0", "7"] * count)[:count],
            "history": [h + [""] * (width - len(h)) for h in histories]}


HISTORIES = [
    ["101", "105", "110", "117", "120", "121", "103"],  # longer than either model reads
    ["998", "104"],  # an item only retrieval knows
    [],  # a new user
    ["", "unknown-id", "112", ""],  # padding anywhere, and an id nobody knows
    ["129"],
]


def test_the_served_cascade_equals_the_python_cascade(cascade, fresh_tensorflow):
    request = _request(HISTORIES)
    served = fresh_tensorflow.serve(cascade["export_dir"], request)["serving_default"]
    expected = cascade["python"].recommend(request["history"], request, candidates=CANDIDATES, k=K)
    assert served["item_ids"].tolist() == expected["item_ids"].tolist()
    np.testing.assert_array_equal(served["retrieval_rank"], expected["retrieval_rank"])
    np.testing.assert_allclose(served["scores"], expected["scores"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(served["retrieval_scores"], expected["retrieval_scores"], rtol=1e-5, atol=1e-5)
    for row, history in enumerate(HISTORIES):
        items = served["item_ids"][row].tolist()
        assert not set(items) & set(history) and all(items)  # no seen item; enough unseen ones
        assert np.all(np.diff(served["scores"][row]) <= 0)  # best first
        assert np.all((served["retrieval_rank"][row] >= 1) & (served["retrieval_rank"][row] <= CANDIDATES))


def test_the_ranker_reorders_retrievals_candidates(cascade):
    request = _request(HISTORIES)
    result = cascade["python"].recommend(request["history"], request, candidates=CANDIDATES, k=K)
    # If the ranker only echoed retrieval, every row would read ranks 1..K.
    assert (result["retrieval_rank"] != np.arange(1, K + 1)).any()


def test_rows_past_the_unseen_catalogue_are_empty(cascade, tmp_path, fresh_tensorflow):
    python = cascade["python"]
    catalogue = python.retrieval_vocabulary.num_items
    export_dir = tmp_path / "serving" / "all" / "1"
    export_cascade(python.retrieval_model, python.ranking_model, export_dir,
                   retrieval_vocabulary=python.retrieval_vocabulary, ranking_vocabularies=python.vocabularies,
                   item_genres=python.item_genres, item_year=python.item_year, candidates=catalogue, k=catalogue)
    request = _request([["101", "102", "103"]])
    served = fresh_tensorflow.serve(export_dir, request)["serving_default"]
    items = served["item_ids"][0].tolist()
    assert items[-3:] == ["", "", ""] and all(items[:-3])
    assert (served["retrieval_rank"][0][-3:] == 0).all() and (served["scores"][0][-3:] == np.finfo(np.float32).min).all()
    expected = python.recommend(request["history"], request, candidates=catalogue, k=catalogue)
    assert items == expected["item_ids"][0].tolist()


def test_an_empty_batch_and_unknown_attributes_never_fail(cascade):
    served = tf.saved_model.load(str(cascade["export_dir"])).signatures["serving_default"]
    empty = served(**{name: tf.zeros([0] if name != "history" else [0, 0], tf.string) for name in SERVING_INPUTS})
    assert empty["item_ids"].shape == (0, K)
    weird = _request([["\U0001f642", "101"]], genders=["\u00fc\u00f1\u00ee"])
    answer = served(**{name: tf.constant(value) for name, value in weird.items()})
    assert np.isfinite(answer["scores"].numpy()).all() and b"101" not in answer["item_ids"].numpy()[0]


@pytest.mark.parametrize("candidates, k, message", [(12, 13, "k must be"), (33, 5, "candidates must be an int in")])
def test_counts_that_cannot_be_served_are_refused(cascade, tmp_path, candidates, k, message):
    python = cascade["python"]
    with pytest.raises(ValueError, match=message):
        export_cascade(python.retrieval_model, python.ranking_model, tmp_path / "serving" / "c" / "1",
                       retrieval_vocabulary=python.retrieval_vocabulary, ranking_vocabularies=python.vocabularies,
                       item_genres=python.item_genres, item_year=python.item_year, candidates=candidates, k=k)
    assert not (tmp_path / "serving").exists()


def test_the_models_must_be_a_retriever_and_a_ranker(cascade, tmp_path):
    python = cascade["python"]
    with pytest.raises(TypeError, match="RankingModel"):
        export_cascade(python.retrieval_model, python.retrieval_model, tmp_path / "serving" / "c" / "1",
                       retrieval_vocabulary=python.retrieval_vocabulary, ranking_vocabularies=python.vocabularies,
                       item_genres=python.item_genres, item_year=python.item_year, candidates=CANDIDATES, k=K)


def test_cli_exports_the_cascade_and_recommends_with_the_same_runs(cascade, tmp_path, capsys):
    root = cascade["root"]
    output = tmp_path / "serving" / "cascade" / "3"
    assert main(["cascade", "--retrieval", str(root / "sasrec"), "--ranking", str(root / "din"),
                 "--output", str(output), "--candidates", str(CANDIDATES), "-k", "3"]) == 0
    assert "retrieval_rank" in capsys.readouterr().out
    served = tf.saved_model.load(str(output)).signatures["serving_default"]
    request = _request([["101", "105"]])
    answer = served(**{name: tf.constant(value) for name, value in request.items()})
    assert main(["recommend", str(root / "sasrec"), "--ranking", str(root / "din"), "--history", "101,105",
                 "--gender", "F", "--age", "25", "--occupation", "1", "--candidates", str(CANDIDATES),
                 "-k", "3", "--format", "json"]) == 0
    printed = capsys.readouterr().out
    import json

    answer_ids = [item.decode() for item in answer["item_ids"].numpy()[0]]
    assert [row["item_id"] for row in json.loads(printed)["recommendations"]] == answer_ids
