"""`ItemContent`: each catalogue item's raw side information, row-aligned with the item vocabulary.

A fused item tower (`tf_attnrec.layers.fused_item_embedding`) embeds an item from its id and its
content: title words, genres, release year and, optionally, vectors a user computed elsewhere
(`tf_attnrec.data.item_vectors`). This module only gathers that content per vocabulary row, in
the raw form a serving request carries (title text, "A|B" genre strings, int years); the tower
tokenises it in-graph, so training and serving read it the same way.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from tf_attnrec.data.splits import require_columns
from tf_attnrec.data.vocabulary import FIRST_ID, Vocabulary

#: The modalities an item tower can read besides the id, in the order of its weights.
ITEM_FEATURES = ("genres", "title", "year", "vectors")
GENRE_SEPARATOR = "|"
# MovieLens titles end in the release year, "Toy Story (1995)"; the year is its own modality.
# A title's trailing "(1995)": the year is its own modality, so titles are read without it
# (here for the catalogue, in the graph for `embed_items` requests: RE2 and `re` agree on it).
TRAILING_YEAR_PATTERN = r"\s*\(\d{4}\)\s*$"
_TRAILING_YEAR = re.compile(TRAILING_YEAR_PATTERN)


def check_item_features(features: Sequence[str], owner: str) -> tuple[str, ...]:
    """`features` as a tuple, or a ValueError naming the unknown ones and the known ones."""
    if isinstance(features, str):
        features = (features,)
    features = tuple(features)
    unknown = [f for f in features if f not in ITEM_FEATURES]
    if unknown or len(set(features)) != len(features):
        raise ValueError(
            f"{owner}: `item_features` must be distinct names from {ITEM_FEATURES}; got {list(features)}."
        )
    return features


def title_text(title: Any) -> str:
    """A title without its trailing "(year)"; "" for a missing title."""
    if title is None or (isinstance(title, float) and np.isnan(title)) or title is pd.NA:
        return ""
    return _TRAILING_YEAR.sub("", str(title))


@dataclasses.dataclass
class ItemContent:
    """Raw content per item-vocabulary row (rows 0 and 1, padding and OOV, are empty).

    Args:
        titles: str `[V]`, the title without its trailing "(year)"; "" when unknown.
        genres: str `[V]`, genre names joined by "|"; "" when unknown.
        years: int32 `[V]`, the release year; 0 when unknown.
        vectors: optional float32 `[V, E]` per-item vectors (0 rows where missing).
        vector_present: bool `[V]`, which rows of `vectors` are real (required with `vectors`).

    Example:
        ```python
        content = ItemContent.from_items(data.items, split.vocabulary)
        content.titles[2], content.genres[2], content.years[2]  # ('Toy Story', "Animation|...", 1995)
        ```
    """

    titles: np.ndarray
    genres: np.ndarray
    years: np.ndarray
    vectors: Optional[np.ndarray] = None
    vector_present: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        size = len(self.titles)
        if len(self.genres) != size or len(self.years) != size:
            raise ValueError(
                f"ItemContent: titles, genres and years must have one row per vocabulary id; got "
                f"{len(self.titles)}, {len(self.genres)} and {len(self.years)} rows."
            )
        if (self.vectors is None) != (self.vector_present is None):
            raise ValueError("ItemContent: pass `vectors` and `vector_present` together.")
        if self.vectors is not None and (self.vectors.ndim != 2 or len(self.vectors) != size
                                         or self.vector_present.shape != (size,)):
            raise ValueError(
                f"ItemContent: `vectors` must be [{size}, dim] and `vector_present` [{size}]; got "
                f"{self.vectors.shape} and {self.vector_present.shape}."
            )

    @property
    def size(self) -> int:
        """Rows: the item vocabulary's `size` (items + padding + OOV)."""
        return len(self.titles)

    @classmethod
    def from_items(cls, items: pd.DataFrame, vocabulary: Vocabulary, vectors: Any = None) -> "ItemContent":
        """Aligns an item metadata table with `vocabulary`.

        Args:
            items: metadata with `item_id` (raw ids as in the interactions), `title`, `genres`
                (tuples of str) and `year` (nullable ints), as `load_dataset(...).items`.
            vocabulary: the item vocabulary of the split.
            vectors: optional `ItemVectors` (`read_item_vectors(path, vocabulary)`).

        Returns:
            The `ItemContent`. Vocabulary items without a metadata row get empty content (the
            tower masks those modalities); metadata rows of items outside the vocabulary are
            not used.

        Raises:
            ValueError: `items` lacks a column, or lists an item twice.
        """
        require_columns(items, ("item_id", "title", "genres", "year"), "ItemContent.from_items(items)",
                        allow_missing_values=True, hint="Use load_dataset(...).items or rename the columns.")
        duplicated = items["item_id"][items["item_id"].duplicated()]
        if len(duplicated):
            raise ValueError(
                f"ItemContent.from_items: item metadata lists item_id {duplicated.iloc[0]!r} more than once; "
                "expected one row per item."
            )
        size = vocabulary.size
        titles = np.full(size, "", dtype=object)
        genres = np.full(size, "", dtype=object)
        years = np.zeros(size, np.int32)
        rows = vocabulary.lookup(items["item_id"].to_numpy())
        known = rows >= FIRST_ID
        for row, title, genre_list, year in zip(rows[known], items["title"][known], items["genres"][known],
                                                items["year"][known]):
            titles[row] = title_text(title)
            if isinstance(genre_list, (tuple, list)):
                genres[row] = GENRE_SEPARATOR.join(str(g) for g in genre_list)
            years[row] = 0 if pd.isna(year) else int(year)
        if vectors is None:
            return cls(titles, genres, years)
        if len(vectors.vectors) != size:
            raise ValueError(
                f"ItemContent.from_items: the item vectors have {len(vectors.vectors)} rows, the vocabulary "
                f"{size}; read them with read_item_vectors(path, vocabulary) for this split's vocabulary."
            )
        return cls(titles, genres, years, np.asarray(vectors.vectors, np.float32),
                   np.asarray(vectors.present, bool))

    def genre_vocabulary(self, rows: Optional[np.ndarray] = None) -> list[str]:
        """Sorted genre names of `rows` (default: every item)."""
        chosen = self.genres if rows is None else self.genres[rows]
        return sorted({g for text in chosen for g in str(text).split(GENRE_SEPARATOR) if g})

    def year_range(self, rows: Optional[np.ndarray] = None) -> list[int]:
        """`[first, last]` known release year of `rows` (default: every item)."""
        chosen = self.years if rows is None else self.years[rows]
        known = chosen[chosen > 0]
        if not len(known):
            raise ValueError("ItemContent: no item has a known release year; drop 'year' from item_features.")
        return [int(known.min()), int(known.max())]
