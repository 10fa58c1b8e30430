"""Side by side: our `lightgcn` and RecBole 1.2.1's LightGCN, seconds per epoch on one split, in one run.

The time half of the lightgcn bar compares wall time to each model's best epoch. A full run's
own timings are only as clean as the machine was during it (runs here share 2 cores with
other jobs for hours), so this script measures the cost of an epoch for both models in one
invocation, one after the other, under the same load:

1. RecBole's LightGCN for `--epochs` epochs (`recbole_graph.py --fresh` in a scratch work
   dir, its peer venv, `--threads` torch threads): per-epoch training and validation seconds.
2. Our zoo `lightgcn` for `--epochs` passes (`tf-attnrec train --model lightgcn --epochs N`,
   the zoo config, the same split seed): per-pass training and validation seconds.

Epoch 0 includes one-time work (graph building, tracing), so the means are over epochs 1..N-1.
Given each model's epochs to its best (`--ours-best`: our best pass, 0-based, and
`--recbole-best`: RecBole's best epoch, 0-based, both read off full runs, which must be
to early stopping for a finished claim), the estimated wall time to the best epoch is
`(best + 1) * (train + validation seconds per epoch)`, and the script prints the ratio.

    python benchmarks/lightgcn_epoch_time.py [--epochs 3] [--ours-best 74] [--recbole-best N]
        [--threads 2] [--seed 2020] [--data-dir ../shared/data] [--work-dir DIR] [--output-json PATH]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import importlib.util
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
from typing import Optional, Sequence

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"


def _recbole_graph():
    spec = importlib.util.spec_from_file_location("recbole_graph", REPO / "benchmarks" / "recbole_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def steady_means(epochs: Sequence[dict]) -> dict:
    """Mean training / validation seconds over the epochs after the first (which pays one-time costs)."""
    steady = list(epochs[1:]) or list(epochs)
    if not steady:
        raise ValueError("no epochs were timed")
    train = sum(e["train_s"] for e in steady) / len(steady)
    valid = sum(e["valid_s"] for e in steady) / len(steady)
    return {"epochs_timed": len(steady), "train_s": train, "valid_s": valid, "epoch_s": train + valid}


def time_to_best(means: dict, best: Optional[int]) -> Optional[float]:
    """Estimated wall seconds to the end of epoch `best` (0-based) at the measured per-epoch cost."""
    return None if best is None else (best + 1) * means["epoch_s"]


def run_recbole(args, work: pathlib.Path) -> list[dict]:
    output = work / "recbole.json"
    argv = ["--models", "LightGCN", "--seed", str(args.seed), "--epochs", str(args.epochs), "--threads",
            str(args.threads), "--work-dir", str(work / "recbole"), "--fresh", "--output-json", str(output),
            "--data", str(args.data_dir / "ml-1m" / "ml-1m.txt")]
    if args.venv is not None:
        argv += ["--venv", str(args.venv)]
    code = _recbole_graph().main(argv)
    if code != 0 or not output.exists():
        raise RuntimeError(f"recbole_graph.py exited {code}; see its output above")
    history = json.loads(output.read_text())["results"][0]["history"]
    return [{"epoch": e["epoch"], "train_s": e["train_s"], "valid_s": e["valid_s"]} for e in history]


def run_ours(args, work: pathlib.Path) -> list[dict]:
    run_dir = work / "ours"
    cmd = ["tf-attnrec", "train", "--model", "lightgcn", "--dataset", "ml-1m", "--data-dir", str(args.data_dir),
           "--output", str(run_dir), "--epochs", str(args.epochs), "--patience", str(args.epochs + 1),
           "--seed", "0", "--overwrite", "--quiet"]
    print("[ours]", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    with open(run_dir / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [{"epoch": int(r["epoch"]), "train_s": float(r["train_seconds"]), "valid_s": float(r["val_seconds"])}
            for r in rows]


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs timed per model (the first is not averaged)")
    parser.add_argument("--ours-best", type=int, default=None, help="our lightgcn's best pass (0-based) in a full run")
    parser.add_argument("--recbole-best", type=int, default=None, help="RecBole's best epoch (0-based) in a full run")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the RecBole run")
    parser.add_argument("--seed", type=int, default=2020, help="split seed (the zoo config's split_seed)")
    parser.add_argument("--data-dir", type=pathlib.Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--venv", type=pathlib.Path, default=None, help="RecBole's peer venv (recbole_graph.py's default)")
    parser.add_argument("--work-dir", type=pathlib.Path, default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--output-json", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be >= 2: the first epoch pays one-time costs and is not averaged")

    started = datetime.datetime.now().astimezone()
    with tempfile.TemporaryDirectory(prefix="lightgcn-epoch-time-") as scratch:
        work = (args.work_dir or pathlib.Path(scratch)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        recbole = run_recbole(args, work)
        ours = run_ours(args, work)
        wall = time.perf_counter() - t0

    report = {"benchmark": "lightgcn_epoch_time", "date": started.isoformat(timespec="seconds"),
              "command": [sys.executable, *sys.argv], "host": platform.node(), "platform": platform.platform(),
              "cpu_count": os.cpu_count(), "load_average_at_start": os.getloadavg(), "wall_s": wall,
              "epochs": args.epochs, "threads_recbole": args.threads}
    for name, epochs, best in (("recbole", recbole, args.recbole_best), ("ours", ours, args.ours_best)):
        means = steady_means(epochs)
        report[name] = {"per_epoch": epochs, **means, "best_epoch": best, "time_to_best_s": time_to_best(means, best)}
    ratio = None
    if report["ours"]["time_to_best_s"] and report["recbole"]["time_to_best_s"]:
        ratio = report["ours"]["time_to_best_s"] / report["recbole"]["time_to_best_s"]
    report["ours_over_recbole_time_to_best"] = ratio

    print(f"\nlightgcn epoch cost, {args.epochs} epochs each, one after the other "
          f"(load average at start {report['load_average_at_start'][0]:.2f}, {os.cpu_count()} CPUs):")
    print(f"{'model':>10} {'train s/ep':>11} {'valid s/ep':>11} {'best ep':>8} {'to best s':>10}")
    for name in ("recbole", "ours"):
        r = report[name]
        best = "-" if r["best_epoch"] is None else str(r["best_epoch"])
        to_best = "-" if r["time_to_best_s"] is None else f"{r['time_to_best_s']:.0f}"
        print(f"{name:>10} {r['train_s']:>11.1f} {r['valid_s']:>11.1f} {best:>8} {to_best:>10}")
    print(f"per-epoch cost, ours / RecBole: {report['ours']['epoch_s'] / report['recbole']['epoch_s']:.3f}")
    if ratio is not None:
        print(f"time to best, ours / RecBole: {ratio:.3f} (the bar: <= 0.5)")
    if args.output_json:
        args.output_json.parent.mkdir(parents=True, exist_ok=True)
        args.output_json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.output_json}")
    return report


if __name__ == "__main__":
    main()
