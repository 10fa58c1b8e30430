"""Reusable, Keras-serializable, masking-aware attention and graph layers (no recommender logic)."""

from tf_attnrec.layers.attention import ScaledDotProductAttention
from tf_attnrec.layers.cross_modal_attention import CrossModalAttention
from tf_attnrec.layers.dropout import ByteDropout
from tf_attnrec.layers.embeddings import ItemSequenceEmbedding, PositionEmbedding
from tf_attnrec.layers.experts import ExtractionLevel, MultiGateExperts
from tf_attnrec.layers.fused_item_embedding import FusedItemEmbedding, content_vocabularies
from tf_attnrec.layers.gated_graph import GatedGraphConvolution, SessionGraph, session_graph
from tf_attnrec.layers.graph_attention import GraphAttention
from tf_attnrec.layers.graph_convolution import GraphConvolution, normalize_adjacency
from tf_attnrec.layers.graph_sage import GraphSAGE
from tf_attnrec.layers.item_similarity import ItemSimilarityAttention
from tf_attnrec.layers.multi_head_attention import MultiHeadAttention
from tf_attnrec.layers.pooling import AttentionPooling
from tf_attnrec.layers.random_draws import RandomDraws
from tf_attnrec.layers.recurrent import RecurrentAttentionEncoder
from tf_attnrec.layers.target_attention import TargetAttention
from tf_attnrec.layers.transformer import TransformerBlock

__all__ = [
    "AttentionPooling",
    "ByteDropout",
    "CrossModalAttention",
    "ExtractionLevel",
    "FusedItemEmbedding",
    "GatedGraphConvolution",
    "GraphAttention",
    "GraphConvolution",
    "GraphSAGE",
    "ItemSequenceEmbedding",
    "ItemSimilarityAttention",
    "MultiGateExperts",
    "MultiHeadAttention",
    "PositionEmbedding",
    "RandomDraws",
    "RecurrentAttentionEncoder",
    "ScaledDotProductAttention",
    "SessionGraph",
    "TargetAttention",
    "TransformerBlock",
    "content_vocabularies",
    "normalize_adjacency",
    "session_graph",
]
