"""`FusedItemEmbedding`: an item tower that fuses the id embedding with the item's content.

An id-only model has nothing to say about an item nobody has interacted with: its id row was
never trained. This tower embeds every catalogue item from its id *and* its content (genres,
title words, release year, optional user-supplied vectors), fused by `CrossModalAttention`
with the item's own id vector as the query. The id modality is masked for items without
training interactions, so a cold item is embedded from its content alone, by the same
projections that warm items train.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from tf_attnrec.data.item_content import GENRE_SEPARATOR, TRAILING_YEAR_PATTERN, ItemContent, check_item_features
from tf_attnrec.layers.checks import check_positive_int
from tf_attnrec.layers.config import ConfigFromAttributes
from tf_attnrec.layers.cross_modal_attention import CrossModalAttention
from tf_attnrec.layers.random_draws import RandomDraws

ID = "id"


def content_vocabularies(content: ItemContent, rows: np.ndarray, features: Sequence[str]) -> dict[str, Any]:
    """The tower's data-derived arguments, read from the content of the items in `rows`.

    Pass the rows of the *training* items: a title word that occurs only in cold items would get
    an embedding that training never updates, so it is left out (out-of-vocabulary, masked).

    Args:
        content: The catalogue's `ItemContent`.
        rows: int vocabulary ids of the items whose content makes the vocabularies.
        features: The tower's `item_features`.

    Returns:
        `{"title_vocabulary", "genre_vocabulary", "year_range", "vector_dim"}` for the features
        used (None for the others), to pass to `FusedItemEmbedding`.
    """
    features = check_item_features(features, "content_vocabularies")
    rows = np.asarray(rows, np.int64)
    vocabularies: dict[str, Any] = {"title_vocabulary": None, "genre_vocabulary": None, "year_range": None,
                                    "vector_dim": None}
    if "title" in features:
        vectorizer = _title_vectorizer(None, title_length=1)  # the length does not change the vocabulary
        vectorizer.adapt(tf.constant(np.asarray(content.titles[rows], str)))
        vocabularies["title_vocabulary"] = [str(w) for w in vectorizer.get_vocabulary()[2:]]  # after "" and [UNK]
    if "genres" in features:
        vocabularies["genre_vocabulary"] = content.genre_vocabulary(rows)
    if "year" in features:
        vocabularies["year_range"] = content.year_range(rows)
    if "vectors" in features:
        if content.vectors is None:
            raise ValueError("item_features has 'vectors' but no item vectors were given (--item-vectors).")
        vocabularies["vector_dim"] = int(content.vectors.shape[1])
    return vocabularies


def _title_vectorizer(vocabulary: Optional[Sequence[str]], title_length: int) -> tf.keras.layers.TextVectorization:
    # Ids: 0 = padding, 1 = out-of-vocabulary word, words from 2 (the library's item convention).
    return tf.keras.layers.TextVectorization(
        standardize="lower_and_strip_punctuation", split="whitespace", output_mode="int",
        output_sequence_length=title_length, vocabulary=None if vocabulary is None else list(vocabulary),
        name="title_vectorizer")


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class FusedItemEmbedding(ConfigFromAttributes, tf.keras.layers.Layer):
    """Catalogue item vectors fused from the id embedding and the item's content.

    Modalities, each masked where an item lacks it:
        * "id": the row of an id table the caller owns (so a sequence model keeps one item
          table); masked for items without training interactions (`set_item_counts`) and, in
          training, for a random `id_dropout` share of the others (DropoutNet, Volkovs et al.
          2017). Off by default: on ML-100K's cold split, 0.2 cut the warm items' validation
          NDCG@10 by about a third (models/sasrec/README.md, cold start).
        * "genres": the genre multi-hot.
        * "title": the mean of learned word embeddings; the title is tokenised in-graph
          (`TextVectorization`), so a SavedModel reads raw strings.
        * "year": a learned embedding of the release year (clipped to the trained range).
        * "vectors": user-supplied per-item vectors (`read_item_vectors`).
    The query of the attention is the item's id vector, or a learned "cold" query where the id
    is masked. With `id_residual` (the default) a warm item's vector is its id vector plus the
    fused vector, so warm items keep what an id-only model learns; a cold item's is the fused
    content alone, made by the same projections that the warm items train.

    The catalogue's content lives in non-trainable weights (`set_catalogue`), so a saved model
    carries it; `embed_raw` embeds items that are not in the catalogue from raw content.

    Args:
        vocab_size: Catalogue rows (item vocabulary size).
        units: Output width (the id table's width).
        item_features: The content modalities, a subset of ("genres", "title", "year", "vectors").
        title_vocabulary: Title words (from `content_vocabularies`), with "title".
        genre_vocabulary: Genre names, with "genres".
        year_range: `[first, last]` release year, with "year".
        vector_dim: Width of the user-supplied vectors, with "vectors".
        title_length: Title words read per item.
        id_dropout: Share of warm items whose id is masked per training step.
        id_residual: Add a warm item's id vector to the fused vector, so that warm items keep
            what an id-only model learns (the attention then fuses the content on top).
        content_for_warm: Fuse content into warm items too. False: a warm item is its id vector
            alone (an id-only model exactly) and only items without an id read the content; the
            content path then needs its own training signal (`SequentialRetrievalModel`'s
            `content_loss_weight`), because no warm item passes through it.
        **kwargs: Standard layer arguments.

    Example:
        ```python
        tower = FusedItemEmbedding(vocab_size, 64, ("genres", "title", "year"),
                                   **content_vocabularies(content, train_rows, ("genres", "title", "year")))
        tower.set_catalogue(content)
        tower.set_item_counts(counts)
        table = tower(id_table)                         # [vocab_size, 64]
        ```
    """

    config_keys = ("vocab_size", "units", "item_features", "title_vocabulary", "genre_vocabulary", "year_range",
                   "vector_dim", "title_length", "id_dropout", "id_residual", "content_for_warm")

    def __init__(
        self,
        vocab_size: int,
        units: int,
        item_features: Sequence[str] = ("genres", "title", "year"),
        title_vocabulary: Optional[Sequence[str]] = None,
        genre_vocabulary: Optional[Sequence[str]] = None,
        year_range: Optional[Sequence[int]] = None,
        vector_dim: Optional[int] = None,
        title_length: int = 16,
        id_dropout: float = 0.0,
        id_residual: bool = True,
        content_for_warm: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = "FusedItemEmbedding"
        self.vocab_size = check_positive_int(owner, "`vocab_size`", vocab_size, minimum=3)
        self.units = check_positive_int(owner, "`units`", units)
        self.item_features = check_item_features(item_features, owner)
        if not self.item_features:
            raise ValueError(f"{owner}: `item_features` is empty; an id-only model needs no tower.")
        self.title_length = check_positive_int(owner, "`title_length`", title_length)
        if not 0.0 <= float(id_dropout) < 1.0:
            raise ValueError(f"{owner}: `id_dropout` must be in [0, 1); got {id_dropout!r}.")
        self.id_dropout = float(id_dropout)
        self.id_residual = bool(id_residual)
        self.content_for_warm = bool(content_for_warm)
        self.draws = RandomDraws(name="random_draws")  # id dropout
        needed = {"title": ("title_vocabulary", title_vocabulary), "genres": ("genre_vocabulary", genre_vocabulary),
                  "year": ("year_range", year_range), "vectors": ("vector_dim", vector_dim)}
        for feature, (argument, value) in needed.items():
            if feature in self.item_features and not value:
                raise ValueError(
                    f"{owner}: item_features has {feature!r} but `{argument}` is {value!r}; build it with "
                    "content_vocabularies(content, train_rows, item_features).")
        self.title_vocabulary = None if title_vocabulary is None else [str(w) for w in title_vocabulary]
        self.genre_vocabulary = None if genre_vocabulary is None else [str(g) for g in genre_vocabulary]
        self.year_range = None if year_range is None else [int(y) for y in year_range]
        self.vector_dim = None if vector_dim is None else int(vector_dim)

        widths = {ID: units}
        if "genres" in self.item_features:
            self.genre_lookup = tf.keras.layers.StringLookup(
                vocabulary=self.genre_vocabulary, output_mode="multi_hot", num_oov_indices=1, name="genre_lookup")
            widths["genres"] = len(self.genre_vocabulary)
        if "title" in self.item_features:
            self.title_vectorizer = _title_vectorizer(self.title_vocabulary, title_length)
            self.word_embeddings = tf.keras.layers.Embedding(len(self.title_vocabulary) + 2, units,
                                                             name="word_embeddings")
            widths["title"] = units
        if "year" in self.item_features:
            first, last = self.year_range
            self.year_embeddings = tf.keras.layers.Embedding(last - first + 2, units, name="year_embeddings")
            widths["year"] = units
        if "vectors" in self.item_features:
            widths["vectors"] = self.vector_dim
        self.attention = CrossModalAttention(units, widths, query_dim=units, name="cross_modal_attention")
        self.modality_names = tuple(widths)

    def build(self, input_shape: Any = None) -> None:
        def table(name: str, shape: list, dtype: Any) -> tf.Variable:
            return self.add_weight(name=name, shape=shape, dtype=dtype, initializer="zeros", trainable=False)

        size = self.vocab_size
        self.id_present = table("id_present", [size], tf.float32)
        self.cold_query = self.add_weight(name="cold_query", shape=[self.units], initializer="glorot_uniform")
        if "genres" in self.item_features:
            self.catalogue_genres = table("catalogue_genres", [size, len(self.genre_vocabulary)], tf.float32)
        if "title" in self.item_features:
            self.catalogue_title = table("catalogue_title", [size, self.title_length], tf.int32)
            self.word_embeddings.build([None])
        if "year" in self.item_features:
            self.catalogue_year = table("catalogue_year", [size], tf.int32)
            self.year_embeddings.build([None])
        if "vectors" in self.item_features:
            self.catalogue_vectors = table("catalogue_vectors", [size, self.vector_dim], tf.float32)
            self.catalogue_vector_present = table("catalogue_vector_present", [size], tf.float32)
        super().build(input_shape)

    # ------------------------------------------------------------------ content -> numbers
    def preprocess(self, titles: Any = None, genres: Any = None, years: Any = None) -> dict[str, tf.Tensor]:
        """Raw content `[N]` (str titles, "A|B" genres, int years; 0 = unknown) as the tower's numbers.

        Returns:
            `{"genres": float [N, G], "title": int [N, T] word ids, "year": int [N] year index
            (0 = unknown)}` for the tower's features.
        """
        numbers: dict[str, tf.Tensor] = {}
        if "genres" in self.item_features:
            parts = tf.strings.split(tf.reshape(tf.convert_to_tensor(genres, tf.string), [-1]), GENRE_SEPARATOR)
            numbers["genres"] = tf.cast(self.genre_lookup(parts)[:, 1:], tf.float32)  # column 0: unknown genre
        if "title" in self.item_features:
            tokens = self.title_vectorizer(tf.reshape(tf.convert_to_tensor(titles, tf.string), [-1]))
            numbers["title"] = tf.cast(tokens, tf.int32)
        if "year" in self.item_features:
            first, last = self.year_range
            # In int64, as a request may send them: an int32 cast would wrap 2**32 + 1995 to 1995.
            years = tf.reshape(tf.cast(years, tf.int64), [-1])
            # A year outside the trained range takes its nearest trained year; 0 and below are unknown.
            index = tf.where(years > 0, tf.clip_by_value(years, first, last) - first + 1, 0)
            numbers["year"] = tf.cast(index, tf.int32)
        return numbers

    def set_catalogue(self, content: ItemContent) -> None:
        """Stores the catalogue's content (row-aligned with the item vocabulary) in the weights."""
        if content.size != self.vocab_size:
            raise ValueError(f"FusedItemEmbedding: the content has {content.size} rows; the tower {self.vocab_size}.")
        if not self.built:
            self.build(None)
        numbers = self.preprocess(np.asarray(content.titles, str), np.asarray(content.genres, str),
                                  np.asarray(content.years, np.int32))
        if "genres" in numbers:
            self.catalogue_genres.assign(numbers["genres"])
        if "title" in numbers:
            self.catalogue_title.assign(numbers["title"])
        if "year" in numbers:
            self.catalogue_year.assign(numbers["year"])
        if "vectors" in self.item_features:
            if content.vectors is None or content.vectors.shape[1] != self.vector_dim:
                raise ValueError(f"FusedItemEmbedding: expected item vectors of width {self.vector_dim}; got "
                                 f"{None if content.vectors is None else content.vectors.shape[1]}.")
            self.catalogue_vectors.assign(np.asarray(content.vectors, np.float32))
            self.catalogue_vector_present.assign(np.asarray(content.vector_present, np.float32))

    def set_item_counts(self, counts: np.ndarray) -> None:
        """Marks which items have training interactions: only their id vectors are used."""
        if not self.built:
            self.build(None)
        self.id_present.assign((np.asarray(counts) > 0).astype(np.float32))

    # ------------------------------------------------------------------ fusion
    def _fuse(self, id_vectors: tf.Tensor, id_present: tf.Tensor, numbers: Mapping[str, tf.Tensor],
              vectors: Optional[tf.Tensor], vector_present: Optional[tf.Tensor],
              training: Optional[bool]) -> tuple[tf.Tensor, tf.Tensor]:
        id_present = tf.cast(id_present, tf.bool)
        if training and self.id_dropout > 0:
            id_present &= self.draws.uniform(tf.shape(id_present)) >= self.id_dropout
        inputs = {ID: id_vectors}
        mask = {ID: id_present}
        if "genres" in numbers:
            inputs["genres"] = numbers["genres"]
            mask["genres"] = tf.reduce_sum(numbers["genres"], axis=-1) > 0
        if "title" in numbers:
            words = numbers["title"]
            known = tf.cast(words > 1, tf.float32)  # 0 padding, 1 a word training never saw
            count = tf.reduce_sum(known, axis=-1, keepdims=True)
            summed = tf.reduce_sum(self.word_embeddings(words) * known[..., tf.newaxis], axis=-2)
            inputs["title"] = summed / tf.maximum(count, 1.0)
            mask["title"] = count[..., 0] > 0
        if "year" in numbers:
            inputs["year"] = self.year_embeddings(numbers["year"])
            mask["year"] = numbers["year"] > 0
        if vectors is not None:
            inputs["vectors"] = vectors
            mask["vectors"] = tf.cast(vector_present, tf.bool)
        query = tf.where(id_present[:, tf.newaxis], id_vectors, self.cold_query[tf.newaxis, :])
        fused, weights = self.attention(inputs, query, mask=mask, training=training, return_weights=True)
        if not self.content_for_warm:
            # A warm item is its id vector alone; its weights say so (all on the id).
            fused = tf.where(id_present[:, tf.newaxis], id_vectors, fused)
            only_id = tf.one_hot(tf.zeros_like(id_present, tf.int32), len(self.modality_names))
            weights = tf.where(id_present[:, tf.newaxis], only_id, weights)
        elif self.id_residual:
            # A warm item keeps its id vector whole, as an id-only model has it, and adds the fused
            # content; a cold (or id-dropped) item is the fused content alone.
            fused += id_vectors * tf.cast(id_present, id_vectors.dtype)[:, tf.newaxis]
        return fused, weights

    def _catalogue_numbers(self) -> tuple[dict[str, tf.Tensor], Optional[tf.Tensor], Optional[tf.Tensor]]:
        numbers = {}
        if "genres" in self.item_features:
            numbers["genres"] = self.catalogue_genres
        if "title" in self.item_features:
            numbers["title"] = self.catalogue_title
        if "year" in self.item_features:
            numbers["year"] = self.catalogue_year
        return numbers, getattr(self, "catalogue_vectors", None), getattr(self, "catalogue_vector_present", None)

    def content_table(self, id_table: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        """`[vocab_size, units]`: every catalogue item embedded from its content alone, as a cold item is.

        What a warm item would be if it had no interactions; the content path's training target
        (`SequentialRetrievalModel`'s `content_loss_weight`).
        """
        numbers, vectors, present = self._catalogue_numbers()
        content, _ = self._fuse(id_table, tf.zeros([self.vocab_size]), numbers, vectors, present, training)
        return tf.concat([tf.zeros_like(content[:2]), content[2:]], axis=0)

    def call(self, id_table: tf.Tensor, training: Optional[bool] = None, return_weights: bool = False) -> Any:
        """The fused catalogue `[vocab_size, units]` (and weights `[vocab_size, M]` if asked).

        Args:
            id_table: float `[vocab_size, units]`, the id embedding table.
            training: Enables id dropout.
            return_weights: Also return each item's modality weights, in `modality_names` order.
        """
        numbers, vectors, present = self._catalogue_numbers()
        fused, weights = self._fuse(id_table, self.id_present, numbers, vectors, present, training)
        # Padding (row 0) and out-of-vocabulary (row 1) are never items: exactly zero.
        fused = tf.concat([tf.zeros_like(fused[:2]), fused[2:]], axis=0)
        return (fused, weights) if return_weights else fused

    def embed_raw(self, titles: Any = None, genres: Any = None, years: Any = None,
                  vectors: Any = None, vector_present: Any = None) -> tuple[tf.Tensor, tf.Tensor]:
        """Vectors `[N, units]` and modality weights `[N, M]` of items given by raw content only.

        For items the model has never seen (added after training): the id modality is masked,
        exactly as for a cold catalogue item. A title's trailing "(year)" is dropped, as it is
        for catalogue titles (`item_content.title_text`).
        """
        if titles is not None:
            titles = tf.strings.regex_replace(tf.convert_to_tensor(titles, tf.string), TRAILING_YEAR_PATTERN, "")
        numbers = self.preprocess(titles, genres, years)
        size = tf.shape(next(iter(numbers.values())))[0] if numbers else tf.shape(vectors)[0]
        id_vectors = tf.zeros([size, self.units])
        if vectors is not None:
            vectors = tf.cast(vectors, tf.float32)
            vector_present = tf.ones([size]) if vector_present is None else vector_present
        return self._fuse(id_vectors, tf.zeros([size]), numbers, vectors, vector_present, training=False)
