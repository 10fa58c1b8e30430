"""Content-only baseline: items scored by how similar their genres and title are to the history."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from tf_attnrec.data.item_content import GENRE_SEPARATOR, ItemContent, check_item_features
from tf_attnrec.models.base import FittedWithoutGradients
from tf_attnrec.models.registry import register_model

_EXCLUDED = -1e9


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class ContentSimilarityModel(FittedWithoutGradients):
    """Mean cosine similarity of an item's content to the items of the history; no ids, no training.

    Each item is a content vector: its genre multi-hot and its title's bag of words weighted by
    inverse document frequency, each part L2-normalised, mixed `1 - title_weight` to
    `title_weight`. A history's score for item `i` is the mean, over its (last `max_length`)
    items, of their cosine with `i`. It never reads who interacted with what, so an item nobody
    has interacted with is scored like any other: the reference point for cold-start items.

    Args:
        vocab_size: Item vocabulary size.
        max_length: Most recent history items read.
        item_features: Content read: a subset of ("genres", "title").
        title_weight: Share of the title in the similarity, in [0, 1].
        item_content: The content vocabularies (`content_vocabularies`), given by the task.
        **kwargs: Standard `tf.keras.Model` arguments.

    Example:
        ```python
        model = create_model("content_similarity", vocab_size, item_content=vocabularies)
        model.set_item_content(content)
        model.score(history)  # [B, vocab_size]
        ```
    """

    fitted_by = "set_item_content(content): it reads item content only"

    def __init__(self, vocab_size: int, max_length: int = 200, item_features: Sequence[str] = ("genres", "title"),
                 title_weight: float = 0.5, item_content: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = "ContentSimilarityModel"
        self.vocab_size, self.max_length = int(vocab_size), int(max_length)
        self.item_features = list(check_item_features(item_features, owner))
        if not self.item_features or not set(self.item_features) <= {"genres", "title"}:
            raise ValueError(f"{owner}: `item_features` must be a non-empty subset of ('genres', 'title'); "
                             f"got {self.item_features}.")
        if not 0.0 <= float(title_weight) <= 1.0:
            raise ValueError(f"{owner}: `title_weight` must be in [0, 1]; got {title_weight!r}.")
        self.title_weight = float(title_weight)
        if item_content is None:
            raise ValueError(f"{owner}: needs the content vocabularies (`item_content`); train it through "
                             "`tf-attnrec train` or RetrievalTask, which reads them from the item metadata.")
        self.item_content = dict(item_content)
        self.genre_vocabulary = list(self.item_content.get("genre_vocabulary") or [])
        self.title_vocabulary = list(self.item_content.get("title_vocabulary") or [])
        width = len(self.genre_vocabulary) * ("genres" in self.item_features) + \
            len(self.title_vocabulary) * ("title" in self.item_features)
        # Row i: item i's unit-norm content vector (rows 0 and 1 stay 0).
        self.content_table = tf.Variable(tf.zeros([self.vocab_size, width]), trainable=False, name="content_table")

    def set_item_content(self, content: ItemContent) -> None:
        """Computes every item's content vector from the catalogue's `ItemContent`."""
        blocks = []
        if "genres" in self.item_features:
            genres = tf.keras.layers.StringLookup(vocabulary=self.genre_vocabulary, output_mode="multi_hot")(
                tf.strings.split(tf.constant(np.asarray(content.genres, str)), GENRE_SEPARATOR)).numpy()[:, 1:]
            blocks.append((genres, 1.0 - self.title_weight if "title" in self.item_features else 1.0))
        if "title" in self.item_features:
            words = tf.keras.layers.TextVectorization(
                standardize="lower_and_strip_punctuation", output_mode="multi_hot",
                vocabulary=self.title_vocabulary)(tf.constant(np.asarray(content.titles, str))).numpy()[:, 1:]
            # Inverse document frequency over the catalogue: "the" says little, "wars" much.
            idf = np.log((1.0 + len(words)) / (1.0 + words.sum(axis=0)))
            blocks.append((words * idf, self.title_weight if "genres" in self.item_features else 1.0))
        parts = [np.sqrt(weight) * block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
                 for block, weight in blocks]
        table = np.concatenate(parts, axis=1).astype(np.float32)
        table[:2] = 0.0
        self.content_table.assign(table)

    def adapt(self, sequences: Iterable[np.ndarray]) -> None:
        """Nothing to count: the model reads content only."""

    def score(self, history: tf.Tensor) -> tf.Tensor:
        """`[B, vocab_size]`: mean cosine to the history's items (-1e9 for rows 0 and 1)."""
        history = tf.cast(history, tf.int32)[:, -self.max_length:]
        is_item = tf.cast(history >= 2, tf.float32)[..., tf.newaxis]
        summed = tf.reduce_sum(tf.gather(self.content_table, history) * is_item, axis=1)
        profile = summed / tf.maximum(tf.reduce_sum(is_item, axis=1), 1.0)
        scores = tf.matmul(profile, self.content_table, transpose_b=True)
        excluded = tf.concat([tf.fill([2], _EXCLUDED), tf.zeros([self.vocab_size - 2])], axis=0)
        return scores + excluded

    def get_config(self) -> dict[str, Any]:
        return {"vocab_size": self.vocab_size, "max_length": self.max_length, "item_features": self.item_features,
                "title_weight": self.title_weight, "item_content": self.item_content, "name": self.name}


@register_model("retrieval", (ContentSimilarityModel,), training={}, tiny={"max_length": 8})
def content_similarity(vocab_size: int, **config: Any) -> ContentSimilarityModel:
    """Baseline without ids or attention: genre and title similarity to the history (cold start)."""
    return ContentSimilarityModel(vocab_size, name="content_similarity", **config)
