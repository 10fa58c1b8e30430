"""The retrieval-then-ranking cascade on ML-1M leave-one-out: quality and latency per candidate count.

For a trained retrieval run and a trained ranking run (both on ML-1M, whose leave-one-out
splits hold the same test items), prints:

* test HR@10 / NDCG@10 of retrieval alone, of the cascade at each candidate count, and of the
  ranker alone over every unseen item (`--counts ... all`), with each count's candidate
  recall (the share of test items the ranker gets to see: the cascade's ceiling);
  `tf_attnrec.cascade.evaluate_cascade`, full ranking, seen items excluded;
* the exported cascade's latency (`serving_default`, loaded from the SavedModel) at batch 1
  and batch 64 for each count, beside the retrieval-only export at the same k, on real ML-1M
  requests (each user's history and attributes).

Usage:

    python benchmarks/cascade_table.py --retrieval runs/sasrec --ranking runs/din
        [--data-dir ../shared/data] [--counts 50 100 200 500 all] [--calls 50]
        [--output-json cascade.json]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import tempfile
import time
from typing import Any, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import tf_attnrec  # noqa: E402,F401  (Keras 2 before TensorFlow)
import tensorflow as tf  # noqa: E402

from tf_attnrec.cascade import Cascade, evaluate_cascade  # noqa: E402
from tf_attnrec.export import export_cascade, export_retrieval  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
BATCH_SIZES = (1, 64)


def parse_counts(values: Sequence[str], num_items: int) -> list[int]:
    """Candidate counts; "all" is the whole catalogue (the ranker alone)."""
    return sorted({num_items if value == "all" else min(int(value), num_items) for value in values})


def requests(split: Any, users: Any, batch_size: int, count: int, seed: int = 0) -> list[dict]:
    """`count` raw requests of `batch_size` random test users: history (train + validation) and attributes."""
    inputs = split.test_inputs()
    table = users.set_index("user_id")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        rows = rng.choice(len(inputs.targets), batch_size, replace=batch_size > len(inputs.targets))
        histories = [[str(v) for v in split.vocabulary.raw_ids(inputs.histories[row])] for row in rows]
        width = max(len(h) for h in histories)
        people = table.loc[split.users[inputs.user_indices[rows]]]
        out.append({"user_id": [str(u) for u in people.index],
                    "gender": [str(v) for v in people["gender"]], "age": [str(v) for v in people["age"]],
                    "occupation": [str(v) for v in people["occupation"]],
                    "history": [h + [""] * (width - len(h)) for h in histories]})
    return out


def time_signature(signature: Any, batches: list[dict], inputs: Sequence[str], warmup: int = 3) -> tuple[float, float]:
    """p50 and p99 milliseconds per call (after `warmup` untimed calls)."""
    def call(batch: dict) -> None:
        signature(**{name: tf.constant(batch[name]) for name in inputs})["item_ids"].numpy()

    for batch in batches[:warmup]:
        call(batch)
    times = []
    for batch in batches:
        start = time.perf_counter()
        call(batch)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def latency_table(cascade: Cascade, counts: Sequence[int], batches: dict[int, list[dict]], k: int,
                  root: pathlib.Path) -> list[dict]:
    """Latency of the retrieval-only export (count 0) and of the cascade export at each count."""
    rows = []
    export_dir = root / "retrieval" / "1"
    export_retrieval(cascade.retrieval_model, export_dir, k=k, vocabulary=cascade.retrieval_vocabulary)
    signature = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    for batch_size, calls in batches.items():
        p50, p99 = time_signature(signature, calls, ("history",))
        rows.append({"stage": "retrieval", "candidates": 0, "batch": batch_size, "p50_ms": p50, "p99_ms": p99})
    for count in counts:
        export_dir = root / f"cascade{count}" / "1"
        export_cascade(cascade.retrieval_model, cascade.ranking_model, export_dir,
                       retrieval_vocabulary=cascade.retrieval_vocabulary, ranking_vocabularies=cascade.vocabularies,
                       item_genres=cascade.item_genres, item_year=cascade.item_year, candidates=count, k=k)
        signature = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
        for batch_size, calls in batches.items():
            p50, p99 = time_signature(signature, calls, ("user_id", "gender", "age", "occupation", "history"))
            rows.append({"stage": "cascade", "candidates": count, "batch": batch_size, "p50_ms": p50, "p99_ms": p99})
    return rows


def markdown(quality: dict, latency: list[dict]) -> str:
    lines = ["| stage | candidates | test HR@10 | test NDCG@10 | candidate recall | "
             + " | ".join(f"p50 / p99 ms, batch {b}" for b in BATCH_SIZES) + " |",
             "|---" * (5 + len(BATCH_SIZES)) + "|"]
    timing = {(row["candidates"], row["batch"]): row for row in latency}
    for name, metrics in quality.items():
        count = 0 if name == "retrieval" else int(name.split("@")[1])
        cells = [f"{timing[(count, b)]['p50_ms']:.1f} / {timing[(count, b)]['p99_ms']:.1f}"
                 if (count, b) in timing else "" for b in BATCH_SIZES]
        label = "retrieval alone" if name == "retrieval" else "cascade"
        lines.append(f"| {label} | {count or ''} | {metrics['hr@10']:.4f} | {metrics['ndcg@10']:.4f} | "
                     f"{metrics['candidate_recall']:.4f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--retrieval", required=True, help="a retrieval run on ML-1M (sasrec, ...)")
    parser.add_argument("--ranking", required=True, help="a ranking run on ML-1M (din, bst, ...)")
    parser.add_argument("--data-dir", type=pathlib.Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--counts", nargs="+", default=["50", "100", "200", "500", "all"])
    parser.add_argument("--calls", type=int, default=50, help="timed calls per batch size and count")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--output-json", type=pathlib.Path)
    args = parser.parse_args(argv)

    from tf_attnrec.data.datasets import load_dataset
    from tf_attnrec.data.splits import leave_one_out_split

    cascade = Cascade.from_runs(args.retrieval, args.ranking)
    data = load_dataset("ml-1m", data_dir=args.data_dir, download=False)
    split = leave_one_out_split(data.interactions)
    counts = parse_counts(args.counts, cascade.retrieval_vocabulary.num_items)
    start = time.perf_counter()
    quality = evaluate_cascade(cascade, split, data.users, candidate_counts=counts)
    evaluation_s = time.perf_counter() - start
    latency: list[dict] = []
    if not args.skip_latency:
        batches = {size: requests(split, data.users, size, args.calls, seed=size) for size in BATCH_SIZES}
        with tempfile.TemporaryDirectory() as tmp:
            latency = latency_table(cascade, [c for c in counts if c < cascade.retrieval_vocabulary.num_items],
                                    batches, 10, pathlib.Path(tmp))
    print(f"{time.strftime('%Y-%m-%d')} {platform.machine()}, {os.cpu_count()} CPUs; retrieval {args.retrieval}, "
          f"ranking {args.ranking}; {quality['retrieval']['users']:,} test users; evaluation {evaluation_s:.0f} s")
    print(markdown(quality, latency))
    if args.output_json:
        args.output_json.write_text(json.dumps({"quality": quality, "latency": latency,
                                                "retrieval": args.retrieval, "ranking": args.ranking}, indent=2))


if __name__ == "__main__":
    main()
