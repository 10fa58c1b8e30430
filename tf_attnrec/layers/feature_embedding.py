"""`FeatureEmbedding`: one input layer that every ranking model shares."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import tensorflow as tf

from tf_attnrec.data import schema
from tf_attnrec.data.item_content import check_item_features
from tf_attnrec.layers.checks import check_positive_int
from tf_attnrec.layers.config import ConfigFromAttributes
from tf_attnrec.layers.fused_item_embedding import FusedItemEmbedding

POOLING_MODES = ("sum", "mean")


def _masked_mean(values: tf.Tensor, mask: tf.Tensor, axis: int) -> tf.Tensor:
    """Mean of `values` over `axis` counting only `mask` positions (zeros if none)."""
    weights = tf.cast(mask, values.dtype)[..., tf.newaxis]
    total = tf.reduce_sum(values * weights, axis=axis)
    count = tf.reduce_sum(weights, axis=axis)
    return total / tf.maximum(count, tf.ones_like(count))


@tf.keras.utils.register_keras_serializable(package="tf_attnrec")
class FeatureEmbedding(ConfigFromAttributes, tf.keras.layers.Layer):
    """Embeds the ranking features into per-field vectors of one size `D`.

    Fields: the user profile gives 3 fields (gender, age, occupation); every item (the
    candidate and each history item) gives 3 fields: its id, the mean of its genre
    embeddings (genre id 0 is padding and ignored) and its release year. History positions
    whose item id is 0 are padding: their field vectors are exactly zero and the returned
    mask is False there, so nothing a padded position holds (its genres, its year, the
    padding rows of the tables) can reach a model.

    Args:
        feature_sizes: table rows per feature, keys `schema.VOCABULARY_KEYS` ("item",
            "genre", "year", "gender", "age", "occupation"), e.g.
            `FeatureVocabularies.sizes()`.
        embedding_dim: D, the size of every field vector.
        embeddings_regularizer: optional regularizer of every table (e.g. "l2").
        item_features: content fused with the item id into one item field (`FusedItemEmbedding`),
            a subset of ("genres", "title", "year", "vectors"); empty: id, genre and year fields.
        item_tower_options: further `FusedItemEmbedding` arguments.
        item_content: the content vocabularies (`content_vocabularies`), from the task.
        **kwargs: standard `tf.keras.layers.Layer` arguments.

    Call arguments:
        features: dict with the `schema.MODEL_FEATURES` (extra keys are ignored).

    Returns:
        dict: "user" [B, 3, D], "candidate" [B, F, D], "history" [B, L, F, D] (zero where
        padded), "history_mask" bool [B, L]; F = 3 item fields, or 1 with `item_features`.

    Example:
        >>> layer = FeatureEmbedding({"item": 10, "genre": 5, "year": 4, "gender": 4,
        ...                           "age": 4, "occupation": 4}, embedding_dim=8)
        >>> layer.item_fields(tf.constant([2]), tf.constant([[2, 3]]), tf.constant([2])).shape
        TensorShape([1, 3, 8])
    """

    config_keys = ("feature_sizes", "embedding_dim", "embeddings_regularizer", "item_features",
                   "item_tower_options", "item_content")
    NUM_USER_FIELDS = len(schema.USER_FEATURES)

    def __init__(
        self,
        feature_sizes: Mapping[str, int],
        embedding_dim: int = 16,
        embeddings_regularizer: Any = None,
        item_features: Sequence[str] = (),
        item_tower_options: Optional[Mapping[str, Any]] = None,
        item_content: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(feature_sizes, Mapping):
            raise TypeError(
                f"FeatureEmbedding: feature_sizes must be a dict {{name: rows}} with keys "
                f"{schema.VOCABULARY_KEYS}; got {type(feature_sizes).__name__}. Pass "
                "FeatureVocabularies.sizes()."
            )
        missing = [key for key in schema.VOCABULARY_KEYS if key not in feature_sizes]
        bad = {k: v for k, v in feature_sizes.items() if not isinstance(v, int) or v < 3}
        if missing or bad:
            raise ValueError(
                f"FeatureEmbedding: feature_sizes needs keys {list(schema.VOCABULARY_KEYS)} with "
                f"ints >= 3 (padding, OOV and at least one value); missing {missing}, invalid "
                f"{bad}. Pass FeatureVocabularies.sizes()."
            )
        check_positive_int("FeatureEmbedding", "embedding_dim", embedding_dim)
        self.feature_sizes = {key: int(feature_sizes[key]) for key in schema.VOCABULARY_KEYS}
        self.embedding_dim = embedding_dim
        self.embeddings_regularizer = tf.keras.regularizers.get(embeddings_regularizer)
        self.tables = {
            key: tf.keras.layers.Embedding(
                size,
                embedding_dim,
                embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=0.05, seed=None),
                embeddings_regularizer=self.embeddings_regularizer,
                name=f"{key}_embedding",
                dtype=self.dtype_policy,
            )
            for key, size in self.feature_sizes.items()
        }
        # With `item_features`, an item is one field: its id fused with its content (genres, title,
        # year, ...) by a `FusedItemEmbedding` over the catalogue, instead of id, genre and year fields.
        self.item_features = list(check_item_features(item_features, "FeatureEmbedding"))
        self.item_tower_options = None if item_tower_options is None else dict(item_tower_options)
        self.item_content = None if item_content is None else dict(item_content)
        self.item_tower = None
        if self.item_features:
            if self.item_content is None:
                raise ValueError("FeatureEmbedding: item_features need the content vocabularies (`item_content`); "
                                 "train through the ranking task, which reads them from the item metadata.")
            self.item_tower = FusedItemEmbedding(self.feature_sizes["item"], embedding_dim, self.item_features,
                                                 **self.item_content, **(self.item_tower_options or {}),
                                                 name="item_tower")

    @property
    def num_item_fields(self) -> int:
        """Fields per item: id, genres and year; or one fused vector with `item_features`."""
        return 3 if self.item_tower is None else 1

    @property
    def item_dim(self) -> int:
        """Size of a flattened item vector (fields * D)."""
        return self.num_item_fields * self.embedding_dim

    def user_fields(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """[B, 3, D] gender, age and occupation embeddings."""
        names = ("gender", "age", "occupation")
        return tf.stack(
            [self.tables[name](self._get(features, key)) for name, key in zip(names, schema.USER_FEATURES)],
            axis=-2,
        )

    def item_fields(self, item_ids: tf.Tensor, genres: tf.Tensor, years: tf.Tensor,
                    item_table: Optional[tf.Tensor] = None) -> tf.Tensor:
        """[..., 3, D] item id, mean genre and year embeddings for ids of shape [...].

        With an item tower: [..., 1, D], rows of the fused catalogue `item_table` (computed here
        when not given; the tower reads the genres and years of its own catalogue).
        """
        if self.item_tower is not None:
            if item_table is None:
                item_table = self.fused_item_table()
            return tf.gather(item_table, item_ids)[..., tf.newaxis, :]
        genres = tf.convert_to_tensor(genres)
        genre_vectors = _masked_mean(self.tables["genre"](genres), tf.not_equal(genres, 0), axis=-2)
        return tf.stack(
            [self.tables["item"](item_ids), genre_vectors, self.tables["year"](years)], axis=-2
        )

    def fused_item_table(self, training: Optional[bool] = None) -> tf.Tensor:
        """The item tower's `[items, D]` catalogue (models with `item_features`)."""
        table = self.tables["item"]
        if not table.built:
            table.build([None])
        return self.item_tower(table.embeddings, training=training)

    def call(self, features: Mapping[str, tf.Tensor], training: Optional[bool] = None) -> dict:
        history_ids = self._get(features, schema.HISTORY_ITEM_IDS)
        mask = tf.not_equal(history_ids, 0)
        # One fused catalogue per call, for the history and the candidate alike.
        item_table = None if self.item_tower is None else self.fused_item_table(training)
        history = self.item_fields(
            history_ids,
            self._get(features, schema.HISTORY_GENRES),
            self._get(features, schema.HISTORY_YEAR),
            item_table,
        )
        # Padding never reaches a model: its fields are exactly zero, whatever they held.
        history = tf.where(mask[:, :, tf.newaxis, tf.newaxis], history, tf.zeros_like(history))
        candidate = self.item_fields(
            self._get(features, schema.ITEM_ID),
            self._get(features, schema.ITEM_GENRES),
            self._get(features, schema.ITEM_YEAR),
            item_table,
        )
        return {
            "user": self.user_fields(features),
            "candidate": candidate,
            "history": history,
            "history_mask": mask,
        }

    @staticmethod
    def pool_history(history: tf.Tensor, mask: tf.Tensor, mode: str = "mean") -> tf.Tensor:
        """Sum or mean of history vectors [B, L, ...] over the real positions -> [B, ...]."""
        if mode not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}; got {mode!r}.")
        if mode == "sum":
            weights = tf.cast(mask, history.dtype)
            weights = tf.reshape(weights, tf.concat([tf.shape(mask), tf.ones([history.shape.rank - 2], tf.int32)], 0))
            return tf.reduce_sum(history * weights, axis=1)
        flat = tf.reshape(history, tf.concat([tf.shape(history)[:2], [-1]], 0))
        pooled = _masked_mean(flat, mask, axis=1)
        return tf.reshape(pooled, tf.concat([tf.shape(history)[:1], tf.shape(history)[2:]], 0))

    @staticmethod
    def _get(features: Mapping[str, tf.Tensor], key: str) -> tf.Tensor:
        if key not in features:
            raise KeyError(
                f"Ranking features are missing {key!r}; got keys {sorted(features)}, expected "
                f"{list(schema.MODEL_FEATURES)} (see tf_attnrec.data.ranking_examples.build_ranking_data)."
            )
        return features[key]
