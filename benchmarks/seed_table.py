"""A zoo's 3-seed table on MovieLens-1M: test metrics as mean +- std, and what attention buys.

Every (model, seed) pair is one `tf-attnrec train --model M --config models/M/config.yaml
--seed S` run (the same command a user types), saved to `OUTPUT/M-seedS/`; its test metrics
are read back from `metrics.json`. The seed changes initialisation, dropout, shuffling and
negative draws; the data split is the same for every seed (`data_seed` / `split_seed` in the
configs), so the spread is the models' own. Runs go `--workers` at a time, each with
`--threads` TensorFlow threads (on a small CPU, two single-threaded runs side by side finish
sooner than one after the other with two threads each). `--time-limit` caps each run's
training (the CLI's own limit; a run cut by it says so in its `stopped_by`). `--dataset`
trains every row on another dataset than its table's (e.g. `--task itemcf --dataset ml-100k`).

`--task` picks the table (`TABLES`):
* `ranking`: test AUC, GAUC and log loss of the ranking zoo on ML-1M; attention models against
  `embedding_mlp` (the DIN paper's base model) on GAUC.
* `collaborative`: test Recall / NDCG @10 and @20 in the CF protocol on ML-1M; `gat_cf` and
  `graphsage_cf` against `lightgcn` on NDCG@10.
* `itemcf` / `itemcf_ratio`: test HR / NDCG @10 and @20 of `fism` and `nais` on ML-1M
  leave-one-out with full ranking, and Recall / NDCG in the CF 80/10/10 protocol
  (`--set split=ratio`, rows `fism:ratio`, `nais:ratio`); `nais` against `fism` on NDCG@10.
* `cold_start`: ML-1M leave-one-out where a seeded 10% of the items never occurs in training
  (`--set split=cold_items`); HR / NDCG @10 of the users whose test item is cold and of those
  whose test item is warm. `sasrec:fused` (`--set item_features=[genres,title,year]`, the
  softmax over trained items) against id-only `sasrec:cold` and `content_similarity:cold`.
* `multitask`: test top-100 accuracy, RMSE and click AUC on ML-100K; `mmoe` and `ple`
  against `shared_bottom` on each, and against themselves trained on one task only (rows
  `mmoe:retrieval`, `mmoe:rating`, `mmoe:click`, ...: the same model and config with the other
  tasks' weights set to 0 by `--set`) on that task's metric.

The table gives mean and sample standard deviation (ddof=1) over the seeds, and for each
comparison the difference with the verdict "beats" only when the model is better by more
than std(A) + std(B) (lower is better for RMSE and log loss), else "does NOT beat", marked
"within the seeds' spread" when it is not worse by more than that either.

    python benchmarks/seed_table.py [--task ranking|collaborative|multitask|itemcf|itemcf_ratio] [--data-dir ../shared/data]
        [--seeds 0 1 2] [--models ...] [--output runs/<task>-table] [--workers 2] [--threads 1]
        [--time-limit MINUTES] [--resume] [--dataset ml-100k]

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
from typing import Mapping, NamedTuple

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"


LOWER_IS_BETTER = ("log_loss", "rmse")
# The single-task rows of the multi-task table: `model:task` trains `model`'s zoo config with
# every other task's weight set to 0.
MULTITASK_TASKS = {"retrieval": "accuracy@100", "rating": "rmse", "click": "auc"}


class Table(NamedTuple):
    """What one task's table compares."""

    models: tuple  # every row of the table (a zoo model, or `model:variant`), in row order
    comparisons: tuple  # (row, against row, metric): the verdicts
    metrics: tuple  # test metrics shown, each as mean +- std
    dataset: str = "ml-1m"
    variants: Mapping[str, tuple] = {}  # `model:variant` -> the CLI flags that make the variant


