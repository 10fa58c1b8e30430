"""tf.data pipelines: padding, next-item targets, evaluation, sampled-negative ranking."""

from __future__ import annotations


import numpy as np
import pytest

from tf_attnrec.data.pipelines import (
    evaluation_dataset,
    next_item_dataset,
    pad_sequences,
    ranking_examples_dataset,
    sample_negatives,
)
from tf_attnrec.data.splits import leave_one_out_split


def _reference_pad(sequences, length):
    out = np.zeros((len(sequences), length), dtype=np.int32)
    for row, sequence in enumerate(sequences):
        kept = list(sequence)[-length:]
        if kept:
            out[row, length - len(kept):] = kept
    return out


def _numpy_batches(dataset):
    return [{key: value.numpy() for key, value in batch.items()} for batch in dataset]


def test_pad_sequences_left_pads_and_keeps_most_recent():
    np.testing.assert_array_equal(pad_sequences([[5, 6, 7], [8], []], max_length=2), [[6, 7], [0, 8], [0, 0]])
    rng = np.random.default_rng(3)
    sequences = [rng.integers(2, 100, size=rng.integers(0, 30)) for _ in range(200)]
    padded = pad_sequences(sequences, max_length=12)
    assert padded.dtype == np.int32
    np.testing.assert_array_equal(padded, _reference_pad(sequences, 12))
    with pytest.raises(ValueError, match="max_length must be a positive integer; got 0"):
        pad_sequences(sequences, 0)
    with pytest.raises(TypeError, match="integer item ids"):
        pad_sequences([[1.5, 2.0]], 3)


def test_next_item_targets_are_the_following_items():
    batches = _numpy_batches(next_item_dataset([[2, 3, 4, 5], [6], [7, 8]], max_length=5, batch_size=8, shuffle=False))
    assert len(batches) == 1  # the 1-item sequence has no target and is left out
    np.testing.assert_array_equal(batches[0]["history"], [[0, 0, 2, 3, 4], [0, 0, 0, 0, 7]])
    np.testing.assert_array_equal(batches[0]["targets"], [[0, 0, 3, 4, 5], [0, 0, 0, 0, 8]])
    truncated = _numpy_batches(next_item_dataset([[2, 3, 4, 5]], max_length=2, batch_size=8, shuffle=False))
    np.testing.assert_array_equal(truncated[0]["history"], [[3, 4]])
    np.testing.assert_array_equal(truncated[0]["targets"], [[4, 5]])


def test_split_long_sequences_makes_every_item_a_target_once():
    sequence = np.arange(2, 12)  # 10 items -> 9 targets, windows of 4 -> 3 windows
    batches = _numpy_batches(
        next_item_dataset([sequence, [20, 21]], max_length=4, batch_size=16, shuffle=False, split_long_sequences=True)
    )
    history, targets = batches[0]["history"], batches[0]["targets"]
    assert history.shape == (4, 4)
    assert sorted(targets[targets > 0].tolist()) == list(range(3, 12)) + [21]
    real = targets > 0
    # Each history item is the item right before its target; padding lines up.
    np.testing.assert_array_equal(real, history > 0)
    np.testing.assert_array_equal(targets[:3][real[:3]], history[:3][real[:3]] + 1)


def test_length_buckets_batch_similar_lengths_and_keep_every_example_once():
    rng = np.random.default_rng(0)
    sequences = [rng.integers(2, 500, size=n) for n in rng.integers(2, 42, size=300)]
    plain = next_item_dataset(sequences, max_length=40, batch_size=16, seed=3)
    bucketed = next_item_dataset(sequences, max_length=40, batch_size=16, seed=3, length_buckets=4)
    batches = _numpy_batches(bucketed)
    assert bucketed.cardinality().numpy() == len(batches)
    rows = lambda batches: sorted(map(tuple, np.concatenate([b["history"] for b in batches])))  # noqa: E731
    assert rows(batches) == rows(_numpy_batches(plain))
    for batch in batches:
        np.testing.assert_array_equal(batch["history"] > 0, batch["targets"] > 0)
    # A batch's longest history sets its cost; buckets cut the padding every row of a batch shares.
    cost = lambda batches: sum(len(b["history"]) * (b["history"] > 0).sum(1).max() for b in batches)  # noqa: E731
    assert cost(batches) < 0.8 * cost(_numpy_batches(plain))
    spreads = [np.ptp((b["history"] > 0).sum(1)) for b in batches if len(b["history"]) == 16]
    assert max(spreads) < 20, spreads  # the plain batches span nearly the whole range, 1 to 40
    dropped = next_item_dataset(sequences, max_length=40, batch_size=16, seed=3, length_buckets=4,
                                drop_remainder=True)
    assert all(len(b["history"]) == 16 for b in _numpy_batches(dropped))
    assert dropped.cardinality().numpy() == len(_numpy_batches(dropped))
    with pytest.raises(ValueError, match="length_buckets"):
        next_item_dataset(sequences, max_length=40, batch_size=16, length_buckets=0)


def test_ml1m_training_pipeline_covers_train_only(ml1m):
    # No wall-clock bar here: timings belong in benchmarks (train_throughput.py), not in tests.
    split = leave_one_out_split(ml1m.interactions)
    dataset = next_item_dataset(split.train, max_length=200, batch_size=256, shuffle=False)

    batches = _numpy_batches(dataset)
    history = np.concatenate([b["history"] for b in batches])
    targets = np.concatenate([b["targets"] for b in batches])
    assert history.shape == targets.shape == (6040, 200)
    lengths = np.array([len(s) for s in split.train])
    np.testing.assert_array_equal((targets > 0).sum(axis=1), np.minimum(lengths - 1, 200))
    np.testing.assert_array_equal((targets > 0), (history > 0))
    # The last target is the last training item: validation and test items never train.
    np.testing.assert_array_equal(targets[:, -1], [s[-1] for s in split.train])
    assert not (targets == split.validation_target[:, None]).any()
    assert not (targets == split.test_target[:, None]).any()
    # Next-item alignment: the target at t is the history item at t + 1.
    followed = targets[:, :-1] > 0
    np.testing.assert_array_equal(targets[:, :-1][followed], history[:, 1:][followed])
    assert followed.sum() == (np.minimum(lengths - 1, 200) - 1).sum()


