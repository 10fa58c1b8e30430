"""Incremental update against a full retrain, on data with real timestamps (MovieLens-100K).

The interactions before the 90% time quantile are the old data; all of them are the new data
(the last 10% of the time span adds interactions, new users and new items). Three runs of the
same zoo config, each a `tf-attnrec train` subprocess:

1. `base`: trained on the old data;
2. `retrain`: trained from scratch on the new data;
3. `update`: `--init-from base --data new`, the base model continued on the new data (new items
   grow the vocabulary, known items keep their vectors).

`retrain` and `update` share one split of the new data (leave-one-out: every user's latest
interaction is the test item), so their test metrics compare directly. Two groups of test users:
- `all`: every user. Most users have no interaction after the cut, so their test item is an
  old interaction and their training data is the base run's;
- `latest`: the users whose test item is after the cut, the interactions an update exists for.

Printed, per seed: each run's test HR@10 / NDCG@10 (all users and latest), passes, training
seconds (validation included) and process wall seconds. Then, over the seeds, the mean and
sample std of each, and the update's mean NDCG@10 as a share of the retrain's, with its mean wall
time as a share of the retrain's (the issue's bar: >= 97% of the quality in <= 30% of the time).
One ML-100K run's NDCG@10 moves by several thousandths from seed to seed, so compare means of
several seeds (`--seeds 0 1 2`).

Usage:
    python benchmarks/incremental_update.py [--model sasrec] [--data-dir ../shared/data]
        [--output runs/incremental] [--quantile 0.9] [--seeds 0 1 2] [--threads 1] [--set KEY=VALUE ...]
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


def latest_users(interactions, cut: float) -> np.ndarray:
    """Raw ids of the users whose last interaction (their leave-one-out test item) is at or after `cut`."""
    last = interactions.groupby("user_id")["timestamp"].max()
    return last.index[last >= cut].to_numpy()


def group_metrics(run_dir: pathlib.Path, interactions, users: np.ndarray) -> dict:
    """Test HR@10 / NDCG@10 of a saved run over the given users (the run's own leave-one-out split)."""
    from tf_attnrec.data.pipelines import pad_sequences
    from tf_attnrec.data.splits import leave_one_out_split
    from tf_attnrec.evaluation.ranking import full_catalogue_evaluate
    from tf_attnrec.runs import load_model
    from tf_attnrec.tasks.retrieval import make_score_fn

    model, vocabulary, _ = load_model(run_dir)
    split = leave_one_out_split(interactions, vocabulary)
    histories, targets, rows = split.test_inputs()
    keep = np.isin(split.users[rows], users)
    histories = [history for history, kept in zip(histories, keep) if kept]
    padded = pad_sequences(histories, max(len(history) for history in histories))
    metrics = full_catalogue_evaluate(make_score_fn(model, model.max_length), padded, targets[keep], ks=(10,))
    return {"users": int(keep.sum()), "hr@10": metrics["hr@10"], "ndcg@10": metrics["ndcg@10"]}


def train(name: str, data: pathlib.Path, seed: int, args: argparse.Namespace, extra: Sequence[str] = ()) -> dict:
    """One `tf-attnrec train` run; its metrics.json plus the process wall seconds."""
    run_dir = pathlib.Path(args.output) / name
    command = [sys.executable, "-m", "tf_attnrec.cli", "train", "--model", args.model, "--data", str(data),
               "--time-col", "timestamp", "--seed", str(seed), "--output", str(run_dir), "--overwrite",
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
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="passed to every run's `train --set` (e.g. hidden_dim=8 for a quick check)")
    parser.add_argument("--update-set", action="append", default=[], metavar="KEY=VALUE",
                        help="passed to the update run only: an update recipe (e.g. patience=4)")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the base and retrain runs of an earlier call, seed by seed (from its --output-json)")
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
          f"{args.threads} thread(s) per run; {args.model}, seeds {args.seeds}", flush=True)
    sizes = describe(old, new)
    latest = latest_users(new, cut)
    print(f"ML-100K cut at the {args.quantile:.0%} time quantile ({datetime.datetime.utcfromtimestamp(cut):%Y-%m-%d}): "
          f"{sizes['old_interactions']:,} old -> {sizes['new_interactions']:,} interactions, "
          f"{sizes['new_users']} new users, {sizes['new_items']} new items; {len(latest)} users' test items "
          "are after the cut", flush=True)
    earlier = json.loads(pathlib.Path(args.output_json).read_text())["seeds"] if args.reuse else {}
    update_flags = [arg for assignment in args.update_set for arg in ("--set", assignment)]
    seeds = {}
    for seed in args.seeds:
        reused = earlier.get(str(seed), {})
        results = {"base": reused.get("base") or train(f"base-seed{seed}", files["old"], seed, args)}
        results["retrain"] = reused.get("retrain") or train(f"retrain-seed{seed}", files["new"], seed, args)
        results["update"] = train(f"update-seed{seed}", files["new"], seed, args,
                                  ["--init-from", str(output / f"base-seed{seed}"), *update_flags])
        for name in ("retrain", "update"):
            results[name]["latest"] = group_metrics(output / f"{name}-seed{seed}", new, latest)
        seeds[str(seed)] = results
        print(f"\nseed {seed}\n{'run':<9}{'HR@10':>8}{'NDCG@10':>9}{'latest HR':>10}{'latest NDCG':>12}{'passes':>8}"
              f"{'best':>6}{'train s':>9}{'wall s':>8}")
        for name, row in results.items():
            group = row.get("latest")
            latest_cells = f"{group['hr@10']:>10.4f}{group['ndcg@10']:>12.4f}" if group else f"{'-':>10}{'-':>12}"
            print(f"{name:<9}{row['hr@10']:>8.4f}{row['ndcg@10']:>9.4f}{latest_cells}{row['passes']:>8}{row['best_pass'] or '-':>6}"
                  f"{row['train_seconds']:>9.1f}{row['wall_seconds']:>8.1f}", flush=True)
    summary = summarise(seeds)
    print(f"\nover seeds {args.seeds} (mean ± sample std):")
    for name in ("retrain", "update"):
        print(f"  {name:<8} NDCG@10 all {summary[name]['ndcg@10']}, latest {summary[name]['latest_ndcg@10']}, "
              f"wall s {summary[name]['wall_seconds']}")
    print(f"update / retrain: NDCG@10 {summary['ndcg_share']:.1%} (all users), {summary['latest_ndcg_share']:.1%} "
          f"(latest: {len(latest)} users whose test item is after the cut); wall time {summary['time_share']:.1%}; "
          "bar (>= 97% in <= 30%): "
          + ", ".join(f"{group} {'met' if summary[key] >= 0.97 and summary['time_share'] <= 0.30 else 'not met'}"
                      for group, key in (("all users", "ndcg_share"), ("latest", "latest_ndcg_share"))))
    if args.output_json:
        pathlib.Path(args.output_json).write_text(json.dumps(
            {"data": sizes, "cut": cut, "latest_users": len(latest), "update_set": args.update_set, "seeds": seeds,
             **{key: summary[key] for key in ("ndcg_share", "latest_ndcg_share", "time_share")}}, indent=2))
    return 0


def summarise(seeds: dict) -> dict:
    """Mean ± sample std per run kind over seeds, and the update's shares of the retrain's means."""
    def values(name: str, key: str, group: Optional[str] = None) -> np.ndarray:
        """`key` of every seed's `name` run, or of its `group` metrics ("latest")."""
        return np.array([(runs[name][group] if group else runs[name])[key] for runs in seeds.values()])

    def text(array: np.ndarray, digits: int) -> str:
        return f"{array.mean():.{digits}f}" + (f" ± {array.std(ddof=1):.{digits}f}" if len(array) > 1 else "")

    def share(key: str, group: Optional[str] = None) -> float:
        return values("update", key, group).mean() / values("retrain", key, group).mean()

    summary = {name: {"ndcg@10": text(values(name, "ndcg@10"), 4),
                      "latest_ndcg@10": text(values(name, "ndcg@10", "latest"), 4),
                      "wall_seconds": text(values(name, "wall_seconds"), 1)} for name in ("retrain", "update")}
    summary.update(ndcg_share=share("ndcg@10"), latest_ndcg_share=share("ndcg@10", "latest"),
                   time_share=share("wall_seconds"))
    return summary


if __name__ == "__main__":
    sys.exit(main())