def _multitask_table() -> Table:
    models, comparisons = ["shared_bottom", "mmoe", "ple"], []
    for model in ("mmoe", "ple"):
        comparisons += [(model, "shared_bottom", metric) for metric in MULTITASK_TASKS.values()]
    for model in ("mmoe", "ple"):
        for task, metric in MULTITASK_TASKS.items():
            models.append(f"{model}:{task}")
            comparisons.append((model, f"{model}:{task}", metric))
    # `model:task` trains the model's config with every other task's weight set to 0.
    variants = {task: tuple(flag for other in MULTITASK_TASKS if other != task
                            for flag in ("--set", f"{other}_weight=0")) for task in MULTITASK_TASKS}
    return Table(models=tuple(models), comparisons=tuple(comparisons), metrics=tuple(MULTITASK_TASKS.values()),
                 dataset="ml-100k", variants=variants)


TABLES = {
    "ranking": Table(models=("din", "bst", "autoint", "self_attention_ranker", "embedding_mlp", "dcn"),
                     comparisons=tuple((m, "embedding_mlp", "gauc")
                                       for m in ("din", "bst", "autoint", "self_attention_ranker")),
                     metrics=("auc", "gauc", "log_loss")),
    "collaborative": Table(models=("lightgcn", "gat_cf", "graphsage_cf"),
                           comparisons=(("gat_cf", "lightgcn", "ndcg@10"), ("graphsage_cf", "lightgcn", "ndcg@10")),
                           metrics=("recall@10", "ndcg@10", "recall@20", "ndcg@20")),
    "multitask": _multitask_table(),
    # Attentive item CF (ML-1M): leave-one-out, the sasrec card's protocol ...
    # `nais:pretrained` starts from the same seed's `fism` run of the table (the NAIS paper's
    # pretraining: the item tables from FISM, the attention fresh); run it after `fism`.
    "itemcf": Table(models=("fism", "nais", "nais:pretrained"),
                    comparisons=(("nais", "fism", "ndcg@10"), ("nais:pretrained", "fism", "ndcg@10")),
                    metrics=("hr@10", "ndcg@10", "hr@20", "ndcg@20"),
                    variants={"pretrained": ("--init-from", "{output}/fism-seed{seed}")}),
    # ... and the CF random 80/10/10 split (`--set split=ratio`), the graph models' protocol.
    "itemcf_ratio": Table(models=("fism:ratio", "nais:ratio"), comparisons=(("nais:ratio", "fism:ratio", "ndcg@10"),),
                          metrics=("recall@10", "ndcg@10", "recall@20", "ndcg@20"),
                          variants={"ratio": ("--set", "split=ratio")}),
    # Cold start (ML-1M leave-one-out, a seeded 10% of the items never trained on): sasrec with
    # the fused item tower against id-only sasrec and the content-only baseline, on the users
    # whose test item is cold and on those whose test item is warm.
    "cold_start": Table(
        models=("sasrec:fused", "sasrec:cold", "content_similarity:cold", "popularity:cold"),
        comparisons=tuple((row, against, metric)
                          for against in ("content_similarity:cold", "sasrec:cold")
                          for metric in ("cold_hr@10", "cold_ndcg@10") for row in ("sasrec:fused",))
        + (("sasrec:fused", "sasrec:cold", "warm_ndcg@10"),),
        metrics=("cold_hr@10", "cold_ndcg@10", "warm_hr@10", "warm_ndcg@10", "hr@10", "ndcg@10"),
        variants={"cold": ("--set", "split=cold_items"),
                  "fused": ("--set", "split=cold_items", "--set", "item_features=[genres,title,year]",
                            "--set", "loss_items=trained")}),
}


def row_command(row: str, spec: Table, output: str = "", seed: int = 0) -> tuple[str, list[str]]:
    """`(zoo model, extra CLI flags)` of a table row: `mmoe:rating` -> mmoe with the other weights 0.

    A variant's flags may name `{output}` and `{seed}` (e.g. `--init-from {output}/fism-seed{seed}`).
    """
    model, _, variant = row.partition(":")
    if not variant:
        return model, []
    if variant not in spec.variants:
        raise ValueError(f"row {row!r}: the variant after ':' must be one of {list(spec.variants)}.")
    return model, [flag.format(output=output, seed=seed) for flag in spec.variants[variant]]


