"""Model zoo registry: `create_model(name, vocab_size=..., **overrides)` builds any model."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional

import tensorflow as tf

from tf_attnrec.encoders.attention_pooling import AttentionPoolingEncoder
from tf_attnrec.encoders.mean_pooling import MeanPoolingEncoder
from tf_attnrec.encoders.recurrent_attention import RecurrentAttentionSequenceEncoder
from tf_attnrec.encoders.sasrec import SASRecEncoder
from tf_attnrec.models.popularity import PopularityModel
from tf_attnrec.models.sequential_retrieval import SequentialRetrievalModel

# Keyword arguments of SequentialRetrievalModel that a config may set (the rest go to the
# encoder).
_TASK_KEYS = ("loss", "num_negatives", "max_retrieval_queries", "prefixes_per_sequence", "temperature")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How to build one zoo model.

    Attributes:
        name: Registry name.
        description: One line for `list_models(details=True)` and model cards.
        encoder: Encoder class (None for models without one, e.g. popularity).
        encoder_defaults: Default encoder keyword arguments (besides `vocab_size`).
        task_defaults: Default `SequentialRetrievalModel` keyword arguments.
        training_defaults: Default `train_sequential` keyword arguments.
        builder: Optional custom builder `(vocab_size, **config) -> tf.keras.Model`.
        task: "retrieval" (next-item models trained by `train_sequential`) or "ranking"
            (click models of `tf_attnrec.ranking`, trained by `train_ranker`).
    """

    name: str
    description: str
    encoder: Optional[type] = None
    encoder_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    task_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    training_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    builder: Optional[Callable[..., tf.keras.Model]] = None
    task: str = "retrieval"

    def default_config(self) -> dict[str, Any]:
        """Flat default model config (encoder + task keys)."""
        return {**self.encoder_defaults, **self.task_defaults}


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec, overwrite: bool = False) -> ModelSpec:
    """Adds a model to the zoo.

    Args:
        spec: The `ModelSpec`.
        overwrite: Replace an existing entry of the same name.

    Returns:
        The spec (so it can be used as a one-liner).

    Example:
        >>> register_model(ModelSpec("tiny_mean", "demo", MeanPoolingEncoder,
        ...                          {"embedding_dim": 8}), overwrite=True).name
        'tiny_mean'
    """
    if spec.name in _REGISTRY and not overwrite:
        raise ValueError(
            f"A model named {spec.name!r} is already registered; pass overwrite=True to replace it."
        )
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[str]:
    """Names of all registered models, sorted.

    Returns:
        e.g. ["attention_pooling", "lstm_attention", "mean_pooling", "popularity", "sasrec"].

    Example:
        >>> "sasrec" in list_models()
        True
    """
    return sorted(_REGISTRY)


def get_model_spec(name: str) -> ModelSpec:
    """The `ModelSpec` registered under `name` (KeyError with the valid names otherwise)."""
    if name not in _REGISTRY:
        raise KeyError(f"Unknown model {name!r}; registered models: {list_models()}.")
    return _REGISTRY[name]


def default_training_config(name: str) -> dict[str, Any]:
    """Default `train_sequential` keyword arguments for a zoo model."""
    return dict(get_model_spec(name).training_defaults)


