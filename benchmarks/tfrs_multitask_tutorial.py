"""The TFRS multi-task tutorial's three rows, reproduced with tf-attnrec's data path and model.

The tutorial (tensorflow.org/recommenders/examples/multitask) trains one model on
MovieLens-100K with a rating task and a retrieval task and reports, on its 20k test rows,
top-100 retrieval accuracy and rating RMSE for three weightings (rating, retrieval):

    (1, 0): 0.060 / 1.113     (0, 1): 0.233 / 3.688     (1, 1): 0.235 / 1.110

Settings copied from it: 100k ratings shuffled once (seed 42), the first 80k for training and
the other 20k for test; user and movie embeddings of 32; a rating MLP of 256 and 128 ReLU units
on the concatenated embeddings; in-batch softmax retrieval; Adagrad 0.1; batch 8192; 3 epochs;
top-100 accuracy over the whole catalogue. Here that is `shared_bottom` with no bottom network,
click weight 0 and no logQ correction (the zoo config's, which the tutorial does not have) (`tf_attnrec.models.multitask`), on `rating_split(seed=42,
fractions=(0.8, 0.0, 0.2))` of `u.data`.

What cannot follow the tutorial: its rows come from tfds' `movielens/100k-ratings` in tfds'
order, shuffled by `tf.data` with seed 42; ours are `u.data`'s rows permuted by NumPy's
generator with seed 42, so the 20k test rows are a different random fifth of the same 100k.
Its candidates are the 1,664 distinct movie titles (titles shared by several movie ids merge);
ours are the 1,682 movie ids. Its accuracy counts ties for the item; ours counts them against it
(float scores rarely tie).

    python benchmarks/tfrs_multitask_tutorial.py [--data-dir ../shared/data] [--seeds 0 1 2]
        [--epochs 3] [--output-json PATH]

Prints one row per weighting: the tutorial's numbers, ours as mean +- std over the seeds, and
whether ours are within the issue's targets (10% relative on accuracy, 0.05 on RMSE).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import sys
import time
from typing import Sequence

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"
# (rating weight, retrieval weight) -> the tutorial's (top-100 accuracy, RMSE).
TUTORIAL = {(1.0, 0.0): (0.060, 1.113), (0.0, 1.0): (0.233, 3.688), (1.0, 1.0): (0.235, 1.110)}
SETTINGS = {"embedding_dim": 32, "rating_units": [256, 128], "click_weight": 0.0, "logq_correction": False}
TRAINING = {"optimizer": "adagrad", "learning_rate": 0.1, "batch_size": 8192, "patience": None}
ACCURACY_TOLERANCE, RMSE_TOLERANCE = 0.10, 0.05


def run_row(split, rating_weight: float, retrieval_weight: float, seed: int, epochs: int) -> dict:
    """One training run of the tutorial's model; its test metrics."""
    import tensorflow as tf

    from tf_attnrec.models.registry import create_model
    from tf_attnrec.tasks.multitask import train_multitask

    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(seed)
    model = create_model("shared_bottom", vocab_size=split.vocabulary.size, num_users=split.num_users,
                         rating_weight=rating_weight, retrieval_weight=retrieval_weight, **SETTINGS)
    start = time.perf_counter()
    result = train_multitask(model, split, seed=seed, epochs=epochs, **TRAINING)
    return {"seed": seed, "accuracy@100": result.test["accuracy@100"], "rmse": result.test["rmse"],
            "seconds": time.perf_counter() - start}


def summarize(weights: tuple, runs: Sequence[dict]) -> dict:
    accuracy = np.array([r["accuracy@100"] for r in runs])
    rmse = np.array([r["rmse"] for r in runs])
    published_accuracy, published_rmse = TUTORIAL[weights]
    spread = (lambda x: float(x.std(ddof=1)) if len(x) > 1 else 0.0)
    return {
        "rating_weight": weights[0], "retrieval_weight": weights[1],
        "tutorial_accuracy@100": published_accuracy, "tutorial_rmse": published_rmse,
        "accuracy@100": float(accuracy.mean()), "accuracy@100_std": spread(accuracy),
        "rmse": float(rmse.mean()), "rmse_std": spread(rmse),
        "accuracy_within_10pct": bool(abs(accuracy.mean() - published_accuracy) <= ACCURACY_TOLERANCE * published_accuracy),
        "rmse_within_0.05": bool(abs(rmse.mean() - published_rmse) <= RMSE_TOLERANCE),
        "runs": list(runs),
    }


def table(rows: Sequence[dict]) -> str:
    lines = ["| weights (rating, retrieval) | tutorial top-100 acc | ours | within 10% | tutorial RMSE | ours | "
             "within 0.05 |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| ({row['rating_weight']:g}, {row['retrieval_weight']:g}) | {row['tutorial_accuracy@100']:.3f} | "
            f"{row['accuracy@100']:.3f} ± {row['accuracy@100_std']:.3f} | {'yes' if row['accuracy_within_10pct'] else 'no'} | "
            f"{row['tutorial_rmse']:.3f} | {row['rmse']:.3f} ± {row['rmse_std']:.3f} | "
            f"{'yes' if row['rmse_within_0.05'] else 'no'} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=pathlib.Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3, help="the tutorial's 3")
    parser.add_argument("--max-rows", type=int, default=None, help="smoke test: the first N ratings only")
    parser.add_argument("--output-json", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)

    import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
    from tf_attnrec.data.datasets import load_dataset
    from tf_attnrec.data.rating_split import rating_split

    dataset = load_dataset("ml-100k", data_dir=args.data_dir, download=False)
    interactions = dataset.interactions if args.max_rows is None else dataset.interactions.head(args.max_rows)
    split = rating_split(interactions, fractions=(0.8, 0.0, 0.2), seed=42)
    print(f"ML-100K from {dataset.source}: {split.summary()}", flush=True)
    rows = []
    for weights in TUTORIAL:
        runs = [run_row(split, *weights, seed=seed, epochs=args.epochs) for seed in args.seeds]
        for r in runs:
            print(f"weights {weights} seed {r['seed']}: top-100 accuracy {r['accuracy@100']:.4f}, "
                  f"RMSE {r['rmse']:.4f} ({r['seconds']:.1f} s)", flush=True)
        rows.append(summarize(weights, runs))
    print("\n" + table(rows))
    if args.output_json:
        args.output_json.parent.mkdir(parents=True, exist_ok=True)
        args.output_json.write_text(json.dumps({
            "benchmark": "tfrs_multitask_tutorial", "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": [sys.executable, *sys.argv], "host": platform.node(), "cpu_count": os.cpu_count(),
            "split": split.summary(), "settings": {**SETTINGS, **TRAINING, "epochs": args.epochs}, "rows": rows},
            indent=2))
        print(f"wrote {args.output_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
