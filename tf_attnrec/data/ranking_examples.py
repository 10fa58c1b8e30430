"""Click-style ranking examples from MovieLens-1M: user profile, candidate, behaviour history.

Leave-one-out in time (`leave_one_out_split`): per user the last item is the test positive,
the second-to-last the validation positive, and training positives come from the user's
most recent `train_positions_per_user` training interactions. Every example's history is
the items strictly before its target in the user's chronological sequence (most recent
`max_length`, left-padded), so no example sees its future. Each positive is paired with
`num_negatives` items the user never interacted with (in train, validation or test), which
share the positive's history and user features.

Examples are stored compactly (user row, history end, candidate, label); `tf.data` gathers
histories, genres and years per batch, so memory stays O(examples + interactions).
"""

from __future__ import annotations

import dataclasses
from typing import Literal, NamedTuple, Optional, Sequence

import numpy as np
import tensorflow as tf

from tf_attnrec.data.dataset import Dataset
from tf_attnrec.data.pipelines import sample_negatives
from tf_attnrec.data.splits import SequenceSplit, leave_one_out_split
from tf_attnrec.data import schema
from tf_attnrec.data.features import FeatureVocabularies
from tf_attnrec.data.vocabulary import FIRST_ID

Stage = Literal["train", "validation", "test"]
STAGES = ("train", "validation", "test")


class ExampleIndex(NamedTuple):
    """Examples of one stage, as indices into `RankingData.sequence_items`.

    Attributes:
        user_row: int32 [N], the user's row in `RankingData.split.users`.
        history_end: int64 [N], position (in `sequence_items`) of the target; the history is
            the user's items at positions [max(user start, end - max_length), end).
        candidate: int32 [N], the candidate item id.
        label: float32 [N], 1 for the observed item, 0 for a sampled negative.
    """

    user_row: np.ndarray
    history_end: np.ndarray
    candidate: np.ndarray
    label: np.ndarray


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}.")


@dataclasses.dataclass
class RankingData:
    """The ranking examples of every stage plus what is needed to materialise them.

    Build it with `build_ranking_data`. `dataset(stage, ...)` yields feature dicts (keys in
    `tf_attnrec.data.schema.MODEL_FEATURES` plus "label" and "user_index").

    Args:
        split: the leave-one-out `SequenceSplit`.
        vocabularies: the `FeatureVocabularies`.
        max_length: L, history length.
        sequence_items: int32, every user's full chronological sequence, concatenated.
        sequence_start: int64 [U], where each user's sequence starts in `sequence_items`.
        item_genres: int32 [item vocab size, G] genre ids per item id.
        item_year: int32 [item vocab size] year id per item id.
        user_features: per user row, int32 [U] gender / age / occupation ids.
        examples: {"train" | "validation" | "test": `ExampleIndex`}.

    Example:
        ```python
        data = build_ranking_data(load_dataset("ml-1m"), max_length=50)
        train = data.dataset("train", batch_size=1024)
        ```
    """

    split: SequenceSplit
    vocabularies: FeatureVocabularies
    max_length: int
    sequence_items: np.ndarray
    sequence_start: np.ndarray
    item_genres: np.ndarray
    item_year: np.ndarray
    user_features: dict
    examples: dict

    def num_examples(self, stage: Stage) -> int:
        """Number of examples (positives + negatives) of a stage."""
        return len(self._index(stage).label)

    def _index(self, stage: str) -> ExampleIndex:
        if stage not in self.examples:
            raise ValueError(f"stage must be one of {STAGES}; got {stage!r}.")
        return self.examples[stage]

    def dataset(
        self,
        stage: Stage,
        batch_size: int = 1024,
        shuffle: Optional[bool] = None,
        seed: int = 0,
    ) -> tf.data.Dataset:
        """Batches of feature dicts for one stage.

        Args:
            stage: "train", "validation" or "test".
            batch_size: examples per batch.
            shuffle: shuffle examples every epoch (seeded); default True for "train" only.
            seed: shuffle seed.

        Returns:
            `tf.data.Dataset` of dicts: the `schema.MODEL_FEATURES`, "label" float32 [B] and
            "user_index" int32 [B].
        """
        _check_int("batch_size", batch_size, 1)
        index = self._index(stage)
        shuffle = stage == "train" if shuffle is None else shuffle
        columns = tf.data.Dataset.from_tensor_slices(index._asdict())
        if shuffle:
            columns = columns.shuffle(len(index.label), seed=seed, reshuffle_each_iteration=True)
        return (
            columns.batch(batch_size)
            .map(self._gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE)
        )

    def features(self, stage: Stage, rows: Optional[np.ndarray] = None) -> dict:
        """The examples of a stage (or the given rows of it) as one dict of numpy arrays."""
        index = self._index(stage)
        if rows is not None:
            index = ExampleIndex(*(np.asarray(column)[rows] for column in index))
        batch = {key: tf.constant(value) for key, value in index._asdict().items()}
        return {key: value.numpy() for key, value in self._gather(batch).items()}

    def _gather(self, batch: dict) -> dict:
        items = tf.constant(self.sequence_items)
        genres = tf.constant(self.item_genres)
        years = tf.constant(self.item_year)
        starts = tf.gather(tf.constant(self.sequence_start), batch["user_row"])
        positions = batch["history_end"][:, None] + tf.range(-self.max_length, 0, dtype=tf.int64)
        valid = positions >= starts[:, None]
        history = tf.where(valid, tf.gather(items, tf.maximum(positions, 0)), 0)
        features = {
            name: tf.gather(tf.constant(values), batch["user_row"])
            for name, values in self.user_features.items()
        }
        features.update({
            schema.ITEM_ID: batch["candidate"],
            schema.ITEM_GENRES: tf.gather(genres, batch["candidate"]),
            schema.ITEM_YEAR: tf.gather(years, batch["candidate"]),
            schema.HISTORY_ITEM_IDS: history,
            schema.HISTORY_GENRES: tf.gather(genres, history),
            schema.HISTORY_YEAR: tf.gather(years, history),
            schema.LABEL: batch["label"],
            schema.USER_INDEX: batch["user_row"],
        })
        return features


