"""sasrec with `item_features` end to end: the cold-item split, save / reload, export with
`embed_items`, and a new item, added without retraining, recommended by the served model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec.data.dataset import Dataset
from tf_attnrec.models.new_items import add_items, read_new_items
from tf_attnrec.models.registry import get_model_spec
from tf_attnrec.tasks import get_task

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("fresh_tensorflow")]

CONFIG = {"hidden_dim": 8, "max_length": 8, "num_blocks": 1, "item_features": ["genres", "title", "year"],
          "loss_items": "trained"}
GENRES = ("Action", "Comedy", "Drama", "Horror")
WORDS = ("red", "blue", "night", "day", "city", "sea")


def dataset(seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    rows = [(user, int(item), t) for user in range(1, 41)
            for t, item in enumerate(rng.choice(np.arange(100, 140), size=int(rng.integers(6, 12)), replace=False))]
    items = pd.DataFrame({
        "item_id": np.arange(100, 140),
        "title": [" ".join(rng.choice(WORDS, 2, replace=False)) + f" ({1990 + i % 10})" for i in range(40)],
        "genres": [tuple(rng.choice(GENRES, size=int(rng.integers(1, 3)), replace=False)) for _ in range(40)],
        "year": pd.array(1990 + np.arange(40) % 10, dtype="Int64"),
    })
    users = pd.DataFrame({"user_id": np.arange(1, 41), "gender": rng.choice(["F", "M"], 40),
                          "age": rng.choice([18, 25, 35], 40), "occupation": rng.integers(0, 5, 40)})
    return Dataset(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]), items, users, name="tiny",
                   source="memory")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    task = get_task("retrieval")
    data = task.build_data(dataset(), CONFIG, {"split": "cold_items", "cold_fraction": 0.2, "split_seed": 1})
    model = task.build_model(get_model_spec("sasrec"), data, CONFIG)
    run_dir = tmp_path_factory.mktemp("fused") / "run"
    result = task.fit(model, data, epochs=2, batch_size=64, run_dir=run_dir, extra_config={"model": "sasrec"},
                      verbose=0)
    return task, data, result, run_dir


def test_cold_items_are_kept_out_of_training_and_reported_apart(trained):
    task, data, result, _ = trained
    cold = data.cold_items
    assert len(cold) == 8 and not np.isin(np.concatenate(data.train), cold).any()
    tower = result.model.encoder.item_tower
    np.testing.assert_array_equal(tower.id_present.numpy()[cold], 0)  # cold ids are masked
    for group in ("cold", "warm"):
        assert 0 <= result.test[f"{group}_ndcg@10"] <= 1
    users = data.test_is_cold[data.evaluable]
    assert users.any() and (~users).any()
    # The whole test is the users of both groups together.
    hr = result.test["hr@10"]
    assert hr == pytest.approx(users.mean() * result.test["cold_hr@10"] + (~users).mean() * result.test["warm_hr@10"])


def test_saved_run_reloads_with_the_same_scores_and_config(trained):
    task, data, result, run_dir = trained
    run = task.load_run(run_dir, {"model": "sasrec"})
    assert run.model.get_config() == result.model.get_config()
    history = tf.constant([[0, 0, 0, 0, 3, 4, 5, 6]])
    np.testing.assert_allclose(run.model.score(history).numpy(), result.model.score(history).numpy(), rtol=1e-6)
    assert task.evaluate(run.model, data)["cold_ndcg@10"] == pytest.approx(result.test["cold_ndcg@10"], abs=1e-9)


def test_embed_items_serves_the_candidate_vector_of_raw_content(trained, tmp_path, fresh_tensorflow):
    task, data, result, run_dir = trained
    run = task.load_run(run_dir, {"model": "sasrec"})
    summary = task.export(run, tmp_path / "serving" / "sasrec" / "1")
    assert "embed_items" in str(summary)
    cold = int(data.cold_items[0])
    content = data.item_content
    # The catalogue's titles lost their trailing "(year)"; a request's title loses it in the graph.
    request = {"title": [f"{content.titles[cold]} ({int(content.years[cold])})", "unheard of",
                         "\U0001f642 \u00fcn\u00efcod\u00e9 " * 200],
               "genres": [content.genres[cold], "Western", "||Drama|"], "year": [int(content.years[cold]), 0, -5]}
    served = fresh_tensorflow.serve(tmp_path / "serving" / "sasrec" / "1", request, signatures=("embed_items",))
    vectors = served["embed_items"]["item_embedding"]
    # A cold catalogue item is embedded from its content only: exactly what embed_items gives.
    np.testing.assert_allclose(vectors[0], result.model.item_embeddings.numpy()[cold], rtol=1e-5, atol=1e-6)
    assert (served["embed_items"]["modality_weights"][:, 0] == 0).all()  # no trained id
    assert np.isfinite(vectors).all() and (vectors[1] == 0).all()  # nothing known about item 2: zero, no NaN
    # Odd unicode, empty genre names and a negative year: only the known genre counts.
    assert served["embed_items"]["modality_weights"][2].tolist() == [0.0, 1.0, 0.0, 0.0]


def _tower_variables(function) -> list[str]:
    """The item tower's variables a concrete function reads."""
    return [v.name for v in function.variables if v.name.startswith("item_tower/")]


