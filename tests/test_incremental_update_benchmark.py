"""benchmarks/incremental_update.py: which users are the latest, and the summary over seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("incremental_update")


def test_latest_users_are_those_whose_last_interaction_is_at_or_after_the_cut(bench):
    log = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [1, 2, 1, 3, 2], "timestamp": [1, 5, 2, 3, 9]})
    assert sorted(bench.latest_users(log, cut=5).tolist()) == [1, 3]
    old, new, cut = bench.split_by_time(log, 0.5)
    assert (old["timestamp"] < cut).all() and len(new) == len(log) and len(old) < len(log)


def test_summary_takes_the_shares_of_the_means_over_seeds(bench):
    def run(ndcg, latest, wall):
        return {"ndcg@10": ndcg, "wall_seconds": wall, "latest": {"ndcg@10": latest}}

    seeds = {"0": {"retrain": run(0.10, 0.08, 100.0), "update": run(0.09, 0.10, 20.0)},
             "1": {"retrain": run(0.08, 0.12, 300.0), "update": run(0.09, 0.10, 40.0)}}
    summary = bench.summarise(seeds)
    assert np.isclose(summary["ndcg_share"], 1.0)
    assert np.isclose(summary["latest_ndcg_share"], 1.0)
    assert np.isclose(summary["time_share"], 30.0 / 200.0)
    assert summary["retrain"]["wall_seconds"] == "200.0 ± 141.4"
    assert summary["update"]["latest_ndcg@10"] == "0.1000 ± 0.0000"
