"""The ML-1M click-example pipeline on a few hundred real users."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tf_attnrec.data.datasets import load_dataset
from tf_attnrec.data.vocabulary import OOV_ID
from tf_attnrec.data import schema
from tf_attnrec.data.ranking_examples import build_ranking_data
from tf_attnrec.data.features import FeatureVocabularies

NUM_USERS = 300
MAX_LENGTH = 20
PER_USER = 5
NEGATIVES = 4


@pytest.fixture(scope="module")
def ml1m(shared_data_dir):
    data = load_dataset("ml-1m", data_dir=shared_data_dir, download=False)
    data.interactions = data.interactions[data.interactions["user_id"] <= NUM_USERS].reset_index(drop=True)
    return data


@pytest.fixture(scope="module")
def ranking(ml1m):
    return build_ranking_data(ml1m, max_length=MAX_LENGTH, train_positions_per_user=PER_USER,
                              num_negatives=NEGATIVES, seed=0)


@pytest.fixture(scope="module")
def timelines(ml1m):
    """Per raw user id, raw item ids in time order (timestamp, then row order)."""
    ordered = ml1m.interactions.sort_values(["user_id", "timestamp"], kind="stable")
    return {user: group["item_id"].to_numpy() for user, group in ordered.groupby("user_id")}


def decoded(ranking, stage):
    features = ranking.features(stage)
    vocabulary = ranking.vocabularies.item
    users = ranking.split.users[features[schema.USER_INDEX]]
    candidates = vocabulary.raw_ids(features[schema.ITEM_ID])
    return features, users, candidates


@pytest.mark.parametrize("stage", ["train", "validation", "test"])
def test_history_is_exactly_the_items_before_the_target(ranking, timelines, stage):
    features, users, candidates = decoded(ranking, stage)
    vocabulary = ranking.vocabularies.item
    positives = np.flatnonzero(features[schema.LABEL] == 1)
    assert len(positives)
    for row in positives:
        timeline = timelines[users[row]]
        (target_at,) = np.flatnonzero(timeline == candidates[row])
        history = features[schema.HISTORY_ITEM_IDS][row]
        real = history[history != 0]
        assert (history[: MAX_LENGTH - len(real)] == 0).all(), "histories are left-padded"
        expected = timeline[max(0, target_at - MAX_LENGTH):target_at]
        np.testing.assert_array_equal(vocabulary.raw_ids(real), expected)
        # The negatives right after a positive share its user and history.
        group = slice(row, row + 1 + NEGATIVES)
        assert (features[schema.LABEL][group][1:] == 0).all()
        assert (users[group] == users[row]).all()
        assert (features[schema.HISTORY_ITEM_IDS][group] == history).all()


@pytest.mark.parametrize("stage", ["train", "validation", "test"])
def test_negatives_were_never_interacted(ranking, timelines, stage):
    features, users, candidates = decoded(ranking, stage)
    negatives = np.flatnonzero(features[schema.LABEL] == 0)
    assert len(negatives) == NEGATIVES * int((features[schema.LABEL] == 1).sum())
    for row in negatives:
        assert candidates[row] not in timelines[users[row]]


def test_evaluation_sets_are_the_full_leave_one_out_sets(ranking, timelines):
    for stage, from_end in (("validation", 2), ("test", 1)):
        features, users, candidates = decoded(ranking, stage)
        positive = features[schema.LABEL] == 1
        assert sorted(users[positive]) == sorted(timelines), stage  # every user, once
        for user, item in zip(users[positive], candidates[positive]):
            assert timelines[user][-from_end] == item
        assert ranking.num_examples(stage) == len(timelines) * (1 + NEGATIVES)


def test_training_uses_the_most_recent_interactions_before_validation(ranking, timelines):
    features, users, candidates = decoded(ranking, "train")
    positive = features[schema.LABEL] == 1
    for user, timeline in timelines.items():
        targets = candidates[positive & (users == user)]
        expected = timeline[:-2][-PER_USER:]
        np.testing.assert_array_equal(np.sort(targets), np.sort(expected))


def test_side_features_match_the_metadata(ranking, ml1m):
    features, users, candidates = decoded(ranking, "test")
    vocabularies = ranking.vocabularies
    items = ml1m.items.set_index("item_id")
    people = ml1m.users.set_index("user_id")
    for row in range(0, len(candidates), 97):
        genres = features[schema.ITEM_GENRES][row]
        names = set(vocabularies.genre.raw_ids(genres[genres != 0]))
        assert names == set(items.loc[candidates[row], "genres"])
        assert vocabularies.year.raw_ids([features[schema.ITEM_YEAR][row]])[0] == items.loc[candidates[row], "year"]
        assert vocabularies.occupation.raw_ids([features[schema.USER_OCCUPATION][row]])[0] == \
            people.loc[users[row], "occupation"]
        assert vocabularies.gender.raw_ids([features[schema.USER_GENDER][row]])[0] == people.loc[users[row], "gender"]


def test_unknown_categories_map_to_oov(ranking):
    vocabularies = ranking.vocabularies
    users = pd.DataFrame({"user_id": [1, 2], "gender": ["M", "X"], "age": [25, 99],
                          "occupation": [12, 999]})
    table = vocabularies.user_table(users, [1, 2, 123456])  # 123456: no metadata row
    assert table[schema.USER_GENDER][1] == OOV_ID and table[schema.USER_GENDER][0] > OOV_ID
    assert table[schema.USER_AGE][1] == OOV_ID and table[schema.USER_OCCUPATION][1] == OOV_ID
    assert all(table[key][2] == OOV_ID for key in schema.USER_FEATURES)
    known_item = ranking.vocabularies.item.raw_ids([2])[0]
    items = pd.DataFrame({"item_id": [known_item, -5], "genres": [("Space Western",), ("Drama",)],
                          "year": pd.array([None, 1990], dtype="Int64")})
    genres, years = vocabularies.item_tables(items)
    assert genres[2, 0] == OOV_ID and years[2] == OOV_ID
    assert vocabularies.item.lookup([-5])[0] == OOV_ID
    assert (genres[0] == 0).all() and years[0] == 0  # padding stays padding


def test_vocabularies_json_round_trip(ranking):
    restored = FeatureVocabularies.from_json(ranking.vocabularies.to_json())
    assert restored.sizes() == ranking.vocabularies.sizes()
    assert restored.max_genres == ranking.vocabularies.max_genres
    assert restored.genre == ranking.vocabularies.genre


def test_bad_arguments_are_clear_errors(ml1m):
    with pytest.raises(ValueError, match="max_length"):
        build_ranking_data(ml1m, max_length=0)
    without_metadata = type(ml1m)(interactions=ml1m.interactions, name="x")
    with pytest.raises(ValueError, match="metadata"):
        build_ranking_data(without_metadata)
