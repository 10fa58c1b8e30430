"""A retrieval-then-ranking cascade in Python.

Retrieval scores the whole catalogue and keeps the best `candidates` unseen items; the ranker
orders those by its click probability and the best `k` are the answer. This module is the
reference the exported cascade (`tf_attnrec.export.cascade`) must match, what
`tf-attnrec recommend RUN --ranking RUN_B` runs, and what the candidate-count evaluation
(`evaluate_cascade`) measures.

The two models keep their own vocabularies. Items and user attributes pass between them as
raw ids, spelled as the serving signatures spell them (`export.common.raw_id_strings`), so a
candidate the ranker never saw is its out-of-vocabulary item, exactly as in the export.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from tf_attnrec.data import schema
from tf_attnrec.data.features import FeatureVocabularies
from tf_attnrec.data.vocabulary import FIRST_ID, OOV_ID, Vocabulary
from tf_attnrec.evaluation.ranking import ranking_metrics
from tf_attnrec.export.common import raw_id_strings
from tf_attnrec.export.topk import popularity_scores

USER_ATTRIBUTES = ("gender", "age", "occupation")  # request field -> FeatureVocabularies field
_USER_FEATURES = {"gender": schema.USER_GENDER, "age": schema.USER_AGE, "occupation": schema.USER_OCCUPATION}


@dataclasses.dataclass(frozen=True)
class CascadeResult:
    """Per user, the `k` items the cascade returns, best first (ids of the retrieval vocabulary).

    Where fewer than `k` unseen items exist, the rest of a row is item 0, probability -inf
    and retrieval rank 0.
    """

    items: np.ndarray            # int [B, k]
    probabilities: np.ndarray    # float [B, k], the ranker's
    retrieval_rank: np.ndarray   # int [B, k], 1 = retrieval's best candidate
    retrieval_scores: np.ndarray  # float [B, k]


def _string_index(vocabulary: Vocabulary, what: str) -> dict[str, int]:
    return {raw: index for index, raw in enumerate(raw_id_strings(vocabulary, what), start=FIRST_ID)}


def left_padded(rows: Sequence[np.ndarray], length: int) -> np.ndarray:
    """int32 `[B, length]`: each row's last `length` ids (padding 0 dropped first), left-padded."""
    padded = np.zeros((len(rows), length), np.int32)
    for i, row in enumerate(rows):
        row = np.asarray(row, np.int32)
        recent = row[row != 0][-length:] if length else row[:0]
        padded[i, length - len(recent):] = recent
    return padded


def retrieve(retrieval_scores: np.ndarray, candidates: int) -> tuple[np.ndarray, np.ndarray]:
    """The best `candidates` items per row, best first, and their scores (-inf: no unseen item left).

    Ties keep the lower item id first, as `tf.math.top_k` does.
    """
    retrieved = np.argsort(-retrieval_scores, axis=1, kind="stable")[:, :candidates]
    return retrieved, np.take_along_axis(retrieval_scores, retrieved, axis=1)


def cascade_ranks(probabilities: np.ndarray, target_column: np.ndarray) -> np.ndarray:
    """1-based rank of each row's target after reranking by `probabilities` `[B, C]`.

    `target_column` is the target's position in retrieval's list (-1: not retrieved, rank 0).
    A tie keeps the better retrieval rank first (a stable sort), as `Cascade.rank` orders.
    """
    rows = np.arange(len(probabilities))
    retrieved = target_column >= 0
    target = probabilities[rows, np.where(retrieved, target_column, 0)][:, None]
    columns = np.arange(probabilities.shape[1])[None, :]
    ahead = (probabilities > target) | ((probabilities == target) & (columns < target_column[:, None]))
    return np.where(retrieved, 1 + ahead.sum(axis=1), 0)


