"""Sequential encoders ("backbones"): item-id history -> query vectors in the item space."""

from tf_attnrec.encoders.attention_pooling import AttentionPoolingEncoder
from tf_attnrec.encoders.base import SequenceEncoder
from tf_attnrec.encoders.mean_pooling import MeanPoolingEncoder
from tf_attnrec.encoders.recurrent_attention import RecurrentAttentionSequenceEncoder
from tf_attnrec.encoders.sasrec import SASRecEncoder

__all__ = [
    "AttentionPoolingEncoder",
    "MeanPoolingEncoder",
    "RecurrentAttentionSequenceEncoder",
    "SASRecEncoder",
    "SequenceEncoder",
]