def _with_negatives(
    user_row: np.ndarray,
    history_end: np.ndarray,
    positive: np.ndarray,
    num_negatives: int,
    interacted: list,
    vocabulary_size: int,
    rng: np.random.Generator,
    hard: Optional[tuple[list, int, np.random.Generator]] = None,
) -> ExampleIndex:
    """Each positive followed by `num_negatives` never-interacted items with its history.

    `hard = (pools, count, rng)`: the first `count` negatives of each positive are drawn
    instead from its user's pool (uniformly, with replacement; users with an empty pool keep
    uniform ones), with their own generator, so that `rng` draws exactly what it would
    without them.
    """
    per_user = np.bincount(user_row, minlength=len(interacted)) * num_negatives
    negatives = sample_negatives(per_user, interacted, vocabulary_size, rng)
    # sample_negatives returns user by user; order the positives the same way to pair them.
    order = np.argsort(user_row, kind="stable")
    group = 1 + num_negatives
    candidate = np.empty((len(order), group), dtype=np.int32)
    candidate[:, 0] = positive[order]
    candidate[:, 1:] = negatives.reshape(len(order), num_negatives)
    if hard is not None and hard[1] > 0:
        pools, count, hard_rng = hard
        sizes = np.fromiter((len(pool) for pool in pools), np.int64, count=len(pools))
        flat = np.concatenate([np.asarray(pool, np.int32) for pool in pools]) if sizes.sum() else np.zeros(0, np.int32)
        starts = np.cumsum(sizes) - sizes
        users = user_row[order]
        rows = np.flatnonzero(sizes[users] > 0)
        picks = (hard_rng.random((len(rows), count)) * sizes[users[rows]][:, None]).astype(np.int64)
        candidate[rows, 1:1 + count] = flat[starts[users[rows]][:, None] + picks]
    label = np.zeros((len(order), group), dtype=np.float32)
    label[:, 0] = 1.0
    return ExampleIndex(
        user_row=np.repeat(user_row[order], group).astype(np.int32),
        history_end=np.repeat(history_end[order], group).astype(np.int64),
        candidate=candidate.reshape(-1),
        label=label.reshape(-1),
    )


