"""benchmarks/evaluation_speed.py runs end to end on a small slice of the real ML-1M file.

No timing assertion: the numbers are checked for correctness, not speed.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)

from tests.conftest import load_benchmark
from tests.evaluation import _reference as ref

NUM_USERS, MAX_LENGTH = 60, 30


@pytest.fixture(scope="module")
def speed_script():
    return load_benchmark("evaluation_speed")


def _sasrec_sequences(path: pathlib.Path, num_users: int) -> dict[int, list[int]]:
    sequences: dict[int, list[int]] = {}
    with open(path) as handle:
        for line in handle:
            user, item = map(int, line.split())
            if user not in sequences and len(sequences) == num_users:
                continue
            sequences.setdefault(user, []).append(item)
    return sequences


def test_benchmark_runs_and_its_numbers_are_right(speed_script, shared_data_dir, capsys):
    data = shared_data_dir / "ml-1m" / "ml-1m.txt"
    result = speed_script.main([
        "--data", str(data), "--num-users", str(NUM_USERS), "--max-length", str(MAX_LENGTH),
        "--dim", "8", "--repeats", "1",
    ])
    printed = capsys.readouterr().out
    assert f"data: {NUM_USERS} users x 3418 score columns" in printed
    assert "ranking + accuracy metrics" in printed and "beyond-accuracy" in printed

    # Leave-one-out inputs, rebuilt here by plain Python from the file.
    sequences = _sasrec_sequences(data, NUM_USERS)
    histories, targets = result["histories"], result["targets"]
    for row, items in enumerate(sequences.values()):
        ids = [i + 1 for i in items]  # SASRec item k -> id k + 1
        assert targets[row] == ids[-1]
        expected_history = ids[:-1][-MAX_LENGTH:]
        padded = [0] * (MAX_LENGTH - len(expected_history)) + expected_history
        assert histories[row].tolist() == padded
    expected_counts = np.zeros(3418, np.int64)
    for items in sequences.values():
        for item in items[:-1]:
            expected_counts[item + 1] += 1
    np.testing.assert_array_equal(result["item_counts"], expected_counts)

    # Accuracy metrics agree with the loop reference on the benchmark's own scorer.
    scores = result["score_fn"](histories).numpy()
    ranks = [ref.rank(scores[u], targets[u], histories[u]) for u in range(NUM_USERS)]
    for key, value in ref.ranking_metrics(ranks, (10, 20)).items():
        assert result["accuracy"][key] == pytest.approx(value, rel=1e-9), key
    assert result["beyond"]["coverage@20"] == pytest.approx(
        ref.coverage(result["top_k"], 3418, 20)
    )
    # Genres come from movies.dat through the original ids: SASRec item 1 is MovieLens 1198,
    # "Raiders of the Lost Ark (1981)", Action|Adventure.
    genres = result["genres"]
    assert genres is not None and genres.shape == (3418, 18)
    assert genres[2].sum() == 2 and 0 < result["beyond"]["ild_genre@10"] <= 1
