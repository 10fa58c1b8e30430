"""benchmarks/sasrec_pytorch_peer.py: orchestration with a fake peer interpreter, ours on a tiny file.

No torch here: the "peer python" is a script that answers in the driver's JSON format and
records the arguments it was given; our side really trains, at toy sizes.
"""

from __future__ import annotations

import json
import stat
import sys
import textwrap

import numpy as np
import pytest

from tests.conftest import load_benchmark

peer_benchmark = load_benchmark("sasrec_pytorch_peer")

FAKE_SECONDS = [2.0, 4.0]


def fake_peer_python(folder, exit_status: int = 0):
    """An executable standing in for the peer virtualenv's python: prints a driver report."""
    script = folder / "fake-python"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, pathlib, sys
        driver, options = sys.argv[1], sys.argv[2:]
        pathlib.Path({str(folder / "argv.json")!r}).write_text(json.dumps(sys.argv[1:]))
        if {exit_status}:
            print("ModuleNotFoundError: No module named 'torch'", file=sys.stderr)
            sys.exit({exit_status})
        value = dict(zip(options[::2], options[1::2]))
        print("a line the driver's imports might print")
        print(json.dumps({{
            "peer": "pmixer/SASRec.pytorch", "seconds_per_epoch": {FAKE_SECONDS},
            "warmup_seconds_per_epoch": [9.0], "steps_per_epoch": 3, "sequences_per_epoch": 24,
            "threads": int(value["--threads"]), "torch_version": "fake", "config": value, "last_loss": 1.3}}))
    """))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.fixture
def tiny_data(tmp_path):
    """A SASRec-form file: 30 users with 6-11 distinct items each, in order."""
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.txt"
    path.write_text("".join(f"{user} {item}\n" for user in range(1, 31)
                            for item in rng.choice(np.arange(1, 40), size=int(rng.integers(6, 12)), replace=False)))
    return path


@pytest.fixture
def peer_src(tmp_path):
    folder = tmp_path / "SASRec.pytorch"
    folder.mkdir()
    for name in ("model.py", "utils.py"):
        (folder / name).write_text("# stand-in\n")
    return folder


def test_both_peers_timed_and_compared(tmp_path, tiny_data, peer_src, capsys):
    output = tmp_path / "bench.json"
    result = peer_benchmark.main([
        "--peer-src", str(peer_src), "--peer-python", str(fake_peer_python(tmp_path)), "--data", str(tiny_data),
        "--epochs", "2", "--threads", "1", "--max-length", "8", "--hidden-dim", "8", "--num-blocks", "1",
        "--batch-size", "8", "--length-buckets", "1", "2", "--output-json", str(output),
    ])
    printed = capsys.readouterr().out

    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[0] == str(peer_benchmark.DRIVER)
    options = dict(zip(argv[1::2], argv[2::2]))
    assert options == {
        "--peer-src": str(peer_src), "--data": str(tiny_data), "--epochs": "2", "--warmup-epochs": "1",
        "--threads": "1", "--maxlen": "8", "--hidden-units": "8", "--num-blocks": "1", "--num-heads": "1",
        "--dropout-rate": "0.2", "--batch-size": "8", "--lr": "0.001", "--l2-emb": "0.0", "--seed": "0",
    }

    plain, bucketed = result["ours"]
    assert (plain["length_buckets"], bucketed["length_buckets"]) == (1, 2)
    assert plain["peer"] == "tf-attnrec sasrec" and bucketed["peer"] == "tf-attnrec sasrec (length_buckets 2)"
    for ours in (plain, bucketed):
        assert len(ours["seconds_per_epoch"]) == 2 and len(ours["warmup_seconds_per_epoch"]) == 1
        assert all(s > 0 for s in ours["seconds_per_epoch"])
        assert ours["config"]["hidden_dim"] == ours["config"]["ff_dim"] == 8 and ours["config"]["loss"] == "bce"
        expected_ratio = np.mean(FAKE_SECONDS) / np.mean(ours["seconds_per_epoch"])
        assert ours["ratio_pytorch_over_ours"] == pytest.approx(expected_ratio)
        assert ours["bar_met"] == (ours["ratio_pytorch_over_ours"] >= 3.0)
        verdict = "met" if ours["bar_met"] else "not met"
        assert (f"ratio (pytorch / {ours['peer']}): {ours['ratio_pytorch_over_ours']:.2f}x; bar >= 3x: {verdict}"
                in printed)
    assert plain["sequences_per_epoch"] == 30 and plain["steps_per_epoch"] == 4  # ceil(30 / 8)
    assert bucketed["steps_per_epoch"] >= 4  # a partial batch per bucket at most
    written = json.loads(output.read_text())["ours"]
    assert [r["ratio_pytorch_over_ours"] for r in written] == pytest.approx(
        [plain["ratio_pytorch_over_ours"], bucketed["ratio_pytorch_over_ours"]])

    row = next(line for line in printed.splitlines() if line.startswith("pmixer/SASRec.pytorch"))
    assert row.split()[1:4] == ["3.00", "2", "1"]  # mean of the timed passes, passes, threads
    assert sum(line.startswith("tf-attnrec sasrec") for line in printed.splitlines()) == 2


def test_a_failing_peer_reports_its_error(tmp_path, tiny_data, peer_src):
    with pytest.raises(RuntimeError, match="No module named 'torch'"):
        peer_benchmark.run_pytorch_peer(fake_peer_python(tmp_path, exit_status=1), peer_src, tiny_data,
                                        peer_benchmark.reference_config(), epochs=2, warmup=1, threads=1)


def test_without_a_peer_virtualenv_it_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setattr(peer_benchmark, "PEER_CACHE", tmp_path)
    with pytest.raises(SystemExit, match=r"python3 -m venv .*sasrec-pytorch-venv && .*/bin/pip install torch numpy"):
        peer_benchmark.resolve_peer_python(None)
    venv_python = tmp_path / "recbole-venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text("")
    assert peer_benchmark.resolve_peer_python(None) == venv_python


def test_reference_config_is_pmixers_ml1m_setting():
    config = peer_benchmark.reference_config()
    assert config["model_config"] == {"max_length": 200, "hidden_dim": 50, "num_blocks": 2, "num_heads": 1,
                                      "ff_dim": 50, "dropout": 0.2, "loss": "bce"}
    assert config["training"] == {"batch_size": 128, "learning_rate": 1e-3}
