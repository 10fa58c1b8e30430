"""Short seeded ML-100K runs through the console script: the numbers a refactor must not move.

Trains `sasrec`, `lstm_attention` (retrieval) and `din` (ranking) on ML-100K with small fixed
budgets and seed 0, through `tf-attnrec train` only (the command line is the interface that
stays the same across refactors), and prints each run's test metrics from its
`metrics.json`. Run it before and after a change and compare the two printouts: they must
agree to float noise.

    python benchmarks/refactor_equivalence.py --data-dir ../shared/data [--output runs/equivalence]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time

# name -> extra `tf-attnrec train` flags (budgets small enough for a few minutes on 2 cores).
RUNS = {
    "sasrec": ["--epochs", "4", "--eval-every", "2", "--max-length", "50", "--set", "hidden_dim=32"],
    "lstm_attention": ["--epochs", "4", "--eval-every", "2", "--set", "units=32", "--set", "embedding_dim=32"],
    "din": ["--epochs", "2"],
}
SHOWN = {"retrieval": ("hr@10", "ndcg@10", "mrr"), "ranking": ("auc", "gauc", "log_loss")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--output", default="runs/equivalence")
    parser.add_argument("--models", nargs="+", default=list(RUNS), choices=list(RUNS))
    args = parser.parse_args()
    output = pathlib.Path(args.output)
    for name in args.models:
        run_dir = output / name
        command = [sys.executable, "-m", "tf_attnrec.cli", "train", "--model", name, "--dataset", "ml-100k",
                   "--data-dir", args.data_dir, "--seed", "0", "--output", str(run_dir), "--overwrite",
                   "--quiet", *RUNS[name]]
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        test = json.loads((run_dir / "metrics.json").read_text())["test"]
        kind = "ranking" if "auc" in test else "retrieval"
        values = "  ".join(f"{key}={float(test[key]):.6f}" for key in SHOWN[kind])
        print(f"{name:<15} test {values}  ({seconds:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
