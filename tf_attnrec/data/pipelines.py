"""`tf.data` input pipelines for next-item and item-set training, evaluation and sampled-negative ranking.

Sequences are padded with vectorised numpy (no per-row Python loop) into dense arrays that
`tf.data.Dataset.from_tensor_slices` slices, so the ML-1M training pipeline builds in about a
second. Every pipeline is deterministic given `seed`.

Conventions: item id 0 is padding, histories are most-recent-last and LEFT-padded to
`max_length`; truncation keeps the most recent items.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tf_attnrec.data.vocabulary import FIRST_ID


def _flatten(sequences: Sequence[Sequence[int]], name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenates sequences into one int32 array plus each sequence's [start, end)."""
    if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
        sequences = list(sequences)
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    if lengths.sum():
        flat = np.concatenate([np.asarray(s) for s in sequences if len(s)])
        if flat.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer item ids; got dtype {flat.dtype}.")
        if flat.min() < 0:
            raise ValueError(f"{name} holds negative item ids (min {flat.min()}); expected ids >= 0.")
        flat = flat.astype(np.int32)
    else:
        flat = np.zeros(0, dtype=np.int32)
    ends = np.cumsum(lengths)
    return flat, ends - lengths, ends


def _windows(flat: np.ndarray, starts: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
    """Rows of `flat[max(start, end - length):end]`, left-padded with 0 to `length`."""
    positions = ends[:, None] - length + np.arange(length)[None, :]
    valid = positions >= starts[:, None]
    gathered = flat[np.clip(positions, 0, max(len(flat) - 1, 0))] if len(flat) else 0
    return np.where(valid, gathered, 0).astype(np.int32)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")


def pad_sequences(sequences: Sequence[Sequence[int]], max_length: int) -> np.ndarray:
    """Left-pads (and truncates, keeping the most recent items) sequences to `max_length`.

    Args:
        sequences: N integer sequences, most recent last.
        max_length: output width L.

    Returns:
        int32 array [N, L]; row i ends with the last min(len_i, L) items of sequence i.

    Example:
        ```python
        pad_sequences([[5, 6, 7], [8]], max_length=2)  # [[6, 7], [0, 8]]
        ```
    """
    _check_positive(max_length=max_length)
    flat, starts, ends = _flatten(sequences, "sequences")
    return _windows(flat, starts, ends, max_length)


def _finish(dataset: tf.data.Dataset, batch_size: int, drop_remainder: bool) -> tf.data.Dataset:
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def next_item_dataset(
    sequences: Sequence[Sequence[int]],
    max_length: int,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    split_long_sequences: bool = False,
    drop_remainder: bool = False,
    length_buckets: int = 1,
) -> tf.data.Dataset:
    """Next-item training batches in which every non-padded position is a target.

    For a sequence s, `history` is s[:-1] and `targets` is s[1:] (both truncated to their
    last `max_length` items and left-padded), so `targets[:, t]` is the item that followed
    `history[:, t]`. Sequences with fewer than 2 items have no target and are left out.

    Args:
        sequences: per user, encoded item ids (e.g. `SequenceSplit.train`), most recent last.
        max_length: L, the history length.
        batch_size: examples per batch.
        shuffle: shuffle the examples (reshuffled every epoch; deterministic given `seed`).
        seed: shuffle seed.
        split_long_sequences: False (SASRec) keeps only the most recent L targets of a long
            sequence; True cuts it into consecutive windows so every item after the first is
            a target exactly once per epoch.
        drop_remainder: drop the last partial batch (for fixed shapes, e.g. XLA).
        length_buckets: n > 1 batches together histories of similar length: the examples are
            shuffled, then dealt into n buckets split at the histories' length quantiles, and
            a bucket gives a batch whenever it holds `batch_size` examples
            (`tf.data.Dataset.bucket_by_sequence_length`). A model then skips the columns that
            are padding in every row of a batch. 1: batches of any lengths (SASRec).

    Returns:
        `tf.data.Dataset` of dicts {"history": int32 [B, L], "targets": int32 [B, L]}
        (0 in both where padded).

    Example:
        ```python
        train = next_item_dataset(split.train, max_length=200, batch_size=128, seed=42)
        ```
    """
    _check_positive(max_length=max_length, batch_size=batch_size, length_buckets=length_buckets)
    flat, starts, ends = _flatten(sequences, "sequences")
    has_target = ends - starts >= 2
    starts, ends = starts[has_target], ends[has_target]
    if not len(starts):
        raise ValueError("No sequence has 2 or more items, so there is nothing to predict.")
    if split_long_sequences:
        num_windows = -(-(ends - starts - 1) // max_length)  # ceil((n - 1) / L)
        row = np.repeat(np.arange(len(starts)), num_windows)
        offset = np.arange(len(row)) - np.repeat(np.cumsum(num_windows) - num_windows, num_windows)
        starts = starts[row]
        ends = ends[row] - offset * max_length
    history = _windows(flat, starts, ends - 1, max_length)
    targets = _windows(flat, starts + 1, ends, max_length)
    dataset = tf.data.Dataset.from_tensor_slices({"history": history, "targets": targets})
    if shuffle:
        dataset = dataset.shuffle(len(history), seed=seed, reshuffle_each_iteration=True)
    if length_buckets == 1:
        return _finish(dataset, batch_size, drop_remainder)
    lengths = np.count_nonzero(history, axis=1)
    boundaries = np.unique(np.quantile(lengths, np.arange(1, length_buckets) / length_buckets).astype(np.int64) + 1)
    boundaries = [int(b) for b in boundaries if 1 < b <= max_length]  # bucket i: lengths < boundaries[i]
    dataset = dataset.bucket_by_sequence_length(
        lambda example: tf.math.count_nonzero(example["history"], dtype=tf.int32),
        boundaries, [batch_size] * (len(boundaries) + 1), drop_remainder=drop_remainder)
    # Each bucket's size is known, so the pass's batch count is too (Keras needs it).
    sizes = np.bincount(np.searchsorted(boundaries, lengths, side="right"), minlength=len(boundaries) + 1)
    batches = sizes // batch_size if drop_remainder else -(-sizes // batch_size)
    return dataset.apply(tf.data.experimental.assert_cardinality(int(batches.sum()))).prefetch(tf.data.AUTOTUNE)


def item_set_dataset(
    sequences: Sequence[Sequence[int]],
    max_length: int,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    include_target: bool = False,
) -> tf.data.Dataset:
    """Item-based CF training batches: every training item is a target once, its user's other items the history.

    FISM and NAIS model a user by the set of items they interacted with, the target left
    out, whatever the order. For each item `t` of each sequence, `history` is the user's
    most recent `max_length` items with `t` replaced by padding (0), and `positive` is `t`.
    The history keeps its order (most recent last) only because every model reads that
    layout; the set models ignore it.

    Args:
        sequences: per user, encoded item ids (e.g. `SequenceSplit.train`), most recent last.
        max_length: L, the history length (a longer sequence keeps its most recent items).
        batch_size: examples per batch.
        shuffle: shuffle the examples (reshuffled every epoch; deterministic given `seed`).
        seed: shuffle seed.
        include_target: keep `t` in its own history (RecBole's FISM and NAIS train so; the
            papers leave it out). The model then also learns each item's similarity to itself.

    Returns:
        `tf.data.Dataset` of dicts {"history": int32 [B, L], "positive": int32 [B]}.
        Sequences with fewer than 2 items give no example (their history would be empty).

    Example:
        ```python
        train = item_set_dataset(split.train, max_length=200, batch_size=512, seed=0)
        ```
    """
    _check_positive(max_length=max_length, batch_size=batch_size)
    flat, starts, ends = _flatten(sequences, "sequences")
    keep = ends - starts >= 2
    if not keep.any():
        raise ValueError("No sequence has 2 or more items, so no item has a history to be predicted from.")
    windows = _windows(flat, starts[keep], ends[keep], max_length)  # [U', L], one per kept user
    lengths = (ends - starts)[keep]
    rows = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
    positives = flat[np.repeat(keep, ends - starts)]  # the kept sequences' items, in order
    dataset = tf.data.Dataset.from_tensor_slices({"row": rows, "positive": positives})
    if shuffle:
        dataset = dataset.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    table = tf.constant(windows)

    def with_history(batch: dict) -> dict:
        history = tf.gather(table, batch["row"])
        if not include_target:
            history = tf.where(history == batch["positive"][:, tf.newaxis], tf.zeros_like(history), history)
        return {"history": history, "positive": batch["positive"]}

    return dataset.batch(batch_size).map(with_history, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE)


def evaluation_dataset(
    histories: Sequence[Sequence[int]],
    targets: Sequence[int],
    max_length: int,
    batch_size: int,
    user_indices: Optional[Sequence[int]] = None,
) -> tf.data.Dataset:
    """Evaluation batches (not shuffled): a history and the one item that followed it.

    Args:
        histories: per example, item ids seen before the target (e.g.
            `SequenceSplit.test_inputs().histories`).
        targets: per example, the held-out item id.
        max_length: L; longer histories keep their most recent L items.
        batch_size: examples per batch.
        user_indices: optional per-example user row, passed through as "user_index".

    Returns:
        `tf.data.Dataset` of {"history": int32 [B, L], "target": int32 [B]} (+ "user_index").

    Example:
        ```python
        inputs = split.test_inputs()
        test = evaluation_dataset(inputs.histories, inputs.targets, 200, 256, inputs.user_indices)
        ```
    """
    _check_positive(max_length=max_length, batch_size=batch_size)
    targets = np.asarray(targets)
    if len(targets) != len(histories):
        raise ValueError(
            f"Got {len(histories)} histories but {len(targets)} targets; expected one target each."
        )
    features = {"history": pad_sequences(histories, max_length), "target": targets.astype(np.int32)}
    if user_indices is not None:
        user_indices = np.asarray(user_indices)
        if len(user_indices) != len(targets):
            raise ValueError(f"Got {len(user_indices)} user_indices for {len(targets)} examples.")
        features["user_index"] = user_indices.astype(np.int32)
    return _finish(tf.data.Dataset.from_tensor_slices(features), batch_size, False)


def sample_negatives(
    num_samples: np.ndarray,
    interacted: Sequence[Sequence[int]],
    vocabulary_size: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draws item ids uniformly from [2, vocabulary_size) that a user never interacted with.

    Args:
        num_samples: int [U], how many negatives to draw for each user.
        interacted: per user, the item ids to avoid.
        vocabulary_size: `Vocabulary.size`; ids 0 (padding) and 1 (OOV) are never drawn.
        rng: the numpy random generator (seeded by the caller).

    Returns:
        int32 array of sum(num_samples) ids, user by user.
    """
    num_samples = np.asarray(num_samples, dtype=np.int64)
    flat, starts, ends = _flatten(interacted, "interacted")
    if len(num_samples) != len(starts):
        raise ValueError(f"num_samples has {len(num_samples)} users but interacted has {len(starts)}.")
    owner = np.repeat(np.arange(len(starts)), ends - starts)
    forbidden = np.sort(owner * vocabulary_size + flat.astype(np.int64))
    forbidden = forbidden[np.r_[True, forbidden[1:] != forbidden[:-1]]] if len(forbidden) else forbidden
    # Only ids >= 2 can be drawn, so count how many of those each user has.
    drawable = forbidden[forbidden % vocabulary_size >= FIRST_ID]
    forbidden_counts = np.bincount(drawable // vocabulary_size, minlength=len(starts))
    full = (num_samples > 0) & (forbidden_counts >= vocabulary_size - FIRST_ID)
    if full.any():
        raise ValueError(
            f"{int(full.sum())} user(s) interacted with every item (e.g. row "
            f"{int(np.flatnonzero(full)[0])}), so no negative can be drawn for them."
        )
    def is_forbidden(keys: np.ndarray) -> np.ndarray:  # `forbidden` is sorted and unique
        if not len(forbidden):
            return np.zeros(len(keys), dtype=bool)
        at = np.minimum(np.searchsorted(forbidden, keys), len(forbidden) - 1)
        return forbidden[at] == keys

    users = np.repeat(np.arange(len(num_samples), dtype=np.int64), num_samples)
    samples = rng.integers(FIRST_ID, vocabulary_size, size=len(users))
    redraw = is_forbidden(users * vocabulary_size + samples)
    while redraw.any():  # rejection sampling; each round shrinks geometrically
        samples[redraw] = rng.integers(FIRST_ID, vocabulary_size, size=int(redraw.sum()))
        redraw[redraw] = is_forbidden(users[redraw] * vocabulary_size + samples[redraw])
    return samples.astype(np.int32)


def ranking_examples_dataset(
    sequences: Sequence[Sequence[int]],
    vocabulary_size: int,
    max_length: int,
    batch_size: int,
    num_negatives: int = 4,
    seed: int = 0,
    shuffle: bool = True,
    interacted: Optional[Sequence[Sequence[int]]] = None,
    user_indices: Optional[Sequence[int]] = None,
) -> tf.data.Dataset:
    """Pointwise ranking examples: each observed next item (label 1) plus sampled negatives.

    Every position t >= 1 of every sequence gives a positive example (history = the items
    before t, candidate = item t) and `num_negatives` negatives with the same history and a
    candidate the user never interacted with (ratio 1:num_negatives). Negatives are drawn once
    when the dataset is built (a different `seed` draws different ones). Histories are
    gathered per batch from one flat item array, so memory stays O(interactions).

    Args:
        sequences: per user, encoded item ids (e.g. `SequenceSplit.train`), most recent last.
        vocabulary_size: `Vocabulary.size`; negatives come from [2, vocabulary_size).
        max_length: L, the history length.
        batch_size: examples per batch.
        num_negatives: negatives per positive (default 4, i.e. 1:4).
        seed: seed for negative sampling and shuffling.
        shuffle: shuffle the examples once (seeded) and the batch order every epoch.
        interacted: per user, items never to use as negatives; default `sequences`. Pass
            `SequenceSplit.full_sequences()` so validation/test items are not negatives either.
        user_indices: per sequence, the index to report as "user_index" (default: its row).

    Returns:
        `tf.data.Dataset` of {"history": int32 [B, L], "candidate": int32 [B],
        "label": float32 [B], "user_index": int32 [B]}.

    Example:
        ```python
        ranking = ranking_examples_dataset(
            split.train, split.vocabulary.size, max_length=50, batch_size=1024,
            interacted=split.full_sequences())
        ```
    """
    _check_positive(vocabulary_size=vocabulary_size, max_length=max_length, batch_size=batch_size)
    if not isinstance(num_negatives, (int, np.integer)) or num_negatives < 0:
        raise ValueError(f"num_negatives must be an integer >= 0; got {num_negatives!r}.")
    flat, starts, ends = _flatten(sequences, "sequences")
    if len(flat) and flat.max() >= vocabulary_size:
        raise ValueError(f"sequences hold item id {flat.max()} >= vocabulary_size {vocabulary_size}.")
    interacted = sequences if interacted is None else interacted
    if len(interacted) != len(sequences):
        raise ValueError(f"interacted has {len(interacted)} users but sequences has {len(sequences)}.")
    user_indices = np.arange(len(starts)) if user_indices is None else np.asarray(user_indices)
    if len(user_indices) != len(starts):
        raise ValueError(f"user_indices has {len(user_indices)} entries for {len(starts)} sequences.")

    rng = np.random.default_rng(seed)
    lengths = ends - starts
    positives_per_user = np.maximum(lengths - 1, 0)
    row = np.repeat(np.arange(len(starts)), positives_per_user)
    # Position of each positive in `flat`: every item after the first of its sequence.
    first_of_user = np.repeat(np.cumsum(positives_per_user) - positives_per_user, positives_per_user)
    position = starts[row] + 1 + (np.arange(len(row)) - first_of_user)
    negatives = sample_negatives(positives_per_user * num_negatives, interacted, vocabulary_size, rng)

    group = 1 + num_negatives  # one positive then its negatives, user by user
    example_row = np.repeat(row, group)
    example_end = np.repeat(position, group)
    candidate = np.empty((len(row), group), dtype=np.int32)
    candidate[:, 0] = flat[position]
    candidate[:, 1:] = negatives.reshape(len(row), num_negatives)
    label = np.zeros((len(row), group), dtype=np.float32)
    label[:, 0] = 1.0
    examples = {
        "start": starts[example_row],
        "end": example_end,
        "candidate": candidate.reshape(-1),
        "label": label.reshape(-1),
        "user_index": user_indices[example_row].astype(np.int32),
    }

    # Slice whole batches from dense tensors (one op per batch, not per example), then gather
    # each batch's histories from the flat item array.
    tensors = {key: tf.constant(value) for key, value in examples.items()}
    # Shuffling gathers each batch through a seeded permutation (lazily, per batch).
    order = tf.constant(rng.permutation(len(example_row)) if shuffle else np.arange(len(example_row)))
    items = tf.constant(flat)
    offsets = tf.range(max_length, dtype=tf.int64) - max_length
    num_examples = len(example_row)
    num_batches = -(-num_examples // batch_size)

    def make_batch(index: tf.Tensor) -> dict:
        begin = index * batch_size
        end = tf.minimum(begin + batch_size, num_examples)
        rows = order[begin:end]
        batch = {key: tf.gather(value, rows) for key, value in tensors.items()}
        positions = batch["end"][:, None] + offsets[None, :]
        valid = positions >= batch["start"][:, None]
        history = tf.where(valid, tf.gather(items, tf.maximum(positions, 0)), 0)
        return {
            "history": history,
            "candidate": batch["candidate"],
            "label": batch["label"],
            "user_index": batch["user_index"],
        }

    dataset = tf.data.Dataset.range(num_batches)
    if shuffle:
        dataset = dataset.shuffle(max(num_batches, 1), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)
