"""`RankingModel`: the click-probability head and loss shared by every ranking model."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import tensorflow as tf
import tensorflow_recommenders as tfrs

from tf_attnrec.data import schema
from tf_attnrec.layers.checks import check_positive_int, is_positive_int
from tf_attnrec.layers.feature_embedding import FeatureEmbedding
from tf_attnrec.layers.transformer import TransformerBlock
from tf_attnrec.models.base import RecommenderModel, as_float32


def _check_rate(name: str, value: float) -> float:
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be a rate in [0, 1); got {value!r}.")
    return float(value)


class RankingModel(RecommenderModel):
    """Base of the ranking zoo: features -> representation -> MLP -> click logit.

    A subclass implements `represent(embedded, training)`, mapping the output of the shared
    `FeatureEmbedding` to one vector per example; this class owns the input handling, the
    MLP head and the task: `tfrs.tasks.Ranking` with binary cross-entropy on logits and an
    AUC metric (Keras' thresholded AUC, for monitoring; `evaluate_ranker` reports the exact
    AUC, GAUC and log loss).

    Args:
        feature_sizes: table rows per feature (`FeatureVocabularies.sizes()`).
        embedding_dim: D, size of every field embedding.
        max_length: L, the history length the model is fed (positions of `bst`, export).
        hidden_units: widths of the MLP head's hidden layers; () gives a linear head.
        activation: activation of the head's hidden layers.
        dropout: dropout rate in the head (and the attention blocks of the subclasses).
        embeddings_l2: L2 weight on the embedding tables (0 disables).
        item_features: content fused with each item's id into one item field (e.g. ["genres",
            "title", "year"]; `FusedItemEmbedding`); empty: id, genre and year fields.
        item_tower_options: further `FusedItemEmbedding` arguments, e.g. `{"id_dropout": 0.3}`.
        item_content: the content vocabularies, from the data (the ranking task passes them).
        **kwargs: standard `tf.keras.Model` arguments.

    Call arguments:
        features: dict with the `schema.MODEL_FEATURES`.

    Returns:
        Click logits [B]. `predict_proba(features)` returns probabilities [B].
    """

    def __init__(
        self,
        feature_sizes: Mapping[str, int],
        embedding_dim: int = 16,
        max_length: int = 50,
        hidden_units: Sequence[int] = (200, 80),
        activation: str = "relu",
        dropout: float = 0.1,
        embeddings_l2: float = 0.0,
        item_features: Sequence[str] = (),
        item_tower_options: Optional[Mapping[str, Any]] = None,
        item_content: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        hidden_units = tuple(hidden_units)
        if not all(is_positive_int(u) for u in hidden_units):
            raise ValueError(
                f"{type(self).__name__}: hidden_units must be positive ints, e.g. (64, 32); got {hidden_units!r}."
            )
        self.embedding_dim = embedding_dim
        self.max_length = check_positive_int(type(self).__name__, "max_length", max_length)
        self.hidden_units = hidden_units
        self.activation = activation
        self.dropout = _check_rate("dropout", dropout)
        self.embeddings_l2 = float(embeddings_l2)
        self.embedding = FeatureEmbedding(
            feature_sizes,
            embedding_dim,
            embeddings_regularizer=tf.keras.regularizers.L2(self.embeddings_l2) if self.embeddings_l2 else None,
            item_features=item_features,
            item_tower_options=item_tower_options,
            item_content=item_content,
            name="feature_embedding",
        )
        self.feature_sizes = self.embedding.feature_sizes
        head = []
        for index, units in enumerate(hidden_units):
            head.append(tf.keras.layers.Dense(units, activation=activation, name=f"head_{index}"))
            if self.dropout:
                head.append(tf.keras.layers.Dropout(self.dropout))
        head.append(tf.keras.layers.Dense(1, name="logit"))
        self.head = tf.keras.Sequential(head, name="head")
        self.task = tfrs.tasks.Ranking(
            # Per example, averaged in `compute_loss`: Keras refuses its batch-averaging
            # reductions in a custom training step under a tf.distribute strategy.
            loss=tf.keras.losses.BinaryCrossentropy(from_logits=True, reduction=tf.keras.losses.Reduction.NONE),
            metrics=[tf.keras.metrics.AUC(name="auc", from_logits=True)],
        )

    def represent(self, embedded: Mapping[str, tf.Tensor], training: Optional[bool] = None) -> tf.Tensor:
        """Maps `FeatureEmbedding` outputs to one vector per example [B, F]."""
        raise NotImplementedError(f"{type(self).__name__} must implement represent().")

    def call(self, features: Mapping[str, tf.Tensor], training: Optional[bool] = None) -> tf.Tensor:
        if not isinstance(features, Mapping):
            raise TypeError(
                f"{type(self).__name__} expects a dict of features {list(schema.MODEL_FEATURES)}; "
                f"got {type(features).__name__}."
            )
        embedded = self.embedding(features, training=training)
        representation = self.represent(embedded, training=training)
        return tf.squeeze(self.head(representation, training=training), axis=-1)

    def build_variables(self) -> None:
        """Calls the model on one all-padding example (table shapes do not depend on G)."""
        dummy = {name: tf.zeros([1], tf.int32) for name in (*schema.USER_FEATURES, schema.ITEM_ID, schema.ITEM_YEAR)}
        dummy[schema.ITEM_GENRES] = tf.zeros([1, 1], tf.int32)
        dummy[schema.HISTORY_ITEM_IDS] = tf.zeros([1, self.max_length], tf.int32)
        dummy[schema.HISTORY_GENRES] = tf.zeros([1, self.max_length, 1], tf.int32)
        dummy[schema.HISTORY_YEAR] = tf.zeros([1, self.max_length], tf.int32)
        self(dummy, training=False)

    def predict_proba(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """Click probabilities [B] (inference mode)."""
        return tf.sigmoid(as_float32(self(features, training=False)))

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        if schema.LABEL not in features:
            raise KeyError(
                f"Training/evaluation batches need a {schema.LABEL!r} (0/1) key; got {sorted(features)}."
            )
        logits = as_float32(self(features, training=training))
        labels = tf.cast(features[schema.LABEL], logits.dtype)
        return tf.reduce_mean(self.task(labels=labels[:, tf.newaxis], predictions=logits[:, tf.newaxis],
                                        training=training))

    @staticmethod
    def flatten_fields(fields: tf.Tensor) -> tf.Tensor:
        """[B, F, D] -> [B, F * D] (static F and D)."""
        return tf.reshape(fields, [-1, fields.shape[-2] * fields.shape[-1]])

    def get_config(self) -> dict[str, Any]:
        return {
            "feature_sizes": dict(self.feature_sizes),
            "embedding_dim": self.embedding_dim,
            "max_length": self.max_length,
            "hidden_units": list(self.hidden_units),
            "activation": self.activation,
            "dropout": self.dropout,
            "embeddings_l2": self.embeddings_l2,
            "item_features": list(self.embedding.item_features),
            "item_tower_options": self.embedding.item_tower_options,
            "item_content": self.embedding.item_content,
            "name": self.name,
        }

    def set_item_content(self, content: Any, item_counts: Any) -> None:
        """Stores the catalogue's `ItemContent` and which items have training interactions
        (models with `item_features`)."""
        tower = self.embedding.item_tower
        if tower is None:
            raise ValueError(f"the {self.name} model has no item_features; it reads item ids only.")
        tower.set_catalogue(content)
        tower.set_item_counts(item_counts)

    @classmethod
    def from_sizes(
        cls, vocab_size: int, feature_sizes: Optional[Mapping[str, int]], name: str, **config: Any
    ) -> "RankingModel":
        """Builds the model from the data's table sizes (what zoo builders do).

        Args:
            vocab_size: Item vocabulary size (`vocabularies.item.size`).
            feature_sizes: Rows per feature table (`FeatureVocabularies.sizes()`).
            name: The zoo name.
            **config: Constructor keys.

        Raises:
            ValueError: `feature_sizes` missing, or its item size differs from `vocab_size`.
        """
        if feature_sizes is None:
            raise ValueError(
                f"create_model({name!r}) needs feature_sizes= the table size of every ranking "
                "feature; pass feature_sizes=data.vocabularies.sizes() (see "
                "tf_attnrec.data.ranking_examples.build_ranking_data)."
            )
        if int(feature_sizes.get("item", vocab_size)) != vocab_size:
            raise ValueError(
                f"create_model({name!r}): vocab_size={vocab_size} but feature_sizes['item']="
                f"{feature_sizes['item']}; both must be the item vocabulary size."
            )
        return cls({**feature_sizes, "item": vocab_size}, name=name, **config)


class TransformerRankingModel(RankingModel):
    """A `RankingModel` that runs Transformer blocks over tokens (`BST`, `SelfAttentionRanker`).

    A subclass creates its own layers (e.g. the token projections), then the blocks with
    `self.blocks = self.transformer_blocks()` (so the blocks' weights come last in `weights`).

    Args:
        feature_sizes: table rows per feature (`FeatureVocabularies.sizes()`).
        hidden_dim: token width (divisible by `num_heads`).
        num_blocks: number of Transformer blocks.
        num_heads: attention heads per block.
        **kwargs: `RankingModel` arguments (embedding_dim, max_length, hidden_units,
            dropout, ...); `dropout` also applies inside the blocks.
    """

    def __init__(
        self,
        feature_sizes: Mapping[str, int],
        hidden_dim: int = 32,
        num_blocks: int = 1,
        num_heads: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(feature_sizes, **kwargs)
        self.hidden_dim = hidden_dim
        self.num_blocks = check_positive_int(type(self).__name__, "num_blocks", num_blocks)
        self.num_heads = num_heads

    def transformer_blocks(self) -> list[TransformerBlock]:
        """`num_blocks` new `TransformerBlock`s of width `hidden_dim`, named "block_<i>"."""
        return [
            TransformerBlock(self.num_heads, self.hidden_dim, dropout=self.dropout, name=f"block_{i}")
            for i in range(self.num_blocks)
        ]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"hidden_dim": self.hidden_dim, "num_blocks": self.num_blocks, "num_heads": self.num_heads})
        return config


# Config overrides that make every ranking model small enough for one test step.
TINY_RANKER = {"embedding_dim": 4, "max_length": 6, "hidden_units": [8]}
