"""SavedModel export for TF Serving: `export_retrieval`, `export_run`."""

from tf_attnrec.export.retrieval import (
    ITEM_EMBEDDINGS_FILE,
    ITEM_IDS_FILE,
    default_scann_options,
    export_retrieval,
    export_run,
)
from tf_attnrec.export.summary import ExportSummary, TensorInfo

__all__ = [
    "ExportSummary",
    "ITEM_EMBEDDINGS_FILE",
    "ITEM_IDS_FILE",
    "TensorInfo",
    "default_scann_options",
    "export_retrieval",
    "export_run",
]