def test_a_served_request_reads_the_fused_catalogue_computed_at_export(trained, tmp_path):
    task, data, result, run_dir = trained
    run = task.load_run(run_dir, {"model": "sasrec"})
    vocabulary = run.artifacts["vocabulary"]
    export_dir = tmp_path / "serving" / "sasrec" / "3"
    task.export(run, export_dir, k=vocabulary.num_items)
    loaded = tf.saved_model.load(str(export_dir))
    serve = loaded.signatures["serving_default"]
    # embed_items runs the tower; a recommendation reads the table fused at export instead.
    assert _tower_variables(loaded.signatures["embed_items"])
    assert not _tower_variables(serve) and "fused_item_table:0" in [v.name for v in serve.variables]
    warm = [int(i) for i in range(2, vocabulary.size) if i not in data.cold_items][:5]
    served = serve(history=tf.constant([[str(r) for r in vocabulary.raw_ids(warm)]]))
    expected = run.model.score(tf.constant([[0, 0, 0, *warm]])).numpy()[0]
    served_ids = [int(vocabulary.lookup(int(raw))) for raw in served["item_ids"].numpy()[0].astype(str) if raw]
    np.testing.assert_allclose(served["scores"].numpy()[0][:len(served_ids)], expected[served_ids],
                               rtol=1e-5, atol=1e-6)
    unseen = np.setdiff1d(np.arange(2, vocabulary.size), warm)
    assert sorted(served_ids) == sorted(unseen.tolist())  # the whole catalogue but the history


def test_a_new_item_without_interactions_is_recommended(trained, tmp_path, fresh_tensorflow):
    task, data, result, run_dir = trained
    run = task.load_run(run_dir, {"model": "sasrec"})
    vocabulary = run.artifacts["vocabulary"]
    cold = int(data.cold_items[0])
    twin_of = int(vocabulary.raw_ids([cold])[0])
    content = data.item_content
    csv = tmp_path / "new_items.csv"
    csv.write_text("item_id,title,genres,year\n"
                   f"999,{content.titles[cold]},{content.genres[cold]},{content.years[cold]}\n")
    grown, grown_vocabulary = add_items(run.model, vocabulary, read_new_items(csv))
    new_id = int(grown_vocabulary.lookup(999))
    assert new_id == vocabulary.size  # appended; every known item keeps its id
    warm = [int(i) for i in range(2, vocabulary.size) if i not in data.cold_items][:4]
    history = tf.constant([[0, 0, 0, 0, *warm]])
    before, after = run.model.score(history).numpy()[0], grown.score(history).numpy()[0]
    np.testing.assert_allclose(after[:vocabulary.size], before, rtol=1e-5, atol=1e-6)  # nothing else moved
    assert after[new_id] == pytest.approx(after[cold], rel=1e-5, abs=1e-6)  # scored as its cold twin

    export_dir = tmp_path / "serving" / "sasrec" / "2"
    task.export(run, export_dir, k=vocabulary.num_items + 1, new_items=str(csv))
    raw_history = [[str(r) for r in vocabulary.raw_ids(warm)]]
    served = fresh_tensorflow.serve(export_dir, {"history": raw_history})["serving_default"]
    items, scores = list(served["item_ids"][0]), served["scores"][0]
    assert "999" in items and str(twin_of) in items
    assert scores[items.index("999")] == pytest.approx(scores[items.index(str(twin_of))], rel=1e-5)


