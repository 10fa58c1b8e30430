"""New items without retraining: grow a content-fused model's catalogue with items nobody has met.

A model with `item_features` embeds an item from its content, and an item without training
interactions from its content alone (its id is masked). So an item added after training needs
no gradient step: append it to the vocabulary, give it the content, and it is scored exactly as a
cold item of the catalogue would be. Export the grown model as the next version and TF Serving
recommends it (`tf-attnrec export RUN --new-items FILE`).
"""

from __future__ import annotations

import os
from typing import Any, Union

import numpy as np
import pandas as pd
import tensorflow as tf

from tf_attnrec.data.errors import DataFormatError
from tf_attnrec.data.item_content import GENRE_SEPARATOR, ItemContent
from tf_attnrec.data.vocabulary import FIRST_ID, OOV_ID, Vocabulary

NEW_ITEM_COLUMNS = ("item_id", "title", "genres", "year")


def read_new_items(path: Union[str, os.PathLike]) -> pd.DataFrame:
    """A CSV of new items, `item_id,title,genres,year` (genres "A|B"; year may be empty).

    Returns:
        The items as `load_dataset(...).items` holds them (genres as tuples, year nullable).

    Raises:
        DataFormatError: a missing column, an empty file, a bad year (naming the line).
    """
    try:
        frame = pd.read_csv(path, dtype={"item_id": str, "title": str, "genres": str}, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataFormatError(f"{path}: not a CSV with columns {', '.join(NEW_ITEM_COLUMNS)} ({error}).") from error
    missing = [column for column in NEW_ITEM_COLUMNS if column not in frame.columns]
    if missing or not len(frame):
        raise DataFormatError(f"{path}: expected a header {','.join(NEW_ITEM_COLUMNS)} and at least one item; "
                              f"found columns {list(frame.columns)} and {len(frame)} row(s).")
    years = pd.to_numeric(frame["year"].replace("", None), errors="coerce")
    bad = frame["year"].ne("") & years.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataFormatError(f"{path}, line {row + 2}: year {frame['year'].iloc[row]!r} is not an integer "
                              "(leave it empty when unknown).")
    return pd.DataFrame({
        "item_id": frame["item_id"],
        "title": frame["title"],
        "genres": [tuple(g for g in text.split(GENRE_SEPARATOR) if g) for text in frame["genres"]],
        "year": years.astype("Int64"),
    })


def add_items(model: tf.keras.Model, vocabulary: Vocabulary, items: pd.DataFrame) -> tuple[tf.keras.Model, Vocabulary]:
    """A copy of `model` whose catalogue also holds `items`, and the grown vocabulary.

    The known items keep their ids and every weight; the new items get the next ids, no trained
    id (masked, as a cold item's) and their content.

    Args:
        model: A trained retrieval model with `item_features` (`model.encoder.item_tower`).
        vocabulary: Its item vocabulary.
        items: New items with `item_id`, `title`, `genres` (tuples of str) and `year`
            (`read_new_items`); raw ids of the vocabulary's type.

    Returns:
        `(grown_model, grown_vocabulary)`.

    Raises:
        ValueError: the model reads no content, or an item is already in the vocabulary.
    """
    tower = getattr(getattr(model, "encoder", None), "item_tower", None)
    if tower is None:
        raise ValueError(f"{model.name} embeds items by id only; only a model trained with item_features can "
                         "place an item it has never seen.")
    known = vocabulary.raw_ids(np.arange(FIRST_ID, vocabulary.size))
    raw = _typed_like(items["item_id"].to_numpy(), known)
    clashes = [r for r in raw if vocabulary.lookup(r) != OOV_ID]
    if clashes:
        raise ValueError(f"items {clashes[:5]} are already in the catalogue; add_items adds new items only.")
    grown = Vocabulary(np.concatenate([known, raw]))  # appended: every known id stays the same
    config = model.get_config()
    config["encoder"]["config"]["vocab_size"] = grown.size
    bigger = type(model).from_config(config)
    bigger.build_variables()
    old_size = vocabulary.size
    for old, new in zip(model.weights, bigger.weights):
        value = old.numpy()
        if value.shape != tuple(new.shape):  # a per-item table: the new rows start at zero
            value = np.concatenate([value, np.zeros((grown.size - old_size, *value.shape[1:]), value.dtype)])
        new.assign(value)
    content = ItemContent.from_items(items.assign(item_id=raw), grown)
    rows = np.arange(old_size, grown.size)
    numbers = bigger.encoder.item_tower.preprocess(np.asarray(content.titles[rows], str),
                                                   np.asarray(content.genres[rows], str), content.years[rows])
    grown_tower = bigger.encoder.item_tower
    for feature, variable in (("genres", "catalogue_genres"), ("title", "catalogue_title"), ("year", "catalogue_year")):
        if feature in numbers:
            table = getattr(grown_tower, variable)
            table.assign(tf.concat([table[:old_size], tf.cast(numbers[feature], table.dtype)], axis=0))
    return bigger, grown


def _typed_like(raw: np.ndarray, known: np.ndarray) -> np.ndarray:
    """New raw ids in the vocabulary's id type (a CSV reads "3953"; ML-1M's ids are ints)."""
    if len(known) and np.issubdtype(np.asarray(known).dtype, np.integer):
        try:
            return np.asarray([int(r) for r in raw], np.int64)
        except ValueError as error:
            raise ValueError(f"the catalogue's item ids are integers; new item ids must be too ({error}).") from error
    return np.asarray([str(r) for r in raw], object)
