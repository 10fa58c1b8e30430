"""Reusable, Keras-serializable, masking-aware attention layers (no recommender logic)."""

from tf_attnrec.layers.attention import ScaledDotProductAttention
from tf_attnrec.layers.embeddings import ItemSequenceEmbedding, PositionEmbedding
from tf_attnrec.layers.multi_head_attention import MultiHeadAttention
from tf_attnrec.layers.pooling import AttentionPooling
from tf_attnrec.layers.recurrent import RecurrentAttentionEncoder
from tf_attnrec.layers.target_attention import TargetAttention
from tf_attnrec.layers.transformer import TransformerBlock

__all__ = [
    "AttentionPooling",
    "ItemSequenceEmbedding",
    "MultiHeadAttention",
    "PositionEmbedding",
    "RecurrentAttentionEncoder",
    "ScaledDotProductAttention",
    "TargetAttention",
    "TransformerBlock",
]
