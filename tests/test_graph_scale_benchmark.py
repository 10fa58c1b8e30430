"""benchmarks/graph_scale.py: the power-law generator, the per-phase peak memory, and one tiny run.

No timing assertion: sizes are tiny and everything runs in this process.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)

from tests.conftest import load_benchmark


# How far apart two readings of the same resident memory can be (see the lightgcn test).
RSS_READING_SLACK = 2 * 2**20


@pytest.fixture(scope="module")
def scale():
    return load_benchmark("graph_scale")


def test_generator_gives_exactly_the_requested_distinct_edges(scale):
    users, items = scale.power_law_edges(3000, 500, 20_000, seed=3)
    assert users.dtype == items.dtype == np.int32
    assert len(users) == len(items) == 20_000
    keys = users.astype(np.int64) * 500 + items
    assert np.all(np.diff(keys) > 0)  # sorted by (user, item), hence no repeated pair
    assert users.min() >= 0 and users.max() < 3000 and items.min() >= 0 and items.max() < 500


def test_generator_tops_up_when_most_draws_collide(scale):
    # 1,500 of 2,000 possible pairs: the heavy pairs repeat, so one round cannot be enough.
    users, items = scale.power_law_edges(50, 40, 1500, seed=0)
    assert len(np.unique(users.astype(np.int64) * 40 + items)) == 1500


def test_generator_refuses_more_edges_than_pairs(scale):
    with pytest.raises(ValueError, match="cannot fit"):
        scale.power_law_edges(10, 10, 101)


def test_generator_degrees_are_skewed_like_a_power_law(scale):
    num_users, num_items = 20_000, 2_000
    users, items = scale.power_law_edges(num_users, num_items, 50_000, seed=1)
    summary = scale.degree_summary(users, items, num_users, num_items)
    # Uniform items would give the top 1% about 1% of the edges; rank^-0.8 gives ~20%.
    assert summary["top1pct_item_edge_share"] > 0.10
    user_degree = np.sort(np.bincount(users, minlength=num_users))[::-1]
    assert user_degree[: num_users // 100].sum() / len(users) > 0.04  # rank^-0.5: ~7%
    assert summary["max_item_degree"] > 20 * len(items) / num_items


def test_generator_is_deterministic_given_the_seed(scale):
    first = scale.power_law_edges(1000, 300, 5000, seed=7)
    again = scale.power_law_edges(1000, 300, 5000, seed=7)
    other = scale.power_law_edges(1000, 300, 5000, seed=8)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0]) or not np.array_equal(first[1], other[1])


def test_phase_peaks_are_each_phases_own(scale):
    phases = scale.Phases()
    if not phases.per_phase_peaks:
        pytest.skip("/proc/self/clear_refs is not writable here: peaks are cumulative")
    with phases.phase("big"):
        block = np.ones(200 * 2**20 // 8)  # 200 MiB, touched
        del block
    with phases.phase("small"):
        np.ones(1000).sum()
    big, small = phases.records["big"], phases.records["small"]
    assert big["peak_rss_bytes"] - big["rss_before_bytes"] > 150 * 2**20
    assert small["peak_rss_bytes"] < big["peak_rss_bytes"] - 100 * 2**20
    assert phases.process_peak >= big["peak_rss_bytes"]


def test_lightgcn_measurement_runs_and_reports_every_field(scale, tmp_path, capsys):
    output, picture = tmp_path / "scale.json", tmp_path / "scale.png"
    report = scale.main([
        "--measure", "lightgcn_propagation", "--users", "300", "--items", "100", "--edges", "1000", "2000",
        "--repeats", "1", "--embedding-dim", "8", "--num-layers", "2", "--batch-size", "64", "--in-process",
        "--output-json", str(output), "--plot", str(picture),
    ])
    assert "| edges |" in capsys.readouterr().out
    stored = json.loads(output.read_text())
    assert stored["results"] == json.loads(json.dumps(report["results"]))
    assert stored["command"].startswith("python benchmarks/graph_scale.py --measure lightgcn_propagation")
    assert stored["date"] and stored["machine"]["cores"] >= 1 and stored["machine"]["tensorflow"]
    assert len(stored["load_average_before"]) == 3 and len(stored["load_average_after"]) == 3
    for requested, result in zip((1000, 2000), stored["results"]):
        assert result["edges"] == requested and result["adjacency_entries"] == 2 * requested
        for name in ("generate", "from_pairs", "model", "adjacency", "forward", "sparse_matmul",
                     "sparse_matmul_fwd_bwd", "csr_kernel", "train_step"):
            phase = result["phases"][name]
            # The kernel's RSS counters are per-CPU sums read approximately: VmHWM read after a
            # phase can come out some pages under VmRSS read before it (seen: 128 kB).
            assert phase["seconds"] > 0 and phase["rss_before_bytes"] > 0
            assert phase["peak_rss_bytes"] >= phase["rss_before_bytes"] - RSS_READING_SLACK
        assert len(result["phases"]["forward"]["repeat_seconds"]) == 1
        assert result["peak_rss_bytes"] >= result["baseline_rss_bytes"] > 0
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_graphsage_epoch_measurement_trains_every_edge_once(scale, tmp_path, capsys):
    output = tmp_path / "sage.json"
    report = scale.main([
        "--measure", "graphsage_cf_epoch", "--users", "300", "--items", "100", "--edges", "1500",
        "--embedding-dim", "8", "--num-samples", "3", "--batch-size", "256", "--in-process",
        "--output-json", str(output),
    ])
    assert "| edges | users | items | steps |" in capsys.readouterr().out
    (result,) = json.loads(output.read_text())["results"]
    assert result == json.loads(json.dumps(report["results"][0]))
    assert result["steps"] == 6 and result["trained_edges"] == 1500 and result["full_epoch"]
    epoch = result["phases"]["epoch"]
    assert epoch["steps"] == 6 and 0 < epoch["median_step_seconds"] <= epoch["seconds"]
    assert result["edges_per_second"] == pytest.approx(1500 / epoch["seconds"])
    assert epoch["peak_rss_bytes"] >= epoch["rss_before_bytes"] - RSS_READING_SLACK > 0
    for name in ("generate", "from_pairs", "model", "set_graph", "epoch"):
        assert result["phases"][name]["seconds"] > 0


def test_graphsage_epoch_can_be_cut_short_and_refuses_a_plot(scale, tmp_path):
    report = scale.main([
        "--measure", "graphsage_cf_epoch", "--users", "200", "--items", "50", "--edges", "1000",
        "--embedding-dim", "8", "--num-samples", "2", "--batch-size", "128", "--max-steps", "2", "--in-process",
    ])
    (result,) = report["results"]
    assert result["steps"] == 2 and result["trained_edges"] == 256 and not result["full_epoch"]
    with pytest.raises(SystemExit):
        scale.main(["--measure", "graphsage_cf_epoch", "--plot", str(tmp_path / "x.png")])
