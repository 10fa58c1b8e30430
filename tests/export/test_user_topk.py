"""The collaborative SavedModel (tf_attnrec.export.user_topk): raw user id in, top-k raw items out."""

from __future__ import annotations

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec.data.graph import InteractionGraph
from tf_attnrec.data.vocabulary import Vocabulary
from tf_attnrec.export.user_topk import export_user_topk
from tf_attnrec.models.lightgcn import LightGCN

U, I, K = 20, 15, 5
ITEMS = Vocabulary.from_ids([100 + 3 * j for j in range(I)])  # int raw ids, served as "100", "103", ...
USERS = Vocabulary.from_ids([f"u{u:02d}" for u in range(U)])
# Item node j has DEGREE[j] distinct users (all different, so popularity has no tie):
# users 0 .. DEGREE[j]-1. User u then has seen every item whose degree exceeds u, so user 0
# has seen all 15 items, user 14 one, and users 15..19 none.
DEGREE = np.random.default_rng(0).permutation(np.arange(1, I + 1))


def _graph() -> InteractionGraph:
    users = np.concatenate([np.arange(d) for d in DEGREE])
    items = np.repeat(np.arange(I), DEGREE)
    return InteractionGraph.from_pairs(users, items, U, I)


def _user_raw(row: int) -> str:
    return str(USERS.raw_ids(row + 2))


def _item_raw(node: int) -> str:
    return str(int(ITEMS.raw_ids(node + 2)))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tf.keras.utils.set_random_seed(3)
    model = LightGCN(num_users=U, vocab_size=ITEMS.size, embedding_dim=8, num_layers=2)
    model.build_variables()
    model.set_graph(_graph())
    export_dir = tmp_path_factory.mktemp("cf") / "serving" / "lightgcn" / "1"
    summary = export_user_topk(model, export_dir, k=K, vocabulary=ITEMS, user_vocabulary=USERS)
    loaded = tf.saved_model.load(str(export_dir))
    return model, summary, loaded, loaded.signatures["serving_default"]


def _serve(signature, user_ids):
    out = signature(user_id=tf.constant(user_ids, tf.string))
    return ([[v.decode() for v in row] for row in out["item_ids"].numpy()], out["scores"].numpy(),
            out["known_user"].numpy())


def _numpy_top_k(model, rows, exclude_history=True):
    """Per user row: (raw item ids, scores) of a NumPy top-k with training items excluded."""
    users, items = (t.numpy().astype(np.float64) for t in model.final_embeddings())
    graph = model.graph
    ids, scores = [], []
    for row in rows:
        s = items @ users[row]
        if exclude_history:
            s[graph.item_index[graph.user_index == row]] = -np.inf
        top = np.argsort(-s, kind="stable")[:K]
        ids.append([_item_raw(j) if np.isfinite(s[j]) else "" for j in top])
        scores.append(np.where(np.isfinite(s[top]), s[top], np.finfo(np.float32).min))  # served "no item"
    return ids, scores


def test_summary_and_layout(exported):
    _, summary, _, _ = exported
    assert (summary.model_name, summary.version) == ("lightgcn", 1)
    assert summary.details["k"] == K and summary.details["num_users"] == U
    assert (summary.export_dir / "saved_model.pb").is_file()
    assert summary.files["item_ids"].read_text().split() == [_item_raw(j) for j in range(I)]
    assert summary.files["user_ids"].read_text().split() == [_user_raw(u) for u in range(U)]


def test_known_users_get_numpy_top_k_without_their_training_items(exported):
    model, _, _, signature = exported
    rows = [3, 9, 14, 17, 5, 3]  # partial histories, an edgeless user and a repeat
    ids, scores, known = _serve(signature, [_user_raw(r) for r in rows])
    expected_ids, expected_scores = _numpy_top_k(model, rows)
    assert ids == expected_ids
    np.testing.assert_allclose(scores, np.asarray(expected_scores), rtol=1e-5, atol=1e-6)
    assert known.tolist() == [True] * len(rows)
    graph = model.graph
    for row, served in zip(rows, ids):
        history = {_item_raw(j) for j in graph.item_index[graph.user_index == row]}
        assert not history & set(served)