def build_ranking_data(
    data: Dataset,
    max_length: int = 50,
    train_positions_per_user: Optional[int] = 20,
    num_negatives: int = 4,
    num_eval_negatives: Optional[int] = None,
    max_genres: Optional[int] = None,
    seed: int = 0,
    negative_pools: Optional[Sequence[np.ndarray]] = None,
    hard_negative_share: float = 0.5,
) -> RankingData:
    """Builds train / validation / test click examples from a dataset with metadata.

    Args:
        data: a `Dataset` with interactions, `items` (genres, year) and `users` (gender, age,
            occupation) metadata, e.g. `load_dataset("ml-1m")`.
        max_length: L, the number of most recent history items each example keeps.
        train_positions_per_user: training positives per user: the most recent N training
            interactions (each with at least one earlier item); None uses all of them.
        num_negatives: sampled negatives per training positive (default 4, i.e. 1:4).
        num_eval_negatives: negatives per validation / test positive (default
            `num_negatives`). Every evaluable user contributes exactly one validation and one
            test positive (the full leave-one-out sets).
        max_genres: width of genre arrays (default: the most genres of any item).
        seed: seed of negative sampling (drawn once here, so evaluation sets are fixed).
        negative_pools: per user of the leave-one-out split (`SequenceSplit.users` order), item
            ids to draw hard training negatives from, e.g. a retrieval model's top candidates
            (`tf_attnrec.cascade.retrieval_negative_pools`); items the user interacted with
            are never drawn. Validation and test negatives stay uniform and identical to a
            build without pools, so rankers trained either way are evaluated on the same sets.
        hard_negative_share: the share of each positive's `num_negatives` taken from its
            user's pool (rounded; the rest uniform).

    Returns:
        `RankingData`.

    Raises:
        ValueError: missing metadata or bad arguments.

    Example:
        ```python
        data = build_ranking_data(load_dataset("ml-1m"), max_length=50, num_negatives=4)
        data.num_examples("test")  # 6,040 * 5
        ```
    """
    if data.items is None or data.users is None:
        raise ValueError(
            f"build_ranking_data needs item and user metadata; {data!r} has "
            f"items={data.items is not None}, users={data.users is not None}. For ml-1m keep "
            "movies.dat, users.dat and ml-1m_original_ids.txt next to ml-1m.txt."
        )
    _check_int("max_length", max_length, 1)
    _check_int("num_negatives", num_negatives, 0)
    if train_positions_per_user is not None:
        _check_int("train_positions_per_user", train_positions_per_user, 1)
    num_eval_negatives = num_negatives if num_eval_negatives is None else num_eval_negatives
    _check_int("num_eval_negatives", num_eval_negatives, 0)

    split = leave_one_out_split(data.interactions)
    vocabularies = FeatureVocabularies.from_metadata(split.vocabulary, data.items, data.users, max_genres)
    item_genres, item_year = vocabularies.item_tables(data.items)
    user_features = vocabularies.user_table(data.users, split.users)

    full = split.full_sequences()
    lengths = np.fromiter((len(s) for s in full), dtype=np.int64, count=len(full))
    starts = np.cumsum(lengths) - lengths
    sequence_items = np.concatenate(full).astype(np.int32) if len(full) else np.zeros(0, np.int32)
    train_lengths = np.fromiter((len(s) for s in split.train), dtype=np.int64, count=len(full))

    # Training positives: positions 1..len(train)-1 of each user's sequence (so the history
    # is never empty), keeping the most recent `train_positions_per_user`.
    available = np.maximum(train_lengths - 1, 0)
    count = available if train_positions_per_user is None else np.minimum(available, train_positions_per_user)
    user_row = np.repeat(np.arange(len(full)), count)
    offset_in_user = np.arange(len(user_row)) - np.repeat(np.cumsum(count) - count, count)
    first = train_lengths - count  # first kept position within the user's sequence
    train_end = starts[user_row] + first[user_row] + offset_in_user

    evaluable = np.flatnonzero(split.evaluable)
    validation_end = starts[evaluable] + train_lengths[evaluable]
    rng = np.random.default_rng(seed)
    size = split.vocabulary.size
    hard = None
    if negative_pools is not None:
        if len(negative_pools) != len(full):
            raise ValueError(f"negative_pools has {len(negative_pools)} users but the split has {len(full)}; "
                             "give one pool per user of leave_one_out_split(data.interactions).")
        if not 0 <= hard_negative_share <= 1:
            raise ValueError(f"hard_negative_share must be in [0, 1]; got {hard_negative_share!r}.")
        pools = [np.setdiff1d(np.asarray(pool, np.int64), seen).astype(np.int32)
                 for pool, seen in zip(negative_pools, full)]
        if any(len(pool) and (pool.min() < FIRST_ID or pool.max() >= size) for pool in pools):
            raise ValueError(f"negative_pools hold ids outside the items [{FIRST_ID}, {size}) of the split.")
        hard = (pools, int(round(num_negatives * hard_negative_share)), np.random.default_rng([seed, 1]))
    examples = {
        "train": _with_negatives(
            user_row, train_end, sequence_items[train_end], num_negatives, full, size, rng, hard),
        "validation": _with_negatives(
            evaluable, validation_end, split.validation_target[evaluable], num_eval_negatives,
            full, size, rng),
        "test": _with_negatives(
            evaluable, validation_end + 1, split.test_target[evaluable], num_eval_negatives,
            full, size, rng),
    }
    return RankingData(
        split=split,
        vocabularies=vocabularies,
        max_length=max_length,
        sequence_items=sequence_items,
        sequence_start=starts.astype(np.int64),
        item_genres=item_genres,
        item_year=item_year,
        user_features=user_features,
        examples=examples,
    )