@dataclasses.dataclass
class Cascade:
    """A retrieval model and a ranker with their vocabularies (`from_runs` loads two run folders).

    Example:
        ```python
        cascade = Cascade.from_runs("runs/sasrec", "runs/din")
        cascade.recommend([["1193", "661"]], {"gender": ["F"], "age": ["25"], "occupation": ["7"]})
        ```
    """

    retrieval_model: tf.keras.Model
    retrieval_vocabulary: Vocabulary
    ranking_model: tf.keras.Model
    vocabularies: FeatureVocabularies
    item_genres: np.ndarray
    item_year: np.ndarray
    rows_per_call: int = 32_768  # ranker rows per predict call (bounds memory at 500 candidates)

    def __post_init__(self) -> None:
        ranker_items = _string_index(self.vocabularies.item, "item ids")
        retrieval_items = _string_index(self.retrieval_vocabulary, "item ids")  # in id order
        # Retrieval id -> ranker id (0 padding and 1 OOV map to themselves).
        self.to_ranker = np.asarray([0, OOV_ID] + [ranker_items.get(raw, OOV_ID) for raw in retrieval_items], np.int32)
        self._indexes = {"item": ranker_items, "retrieval_item": retrieval_items}
        for field in USER_ATTRIBUTES:
            self._indexes[field] = _string_index(getattr(self.vocabularies, field), f"{field} values")

    @classmethod
    def from_runs(cls, retrieval_run: Any, ranking_run: Any) -> "Cascade":
        """Loads a retrieval run and a ranking run (`tf-attnrec train` folders)."""
        from tf_attnrec.runs import load_feature_tables, load_model  # the models package imports every family

        retrieval_model, retrieval_vocabulary, _ = load_model(retrieval_run)
        if retrieval_vocabulary is None or not callable(getattr(retrieval_model, "score", None)):
            raise ValueError(f"{retrieval_run} is not a retrieval run (a model that scores histories, "
                             "with vocabulary.json); train one with `tf-attnrec train --model sasrec`.")
        ranking_model, _, _ = load_model(ranking_run)
        vocabularies, tables = load_feature_tables(ranking_run)
        return cls(retrieval_model, retrieval_vocabulary, ranking_model, vocabularies, **tables)

    # ----------------------------------------------------------------- the two stages
    def retrieval_scores(self, histories: Sequence[np.ndarray], keep: Optional[np.ndarray] = None) -> np.ndarray:
        """float64 `[B, vocab_size]` retrieval scores; padding, OOV and every history item get -inf.

        A history without any item the model knows is scored by training popularity, as the
        export serves it (`export.topk.popularity_scores`).

        `keep`: per row, one item left a candidate even if the history holds it (a test item).
        """
        max_length = int(self.retrieval_model.max_length)
        scores = self.retrieval_model.score(tf.constant(left_padded(histories, max_length))).numpy().astype(np.float64)
        popular = popularity_scores(self.retrieval_model)
        for row, history in enumerate(histories):
            seen = np.asarray(history, np.int64)
            if popular is not None and not (seen >= FIRST_ID).any():  # as the export: popularity
                scores[row] = popular
            scores[row, seen if keep is None else seen[seen != keep[row]]] = -np.inf
        scores[:, :FIRST_ID] = -np.inf
        return scores

    def ranker_probabilities(self, users: Mapping[str, np.ndarray], history: np.ndarray,
                             candidates: np.ndarray) -> np.ndarray:
        """The ranker's probability `[B, C]` of retrieval-id candidates `[B, C]`.

        Args:
            users: `schema.USER_GENDER` / `USER_AGE` / `USER_OCCUPATION` ids `[B]`.
            history: ranker item ids `[B, L]` (left-padded to the ranker's `max_length`).
            candidates: retrieval ids `[B, C]`.
        """
        num_users, num_candidates = candidates.shape
        items = self.to_ranker[candidates].reshape(-1)
        rows = np.repeat(np.arange(num_users), num_candidates)
        out = np.empty(len(items), np.float64)
        for start in range(0, len(items), self.rows_per_call):
            part = slice(start, start + self.rows_per_call)
            user_rows, item_ids = rows[part], items[part]
            hist = history[user_rows]
            features = {name: np.asarray(users[name], np.int32)[user_rows] for name in _USER_FEATURES.values()}
            features.update({
                schema.ITEM_ID: item_ids,
                schema.ITEM_GENRES: self.item_genres[item_ids],
                schema.ITEM_YEAR: self.item_year[item_ids],
                schema.HISTORY_ITEM_IDS: hist,
                schema.HISTORY_GENRES: self.item_genres[hist],
                schema.HISTORY_YEAR: self.item_year[hist],
            })
            features = {name: tf.constant(np.asarray(value, np.int32)) for name, value in features.items()}
            out[part] = np.reshape(self.ranking_model.predict_proba(features).numpy(), [-1])
        return out.reshape(num_users, num_candidates)

    def rank(self, retrieval_scores: np.ndarray, users: Mapping[str, np.ndarray], history: np.ndarray,
             candidates: int, k: int) -> CascadeResult:
        """Both stages, from retrieval scores (seen items already -inf) to the top `k`.

        Ties keep the better retrieval rank first in both stages, as `tf.math.top_k` does in
        the export.
        """
        if not 1 <= k <= candidates:
            raise ValueError(f"k must be in [1, candidates={candidates}]; got {k}.")
        retrieved, retrieved_scores = retrieve(retrieval_scores, candidates)
        probabilities = self.ranker_probabilities(users, history, retrieved)
        probabilities[~np.isfinite(retrieved_scores)] = -np.inf
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(probabilities, order, axis=1)
        found = np.isfinite(top)
        return CascadeResult(
            items=np.where(found, np.take_along_axis(retrieved, order, axis=1), 0),
            probabilities=top,
            retrieval_rank=np.where(found, order + 1, 0),
            retrieval_scores=np.where(found, np.take_along_axis(retrieved_scores, order, axis=1), -np.inf),
        )

    # ----------------------------------------------------------------- raw requests
    def _ids(self, raw: Sequence[Any], index: str, drop_padding: bool = True) -> np.ndarray:
        """Raw values -> ids (unknown -> OOV); "" is padding, dropped from histories."""
        lookup = self._indexes[index]
        return np.asarray([lookup.get(str(value), OOV_ID) for value in raw
                           if not (drop_padding and str(value) == "")], np.int32)

    def recommend(self, histories: Sequence[Sequence[Any]], users: Mapping[str, Sequence[Any]],
                  candidates: int = 200, k: int = 10) -> dict[str, np.ndarray]:
        """The cascade's answer to raw requests, as the exported `serving_default` gives it.

        Args:
            histories: per user, raw item ids, most recent last ("" is padding).
            users: "gender", "age", "occupation": one raw value per user (unknown -> OOV).
            candidates: Items retrieval hands to the ranker.
            k: Items returned.

        Returns:
            `item_ids` (raw, "" past the unseen catalogue) `[B, k]`, `scores` (probabilities),
            `retrieval_rank` and `retrieval_scores`, each `[B, k]`.
        """
        missing = [field for field in USER_ATTRIBUTES if field not in users]
        if missing:
            raise ValueError(f"Cascade.recommend: the ranker needs the user's {missing}; got fields {sorted(users)}.")
        retrieval_histories = [self._ids(history, "retrieval_item") for history in histories]
        user_ids = {_USER_FEATURES[field]: self._ids(users[field], field, drop_padding=False)
                    for field in USER_ATTRIBUTES}
        if any(len(ids) != len(histories) for ids in user_ids.values()):
            raise ValueError(f"Cascade.recommend: give one gender, age and occupation per history "
                             f"({len(histories)}); got {[len(users[field]) for field in USER_ATTRIBUTES]}.")
        ranker_history = left_padded([self._ids(history, "item") for history in histories],
                                     int(self.ranking_model.max_length))
        result = self.rank(self.retrieval_scores(retrieval_histories), user_ids, ranker_history, candidates, k)
        raw = self.retrieval_vocabulary.raw_ids(result.items, default="")
        return {"item_ids": np.vectorize(str, otypes=[object])(raw) if raw.size else raw.astype(object),
                "scores": result.probabilities, "retrieval_rank": result.retrieval_rank,
                "retrieval_scores": result.retrieval_scores}


