"""`examples/parameter_server.py`: SASRec's item table sharded over 2 parameter servers, trained by 2 workers.

The example starts the parameter servers and workers as processes on localhost and coordinates
a few `model.fit` steps under `ParameterServerStrategy`; this runs it as a subprocess on
MovieLens-100K with a tiny model and reads what it prints.
"""

from __future__ import annotations

import math
import os
import pathlib
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS = 6


def test_item_table_is_sharded_over_two_parameter_servers(shared_data_dir):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, str(REPO / "examples" / "parameter_server.py"), "--data-dir", str(shared_data_dir),
               "--dataset", "ml-100k", "--steps", str(STEPS), "--num-ps", "2", "--num-workers", "2",
               "--batch-size", "32", "--max-length", "20", "--hidden-dim", "16"]
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]

    cluster = re.search(r"^cluster: .*", run.stdout, re.M)
    assert cluster and cluster.group().count('"ps"') == 1 and cluster.group().count('"worker"') == 1, run.stdout
    shards = re.findall(r"^  shard (\S+) shape=\[(\d+), (\d+)\] device=(\S+) bytes=(\d+)", run.stdout, re.M)
    assert len(shards) == 2, run.stdout
    devices = {re.search(r"/job:ps/.*task:(\d+)", device).group(1) for _, _, _, device, _ in shards}
    assert devices == {"0", "1"}, shards  # one shard on each parameter server
    rows = sum(int(num_rows) for _, num_rows, _, _, _ in shards)
    assert rows == 1682 + 2  # ML-100K's items, padding and out-of-vocabulary: the whole table
    for _, num_rows, dim, _, num_bytes in shards:
        assert int(dim) == 16 and int(num_bytes) == int(num_rows) * 16 * 4

    losses = [float(loss) for loss in re.findall(rf"^step +\d+/{STEPS}: loss (\S+)", run.stdout, re.M)]
    assert len(losses) == STEPS, run.stdout
    assert all(math.isfinite(loss) for loss in losses), losses
    assert "tf.nn.embedding_lookup matches" in run.stdout, run.stdout
    check = re.search(r"^CHECK: .*", run.stdout, re.M)
    assert check and "2 distinct parameter servers" in check.group() and "FAILED" not in check.group(), run.stdout
    assert "servers stopped; PASSED" in run.stdout