def create_model(name: str, vocab_size: int, **overrides: Any) -> tf.keras.Model:
    """Builds a zoo model from its defaults plus `overrides`.

    Args:
        name: A name from `list_models()`.
        vocab_size: Number of item ids including padding and OOV (`vocabulary.size`).
        **overrides: Encoder keys (e.g. `hidden_dim`, `max_length`, `dropout`, `cell`) and
            task keys (`loss`, `num_negatives`, `max_retrieval_queries`,
            `prefixes_per_sequence`, `temperature`) replacing the defaults.

    Returns:
        A `SequentialRetrievalModel` (or `PopularityModel` for "popularity").

    Raises:
        KeyError: Unknown model name.
        ValueError: An override key that the model does not accept.

    Example:
        >>> model = create_model("sasrec", vocab_size=100, hidden_dim=16, max_length=20)
        >>> model.encoder.hidden_dim
        16
    """
    spec = get_model_spec(name)
    defaults = spec.default_config()
    unknown = sorted(set(overrides) - set(defaults) - {"max_length"})
    if unknown:
        raise ValueError(
            f"create_model({name!r}): unknown config keys {unknown}; {name!r} accepts "
            f"{sorted(defaults)}."
        )
    config = {**defaults, **overrides}
    if spec.builder is not None:
        return spec.builder(vocab_size=vocab_size, **config)
    encoder_kwargs = {k: v for k, v in config.items() if k not in _TASK_KEYS}
    task_kwargs = {k: v for k, v in config.items() if k in _TASK_KEYS}
    encoder = spec.encoder(vocab_size=vocab_size, **encoder_kwargs)
    return SequentialRetrievalModel(encoder, name=name, **task_kwargs)


_COMMON_TRAINING = {
    "batch_size": 128,
    "learning_rate": 1e-3,
    "epochs": 200,
    "patience": 10,
    "eval_every": 2,
}

register_model(
    ModelSpec(
        name="sasrec",
        description="SASRec: causal self-attention over the item sequence, full softmax (SASRec+).",
        encoder=SASRecEncoder,
        encoder_defaults={
            "max_length": 200,
            "hidden_dim": 64,
            "num_blocks": 2,
            "num_heads": 1,
            "ff_dim": None,
            "ff_activation": "relu",
            "dropout": 0.1,  # 0.2 measured worse on ML-1M (models/sasrec/README.md)
            "attention_dropout": None,
            "position": "learned",
            "position_alignment": "end",
            "norm_first": True,
            "initializer_range": None,
        },
        task_defaults={"loss": "softmax", "num_negatives": 1024, "max_retrieval_queries": 4096},
        # As models/sasrec/config.yaml: lower the rate on a plateau, stop after 20 passes.
        training_defaults={**_COMMON_TRAINING, "patience": 20, "reduce_lr_patience": 6},
    )
)
register_model(
    ModelSpec(
        name="lstm_attention",
        description="NARM-style LSTM (or GRU, cell='gru') plus attention over its states.",
        encoder=RecurrentAttentionSequenceEncoder,
        encoder_defaults={
            "max_length": 50,
            "embedding_dim": 64,
            "units": 64,
            "cell": "lstm",
            "attention_units": None,
            "dropout": 0.2,
        },
        task_defaults={"loss": "softmax"},
        # Every position is a target; with max_length 50 long sequences are cut into windows
        # so every training item is a target once per pass (not only the last 50).
        training_defaults={**_COMMON_TRAINING, "split_long_sequences": True},
    )
)
register_model(
    ModelSpec(
        name="attention_pooling",
        description="Last item as query, additive attention pooling over the history.",
        encoder=AttentionPoolingEncoder,
        encoder_defaults={
            "max_length": 50,
            "embedding_dim": 64,
            "attention_units": None,
            "position": "learned",
            "position_alignment": "start",
            "dropout": 0.2,
        },
        task_defaults={"loss": "softmax"},
        # Every position is a target (causal pooling); windows as for lstm_attention.
        training_defaults={**_COMMON_TRAINING, "split_long_sequences": True},
    )
)
register_model(
    ModelSpec(
        name="mean_pooling",
        description="Baseline without attention: mean of the history's item embeddings.",
        encoder=MeanPoolingEncoder,
        encoder_defaults={"max_length": 200, "embedding_dim": 64, "project": True, "dropout": 0.2},
        task_defaults={"loss": "softmax"},
        training_defaults=_COMMON_TRAINING,
    )
)
register_model(
    ModelSpec(
        name="popularity",
        description="Baseline without attention: the most popular unseen items.",
        encoder_defaults={"max_length": 200},
        builder=lambda vocab_size, **config: PopularityModel(vocab_size, name="popularity", **config),
    )
)
