"""Click-through-rate style ranking: ML-1M features, attention rankers and baselines.

Importing this package registers "din", "bst", "autoint", "self_attention_ranker",
"embedding_mlp" and "dcn" in the model zoo (`tf_attnrec.models.create_model`).
"""

from tf_attnrec.ranking.autoint import AutoInt
from tf_attnrec.ranking.base import RankingModel
from tf_attnrec.ranking.bst import BST
from tf_attnrec.ranking.dcn import DCN
from tf_attnrec.ranking.din import DIN
from tf_attnrec.ranking.embedding import FeatureEmbedding
from tf_attnrec.ranking.embedding_mlp import EmbeddingMLP
from tf_attnrec.ranking.features import RankingData, build_ranking_data
from tf_attnrec.ranking.self_attention_ranker import SelfAttentionRanker
from tf_attnrec.ranking.training import evaluate_ranker, train_ranker
from tf_attnrec.ranking.vocabularies import FeatureVocabularies
from tf_attnrec.ranking.zoo import RANKING_MODELS

__all__ = [
    "AutoInt",
    "BST",
    "DCN",
    "DIN",
    "EmbeddingMLP",
    "FeatureEmbedding",
    "FeatureVocabularies",
    "RANKING_MODELS",
    "RankingData",
    "RankingModel",
    "SelfAttentionRanker",
    "build_ranking_data",
    "evaluate_ranker",
    "train_ranker",
]
