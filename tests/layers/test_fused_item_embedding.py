"""FusedItemEmbedding: masking of the id and of missing content, raw-content embedding, config."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

from tf_attnrec.data.item_content import ItemContent
from tf_attnrec.layers.fused_item_embedding import FusedItemEmbedding, content_vocabularies

D = 8
FEATURES = ("genres", "title", "year")
# Rows 0, 1: padding, OOV. Row 5 has no content at all; row 6 only an unknown genre and word.
CONTENT = ItemContent(
    titles=np.array(["", "", "Star Wars", "The Empire Strikes Back", "Toy Story", "", "Zzyzx"], object),
    genres=np.array(["", "", "Action|Sci-Fi", "Action|Sci-Fi", "Animation|Comedy", "", "Western"], object),
    years=np.array([0, 0, 1977, 1980, 1995, 0, 0], np.int32),
)
TRAINED = np.array([2, 3, 4])  # items with training interactions; 5 and 6 are cold
COUNTS = np.array([0, 0, 5, 3, 2, 0, 0])


def make_tower(features=FEATURES, **options) -> FusedItemEmbedding:
    tf.keras.utils.set_random_seed(3)
    tower = FusedItemEmbedding(len(CONTENT.titles), D, features,
                               **content_vocabularies(CONTENT, TRAINED, features), **options)
    tower.set_catalogue(CONTENT)
    tower.set_item_counts(COUNTS)
    return tower


def id_table(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=[len(CONTENT.titles), D]).astype(np.float32)


def test_vocabularies_come_from_the_trained_items_only():
    vocabularies = content_vocabularies(CONTENT, TRAINED, FEATURES)
    assert "zzyzx" not in vocabularies["title_vocabulary"] and "star" in vocabularies["title_vocabulary"]
    assert vocabularies["genre_vocabulary"] == ["Action", "Animation", "Comedy", "Sci-Fi"]
    assert vocabularies["year_range"] == [1977, 1995]


def test_cold_items_ignore_their_id_row_and_warm_items_use_it():
    tower = make_tower()
    table = id_table()
    fused, weights = tower(table, return_weights=True)
    changed = table.copy()
    changed[[3, 5]] += 10.0  # a warm item (3) and a cold one (5)
    refused = tower(changed).numpy()
    np.testing.assert_allclose(refused[5], fused.numpy()[5], atol=1e-6)
    assert not np.allclose(refused[3], fused.numpy()[3])
    weights = weights.numpy()
    assert weights[5, 0] == 0 and weights[6, 0] == 0
    assert (weights[2:5, 0] > 0).all()


def test_a_cold_catalogue_item_equals_a_new_item_with_the_same_content():
    tower = make_tower()
    fused = tower(id_table()).numpy()
    raw, raw_weights = tower.embed_raw(["Star Wars"], ["Action|Sci-Fi"], [1977])
    cold = make_tower()
    cold.set_item_counts(np.zeros_like(COUNTS))  # item 2 now has no training interactions
    np.testing.assert_allclose(raw.numpy()[0], cold(id_table()).numpy()[2], rtol=1e-5, atol=1e-6)
    assert not np.allclose(raw.numpy()[0], fused[2])  # warm, its id counts
    assert raw_weights.numpy()[0, 0] == 0 and raw_weights.numpy()[0].sum() == pytest.approx(1.0, abs=1e-6)


def test_rows_without_anything_are_zero_and_finite():
    tower = make_tower()
    fused, weights = tower(id_table(), return_weights=True)
    fused, weights = fused.numpy(), weights.numpy()
    assert np.isfinite(fused).all() and np.isfinite(weights).all()
    assert (fused[:2] == 0).all() and (fused[5] == 0).all() and (weights[5] == 0).all()
    # Unknown genre, unknown word, unknown year: every modality masked, nothing fails.
    raw, raw_weights = tower.embed_raw(["Qwerty"], ["Nonexistent"], [0])
    assert np.isfinite(raw.numpy()).all() and (raw.numpy() == 0).all() and (raw_weights.numpy() == 0).all()
    assert np.allclose(fused[6], 0)  # "Zzyzx" and "Western" were never trained on: masked


def test_years_outside_the_trained_range_take_the_nearest_year():
    tower = make_tower(("year",))
    late, _ = tower.embed_raw(years=[2030])
    last, _ = tower.embed_raw(years=[1995])
    np.testing.assert_allclose(late.numpy(), last.numpy())


def test_id_dropout_only_in_training():
    tower = make_tower(id_dropout=0.5)
    table = id_table()
    inference = [tower(table, training=False).numpy() for _ in range(2)]
    np.testing.assert_array_equal(inference[0], inference[1])
    tf.keras.utils.set_random_seed(0)
    trained = np.stack([tower(table, training=True).numpy() for _ in range(8)])
    assert not np.allclose(trained, inference[0][None])


def test_gradients_reach_every_trainable_weight():
    tower = make_tower()
    table = tf.constant(id_table())
    with tf.GradientTape() as tape:
        tape.watch(table)
        loss = tf.reduce_sum(tower(table) ** 2)
    gradients = tape.gradient(loss, [table, *tower.trainable_weights])
    assert all(np.isfinite(g if isinstance(g, np.ndarray) else tf.convert_to_tensor(g).numpy()).all()
               for g in gradients)
    assert (tf.convert_to_tensor(gradients[0]).numpy()[[5, 6]] == 0).all(), "cold ids get no gradient"


def test_without_content_for_warm_a_warm_item_is_its_id_and_a_cold_one_its_content():
    tower = make_tower(content_for_warm=False)
    table = id_table()
    fused, weights = tower(table, return_weights=True)
    content = tower.content_table(table).numpy()
    np.testing.assert_array_equal(fused.numpy()[2:5], table[2:5])  # warm: an id-only model exactly
    np.testing.assert_allclose(fused.numpy()[5:], content[5:], atol=1e-6)  # cold: the content alone
    np.testing.assert_array_equal(weights.numpy()[2:5], np.eye(weights.shape[1])[[0, 0, 0]])
    # The content table is what each item would be as a cold item: its id never counts.
    changed = table.copy()
    changed[2:5] += 10.0
    np.testing.assert_allclose(tower.content_table(changed).numpy(), content, atol=1e-6)
    assert (content[:2] == 0).all() and not np.allclose(content[2], content[4])
    raw, _ = tower.embed_raw(["Star Wars"], ["Action|Sci-Fi"], [1977])
    np.testing.assert_allclose(raw.numpy()[0], content[2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("options", [{}, {"content_for_warm": False}])
def test_config_round_trip(options):
    tower = make_tower(**options)
    expected = tower(id_table()).numpy()
    config = json.loads(json.dumps(tower.get_config()))
    clone = FusedItemEmbedding.from_config(config)
    assert clone.get_config() == tower.get_config()
    clone(id_table())
    clone.set_weights(tower.get_weights())  # the catalogue's content is in the weights
    np.testing.assert_allclose(clone(id_table()).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"item_features": ("colour",)}, "item_features"),
    ({"item_features": ()}, "empty"),
    ({"item_features": ("title",)}, "title_vocabulary"),
    ({"item_features": ("genres",), "genre_vocabulary": ["A"], "id_dropout": 1.0}, "id_dropout"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FusedItemEmbedding(7, D, **kwargs)


def test_user_supplied_vectors_are_a_modality_and_a_missing_one_is_masked():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=[len(CONTENT.titles), 5]).astype(np.float32)
    present = np.array([False, False, True, True, False, True, True])
    content = ItemContent(CONTENT.titles, CONTENT.genres, CONTENT.years, vectors, present)
    tf.keras.utils.set_random_seed(3)
    tower = FusedItemEmbedding(len(CONTENT.titles), D, ("genres", "vectors"),
                               **content_vocabularies(content, TRAINED, ("genres", "vectors")))
    tower.set_catalogue(content)
    tower.set_item_counts(COUNTS)
    assert tower.modality_names == ("id", "genres", "vectors")
    fused, weights = tower(id_table(), return_weights=True)
    weights = weights.numpy()
    assert (weights[present & (np.arange(7) >= 2), 2] > 0).all() and weights[4, 2] == 0  # item 4: no vector
    # Item 5 has only a vector: it is that vector's projection, whatever the vector of item 4 holds.
    changed = vectors.copy()
    changed[4] = 1e6
    tower.set_catalogue(ItemContent(CONTENT.titles, CONTENT.genres, CONTENT.years, changed, present))
    np.testing.assert_allclose(tower(id_table()).numpy(), fused.numpy(), rtol=1e-6)
    raw, raw_weights = tower.embed_raw(genres=["Action|Sci-Fi"], vectors=vectors[5:6])
    assert raw_weights.numpy()[0, 2] > 0 and raw_weights.numpy()[0, 0] == 0
    with pytest.raises(ValueError, match="no item vectors"):
        content_vocabularies(CONTENT, TRAINED, ("vectors",))

