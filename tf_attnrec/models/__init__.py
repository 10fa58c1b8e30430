"""Task heads (`tfrs.Model`s that own the loss) and the model-zoo registry."""

from tf_attnrec.models.popularity import PopularityModel
from tf_attnrec.models.registry import (
    ModelSpec,
    create_model,
    default_training_config,
    get_model_spec,
    list_models,
    register_model,
)
from tf_attnrec.models.saving import load_model, save_model
from tf_attnrec.models.sequential_retrieval import SequentialRetrievalModel

__all__ = [
    "ModelSpec",
    "PopularityModel",
    "SequentialRetrievalModel",
    "create_model",
    "default_training_config",
    "get_model_spec",
    "list_models",
    "load_model",
    "register_model",
    "save_model",
]