def test_new_items_are_refused_where_they_cannot_be_placed(trained, tmp_path):
    task, data, result, run_dir = trained
    vocabulary = task.load_run(run_dir, {"model": "sasrec"}).artifacts["vocabulary"]
    known = pd.DataFrame({"item_id": [100], "title": ["x"], "genres": [("Drama",)], "year": pd.array([1990], "Int64")})
    with pytest.raises(ValueError, match="already in the catalogue"):
        add_items(result.model, vocabulary, known)
    plain = get_model_spec("sasrec").build(vocab_size=vocabulary.size, hidden_dim=8, max_length=8, num_blocks=1)
    with pytest.raises(ValueError, match="item_features"):
        add_items(plain, vocabulary, known.assign(item_id=[999]))
    bad = tmp_path / "bad.csv"
    bad.write_text("item_id,title,genres,year\n5,a,Drama,nineteen\n")
    with pytest.raises(Exception, match="line 2"):
        read_new_items(bad)


def test_modality_weights_of_a_recommendation_are_explained_and_plotted(trained, tmp_path):
    from tf_attnrec.explain_modalities import explain_modalities, format_modalities, plot_modalities

    task, data, result, run_dir = trained
    vocabulary = task.load_run(run_dir, {"model": "sasrec"}).artifacts["vocabulary"]
    user = data.users[np.flatnonzero(data.evaluable)[0]]
    explanation = explain_modalities(result.model, vocabulary, data, user, k=len(data.cold_items) + 20)
    weights = explanation["weights"]
    assert explanation["modalities"] == ["id", "genres", "title", "year"]
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)  # every item here has content
    assert explanation["cold"].any() and (weights[explanation["cold"], 0] == 0).all()
    assert (weights[~explanation["cold"], 0] > 0).all()
    history = set(data.train[np.flatnonzero(data.users == user)[0]])
    assert not history & set(vocabulary.lookup(explanation["items"]).tolist())  # seen items are not recommended
    assert "mean over cold items" in format_modalities(explanation)
    path = plot_modalities(explanation, tmp_path / "modalities.png")
    assert path.stat().st_size > 10_000


# Every ranker reads items through the same FeatureEmbedding; the two, for time.
@pytest.mark.parametrize("name", ["din", "bst"])
def test_ranking_models_fuse_items_by_config(name, tmp_path):
    """`item_features` turns a ranker's id, genre and year fields into one fused item field."""
    task = get_task("ranking")
    spec = get_model_spec(name)
    config = {**spec.tiny, "item_features": ["genres", "title", "year"]}
    options = {"train_positions_per_user": 3, "num_negatives": 1}
    data = task.build_data(dataset(), {"max_length": spec.tiny["max_length"]}, options)
    model = task.build_model(spec, data, config)
    assert model.embedding.item_tower is not None and model.embedding.item_dim == config["embedding_dim"]
    result = task.fit(model, data, epochs=1, batch_size=256, run_dir=tmp_path / "run", extra_config={"model": name},
                      verbose=0)
    assert np.isfinite(result.history["loss"]).all()
    run = task.load_run(tmp_path / "run", {"model": name})
    assert run.model.get_config() == model.get_config()
    expected = task.evaluate(model, data, "test")
    assert task.evaluate(run.model, data, "test")["auc"] == pytest.approx(expected["auc"], abs=1e-9)


def test_a_users_own_item_vectors_are_fused_and_served(tmp_path):
    """`item_vectors` (a .npy with an id file): the "vectors" modality; items without one are masked."""
    rng = np.random.default_rng(0)
    ids = np.arange(100, 135)  # items 135..139 have no vector
    np.save(tmp_path / "vectors.npy", rng.normal(size=[len(ids), 6]).astype(np.float32))
    (tmp_path / "ids.txt").write_text("\n".join(map(str, ids)) + "\n")
    task = get_task("retrieval")
    config = {**CONFIG, "item_features": ["genres", "vectors"]}
    data = task.build_data(dataset(), config, {"split": "cold_items", "cold_fraction": 0.2, "split_seed": 1,
                                               "item_vectors": str(tmp_path / "vectors.npy"),
                                               "item_vector_ids": str(tmp_path / "ids.txt")})
    model = task.build_model(get_model_spec("sasrec"), data, config)
    result = task.fit(model, data, epochs=1, batch_size=64, run_dir=tmp_path / "run", extra_config={"model": "sasrec"},
                      verbose=0)
    _, weights = result.model.encoder.item_tower(result.model.encoder.embedding.item_embeddings.embeddings,
                                                 return_weights=True)
    missing = data.vocabulary.lookup(np.arange(135, 140))
    assert (weights.numpy()[missing, 2] == 0).all() and (weights.numpy()[data.vocabulary.lookup(ids), 2] > 0).all()
    run = task.load_run(tmp_path / "run", {"model": "sasrec"})
    task.export(run, tmp_path / "serving" / "v" / "1")
    served = tf.saved_model.load(str(tmp_path / "serving" / "v" / "1")).signatures["embed_items"]
    out = served(genres=tf.constant(["Drama", ""]), vector=tf.constant(np.stack([np.ones(6), np.zeros(6)]), tf.float32))
    assert out["modality_weights"].numpy()[1].sum() == 0  # no genre, an all-zero (missing) vector: nothing
    assert out["modality_weights"].numpy()[0, 2] > 0