def test_shuffle_is_deterministic_given_seed(ml1m_split):
    def epochs(seed):
        dataset = next_item_dataset(ml1m_split.train, max_length=50, batch_size=512, seed=seed)
        return [np.concatenate([b["history"] for b in _numpy_batches(dataset)]) for _ in range(2)]

    first, again, other = epochs(7), epochs(7), epochs(8)
    for epoch in range(2):
        np.testing.assert_array_equal(first[epoch], again[epoch])
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[0], first[1])  # reshuffled each epoch
    # Shuffling reorders rows but keeps the same examples.
    assert sorted(map(tuple, first[0])) == sorted(map(tuple, other[0]))


def test_evaluation_dataset_on_ml1m_test_inputs(ml1m_split):
    inputs = ml1m_split.test_inputs()
    batches = _numpy_batches(evaluation_dataset(inputs.histories, inputs.targets, 200, 1000, inputs.user_indices))
    history = np.concatenate([b["history"] for b in batches])
    target = np.concatenate([b["target"] for b in batches])
    user_index = np.concatenate([b["user_index"] for b in batches])
    np.testing.assert_array_equal(target, ml1m_split.test_target)
    np.testing.assert_array_equal(user_index, np.arange(6040))
    np.testing.assert_array_equal(history[:, -1], ml1m_split.validation_target)  # most recent = validation item
    assert not (history == target[:, None]).any()  # the test item is never in its own history
    with pytest.raises(ValueError, match="Got 2 histories but 1 targets"):
        evaluation_dataset([[2], [3]], [4], 5, 2)


@pytest.fixture(scope="module")
def ml100k_split(ml100k):
    return leave_one_out_split(ml100k.interactions)


def _ranking(split, seed, num_negatives=4, max_length=20):
    return ranking_examples_dataset(
        split.train, split.vocabulary.size, max_length=max_length, batch_size=4096,
        num_negatives=num_negatives, seed=seed, interacted=split.full_sequences(),
    )  # fmt: skip


def test_ranking_examples_on_ml100k(ml100k_split):
    split = ml100k_split
    batches = _numpy_batches(_ranking(split, seed=1))
    label = np.concatenate([b["label"] for b in batches])
    candidate = np.concatenate([b["candidate"] for b in batches])
    user = np.concatenate([b["user_index"] for b in batches])
    history = np.concatenate([b["history"] for b in batches])
    num_positives = sum(len(s) - 1 for s in split.train)
    assert int(label.sum()) == num_positives and len(label) == 5 * num_positives  # 1:4
    assert candidate.min() >= 2 and candidate.max() < split.vocabulary.size
    # Negatives are items the user never touched (train, validation or test).
    full = split.full_sequences()
    touched = {(u, int(i)) for u, seq in enumerate(full) for i in seq}
    negative = label == 0
    assert not any((int(u), int(c)) in touched for u, c in zip(user[negative], candidate[negative]))
    assert all((int(u), int(c)) in touched for u, c in zip(user[~negative], candidate[~negative]))
    # Each positive's history is the items just before it in that user's train sequence.
    for row in np.flatnonzero(~negative)[:2000]:
        sequence = split.train[user[row]].tolist()
        at = sequence.index(candidate[row])  # ML-100K has no repeated user-item pairs
        np.testing.assert_array_equal(history[row], _reference_pad([sequence[:at]], 20)[0])
    # Negatives share the history of a positive of the same user.
    assert (history[negative] > 0).any(axis=1).all()


def test_ranking_examples_are_deterministic_given_seed(ml100k_split):
    def first_batch(seed):
        return next(iter(_ranking(ml100k_split, seed=seed)))

    a, b, c = first_batch(5), first_batch(5), first_batch(6)
    for key in a:
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())
    assert not np.array_equal(a["candidate"].numpy(), c["candidate"].numpy())


def test_ranking_ratio_is_configurable():
    batches = _numpy_batches(
        ranking_examples_dataset([[2, 3, 4]], vocabulary_size=40, max_length=4, batch_size=64, num_negatives=2, shuffle=False)
    )
    assert batches[0]["label"].tolist() == [1, 0, 0, 1, 0, 0]
    assert batches[0]["candidate"][[0, 3]].tolist() == [3, 4]
    np.testing.assert_array_equal(batches[0]["history"][:3], [[0, 0, 0, 2]] * 3)
    np.testing.assert_array_equal(batches[0]["history"][3:], [[0, 0, 2, 3]] * 3)
    assert not set(batches[0]["candidate"][[1, 2, 4, 5]].tolist()) & {2, 3, 4}


def test_sample_negatives_avoids_interacted_and_rejects_impossible():
    rng = np.random.default_rng(0)
    samples = sample_negatives(np.array([500, 500]), [[2, 3, 4], [5]], vocabulary_size=8, rng=rng)
    assert set(samples[:500].tolist()) == {5, 6, 7} and set(samples[500:].tolist()) == {2, 3, 4, 6, 7}
    with pytest.raises(ValueError, match=r"1 user\(s\) interacted with every item"):
        sample_negatives(np.array([1]), [[2, 3]], vocabulary_size=4, rng=rng)
