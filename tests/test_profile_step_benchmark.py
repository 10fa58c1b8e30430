"""`benchmarks/profile_step.py`: a profiled tiny SASRec step on ML-100K, summarised by op type."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import load_benchmark

# The matmul kernels a SASRec step runs on CPU. With oneDNN on (the default), TF 2.20 runs
# them as _MklMatMul, _MklBatchMatMulV2 and _MklEinsum.
MATMUL_LIKE = re.compile(r"MatMul|Einsum")


@pytest.fixture(scope="module")
def profile(shared_data_dir, tmp_path_factory):
    """One tiny profiled run: ML-100K, hidden 16, 1 block, length 20, batch 32, 3 profiled steps."""
    folder = tmp_path_factory.mktemp("profile_step")
    profile_step = load_benchmark("profile_step")
    result = profile_step.main([
        "--dataset", "ml-100k", "--data-dir", str(shared_data_dir), "--steps", "3", "--warmup", "2",
        "--max-length", "20", "--batch-size", "32", "--set", "hidden_dim=16", "--set", "num_blocks=1",
        "--logdir", str(folder / "logs"), "--output-json", str(folder / "profile.json"),
    ])
    return result, folder


def test_the_table_has_op_types_whose_shares_fit_in_the_step(profile):
    result, _ = profile
    rows = result["rows"]
    assert rows and result["profiled_steps"] == 3
    assert all(row["total_ms"] >= 0 and row["count"] > 0 for row in rows)
    assert [row["total_ms"] for row in rows] == sorted((row["total_ms"] for row in rows), reverse=True)
    # Overlapping ops share the wall clock, so the shares never add up to more than the step.
    shares = sum(row["percent_of_step"] for row in rows) + result["other_types"]["percent_of_step"]
    assert 0 < shares <= 100 + 1e-6
    assert result["op_time_ms"] <= result["profiled_step_time_ms"] * (1 + 1e-9)


def test_a_matmul_kernel_is_among_the_top_op_types(profile):
    result, _ = profile
    top_types = [row["op_type"] for row in result["rows"][:10]]
    assert any(MATMUL_LIKE.search(op_type) for op_type in top_types), top_types


def test_the_trace_and_the_json_are_written(profile):
    result, folder = profile
    trace = folder / "logs" / "plugins" / "profile"
    written = list(trace.glob("*/*.xplane.pb"))
    assert [str(path) for path in written] == [result["trace_file"]]
    assert written[0].stat().st_size > 0
    saved = json.loads((folder / "profile.json").read_text())
    assert saved["rows"] == result["rows"]
    assert saved["model_config"]["hidden_dim"] == 16 and saved["training"]["batch_size"] == 32


def test_nested_ops_are_charged_self_time_and_overlapping_ops_share_the_clock():
    profile_step = load_benchmark("profile_step")
    OpEvent = profile_step.OpEvent
    call = OpEvent(0, 10, "PartitionedCall", "call")
    inner = OpEvent(2, 5, "MatMul", "call/matmul")
    other_thread = OpEvent(4, 8, "Mul", "mul")
    segments = profile_step.innermost_segments([inner, call]) + profile_step.innermost_segments([other_thread])
    assert sorted(segments) == [(0, 2, call), (2, 5, inner), (4, 8, other_thread), (5, 10, call)]
    wall = profile_step.share_wall_time(profile_step.clip_to_windows(sorted(segments), [(0, 9)]))
    # 0-2 call; 2-4 matmul; 4-5 matmul|mul; 5-8 call|mul; 8-9 call (clipped at the step's end).
    assert wall == {call: 2 + 1.5 + 1, inner: 2 + 0.5, other_thread: 0.5 + 1.5}
    assert sum(wall.values()) == 9