def run_one(row: str, seed: int, args: argparse.Namespace) -> dict:
    """Trains one (row, seed) with the CLI in a subprocess; returns its metrics.json."""
    run_dir = pathlib.Path(args.output) / f"{row.replace(':', '-')}-seed{seed}"
    metrics_path = run_dir / "metrics.json"
    if args.resume and metrics_path.is_file():
        return json.loads(metrics_path.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    model, flags = row_command(row, TABLES[args.task], str(args.output), seed)
    command = [
        sys.executable, "-m", "tf_attnrec.cli", "train", "--model", model, *flags,
        "--config", str(REPO / "models" / model / "config.yaml"), "--dataset", args.dataset,
        "--data-dir", str(args.data_dir), "--seed", str(seed), "--output", str(run_dir),
        # --resume: an interrupted run resumes from its backup (rerunning its command does).
        *([] if args.resume else ["--overwrite"]), *(["--time-limit", str(args.time_limit)] if args.time_limit else []),
    ]
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS=str(args.threads),
               TF_NUM_INTEROP_THREADS=str(args.threads))  # TF's log level: tf_attnrec's own default
    start = time.perf_counter()
    with open(run_dir / "train.log", "a" if args.resume else "w") as log:
        status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    if status.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({status.returncode}); see {run_dir / 'train.log'}.")
    print(f"  {row} seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
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
        row["num_test_examples"] = runs[0]["test"].get("num_examples", runs[0]["test"].get("users",
                                                                                           runs[0]["test"].get("rows")))
        table[model] = row
    return table


def verdicts(table: dict, spec: Table = TABLES["ranking"]) -> list[str]:
    """One line per comparison of the table whose two rows ran: the difference and the verdict."""
    lines = []
    for model, baseline, metric in spec.comparisons:
        if model not in table or baseline not in table:
            continue
        (mean, std), (base_mean, base_std) = table[model][metric], table[baseline][metric]
        diff, spread = mean - base_mean, std + base_std
        gain = -diff if metric in LOWER_IS_BETTER else diff
        verdict = "beats" if gain > spread else "does NOT beat"
        note = "" if gain > spread else " (within the seeds' spread)" if gain >= -spread else " (worse)"
        lines.append(f"{model} {verdict} {baseline} on {_METRIC_TITLES.get(metric, metric)}{note}: difference "
                     f"{diff:+.4f}, seeds' spread (std sum) {spread:.4f}")
    return lines


_METRIC_TITLES = {"auc": "AUC", "gauc": "GAUC", "log_loss": "log loss", "recall@10": "Recall@10",
                  "ndcg@10": "NDCG@10", "recall@20": "Recall@20", "ndcg@20": "NDCG@20",
                  "accuracy@100": "top-100 accuracy", "rmse": "RMSE", "hr@10": "HR@10", "hr@20": "HR@20"}


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
    parser.add_argument("--dataset", help="default: the task's table's dataset (ml-1m; ml-100k for multitask)")
    parser.add_argument("--data-dir", default=os.environ.get("TF_ATTNREC_DATA_DIR", str(DEFAULT_DATA_DIR)))
    parser.add_argument("--models", nargs="+", help="default: every model of the task's table")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--output", help="default: runs/<task>-table")
    parser.add_argument("--time-limit", type=float, help="minutes of training per run (the CLI's --time-limit)")
    parser.add_argument("--workers", type=int, default=2, help="runs trained at the same time")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads per run")
    parser.add_argument("--resume", action="store_true", help="reuse runs whose metrics.json exists, and resume interrupted ones from their backups")
    args = parser.parse_args()
    spec = TABLES[args.task]
    unknown = sorted(set(args.models or ()) - set(spec.models))
    if unknown:
        parser.error(f"--models {unknown} are not in the {args.task} table; its models are {list(spec.models)}.")
    args.models = args.models or list(spec.models)
    args.dataset = args.dataset or spec.dataset
    args.output = args.output or str(REPO / "runs" / f"{args.task}-table")
    start = time.perf_counter()
    print(f"{datetime.date.today()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; {args.dataset}; "
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
        {"date": str(datetime.date.today()), "task": args.task, "dataset": args.dataset, "seeds": args.seeds, "wall_seconds": wall, "table": table,
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
