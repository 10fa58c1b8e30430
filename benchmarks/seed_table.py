"""A zoo's 3-seed table on MovieLens-1M: test metrics as mean +- std, and what attention buys.

Every (model, seed) pair is one `tf-attnrec train --model M --config models/M/config.yaml
--seed S` run (the same command a user types), saved to `OUTPUT/M-seedS/`; its test metrics
are read back from `metrics.json`. The seed changes initialisation, dropout, shuffling and
negative draws; the data split is the same for every seed (`data_seed` / `split_seed` in the
configs), so the spread is the models' own. Runs go `--workers` at a time, each with
`--threads` TensorFlow threads (on a small CPU, two single-threaded runs side by side finish
sooner than one after the other with two threads each). `--time-limit` caps each run's
training (the CLI's own limit; a run cut by it says so in its `stopped_by`).

`--task` picks the table (`TABLES`):
* `ranking`: test AUC, GAUC and log loss of the ranking zoo; attention models against
  `embedding_mlp` (the DIN paper's base model) on GAUC.
* `collaborative`: test Recall / NDCG @10 and @20 in the CF protocol; `gat_cf` and
  `graphsage_cf` against `lightgcn` on NDCG@10.

The table gives mean and sample standard deviation (ddof=1) over the seeds, and for each
attention model the difference to the baseline with the verdict "beats" only when
mean(A) - mean(base) > std(A) + std(base).

    python benchmarks/seed_table.py [--task ranking|collaborative] [--data-dir ../shared/data]
        [--seeds 0 1 2] [--models ...] [--output runs/<task>-table] [--workers 2] [--threads 1]
        [--time-limit MINUTES] [--resume]

Writes `OUTPUT/table.md` and `OUTPUT/table.json` and prints the table.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import time
from typing import NamedTuple

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"


class Table(NamedTuple):
    """What one task's table compares."""

    models: tuple  # every model of the table, in row order
    attention_models: tuple  # the rows that get a verdict against the baseline
    baseline: str
    metrics: tuple  # test metrics shown, each as mean +- std
    verdict_metric: str  # the metric the verdict compares


TABLES = {
    "ranking": Table(models=("din", "bst", "autoint", "self_attention_ranker", "embedding_mlp", "dcn"),
                     attention_models=("din", "bst", "autoint", "self_attention_ranker"), baseline="embedding_mlp",
                     metrics=("auc", "gauc", "log_loss"), verdict_metric="gauc"),
    "collaborative": Table(models=("lightgcn", "gat_cf", "graphsage_cf"), attention_models=("gat_cf", "graphsage_cf"),
                           baseline="lightgcn", metrics=("recall@10", "ndcg@10", "recall@20", "ndcg@20"),
                           verdict_metric="ndcg@10"),
}


