"""`FeatureVocabularies`: the id mapping of every categorical ranking feature."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional

import numpy as np
import pandas as pd

from tf_attnrec.data.vocabulary import OOV_ID, PAD_ID, Vocabulary
from tf_attnrec.data.splits import require_columns
from tf_attnrec.data.schema import USER_AGE, USER_GENDER, USER_OCCUPATION, VOCABULARY_KEYS

_USER_COLUMNS = {USER_GENDER: "gender", USER_AGE: "age", USER_OCCUPATION: "occupation"}
_FORMAT = "tf_attnrec.FeatureVocabularies/1"


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    require_columns(frame, columns, what, allow_missing_values=True, hint=(
        "Use the metadata tables of `load_dataset('ml-1m')` (Dataset.items / Dataset.users) or rename columns."))


def _user_values(values: Any) -> np.ndarray:
    """Raw user-attribute values as int64 when all are integral (ML-1M's age and occupation
    codes), else as str (gender; ML-100K's occupation names)."""
    values = pd.Series(values).dropna()
    numeric = pd.to_numeric(values, errors="coerce")
    if len(values) and numeric.notna().all() and (numeric == numeric.round()).all():
        return numeric.astype(np.int64).to_numpy()
    return values.astype(str).to_numpy()


@dataclasses.dataclass
class FeatureVocabularies:
    """Item, genre, year and user-attribute vocabularies (0 = padding, 1 = OOV, real from 2).

    Values never seen when the vocabularies were built (a new occupation, an item without
    metadata, a missing year) map to 1, never to an error, so serving cannot crash on them.

    Args:
        item: the item `Vocabulary` (usually `SequenceSplit.vocabulary`).
        genre: genre names.
        year: release years.
        gender: user genders.
        age: user age codes.
        occupation: user occupation codes.
        max_genres: G, the width of the 0-padded genre-id arrays.

    Example:
        ```python
        vocabularies = FeatureVocabularies.from_metadata(split.vocabulary, data.items, data.users)
        vocabularies.sizes()  # {"item": 3418, "genre": 20, "year": 83, ...}
        ```
    """

    item: Vocabulary
    genre: Vocabulary
    year: Vocabulary
    gender: Vocabulary
    age: Vocabulary
    occupation: Vocabulary
    max_genres: int

    @classmethod
    def from_metadata(
        cls,
        item_vocabulary: Vocabulary,
        items: pd.DataFrame,
        users: pd.DataFrame,
        max_genres: Optional[int] = None,
    ) -> "FeatureVocabularies":
        """Builds the vocabularies from item and user metadata tables.

        Args:
            item_vocabulary: the item id `Vocabulary`.
            items: item metadata with `item_id`, `genres` (tuples of str) and `year`.
            users: user metadata with `user_id`, `gender`, `age`, `occupation`.
            max_genres: width of genre arrays; default the most genres any item has.

        Returns:
            The `FeatureVocabularies`.
        """
        _require(items, ("item_id", "genres", "year"), "FeatureVocabularies.from_metadata(items)")
        _require(users, ("user_id", *_USER_COLUMNS.values()), "FeatureVocabularies.from_metadata(users)")
        genre_lists = [tuple(g) if isinstance(g, (tuple, list)) else () for g in items["genres"]]
        longest = max((len(g) for g in genre_lists), default=1)
        if max_genres is None:
            max_genres = max(longest, 1)
        if not isinstance(max_genres, (int, np.integer)) or max_genres < 1:
            raise ValueError(f"max_genres must be a positive int; got {max_genres!r}.")
        return cls(
            item=item_vocabulary,
            genre=Vocabulary.from_ids([str(g) for genres in genre_lists for g in genres]),
            year=Vocabulary.from_ids(items["year"].dropna().astype(np.int64).to_numpy()),
            gender=Vocabulary.from_ids(users["gender"].dropna().astype(str).to_numpy()),
            age=Vocabulary.from_ids(_user_values(users["age"])),
            occupation=Vocabulary.from_ids(_user_values(users["occupation"])),
            max_genres=int(max_genres),
        )

    def sizes(self) -> dict[str, int]:
        """Embedding-table rows per feature (`feature_sizes` of the ranking models)."""
        return {key: getattr(self, key).size for key in VOCABULARY_KEYS}

    def item_tables(self, items: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Per item id, its genre ids and year id (so a pipeline can gather them by item id).

        Args:
            items: item metadata with `item_id`, `genres`, `year`.

        Returns:
            (genres int32 [item.size, max_genres], year int32 [item.size]). Row 0 (padding)
            is all 0; row 1 (OOV item) and items without metadata get genre [1, 0, ...] and
            year 1; unknown genres / years map to 1. Genres past `max_genres` are dropped
            (most items have few; raise `max_genres` to keep them).
        """
        _require(items, ("item_id", "genres", "year"), "FeatureVocabularies.item_tables")
        genres = np.zeros((self.item.size, self.max_genres), dtype=np.int32)
        years = np.zeros(self.item.size, dtype=np.int32)
        genres[OOV_ID:, 0] = OOV_ID  # no metadata -> unknown genre / year, not padding
        years[OOV_ID:] = OOV_ID
        ids = self.item.lookup(items["item_id"].to_numpy())
        known = ids != OOV_ID
        for row, item_genres in zip(ids[known], items["genres"].to_numpy()[known]):
            names = [str(g) for g in (item_genres if isinstance(item_genres, (tuple, list)) else ())]
            codes = self.genre.lookup(names[: self.max_genres]) if names else np.array([OOV_ID])
            genres[row] = PAD_ID
            genres[row, : len(codes)] = codes
        year_values = items["year"].to_numpy()[known]
        has_year = ~pd.isna(year_values)
        year_codes = np.full(len(year_values), OOV_ID, dtype=np.int32)
        if has_year.any():
            year_codes[has_year] = self.year.lookup(year_values[has_year].astype(np.int64))
        years[ids[known]] = year_codes
        return genres, years

    def user_table(self, users: pd.DataFrame, user_ids: Any) -> dict[str, np.ndarray]:
        """Encoded gender / age / occupation of the given users (rows in `user_ids` order).

        Args:
            users: user metadata with `user_id`, `gender`, `age`, `occupation`.
            user_ids: raw user ids (e.g. `SequenceSplit.users`).

        Returns:
            {"user_gender", "user_age", "user_occupation"}: int32 [len(user_ids)]. Users
            without a metadata row and unknown values get 1 (OOV).
        """
        _require(users, ("user_id", *_USER_COLUMNS.values()), "FeatureVocabularies.user_table")
        if users["user_id"].duplicated().any():
            dupes = users["user_id"][users["user_id"].duplicated()].tolist()[:5]
            raise ValueError(f"users has duplicate user_id rows {dupes}; expected one row per user.")
        rows = pd.Index(users["user_id"]).get_indexer(np.asarray(user_ids))
        table = {}
        for feature, column in _USER_COLUMNS.items():
            vocabulary = getattr(self, column)
            values = users[column].to_numpy()
            codes = np.full(len(rows), OOV_ID, dtype=np.int32)
            present = rows >= 0
            present[present] = ~pd.isna(values[rows[present]])
            if present.any():
                raw = values[rows[present]]
                raw = raw.astype(str) if column == "gender" else _user_values(raw)
                codes[present] = vocabulary.lookup(raw)
            table[feature] = codes
        return table

    def to_json(self) -> str:
        """Serialises all vocabularies (for export next to the model)."""
        payload = {key: json.loads(getattr(self, key).to_json()) for key in VOCABULARY_KEYS}
        return json.dumps({"format": _FORMAT, "max_genres": self.max_genres, **payload})

    @classmethod
    def from_json(cls, text: str) -> "FeatureVocabularies":
        """Rebuilds `FeatureVocabularies` written by `to_json`."""
        payload = json.loads(text)
        if payload.get("format") != _FORMAT:
            raise ValueError(f"Not a FeatureVocabularies JSON (format={payload.get('format')!r}).")
        vocabularies = {
            key: Vocabulary.from_json(json.dumps(payload[key])) for key in VOCABULARY_KEYS
        }
        return cls(max_genres=int(payload["max_genres"]), **vocabularies)
