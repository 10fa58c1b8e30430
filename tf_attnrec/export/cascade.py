"""Export a retrieval-then-ranking cascade as one TF Serving SavedModel.

Stage 1, retrieval: the history is scored against the whole catalogue (exact matmul and
`tf.math.top_k`, or a ScaNN index) and the best `candidates` items the user has not seen are
kept. Stage 2, ranking: the ranker scores each candidate with the user's attributes and
history, and the best `k` by ranker probability are returned. Both stages are the graphs of
`tf_attnrec.export.topk` and `tf_attnrec.export.score`, nested in one module, so each keeps
its own vocabularies (a candidate the ranker never saw is its out-of-vocabulary item) and
nothing but TensorFlow is needed to load the result.

Signature `serving_default` (B = batch):
    inputs: `user_id` string [B] (accepted, read by no model), `gender`, `age`, `occupation`
        string [B], `history` string [B, None] (raw item ids, most recent last, "" = padding).
    outputs: `item_ids` string [B, k], `scores` float32 [B, k] (the ranker's probability),
        `retrieval_rank` int32 [B, k] (1 = retrieval's best candidate), `retrieval_scores`
        float32 [B, k]. Where fewer than k unseen items exist, the rest of a row is "", the
        lowest float32 and rank 0. Ties in probability keep the retrieval order.
"""

from __future__ import annotations

import pathlib
from typing import Any, Mapping, Optional

import numpy as np
import tensorflow as tf

from tf_attnrec.data.features import FeatureVocabularies
from tf_attnrec.data.vocabulary import Vocabulary
from tf_attnrec.export import common
from tf_attnrec.export.score import USER_INPUT_SIGNATURE, prepare_ranking
from tf_attnrec.export.summary import ExportSummary
from tf_attnrec.export.topk import prepare_retrieval

RETRIEVAL_ITEM_IDS_FILE = "retrieval_item_ids.txt"  # the ranker's item file is score.ID_FILES["item"]
SERVING_INPUTS = tuple(spec.name for spec in USER_INPUT_SIGNATURE)


class _CascadeModule(tf.Module):
    """The retrieval module (top `candidates`) and the ranking module, joined by one signature."""

    def __init__(self, retrieval: tf.Module, ranking: tf.Module, k: int) -> None:
        super().__init__(name="cascade")
        self.retrieval = retrieval
        self.ranking = ranking
        self._k = k

    @tf.function(input_signature=USER_INPUT_SIGNATURE)
    def serve(self, user_id, gender, age, occupation, history) -> dict:
        del user_id  # accepted for clients, read by no model
        batch = tf.shape(history)[0]
        for name, tensor in (("gender", gender), ("age", age), ("occupation", occupation)):
            tf.debugging.assert_equal(tf.shape(tensor)[0], batch,
                                      message=f"`{name}` and `history` must have the same batch size")
        retrieved = self.retrieval.serve(history)
        candidates = retrieved["item_ids"]  # [B, C], "" past the unseen catalogue
        probabilities = self.ranking.candidate_probabilities(gender, age, occupation, history, candidates)
        ranked = tf.where(candidates != "", probabilities, -np.inf)
        # top_k keeps the lower index first among ties: the better retrieval rank.
        scores, columns = tf.math.top_k(ranked, k=self._k)
        valid = scores > -np.inf
        return {
            "item_ids": tf.where(valid, tf.gather(candidates, columns, batch_dims=1), ""),
            "scores": tf.where(valid, scores, tf.float32.min),
            "retrieval_rank": tf.where(valid, columns + 1, 0),
            "retrieval_scores": tf.where(valid, tf.gather(retrieved["scores"], columns, batch_dims=1),
                                         tf.float32.min),
        }