def test_a_user_who_has_seen_more_than_all_but_k_items(exported):
    model, _, _, signature = exported
    # User 0 has seen all 15 items, user 3 all but 3: the rest of the row is empty.
    ids, scores, known = _serve(signature, [_user_raw(0), _user_raw(3)])
    expected_ids, _ = _numpy_top_k(model, [0, 3])
    assert ids == expected_ids
    assert ids[0] == [""] * K
    assert ids[1][3:] == ["", ""] and "" not in ids[1][:3]
    assert I - int((DEGREE > 3).sum()) == 3
    assert (scores[0] == np.finfo(np.float32).min).all()
    assert known.tolist() == [True, True]


@pytest.mark.parametrize("batch", [
    ["nobody", ""],
    ["nobody", "", "u02", "U02"],  # unknown users BEFORE a known one
    ["u04", "nobody", "u02"],
])
def test_unknown_and_empty_users_get_the_most_popular_items(exported, batch):
    model, _, _, signature = exported
    ids, scores, known = _serve(signature, batch)
    popular = np.argsort(-DEGREE, kind="stable")[:K]
    expected = [_item_raw(j) for j in popular]
    rows = {raw: int(USERS.lookup(raw)) - 2 for raw in batch if raw.startswith("u")}
    assert known.tolist() == [raw in rows for raw in batch]
    for position, raw in enumerate(batch):
        if raw in rows:  # a known user's answer does not depend on its neighbours in the batch
            assert ids[position] == _numpy_top_k(model, [rows[raw]])[0][0], raw
        else:
            assert ids[position] == expected, raw
            np.testing.assert_allclose(scores[position], np.log1p(DEGREE[popular]), rtol=1e-6)


def test_an_empty_batch_works(exported):
    _, _, _, signature = exported
    out = signature(user_id=tf.constant([], tf.string))
    assert out["item_ids"].shape == (0, K)
    assert out["scores"].shape == (0, K)
    assert out["known_user"].shape == (0,)


def test_exclude_history_false_keeps_the_training_items(exported, tmp_path):
    model, _, _, _ = exported
    export_dir = tmp_path / "serving" / "lightgcn" / "2"
    export_user_topk(model, export_dir, k=K, exclude_history=False, vocabulary=ITEMS, user_vocabulary=USERS)
    signature = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    rows = [0, 7]
    ids, scores, _ = _serve(signature, [_user_raw(r) for r in rows])
    expected_ids, expected_scores = _numpy_top_k(model, rows, exclude_history=False)
    assert ids == expected_ids
    np.testing.assert_allclose(scores, np.asarray(expected_scores), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", [0, I + 1, 2.0, "3"])
def test_bad_k_raises(exported, tmp_path, k):
    model = exported[0]
    with pytest.raises(ValueError, match="k must be"):
        export_user_topk(model, tmp_path / "serving" / "m" / "1", k=k, vocabulary=ITEMS, user_vocabulary=USERS)


def test_wrong_vocabularies_raise(exported, tmp_path):
    model = exported[0]
    with pytest.raises(ValueError, match="vocabularies"):
        export_user_topk(model, tmp_path / "serving" / "m" / "1", vocabulary=Vocabulary.from_ids(range(I + 1)),
                         user_vocabulary=USERS)
    with pytest.raises(ValueError, match="vocabularies"):
        export_user_topk(model, tmp_path / "serving" / "m" / "1", vocabulary=ITEMS,
                         user_vocabulary=Vocabulary.from_ids(range(U - 1)))


def test_a_model_without_graph_raises(tmp_path):
    model = LightGCN(num_users=U, vocab_size=ITEMS.size, embedding_dim=4)
    model.build_variables()
    with pytest.raises(RuntimeError, match="set_graph"):
        export_user_topk(model, tmp_path / "serving" / "m" / "1", vocabulary=ITEMS, user_vocabulary=USERS)
