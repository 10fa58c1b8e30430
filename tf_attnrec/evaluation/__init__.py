"""tf_attnrec.evaluation: metrics that take scores, ranks or top-k lists (never models or files).

* `ranking` — full-catalogue (and clearly labelled sampled) ranking accuracy.
* `beyond_accuracy` — coverage, novelty, intra-list diversity, popularity bias.
* `ctr` — AUC, GAUC, log loss.
"""

from tf_attnrec.evaluation.beyond_accuracy import (
    beyond_accuracy_metrics,
    catalogue_coverage,
    exposure,
    exposure_gini,
    gini_coefficient,
    intra_list_diversity,
    item_popularity,
    mean_popularity,
    novelty,
)
from tf_attnrec.evaluation.ctr import auc, ctr_metrics, gauc, log_loss
from tf_attnrec.evaluation.ranking import (
    full_catalogue_evaluate,
    rank_targets,
    ranking_metrics,
    sample_negatives,
    sampled_evaluate,
)

__all__ = [
    "auc",
    "beyond_accuracy_metrics",
    "catalogue_coverage",
    "ctr_metrics",
    "exposure",
    "exposure_gini",
    "full_catalogue_evaluate",
    "gauc",
    "gini_coefficient",
    "intra_list_diversity",
    "item_popularity",
    "log_loss",
    "mean_popularity",
    "novelty",
    "rank_targets",
    "ranking_metrics",
    "sample_negatives",
    "sampled_evaluate",
]
