"""SavedModel exports for TF Serving: shared staging and signatures, one module per output kind.

* `tf_attnrec.export.topk`: retrieval, raw-id history in -> top-k raw item ids out.
* `tf_attnrec.export.score`: ranking, raw features in -> click probability out.
* `tf_attnrec.export.cascade`: retrieval then ranking in one graph, raw history and user
  attributes in -> the ranker's top-k of retrieval's candidates out.
"""

from tf_attnrec.export.cascade import export_cascade, export_cascade_runs

from tf_attnrec.export.score import export_ranker, export_ranking_model
from tf_attnrec.export.summary import ExportSummary, TensorInfo
from tf_attnrec.export.topk import (
    ITEM_EMBEDDINGS_FILE,
    ITEM_IDS_FILE,
    default_scann_options,
    export_retrieval,
    export_run,
)

__all__ = [
    "ExportSummary",
    "ITEM_EMBEDDINGS_FILE",
    "ITEM_IDS_FILE",
    "TensorInfo",
    "default_scann_options",
    "export_cascade",
    "export_cascade_runs",
    "export_ranker",
    "export_ranking_model",
    "export_retrieval",
    "export_run",
]