def retrieval_negative_pools(retrieval_model: tf.keras.Model, split: Any, candidates: int = 200,
                             batch_size: int = 256) -> list[np.ndarray]:
    """Per user of `split`, retrieval's best `candidates` items for the user's training history.

    Every item of the user's whole sequence is excluded, so the pools hold items the user never
    interacted with that retrieval ranks high: the hard negatives a ranker meets inside a cascade
    (`build_ranking_data(negative_pools=...)`). A user without training items gets an empty pool.

    Args:
        retrieval_model: A retrieval model trained on `split`'s training sequences (`model.score`).
        split: The leave-one-out `SequenceSplit` (its vocabulary is the model's).
        candidates: Pool size per user.
        batch_size: Users per `score` call.

    Returns:
        A list of int32 arrays, one per row of `split.users`.
    """
    if int(getattr(retrieval_model, "vocab_size", -1)) != split.vocabulary.size:
        raise ValueError(f"retrieval_negative_pools: the model scores {getattr(retrieval_model, 'vocab_size', None)} "
                         f"ids but the split has {split.vocabulary.size}; use a retrieval run of the same data.")
    max_length = int(retrieval_model.max_length)
    full = split.full_sequences()
    pools: list[np.ndarray] = []
    for start in range(0, len(full), batch_size):
        rows = range(start, min(start + batch_size, len(full)))
        scores = retrieval_model.score(tf.constant(left_padded([split.train[row] for row in rows], max_length)))
        scores = scores.numpy().astype(np.float64)
        scores[:, :FIRST_ID] = -np.inf
        for offset, row in enumerate(rows):
            scores[offset, full[row]] = -np.inf
        retrieved, retrieved_scores = retrieve(scores, candidates)
        for offset, row in enumerate(rows):
            keep = np.isfinite(retrieved_scores[offset]) & (len(split.train[row]) > 0)
            pools.append(retrieved[offset][keep].astype(np.int32))
    return pools