def test_a_ranker_with_fused_items_exports_and_serves_unknown_ids(tmp_path):
    task, spec = get_task("ranking"), get_model_spec("din")
    config = {**spec.tiny, "item_features": ["genres", "title", "year"]}
    data = task.build_data(dataset(), {"max_length": spec.tiny["max_length"]},
                           {"train_positions_per_user": 3, "num_negatives": 1})
    model = task.build_model(spec, data, config)
    task.fit(model, data, epochs=1, batch_size=256, run_dir=tmp_path / "run", extra_config={"model": "din"}, verbose=0)
    run = task.load_run(tmp_path / "run", {"model": "din"})
    task.export(run, tmp_path / "serving" / "din" / "1")
    served = tf.saved_model.load(str(tmp_path / "serving" / "din" / "1")).signatures["serving_default"]
    request = {}
    for name, spec_ in served.structured_input_signature[1].items():
        if spec_.shape.rank == 2:  # the history: known ids, an unknown one, padding
            request[name] = tf.constant([["101", "107", "999999", ""], ["", "", "", ""]])
        else:
            request[name] = tf.constant({"item_id": ["103", "999999"], "user_id": ["1", "2"], "gender": ["F", "X"],
                                         "age": ["25", "18"], "occupation": ["3", "77"]}[name])
    outputs = {key: value.numpy() for key, value in served(**request).items()}
    assert all(np.isfinite(value).all() for value in outputs.values() if value.dtype.kind == "f")


def test_the_content_loss_trains_the_content_path_only(tmp_path):
    """`content_loss_weight` with warm items by id alone: the id model's gradients are untouched."""
    task = get_task("retrieval")
    config = {**CONFIG, "item_tower_options": {"content_for_warm": False}, "content_loss_weight": 1.0}
    data = task.build_data(dataset(), config, {"split": "cold_items", "cold_fraction": 0.2, "split_seed": 1})
    model = task.build_model(get_model_spec("sasrec"), data, config)
    plain = task.build_model(get_model_spec("sasrec"), data, {**config, "content_loss_weight": 0.0})
    model.score(tf.constant([[0, 2]]))
    plain.score(tf.constant([[0, 2]]))
    plain.set_weights(model.get_weights())
    model.adapt(data.train)
    plain.adapt(data.train)
    warm = np.flatnonzero(model.encoder.item_tower.id_present.numpy())  # items with training interactions
    features = {"history": tf.constant(warm[None, :8]), "targets": tf.constant(warm[None, 1:9])}

    def gradients(m):
        with tf.GradientTape() as tape:
            loss = m.compute_loss(features, training=False)
        return loss, [None if g is None else tf.convert_to_tensor(g).numpy()
                      for g in tape.gradient(loss, m.trainable_weights)]

    loss, with_content = gradients(model)
    plain_loss, without = gradients(plain)
    assert float(loss) > float(plain_loss)
    tower = {id(w) for w in model.encoder.item_tower.trainable_weights}
    in_tower = [id(w) in tower for w in model.trainable_weights]
    for weight, inside, gradient, other in zip(model.trainable_weights, in_tower, with_content, without):
        if inside:
            # Only the content loss reaches the tower (the id-only path passes zeros through tf.where).
            assert other is None or not other.any(), weight.name
        else:
            np.testing.assert_allclose(gradient, other, rtol=1e-5, atol=1e-7, err_msg=weight.name)
    assert any(g is not None and np.abs(g).sum() > 0 for g, inside in zip(with_content, in_tower) if inside)


@pytest.mark.parametrize("config", [{"content_loss_weight": 1.0}, {"item_features": ["genres"], "loss": "bce",
                                                                  "loss_items": "all", "content_loss_weight": 1.0},
                                    {"item_features": ["genres"], "content_loss_weight": -1.0}])
def test_a_content_loss_without_its_conditions_is_refused(config):
    task = get_task("retrieval")
    data = task.build_data(dataset(), CONFIG, {"split": "cold_items", "cold_fraction": 0.2, "split_seed": 1})
    merged = {**CONFIG, "item_features": [], **config}
    with pytest.raises(ValueError, match="content_loss_weight"):
        task.build_model(get_model_spec("sasrec"), data, merged)
