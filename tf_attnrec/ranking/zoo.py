"""Registers the ranking models in the model zoo (`create_model("din", ...)`).

They are registered through the public `register_model` API when `tf_attnrec.ranking` is
imported; importing only `tf_attnrec.models` (the sequential-retrieval paths) does not list
them. Build one with the item vocabulary size plus every feature's size:

    create_model("din", vocab_size=data.vocabularies.item.size,
                 feature_sizes=data.vocabularies.sizes(), max_length=data.max_length)
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import tensorflow as tf

from tf_attnrec.models.registry import ModelSpec, register_model
from tf_attnrec.ranking.autoint import AutoInt
from tf_attnrec.ranking.base import RankingModel
from tf_attnrec.ranking.bst import BST
from tf_attnrec.ranking.dcn import DCN
from tf_attnrec.ranking.din import DIN
from tf_attnrec.ranking.embedding_mlp import EmbeddingMLP
from tf_attnrec.ranking.self_attention_ranker import SelfAttentionRanker

# Same budget for every model: embeddings, history length and MLP head.
_COMMON = {
    "feature_sizes": None,
    "embedding_dim": 16,
    "max_length": 50,
    "hidden_units": (200, 80),
    "activation": "relu",
    "dropout": 0.1,
    "embeddings_l2": 0.0,
}
TRAINING_DEFAULTS = {
    "batch_size": 1024,
    "learning_rate": 1e-3,
    "epochs": 20,
    "patience": 2,
    "train_positions_per_user": 20,
    "num_negatives": 4,
}

RANKING_MODELS: dict[str, type] = {}


def _builder(name: str, model_class: type) -> Callable[..., tf.keras.Model]:
    def build(vocab_size: int, feature_sizes: Optional[Mapping[str, int]] = None, **config: Any) -> RankingModel:
        if feature_sizes is None:
            raise ValueError(
                f"create_model({name!r}) needs feature_sizes= the table size of every ranking "
                "feature; pass feature_sizes=data.vocabularies.sizes() (see "
                "tf_attnrec.ranking.features.build_ranking_data)."
            )
        if int(feature_sizes.get("item", vocab_size)) != vocab_size:
            raise ValueError(
                f"create_model({name!r}): vocab_size={vocab_size} but feature_sizes['item']="
                f"{feature_sizes['item']}; both must be the item vocabulary size."
            )
        return model_class({**feature_sizes, "item": vocab_size}, name=name, **config)

    return build


def _register(name: str, model_class: type, description: str, **defaults: Any) -> None:
    RANKING_MODELS[name] = model_class
    register_model(
        ModelSpec(
            name=name,
            description=f"[ranking] {description}",
            encoder_defaults={**_COMMON, **defaults},
            training_defaults=TRAINING_DEFAULTS,
            builder=_builder(name, model_class),
            task="ranking",
        ),
        overwrite=True,  # re-importing the module (e.g. importlib.reload) must not fail
    )


_register("din", DIN, "DIN: target attention of the candidate over the history (Zhou et al. 2018).",
          attention_units=(80, 40), attention_activation="sigmoid", use_softmax=False)
_register("bst", BST, "BST: Transformer over history + candidate with positions (Chen et al. 2019).",
          hidden_dim=32, num_blocks=1, num_heads=2)
_register("autoint", AutoInt, "AutoInt: multi-head self-attention over feature fields (Song et al. 2019).",
          num_layers=2, num_heads=2, attention_dim=16)
_register("self_attention_ranker", SelfAttentionRanker,
          "Transformer block over user-profile, user-behaviour and candidate tokens.",
          hidden_dim=32, num_blocks=1, num_heads=2)
_register("embedding_mlp", EmbeddingMLP, "Baseline without attention: sum-pooled history + MLP (DIN base).",
          pooling="sum")
_register("dcn", DCN, "Baseline without attention: DCN-V2 cross layers (tfrs) + MLP.",
          num_cross_layers=2, projection_dim=None)
