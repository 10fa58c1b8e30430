"""benchmarks/tfrs_multitask_tutorial.py: the per-row summary and the within-target verdicts.

The training runs are the library's (tests/tasks/test_multitask.py); here the table arithmetic
is checked on hand-made results, so a wrong mean, spread or verdict fails.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def script():
    return load_benchmark("tfrs_multitask_tutorial")


def _runs(accuracies, rmses):
    return [{"seed": s, "accuracy@100": a, "rmse": r, "seconds": 1.0} for s, (a, r) in enumerate(zip(accuracies, rmses))]


def test_summary_means_spreads_and_targets(script):
    row = script.summarize((1.0, 1.0), _runs([0.230, 0.240, 0.250], [1.10, 1.12, 1.14]))  # tutorial 0.235 / 1.110
    assert row["accuracy@100"] == pytest.approx(0.240) and row["accuracy@100_std"] == pytest.approx(0.01)
    assert row["rmse"] == pytest.approx(1.12) and row["rmse_std"] == pytest.approx(np.std([1.10, 1.12, 1.14], ddof=1))
    assert row["accuracy_within_10pct"] and row["rmse_within_0.05"]
    off = script.summarize((1.0, 0.0), _runs([0.070, 0.070], [1.20, 1.20]))  # tutorial 0.060 / 1.113
    assert not off["accuracy_within_10pct"] and not off["rmse_within_0.05"]


def test_table_has_one_row_per_weighting_with_the_tutorials_numbers(script):
    rows = [script.summarize(w, _runs([0.06, 0.06], [1.11, 1.12])) for w in script.TUTORIAL]
    text = script.table(rows)
    lines = [line for line in text.splitlines() if line.startswith("| (")]
    assert [line.split("|")[1].strip() for line in lines] == ["(1, 0)", "(0, 1)", "(1, 1)"]
    assert "| 0.233 |" in lines[1] and "| 3.688 |" in lines[1]


def test_the_tutorials_model_has_no_logq_and_no_click_task(script):
    assert script.SETTINGS["logq_correction"] is False and script.SETTINGS["click_weight"] == 0.0
    assert script.TRAINING == {"optimizer": "adagrad", "learning_rate": 0.1, "batch_size": 8192, "patience": None}
