"""Incremental update against a full retrain, on data with real timestamps (MovieLens-100K).

The interactions before the 90% time quantile are the old data; all of them are the new data
(the last 10% of the time span adds interactions, new users and new items). Three runs of the
same zoo config, each a `tf-attnrec train` subprocess:

1. `base`: trained on the old data;
2. `retrain`: trained from scratch on the new data;
3. `update`: `--init-from base --data new`, the base model continued on the new data (new items
   grow the vocabulary, known items keep their vectors).

`retrain` and `update` share one split of the new data (leave-one-out: every user's latest
interaction is the test item), so their test metrics compare directly. Printed: each run's
test HR@10 / NDCG@10, passes, training seconds (validation included) and process wall seconds;
then the update's NDCG@10 as a share of the retrain's and its time as a share of the
retrain's (the issue's bar: >= 97% of the quality in <= 30% of the time).

Usage:
    python benchmarks/incremental_update.py [--model sasrec] [--data-dir ../shared/data]
        [--output runs/incremental] [--quantile 0.9] [--seed 0] [--threads 1] [--set KEY=VALUE ...]
        [--update-set KEY=VALUE ...] [--reuse] [--output-json FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import time
from typing import Optional, Sequence

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]


def split_by_time(interactions, quantile: float) -> tuple:
    """(old, new, cut): the interactions before the time quantile, all of them, and the cut time."""
    cut = float(np.quantile(interactions["timestamp"], quantile))
    return interactions[interactions["timestamp"] < cut], interactions, cut


def describe(old, new) -> dict:
    """How much the new data adds: interactions, users and items."""
    return {"old_interactions": len(old), "new_interactions": len(new),
            "new_users": int(len(set(new["user_id"]) - set(old["user_id"]))),
            "new_items": int(len(set(new["item_id"]) - set(old["item_id"]))),
            "users": int(new["user_id"].nunique()), "items": int(new["item_id"].nunique())}


def train(name: str, data: pathlib.Path, args: argparse.Namespace, extra: Sequence[str] = ()) -> dict:
    """One `tf-attnrec train` run; its metrics.json plus the process wall seconds."""
    run_dir = pathlib.Path(args.output) / name
    command = [sys.executable, "-m", "tf_attnrec.cli", "train", "--model", args.model, "--data", str(data),
               "--time-col", "timestamp", "--seed", str(args.seed), "--output", str(run_dir), "--overwrite",
               "--quiet", *(arg for assignment in args.set for arg in ("--set", assignment)), *extra]
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS=str(args.threads), TF_NUM_INTEROP_THREADS=str(args.threads))
    start = time.perf_counter()
    with open(pathlib.Path(args.output) / f"{name}.log", "w") as log:
        status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    wall = time.perf_counter() - start
    if status.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({status.returncode}); see {args.output}/{name}.log.")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"command": " ".join(command[2:]), "wall_seconds": wall, "train_seconds": metrics["train_seconds"],
            "passes": metrics["passes"], "best_pass": metrics["best_pass"],
            "hr@10": metrics["test"]["hr@10"], "ndcg@10": metrics["test"]["ndcg@10"]}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sasrec")
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--output", default="runs/incremental")
    parser.add_argument("--quantile", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="passed to every run's `train --set` (e.g. hidden_dim=8 for a quick check)")
    parser.add_argument("--update-set", action="append", default=[], metavar="KEY=VALUE",
                        help="passed to the update run only: an update recipe (e.g. patience=4)")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the base and retrain runs of an earlier call (from its --output-json)")
    parser.add_argument("--output-json")
    args = parser.parse_args(argv)

    import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
    from tf_attnrec.data.datasets import load_dataset

    output = pathlib.Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    interactions = load_dataset("ml-100k", data_dir=args.data_dir).interactions
    old, new, cut = split_by_time(interactions, args.quantile)
    files = {"old": output / "old.csv", "new": output / "new.csv"}
    for name, frame in (("old", old), ("new", new)):
        frame[["user_id", "item_id", "timestamp"]].to_csv(files[name], index=False)
    print(f"incremental_update {datetime.datetime.now():%Y-%m-%d %H:%M}: {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{args.threads} thread(s) per run; {args.model}, seed {args.seed}", flush=True)
    sizes = describe(old, new)
    print(f"ML-100K cut at the {args.quantile:.0%} time quantile ({datetime.datetime.utcfromtimestamp(cut):%Y-%m-%d}): "
          f"{sizes['old_interactions']:,} old -> {sizes['new_interactions']:,} interactions, "
          f"{sizes['new_users']} new users, {sizes['new_items']} new items", flush=True)
    earlier = json.loads(pathlib.Path(args.output_json).read_text())["runs"] if args.reuse else {}
    results = {"base": earlier.get("base") or train("base", files["old"], args)}
    results["retrain"] = earlier.get("retrain") or train("retrain", files["new"], args)
    update_flags = [arg for assignment in args.update_set for arg in ("--set", assignment)]
    results["update"] = train("update", files["new"], args, ["--init-from", str(output / "base"), *update_flags])
    print(f"\n{'run':<9}{'HR@10':>8}{'NDCG@10':>9}{'passes':>8}{'best':>6}{'train s':>9}{'wall s':>8}")
    for name, row in results.items():
        print(f"{name:<9}{row['hr@10']:>8.4f}{row['ndcg@10']:>9.4f}{row['passes']:>8}{row['best_pass'] or '-':>6}"
              f"{row['train_seconds']:>9.1f}{row['wall_seconds']:>8.1f}")
    quality = results["update"]["ndcg@10"] / results["retrain"]["ndcg@10"]
    cost = results["update"]["wall_seconds"] / results["retrain"]["wall_seconds"]
    print(f"\nupdate / retrain: NDCG@10 {quality:.1%}, wall time {cost:.1%} "
          f"(training time {results['update']['train_seconds'] / results['retrain']['train_seconds']:.1%}); "
          f"bar: >= 97% in <= 30%: {'met' if quality >= 0.97 and cost <= 0.30 else 'not met'}")
    if args.output_json:
        pathlib.Path(args.output_json).write_text(json.dumps(
            {"data": sizes, "cut": cut, "runs": results, "ndcg_share": quality, "time_share": cost}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
