"""Wall time of full-catalogue evaluation at ML-1M size (all users against all items).

Reads the real SASRec-form ML-1M file (`user item` per line, items in time order) with pandas,
builds the leave-one-out test protocol (target = each user's last item, history = the items
before it, the most recent `--max-length` kept, left-padded), and scores with a stand-in model:
a random query embedding gathered by the last history item, matmul'd with a random item
table [vocab_size, dim]. It then times

1. ranking every user's target against the whole catalogue (history excluded) + all accuracy
   metrics + the top-K lists (`full_catalogue_evaluate`),
2. all beyond-accuracy metrics on those lists (coverage, novelty, popularity, Gini, genre and
   embedding intra-list diversity; genres from movies.dat when present).

The first repeat includes `tf.function` tracing. Usage:

    python benchmarks/evaluation_speed.py [--data ../shared/data/ml-1m/ml-1m.txt]
        [--num-users N] [--max-length 200] [--dim 64] [--batch-size 512] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import tf_attnrec  # noqa: E402,F401  (Keras 2 before TensorFlow)
import tensorflow as tf  # noqa: E402

from tf_attnrec.evaluation import (  # noqa: E402
    beyond_accuracy_metrics,
    full_catalogue_evaluate,
    item_popularity,
)

DEFAULT_DATA = (
    pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-1m" / "ml-1m.txt"
)
FIRST_ITEM_ID = 2  # 0 = padding, 1 = OOV; SASRec's 1-based item k becomes id k + 1.


def load_leave_one_out(path: pathlib.Path, max_length: int, num_users: int | None = None):
    """Leave-one-out test inputs from a SASRec-form file.

    Returns:
        (histories int32 [U, max_length] left-padded, targets int32 [U], train_item_ids int32
        (every non-target interaction, for popularity), vocab_size).
    """
    frame = pd.read_csv(path, sep=" ", header=None, names=["user", "item"], dtype=np.int64)
    vocab_size = int(frame["item"].max()) + FIRST_ITEM_ID
    if num_users is not None:
        keep = frame["user"].drop_duplicates().iloc[:num_users]
        frame = frame[frame["user"].isin(keep)]
    frame = frame.sort_values("user", kind="stable")  # keeps each user's time order
    items = frame["item"].to_numpy(np.int32) + (FIRST_ITEM_ID - 1)
    starts = np.flatnonzero(np.r_[True, np.diff(frame["user"].to_numpy()) != 0])
    ends = np.r_[starts[1:], len(items)]
    histories = np.zeros((len(starts), max_length), np.int32)
    is_target = np.zeros(len(items), bool)
    is_target[ends - 1] = True
    for row, (start, end) in enumerate(zip(starts, ends)):
        history = items[max(start, end - 1 - max_length):end - 1]
        if history.size:
            histories[row, -history.size:] = history
    return histories, items[ends - 1], items[~is_target], vocab_size


def load_genres(data_dir: pathlib.Path, vocab_size: int) -> np.ndarray | None:
    """Multi-hot genres [vocab_size, G] for SASRec item ids, or None without the metadata."""
    movies_path = data_dir / "movies.dat"
    ids_path = data_dir / "ml-1m_original_ids.txt"
    sasrec_path = data_dir / "ml-1m.txt"
    if not (movies_path.exists() and ids_path.exists() and sasrec_path.exists()):
        return None
    # The two interaction files list the same rows in the same order.
    dense = pd.read_csv(sasrec_path, sep=" ", header=None, usecols=[1], names=["item"])
    original = pd.read_csv(ids_path, sep=" ", header=None, usecols=[1], names=["movie"])
    mapping = pd.DataFrame({"item": dense["item"], "movie": original["movie"]}).drop_duplicates()
    movies = pd.read_csv(
        movies_path, sep="::", engine="python", header=None, names=["movie", "title", "genres"],
        encoding="ISO-8859-1",
    )
    multi_hot = movies.set_index("movie")["genres"].str.get_dummies(sep="|")
    rows = multi_hot.reindex(mapping["movie"]).fillna(0).to_numpy(np.float32)
    genres = np.zeros((vocab_size, multi_hot.shape[1]), np.float32)
    genres[mapping["item"].to_numpy() + (FIRST_ITEM_ID - 1)] = rows
    return genres


def make_score_fn(vocab_size: int, dim: int, seed: int):
    """Stand-in model: query = random embedding of the last history item; scores = q . items."""
    rng = np.random.default_rng(seed)
    query_table = tf.constant(rng.normal(size=(vocab_size, dim)).astype(np.float32))
    item_table = tf.constant(rng.normal(size=(vocab_size, dim)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def score_fn(history):
        query = tf.gather(query_table, history[:, -1])
        return tf.matmul(query, item_table, transpose_b=True)

    return score_fn, item_table.numpy()


def run(
    data: pathlib.Path = DEFAULT_DATA,
    num_users: int | None = None,
    max_length: int = 200,
    dim: int = 64,
    batch_size: int = 512,
    ks: tuple[int, ...] = (10, 20),
    repeats: int = 2,
    seed: int = 0,
) -> dict:
    """Runs the benchmark, prints one line per measurement and returns everything measured."""
    t0 = time.perf_counter()
    histories, targets, train_item_ids, vocab_size = load_leave_one_out(data, max_length, num_users)
    genres = load_genres(data.parent, vocab_size)
    counts = item_popularity(train_item_ids, vocab_size)
    score_fn, item_embeddings = make_score_fn(vocab_size, dim, seed)
    print(
        f"data: {histories.shape[0]} users x {vocab_size} score columns "
        f"({vocab_size - FIRST_ITEM_ID} items + pad + OOV), L={max_length}, "
        f"genres={'yes' if genres is not None else 'no'}; loaded in "
        f"{time.perf_counter() - t0:.2f} s (not timed below)"
    )
    timings = []
    for repeat in range(repeats):
        start = time.perf_counter()
        accuracy, top_k = full_catalogue_evaluate(
            score_fn, histories, targets, ks=ks, exclude_history=True, batch_size=batch_size,
            return_top_k=True,
        )
        ranked = time.perf_counter()
        beyond = beyond_accuracy_metrics(
            top_k, counts, ks=ks, item_genres=genres, item_embeddings=item_embeddings
        )
        done = time.perf_counter()
        timing = {
            "ranking_and_accuracy_s": ranked - start,
            "beyond_accuracy_s": done - ranked,
            "total_s": done - start,
        }
        timings.append(timing)
        print(
            f"repeat {repeat + 1}{' (includes tracing)' if repeat == 0 else ''}: ranking + "
            f"accuracy metrics {timing['ranking_and_accuracy_s']:.2f} s, beyond-accuracy "
            f"{timing['beyond_accuracy_s']:.2f} s, total {timing['total_s']:.2f} s"
        )
    print("accuracy:", {k: round(v, 5) if isinstance(v, float) else v for k, v in accuracy.items()})
    print("beyond-accuracy:", {k: round(v, 5) for k, v in beyond.items()})
    return {
        "histories": histories, "targets": targets, "vocab_size": vocab_size,
        "score_fn": score_fn, "top_k": top_k, "item_counts": counts, "genres": genres,
        "accuracy": accuracy, "beyond": beyond, "timings": timings,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--num-users", type=int, default=None, help="first N users (default all)")
    parser.add_argument("--max-length", type=int, default=200)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--ks", type=int, nargs="+", default=[10, 20])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.data.exists():
        parser.error(f"--data {args.data} does not exist; point it at ml-1m/ml-1m.txt.")
    return run(
        args.data, args.num_users, args.max_length, args.dim, args.batch_size, tuple(args.ks),
        args.repeats, args.seed,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
