"""The model zoo: every family's module, each registering its models beside their definition.

Importing this package registers every family, so `create_model` and `list_models` see them
all. A new family is one module here with its `@register_model` builder: nothing else lists it.
"""

import importlib as _importlib
import pkgutil as _pkgutil

# Every module of this package is imported, so a new family registers by existing.
for _module in _pkgutil.iter_modules(__path__):
    _importlib.import_module(f"{__name__}.{_module.name}")

from tf_attnrec.models.attention_pooling import AttentionPoolingEncoder
from tf_attnrec.models.autoint import AutoInt
from tf_attnrec.models.base import RecommenderModel
from tf_attnrec.models.bst import BST
from tf_attnrec.models.dcn import DCN
from tf_attnrec.models.din import DIN
from tf_attnrec.models.embedding_mlp import EmbeddingMLP
from tf_attnrec.models.item_similarity import FISM, NAIS
from tf_attnrec.models.lstm_attention import RecurrentAttentionSequenceEncoder
from tf_attnrec.models.mean_pooling import MeanPoolingEncoder
from tf_attnrec.models.popularity import PopularityModel
from tf_attnrec.models.ranking import RankingModel
from tf_attnrec.models.registry import ModelSpec, create_model, get_model_spec, list_models, register_model
from tf_attnrec.models.sasrec import SASRecEncoder
from tf_attnrec.models.self_attention_ranker import SelfAttentionRanker
from tf_attnrec.models.sequence_encoder import SequenceEncoder
from tf_attnrec.models.sequential_retrieval import SequentialRetrievalModel

__all__ = [
    "AttentionPoolingEncoder",
    "AutoInt",
    "BST",
    "DCN",
    "DIN",
    "EmbeddingMLP",
    "FISM",
    "MeanPoolingEncoder",
    "ModelSpec",
    "NAIS",
    "PopularityModel",
    "RankingModel",
    "RecommenderModel",
    "RecurrentAttentionSequenceEncoder",
    "SASRecEncoder",
    "SelfAttentionRanker",
    "SequenceEncoder",
    "SequentialRetrievalModel",
    "create_model",
    "get_model_spec",
    "list_models",
    "register_model",
]