def run_one(model: str, seed: int, args: argparse.Namespace) -> dict:
    """Trains one (model, seed) with the CLI in a subprocess; returns its metrics.json."""
    run_dir = pathlib.Path(args.output) / f"{model}-seed{seed}"
    metrics_path = run_dir / "metrics.json"
    if args.resume and metrics_path.is_file():
        return json.loads(metrics_path.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "tf_attnrec.cli", "train", "--model", model,
        "--config", str(REPO / "models" / model / "config.yaml"), "--dataset", "ml-1m",
        "--data-dir", str(args.data_dir), "--seed", str(seed), "--output", str(run_dir),
        "--overwrite", *(["--time-limit", str(args.time_limit)] if args.time_limit else []),
    ]
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS=str(args.threads),
               TF_NUM_INTEROP_THREADS=str(args.threads), TF_CPP_MIN_LOG_LEVEL="2")
    start = time.perf_counter()
    with open(run_dir / "train.log", "w") as log:
        status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    if status.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({status.returncode}); see {run_dir / 'train.log'}.")
    print(f"  {model} seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
    return json.loads(metrics_path.read_text())


def summarise(results: dict, spec: Table = TABLES["ranking"]) -> dict:
    """{model: {metric: (mean, std), "train_seconds": mean, "best_epochs": [...], "stopped_by": [...]}}."""
    table = {}
    for model, runs in results.items():
        row = {}
        for metric in spec.metrics:
            values = np.array([run["test"][metric] for run in runs])
            row[metric] = (float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0)
        row["train_seconds"] = float(np.mean([run["train_seconds"] for run in runs]))
        row["best_epochs"] = [run["best_pass"] for run in runs]
        row["stopped_by"] = [run.get("stopped_by") for run in runs]
        row["num_train_examples"] = runs[0].get("num_train_examples")
        row["num_test_examples"] = runs[0]["test"].get("num_examples", runs[0]["test"].get("users"))
        table[model] = row
    return table


def verdicts(table: dict, spec: Table = TABLES["ranking"]) -> list[str]:
    """One line per attention model: its difference to the baseline and whether it beats it."""
    if spec.baseline not in table:
        return []
    metric = spec.verdict_metric
    base_mean, base_std = table[spec.baseline][metric]
    lines = []
    for model in spec.attention_models:
        if model not in table:
            continue
        mean, std = table[model][metric]
        diff, spread = mean - base_mean, std + base_std
        verdict = "beats" if diff > spread else "does NOT beat"
        lines.append(f"{model} {verdict} {spec.baseline} on {metric.upper()}: difference {diff:+.4f}, seeds' "
                     f"spread (std sum) {spread:.4f}")
    return lines


_METRIC_TITLES = {"auc": "AUC", "gauc": "GAUC", "log_loss": "log loss", "recall@10": "Recall@10",
                  "ndcg@10": "NDCG@10", "recall@20": "Recall@20", "ndcg@20": "NDCG@20"}


def markdown(table: dict, seeds: list, spec: Table = TABLES["ranking"]) -> str:
    names = " | ".join(f"test {_METRIC_TITLES.get(metric, metric)}" for metric in spec.metrics)
    lines = [
        f"| model | {names} | best epochs (seeds {', '.join(map(str, seeds))}) | stopped by | train s/run |",
        "|---|" + "---|" * (len(spec.metrics) + 3),
    ]
    for model, row in table.items():
        cells = " | ".join(f"{row[m][0]:.4f} ± {row[m][1]:.4f}" for m in spec.metrics)
        epochs = ", ".join(map(str, row["best_epochs"]))
        stopped = ", ".join(sorted(set(map(str, row["stopped_by"]))))
        lines.append(f"| `{model}` | {cells} | {epochs} | {stopped} | {row['train_seconds']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=sorted(TABLES), default="ranking")
    parser.add_argument("--data-dir", default=os.environ.get("TF_ATTNREC_DATA_DIR", str(DEFAULT_DATA_DIR)))
    parser.add_argument("--models", nargs="+", help="default: every model of the task's table")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--output", help="default: runs/<task>-table")
    parser.add_argument("--time-limit", type=float, help="minutes of training per run (the CLI's --time-limit)")
    parser.add_argument("--workers", type=int, default=2, help="runs trained at the same time")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads per run")
    parser.add_argument("--resume", action="store_true", help="reuse runs whose metrics.json exists")
    args = parser.parse_args()
    spec = TABLES[args.task]
    unknown = sorted(set(args.models or ()) - set(spec.models))
    if unknown:
        parser.error(f"--models {unknown} are not in the {args.task} table; its models are {list(spec.models)}.")
    args.models = args.models or list(spec.models)
    args.output = args.output or str(REPO / "runs" / f"{args.task}-table")
    start = time.perf_counter()
    print(f"{datetime.date.today()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"{len(args.models)} models x seeds {args.seeds}, {args.workers} worker(s) x {args.threads} thread(s)",
          flush=True)
    jobs = [(model, seed) for seed in args.seeds for model in args.models]
    results: dict = {model: [] for model in args.models}
    with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
        futures = {pool.submit(run_one, model, seed, args): (model, seed) for model, seed in jobs}
        for future in concurrent.futures.as_completed(futures):
            model, seed = futures[future]
            results[model].append({**future.result(), "seed": seed})
    for runs in results.values():
        runs.sort(key=lambda run: run["seed"])
    table = summarise(results, spec)
    text = markdown(table, args.seeds, spec)
    lines = verdicts(table, spec)
    wall = time.perf_counter() - start
    output = pathlib.Path(args.output)
    (output / "table.md").write_text(text + "\n\n" + "\n".join(lines) + "\n")
    (output / "table.json").write_text(json.dumps(
        {"date": str(datetime.date.today()), "task": args.task, "seeds": args.seeds, "wall_seconds": wall, "table": table,
         "verdicts": lines, "runs": {m: [{"seed": r["seed"], "test": r["test"], "validation": r["validation"],
                                           "best_pass": r["best_pass"], "train_seconds": r["train_seconds"],
                                           "stopped_by": r.get("stopped_by")}
                                          for r in runs] for m, runs in results.items()}},
        indent=2))
    print(text)
    print("\n".join(lines))
    print(f"(mean ± sample std over {len(args.seeds)} seeds; wall time {wall / 60:.1f} min; runs in {output})")


if __name__ == "__main__":
    main()