def evaluate_cascade(
    cascade: Cascade,
    split: Any,
    users: Any,
    candidate_counts: Sequence[int] = (50, 100, 200, 500),
    ks: Sequence[int] = (10,),
    batch_size: int = 128,
) -> dict[str, dict[str, float]]:
    """Leave-one-out test metrics of retrieval alone and of the cascade at each candidate count.

    Each test user's history (train items and the validation item) goes through both stages;
    the test item's rank is its place in the cascade's list (seen items excluded, the whole
    catalogue scored by retrieval). Retrieval runs once per user, at the largest count; a
    smaller count reranks the prefix of that list, which is what a cascade with that count
    would hand to the ranker. A count of the whole catalogue is the ranker alone over every
    unseen item.

    Args:
        cascade: The `Cascade` (its retrieval vocabulary must be the split's).
        split: The retrieval run's `SequenceSplit` (`split.vocabulary` = retrieval ids).
        users: User metadata with `user_id`, `gender`, `age`, `occupation` (`Dataset.users`).
        candidate_counts: Candidate counts C (capped at the catalogue size).
        ks: Cut-offs of HR@K / NDCG@K (each at most the smallest C).
        batch_size: Users per retrieval call.

    Returns:
        `{"retrieval": metrics, "cascade@C": metrics, ...}`; metrics are `hr@K`, `ndcg@K` and
        `candidate_recall` (the share of test items among the C candidates: the cascade's
        ceiling; for "retrieval", among the largest count's), plus `users`.
    """
    num_items = cascade.retrieval_vocabulary.num_items
    if split.vocabulary.size != cascade.retrieval_vocabulary.size:
        raise ValueError(f"evaluate_cascade: the split has {split.vocabulary.num_items} items but the retrieval "
                         f"model {num_items}; pass the retrieval run's split.")
    counts = sorted({min(int(count), num_items) for count in candidate_counts})
    if not counts or min(ks) < 1 or max(ks) > counts[0]:
        raise ValueError(f"evaluate_cascade: every K of {list(ks)} must be in [1, the smallest count {counts[:1]}].")
    inputs = split.test_inputs()
    user_features = cascade.vocabularies.user_table(users, split.users[inputs.user_indices])
    ranker_history = left_padded([cascade.to_ranker[history] for history in inputs.histories],
                                 int(cascade.ranking_model.max_length))
    beyond = num_items + 1  # the rank of a test item the cascade never returns
    ranks: dict[str, list] = {"retrieval": [], **{f"cascade@{count}": [] for count in counts}}
    retrieved_at: list = []
    for start in range(0, len(inputs.targets), batch_size):
        rows = slice(start, start + batch_size)
        targets = inputs.targets[rows]
        # The library's convention: a target that also occurs in the history stays a candidate.
        scores = cascade.retrieval_scores(inputs.histories[rows], keep=targets)
        retrieved, retrieved_scores = retrieve(scores, counts[-1])
        hit = retrieved == targets[:, None]
        column = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
        retrieved_at.append(column)
        ranks["retrieval"].append(np.where(column >= 0, column + 1, beyond))
        probabilities = cascade.ranker_probabilities(
            {name: values[rows] for name, values in user_features.items()}, ranker_history[rows], retrieved)
        probabilities[~np.isfinite(retrieved_scores)] = -np.inf
        for count in counts:
            inside = np.where(column < count, column, -1)
            rank = cascade_ranks(probabilities[:, :count], inside)
            ranks[f"cascade@{count}"].append(np.where(rank > 0, rank, beyond))
    column = np.concatenate(retrieved_at)
    results = {}
    for name, parts in ranks.items():
        metrics = ranking_metrics(np.concatenate(parts).astype(np.int64), ks=ks)
        results[name] = {key: value for key, value in metrics.items() if key.split("@")[0] in ("hr", "ndcg")}
        count = counts[-1] if name == "retrieval" else int(name.split("@")[1])
        results[name]["candidate_recall"] = float(((column >= 0) & (column < count)).mean())
        results[name]["users"] = int(len(column))
    return results


__all__ = ["Cascade", "CascadeResult", "cascade_ranks", "evaluate_cascade", "left_padded", "retrieval_negative_pools",
           "retrieve"]