def export_cascade(
    retrieval_model: tf.keras.Model,
    ranking_model: tf.keras.Model,
    export_dir: common.PathLike,
    *,
    retrieval_vocabulary: Vocabulary,
    ranking_vocabularies: FeatureVocabularies,
    item_genres: np.ndarray,
    item_year: np.ndarray,
    candidates: int = 200,
    k: int = 10,
    index: str = "brute_force",
    scann_options: Optional[Mapping[str, Any]] = None,
    overwrite: bool = False,
) -> ExportSummary:
    """Writes one SavedModel that retrieves `candidates` unseen items and returns the ranker's top `k`.

    See the module docstring for the signature.

    Args:
        retrieval_model: A trained retrieval model (`sasrec`, `nais`, ...: anything
            `export_retrieval` exports).
        ranking_model: A trained `RankingModel` (`din`, `bst`, ...).
        export_dir: `serving/<name>/<version>`, version an integer folder.
        retrieval_vocabulary: The retrieval model's `Vocabulary`.
        ranking_vocabularies: The ranker's `FeatureVocabularies`.
        item_genres, item_year: The ranker's item tables (`tf_attnrec.runs.load_feature_tables`).
        candidates: Items the retrieval stage hands to the ranker (C).
        k: Items returned, at most `candidates`.
        index: The retrieval stage's index, "brute_force" (exact) or "scann".
        scann_options: ScaNN overrides (see `export_retrieval`).
        overwrite: Replace a non-empty `export_dir`.

    Returns:
        The `ExportSummary`.

    Raises:
        TypeError / ValueError: a model and vocabulary that do not fit, `candidates` outside
            [1, catalogue] or `k` outside [1, candidates].

    Example:
        ```python
        export_cascade(sasrec, din, "serving/cascade/1", retrieval_vocabulary=vocabulary,
                       ranking_vocabularies=vocabularies, **tables, candidates=200, k=10)
        ```
    """
    if isinstance(k, bool) or not isinstance(k, int) or not isinstance(candidates, int) or not 1 <= k <= candidates:
        raise ValueError(f"export_cascade: k must be an int in [1, candidates={candidates!r}]; got {k!r}.")
    retrieval = prepare_retrieval(retrieval_model, candidates, index, True, retrieval_vocabulary,
                                  scann_options=scann_options, caller="export_cascade", k_name="candidates")
    ranking = prepare_ranking(ranking_model, ranking_vocabularies, item_genres, item_year)
    export_dir = pathlib.Path(export_dir)
    model_name, version = common.validate_export_dir(export_dir, overwrite)
    with common.staged_export(export_dir, overwrite) as (staging, scratch):
        module = _CascadeModule(retrieval.module(retrieval_model, scratch / RETRIEVAL_ITEM_IDS_FILE),
                                ranking.module(ranking_model, scratch), k)
        signatures = {"serving_default": module.serve.get_concrete_function()}
        tf.saved_model.save(module, str(staging), signatures=signatures, options=retrieval.save_options())
    return ExportSummary(
        export_dir=export_dir,
        model_name=model_name,
        version=version,
        signatures=common.signature_infos(signatures),
        files={"retrieval_item_ids": export_dir / "assets" / RETRIEVAL_ITEM_IDS_FILE},
        details={"retrieval_model": type(retrieval_model).__name__, "ranking_model": type(ranking_model).__name__,
                 "candidates": candidates, "k": k, "index": index,
                 "num_items": retrieval_vocabulary.num_items,
                 "note": "user_id is accepted but not used by either model"},
    )


def export_cascade_runs(
    retrieval_run: common.PathLike,
    ranking_run: common.PathLike,
    export_dir: common.PathLike,
    candidates: int = 200,
    k: int = 10,
    index: str = "brute_force",
    overwrite: bool = False,
) -> ExportSummary:
    """`export_cascade` for two run directories (`tf-attnrec cascade --retrieval A --ranking B`).

    Example:
        ```python
        print(export_cascade_runs("runs/sasrec", "runs/din", "serving/cascade/1", candidates=200))
        ```
    """
    from tf_attnrec.runs import load_feature_tables, load_model  # the models package imports every family

    retrieval_model, retrieval_vocabulary, _ = load_model(retrieval_run)
    if retrieval_vocabulary is None:
        raise FileNotFoundError(f"{pathlib.Path(retrieval_run) / 'vocabulary.json'} not found: "
                                "--retrieval must be a retrieval run directory (tf-attnrec train --model sasrec ...).")
    ranking_model, _, _ = load_model(ranking_run)
    vocabularies, tables = load_feature_tables(ranking_run)
    return export_cascade(retrieval_model, ranking_model, export_dir, retrieval_vocabulary=retrieval_vocabulary,
                          ranking_vocabularies=vocabularies, candidates=candidates, k=k, index=index,
                          overwrite=overwrite, **tables)


__all__ = ["SERVING_INPUTS", "export_cascade", "export_cascade_runs"]
