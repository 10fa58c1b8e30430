"""benchmarks/lightgcn_epoch_time.py: the arithmetic of the side-by-side epoch timing (no RecBole run)."""

from __future__ import annotations

import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("lightgcn_epoch_time")


def test_means_leave_out_the_first_epoch(bench):
    epochs = [{"train_s": 100.0, "valid_s": 9.0}, {"train_s": 10.0, "valid_s": 1.0}, {"train_s": 14.0, "valid_s": 3.0}]
    means = bench.steady_means(epochs)
    assert means == {"epochs_timed": 2, "train_s": 12.0, "valid_s": 2.0, "epoch_s": 14.0}
    assert bench.steady_means(epochs[:1])["epoch_s"] == 109.0  # one epoch: all there is
    with pytest.raises(ValueError, match="no epochs"):
        bench.steady_means([])


def test_time_to_best_counts_epochs_zero_to_best(bench):
    means = {"epoch_s": 14.0}
    assert bench.time_to_best(means, 0) == 14.0
    assert bench.time_to_best(means, 9) == 140.0
    assert bench.time_to_best(means, None) is None


def test_fewer_than_two_epochs_is_refused(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--epochs", "1"])
    assert "--epochs must be >= 2" in capsys.readouterr().err
