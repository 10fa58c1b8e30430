"""Peer benchmark: RecBole 1.2.1's LightGCN, NGCF, FISM and NAIS on OUR splits of ML-1M or ML-100K.

The interactions, chosen with `--dataset`:

* `ml-1m` (default): `read_sasrec_txt(--data)` (the SASRec-form ML-1M: 6,040 users, 3,416
  items, 999,611 interactions; `load_dataset("ml-1m")` reads the same user / item / timestamp
  columns from that file);
* `ml-100k`: `load_dataset("ml-100k", --data-dir).interactions` (943 users, 1,682 items,
  100,000 ratings; --data-dir defaults to $TF_ATTNREC_DATA_DIR, else the repo's
  ../shared/data), the frame `tf-attnrec train --dataset ml-100k --data-dir DIR` splits. It
  exists because RecBole's FISM / NAIS pad every training row to the user's whole history, so
  on ML-1M one NAIS epoch costs ~1.9 h on 2 cores (measured), while ML-100K's histories are
  ~3x shorter and its training rows 10x fewer.

Two splits, chosen with `--split`, each made by the retrieval task's own `build_data` (the
call `tf-attnrec train` makes, so the rows are the ones our models train and evaluate on):

* `ratio` (default): `ratio_split(df, seed=SEED)`, 80/10/10 per user (`tf-attnrec train
  --set split=ratio`), metrics Recall / NDCG @10/@20;
* `loo`: `leave_one_out_split(df)` (per user in time order, ties in file order: last item
  test, second last validation, the rest train; the default split of `tf-attnrec train`),
  metrics Hit / NDCG @10/@20 (RecBole's `Hit` = HR).

This script (running in the tf-attnrec environment) writes the split as RecBole atomic files

    WORK/data/NAME/NAME.train.inter, NAME.valid.inter, NAME.test.inter
    (header `user_id:token<TAB>item_id:token`, raw user and raw item ids)

with NAME = ml1m_s{SEED} (ratio) or ml1m_loo_s{SEED} (loo), for ML-100K ml100k_s{SEED} or
ml100k_loo_s{SEED}, plus _u{N} with --max-users (the first N users by raw id), and runs
RecBole on them in a separate PEER virtualenv (PyTorch + RecBole are never dependencies of
tf-attnrec): `benchmarks/peers/recbole_driver.py` is started with the venv's python, one
subprocess per model, and reports a JSON result.

How RecBole uses the files (read in recbole 1.2.1): with `benchmark_filename: [train, valid,
test]`, `Dataset._load_inter_feat` concatenates the three files, `_data_filtering` is skipped
(no k-core / dedup filters) and `Dataset.build` cuts the data back at the file sizes, so
`eval_args.split / order / group_by` are ignored and our three parts are used as they are
(the driver checks the part sizes against ours). `eval_args.mode: full` still applies:
`FullSortEvalDataLoader` ranks every item for every user that has a held-out item and masks
the user's "history" = sampler.used_ids[phase] - positives, where used_ids are cumulative over
the files: validation masks the user's train items, test masks train + valid items (the same
as `RatioSplit.seen`, and for loo the same as our full ranking). Metrics are RecBole's:
Recall@k = hits / |user's held-out items|, Hit@k = 1 if a held-out item is in the top k,
NDCG@k with the ideal DCG over min(|held-out|, k) positions, averaged over users.

Config per model (everything else RecBole 1.2.1's defaults): train_batch_size 4096 (as in the
properties of RecBole-GNN's published ML-1M results, results/general/ml-1m.md; RecBole's own
default is 2048, and an epoch of a graph model costs its number of full-graph propagations;
the batch counts rows after negative sampling, see below), Adam, `--neg-samples` uniform
negatives per positive (default 1, RecBole's default), eval_step 1, stopping_step 10 on
NDCG@10, eval_batch_size 2**24 (RecBole's full-sort loader turns it into 2**24 // n_items
users per batch; its default 4096 would be one user per batch), reproducibility True, CPU,
torch threads `--threads`.

* LightGCN: learning_rate 0.002, n_layers 3, reg_weight 1e-4, embedding_size 64 (pairwise, BPR).
* NGCF: learning_rate 0.0002; RecBole's NGCF.yaml defaults spelled out (embedding_size 64,
  hidden_size_list [64, 64, 64], node_dropout 0.0, message_dropout 0.1, reg_weight 1e-5).
* FISM, NAIS (pointwise, BCE on RecBole's generated `label` field: see MODEL_CONFIGS):
  RecBole's FISM.yaml / NAIS.yaml spelled out, learning_rate 0.001 (RecBole's default), and
  `split_to` 16 so that the per-user full-sort scoring stays bounded in memory.

Negatives: `train_neg_sample_args` (uniform, `sample_num` = --neg-samples) for every model.
For the pairwise models (BPR) a batch of `train_batch_size` holds that many (user, positive,
negative) triples; for the pointwise FISM / NAIS RecBole's `TrainDataLoader` takes
`train_batch_size // (1 + n)` positives and appends n sampled negatives each, with a float
`label` column (1 for the positives, 0 for the negatives; `LABEL_FIELD`, default `label`), so
a batch of 4096 rows holds 2,048 positives with n = 1. Negatives are drawn uniformly among the
items the user has no training interaction with, again every epoch.

Resume and time limit: each model's run folder is WORK/runs/NAME-MODEL (no timestamp;
-neg{N} appended when --neg-samples is not 1), and the driver writes a checkpoint `last.pth`
there after every epoch (atomically). Rerunning the same command resumes from the epoch after
the checkpoint when its fingerprint (the RecBole config without paths, the split kind and the
split files' SHA-256) matches, and refuses a checkpoint that does not; `--fresh` deletes the
run folder first. `--time-limit M` minutes per model and session, counted from the start of
training in this session: RecBole has none, so the driver stops at the first epoch boundary
where one more epoch as long as the last one would pass M. Whenever a session ends, the best
epoch's weights are evaluated on test (for a partial run: the best so far); the result says
`status` finished (early stopping or --epochs) or partial, and over how many `sessions` it ran.
Recorded per model: per epoch the training time (split into batch wait, forward, optimizer
step, backward + rest), validation time, loss and validation metrics; training and validation
time summed over sessions, the train + validation time of epochs 0..best, total wall time of
all sessions, best epoch, validation NDCG@10 at best, test metrics @10/20.

`--profile-batches N` only measures: it trains N batches of epoch 0 and times one validation
(or, with `--profile-eval-users K`, the full-sort scoring of the first K validation users,
extrapolated to all of them by their training-history lengths), in a separate, always fresh
run folder WORK/runs/NAME-MODEL-profile, without a checkpoint.

The peer virtualenv (default ~/.cache/tf-attnrec-peers/recbole-venv, `--venv`) is created with
`python3 -m venv` and filled from `benchmarks/peers/recbole-requirements.txt` when missing or
when that file changed (a stamp in the venv); it needs PyPI. Usage:

    python benchmarks/recbole_graph.py [--models LightGCN NGCF FISM NAIS] [--split ratio|loo]
        [--dataset ml-1m [--data ML-1M.txt] | --dataset ml-100k [--data-dir DIR]] [--seed 2020]
        [--epochs 1000] [--time-limit MINUTES] [--threads 2] [--neg-samples 1] [--work-dir DIR]
        [--venv DIR] [--max-users N] [--output-json PATH]
        [--fresh] [--setup-only] [--profile-batches N [--profile-eval-users K]]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence

REPO = pathlib.Path(__file__).resolve().parents[1]
PEERS = REPO / "benchmarks" / "peers"
DRIVER = PEERS / "recbole_driver.py"
REQUIREMENTS = PEERS / "recbole-requirements.txt"
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"
DEFAULT_DATA = DEFAULT_DATA_DIR / "ml-1m" / "ml-1m.txt"
DATA_DIR_ENV = "TF_ATTNREC_DATA_DIR"  # as load_dataset and the other benchmarks read it
PEER_CACHE = pathlib.Path(os.environ.get("TF_ATTNREC_PEER_CACHE", pathlib.Path.home() / ".cache" / "tf-attnrec-peers"))
DEFAULT_VENV = PEER_CACHE / "recbole-venv"
DEFAULT_WORK = PEER_CACHE / "recbole-work"
STAMP = ".tf-attnrec-requirements.sha256"
PARTS = (("train", "train"), ("validation", "valid"), ("test", "test"))  # RatioSplit attribute, file suffix

SPLITS = ("ratio", "loo")
# --dataset -> the prefix of its RecBole dataset name (ML-1M's predates --dataset: its run
# folders and checkpoint fingerprints keep their names).
DATASET_PREFIXES = {"ml-1m": "ml1m", "ml-100k": "ml100k"}
DATASETS = tuple(DATASET_PREFIXES)
# Our split kind -> the retrieval task's `training.split` value.
TASK_SPLITS = {"ratio": "ratio", "loo": "leave_one_out"}

# FISM and NAIS evaluate one user at a time (`full_sort_predict` loops over the batch's users)
# and build [n_items, history_len, 64] tensors per user: 3,417 x 1,823 x 64 float32 = 1.6 GB
# for the longest ML-1M training history of the ratio split (2,275 for loo), several of them
# at once in NAIS. `split_to` chunks the catalogue: 16 chunks of <= 214 items bound each
# tensor to ~125 MB (loo) whatever the user. It only chunks; the scores are the same.
SPLIT_TO = 16

MODEL_CONFIGS = {
    "LightGCN": {"learning_rate": 0.002, "n_layers": 3, "reg_weight": 1e-4, "embedding_size": 64},
    "NGCF": {"learning_rate": 0.0002, "embedding_size": 64, "hidden_size_list": [64, 64, 64],
             "node_dropout": 0.0, "message_dropout": 0.1, "reg_weight": 1e-5},
    # RecBole 1.2.1 recbole/properties/model/FISM.yaml, all four keys spelled out, except
    # split_to (0 there = score all items at once; see SPLIT_TO). learning_rate: RecBole's
    # overall.yaml default 0.001; RecBole publishes no ML-1M result for FISM, its docs
    # (user_guide/model/general/fism.rst) only a tuning range [0.01 .. 0.0001].
    "FISM": {"learning_rate": 0.001,
             "embedding_size": 64,          # FISM.yaml
             "reg_weights": [1e-2, 1e-2],   # FISM.yaml: L2 (norm, not squared) of the two item tables
             "alpha": 0.0,                  # FISM.yaml: n_u^-alpha normalisation off
             "split_to": SPLIT_TO},         # FISM.yaml has 0
    # RecBole 1.2.1 recbole/properties/model/NAIS.yaml, all keys spelled out, except split_to.
    # learning_rate: RecBole's default 0.001 (no published RecBole ML-1M result for NAIS; the
    # docs' nais.rst gives only a tuning range [0.01 .. 0.0001]; the NAIS paper used 0.01 with
    # Adagrad and FISM pretraining, which RecBole's `pretrain_path` would load; not used here).
    "NAIS": {"learning_rate": 0.001,
             "algorithm": "prod",               # NAIS.yaml: attention MLP on p_j * q_i
             "embedding_size": 64,              # NAIS.yaml
             "weight_size": 64,                 # NAIS.yaml: attention hidden size
             "reg_weights": [1e-7, 1e-7, 1e-5],  # NAIS.yaml: src / dst item tables, attention MLP
             "alpha": 0.0,                      # NAIS.yaml
             "beta": 0.5,                       # NAIS.yaml: softmax denominator exponent
             "pretrain_path": None,             # NAIS.yaml: no FISM pretraining
             "split_to": SPLIT_TO},             # NAIS.yaml has 0
}
METRICS_BY_SPLIT = {"ratio": ("recall@10", "recall@20", "ndcg@10", "ndcg@20"),
                    "loo": ("hit@10", "hit@20", "ndcg@10", "ndcg@20")}
METRICS = METRICS_BY_SPLIT["ratio"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class PeerSetupError(RuntimeError):
    """The peer virtualenv could not be built or does not import; names the failed step."""


# --------------------------------------------------------------------------------------
# The peer virtualenv.
# --------------------------------------------------------------------------------------
def venv_python(venv: pathlib.Path) -> pathlib.Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _clean_env(**extra: str) -> dict:
    """The environment for peer processes: this interpreter's virtualenv and paths left out."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def _step(name: str, cmd: Sequence[str], log: pathlib.Path, hint: str = "") -> None:
    print(f"[peer venv] {name}: {' '.join(map(str, cmd))}", flush=True)
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(map(str, cmd))}\n")
        f.flush()
        try:
            rc = subprocess.call([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT, env=_clean_env())
        except OSError as e:
            raise PeerSetupError(f"peer venv step '{name}' could not start: {e}") from e
    if rc != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-25:])
        raise PeerSetupError(
            f"peer venv step '{name}' failed (exit {rc}). {hint}\n"
            f"Full log: {log}\n--- last lines ---\n{tail}")


def ensure_venv(venv: pathlib.Path, requirements: pathlib.Path, base_python: str, log: pathlib.Path,
                rebuild: bool = False) -> dict:
    """Creates / fills the peer venv when needed; returns the versions it imports.

    Raises:
        PeerSetupError: a step failed (`create virtualenv`, `pip install`, `import check`).
    """
    if not requirements.is_file():
        raise PeerSetupError(f"peer venv step 'read requirements' failed: {requirements} does not exist.")
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    log.parent.mkdir(parents=True, exist_ok=True)
    py = venv_python(venv)
    stamp = venv / STAMP
    if rebuild and venv.exists():
        shutil.rmtree(venv)
    if not (py.exists() and stamp.exists() and stamp.read_text().strip() == digest):
        if not py.exists():
            _step("create virtualenv", [base_python, "-m", "venv", venv], log,
                  "Is the venv module installed (Debian: apt-get install python3-venv)?")
        _step("pip install", [py, "-m", "pip", "install", "--disable-pip-version-check", "-r", requirements], log,
              "Installing torch + recbole needs PyPI; no network, or a pin that does not resolve here?")
    check = ("import json, importlib.metadata as m, recbole, torch, numpy, scipy, pandas;"
             "print(json.dumps({n: m.version(n) for n in ('recbole', 'torch', 'numpy', 'scipy', 'pandas')}))")
    out = subprocess.run([str(py), "-c", check], check=False, capture_output=True, text=True, env=_clean_env())
    if out.returncode != 0:
        stamp.unlink(missing_ok=True)
        raise PeerSetupError(
            f"peer venv step 'import check' failed: {py} cannot import recbole/torch.\n{out.stderr[-3000:]}\n"
            f"Rebuild with --rebuild-venv.")
    stamp.write_text(digest + "\n")
    versions = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"[peer venv] {venv}: {versions}", flush=True)
    return versions


# --------------------------------------------------------------------------------------
# The split, as RecBole atomic files.
# --------------------------------------------------------------------------------------
def first_users(df, max_users: int | None):
    """With --max-users: the rows of the first N users (sorted raw ids), in their file order."""
    import numpy as np

    if max_users:
        keep = np.sort(df["user_id"].unique())[:max_users]
        df = df[df["user_id"].isin(keep)].reset_index(drop=True)
    return df


def read_interactions(data: pathlib.Path, max_users: int | None):
    """ML-1M: `read_sasrec_txt(data)`, with --max-users the rows of the first N users."""
    from tf_attnrec.data.readers import read_sasrec_txt

    return first_users(read_sasrec_txt(data), max_users)


def load_interactions(dataset: str, data_dir: pathlib.Path, max_users: int | None):
    """`load_dataset(dataset, data_dir).interactions` (what `tf-attnrec train --dataset
    DATASET --data-dir DATA_DIR` splits), with --max-users the rows of the first N users.

    No download: a missing local copy fails with load_dataset's FileNotFoundError.
    """
    from tf_attnrec.data.datasets import load_dataset

    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}; got {dataset!r}")
    return first_users(load_dataset(dataset, data_dir, download=False).interactions, max_users)


def our_split(df, kind: str, seed: int):
    """The split `tf-attnrec train` makes of `df`: the retrieval task's own `build_data`.

    `ratio` (`--set split=ratio`): `ratio_split(df, seed=seed)`, 80/10/10 per user (the
    collaborative task's split is the same call); `loo`: `leave_one_out_split(df)`.
    """
    from tf_attnrec.data.dataset import Dataset
    from tf_attnrec.tasks import get_task

    if kind not in SPLITS:
        raise ValueError(f"split kind must be one of {SPLITS}; got {kind!r}")
    options = {"split": TASK_SPLITS[kind]}
    if kind == "ratio":
        options["split_seed"] = seed
    return get_task("retrieval").build_data(Dataset(interactions=df), {}, options)


def split_parts(df, kind: str, seed: int) -> tuple[dict, dict]:
    """Our split of `df` as RecBole rows: ({suffix: (raw users, raw items)}, sizes).

    The split is `our_split` (the library's, so it is the one our models train and evaluate
    on). Rows are per user in sorted-user order; within a user, the split's order (loo train:
    time order).
    """
    import numpy as np

    split = our_split(df, kind, seed)
    if kind == "ratio":
        parts = {}
        for attr, suffix in PARTS:
            per_user = getattr(split, attr)
            lengths = np.array([len(x) for x in per_user])
            users = np.repeat(np.asarray(split.users), lengths)
            items = split.vocabulary.raw_ids(np.concatenate(per_user)) if lengths.sum() else np.array([], np.int64)
            parts[suffix] = (users, np.asarray(items))
        counts = split.num_interactions()
        sizes = {"users": int(split.num_users), "items": int(split.vocabulary.num_items),
                 "interactions": {"train": counts["train"], "valid": counts["validation"], "test": counts["test"]},
                 "valid_users": len(split.evaluable_users("validation")),
                 "test_users": len(split.evaluable_users("test"))}
        return parts, sizes
    if kind == "loo":
        users = np.asarray(split.users)
        lengths = np.array([len(x) for x in split.train])
        train_items = split.vocabulary.raw_ids(np.concatenate(split.train)) if lengths.sum() else np.array([], np.int64)
        parts = {"train": (np.repeat(users, lengths), np.asarray(train_items))}
        for suffix, targets in (("valid", split.validation_target), ("test", split.test_target)):
            rows = np.flatnonzero(np.asarray(targets) > 0)  # 0: a user too short for a target
            items = split.vocabulary.raw_ids(np.asarray(targets)[rows]) if len(rows) else np.array([], np.int64)
            parts[suffix] = (users[rows], np.asarray(items))
        sizes = {"users": int(split.num_users), "items": int(split.vocabulary.num_items),
                 "interactions": {k: int(len(v[0])) for k, v in parts.items()},
                 "valid_users": int(len(parts["valid"][0])), "test_users": int(len(parts["test"][0]))}
        return parts, sizes
    raise ValueError(f"split kind must be one of {SPLITS}; got {kind!r}")


def dataset_name(kind: str, seed: int, max_users: int | None, dataset: str = "ml-1m") -> str:
    """The RecBole dataset name (and run folder prefix): ml1m_s2020, ml1m_loo_s2020,
    ml100k_s2020, ml100k_loo_s2020, each with _uN under --max-users N."""
    if kind not in SPLITS:
        raise ValueError(f"split kind must be one of {SPLITS}; got {kind!r}")
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}; got {dataset!r}")
    stem = DATASET_PREFIXES[dataset] + ("_s" if kind == "ratio" else "_loo_s")
    return stem + str(seed) + (f"_u{max_users}" if max_users else "")


def write_split(interactions, seed: int, root: pathlib.Path, name: str, kind: str = "ratio") -> dict:
    """Writes our split of `interactions` (a frame with `user_id`, `item_id`) as
    `root/name/name.{train,valid,test}.inter`; returns the split's sizes and SHA-256."""
    import pandas as pd

    parts, sizes = split_parts(interactions, kind, seed)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for _, suffix in PARTS:
        users, items = parts[suffix]
        frame = pd.DataFrame({"user_id:token": users, "item_id:token": items})
        frame.to_csv(folder / f"{name}.{suffix}.inter", sep="\t", index=False)
    digest = hashlib.sha256()
    for _, suffix in PARTS:
        digest.update((folder / f"{name}.{suffix}.inter").read_bytes())
    return {"kind": kind, "sha256": digest.hexdigest(), **sizes}


# --------------------------------------------------------------------------------------
# One model.
# --------------------------------------------------------------------------------------
def recbole_config(model: str, args, data_root: pathlib.Path, run_dir: pathlib.Path) -> dict:
    """RecBole's config_dict for one model. For the ratio split and one negative it is the
    dict of the runs before FISM / NAIS / --split were added, so their checkpoints still match."""
    kind = getattr(args, "split", "ratio")
    config = {
        "data_path": str(data_root),
        "checkpoint_dir": str(run_dir / "saved"),
        "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id"]},
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        # Ignored with benchmark files except `mode` (full ranking); kept as the protocol's name.
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user", "mode": "full"},
        "metrics": ["Recall", "NDCG"],
        "topk": [10, 20],
        "valid_metric": "NDCG@10",
        "metric_decimal_place": 6,
        "train_batch_size": args.train_batch_size,
        "eval_batch_size": args.eval_batch_size,
        # Pairwise models: one (user, positive, negative) triple per negative. Pointwise (FISM,
        # NAIS): the loader adds sample_num negative rows per positive and a float `label`
        # column named by LABEL_FIELD (RecBole's default `label`, left as it is).
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": getattr(args, "neg_samples", 1),
                                  "alpha": 1.0, "dynamic": False, "candidate_num": 0},
        "eval_step": 1,
        "stopping_step": args.stopping_step,
        "epochs": args.epochs,
        "gpu_id": "",
        "use_gpu": False,
        "seed": args.seed,
        "reproducibility": True,
        "show_progress": False,
        "state": "INFO",
    }
    if kind == "loo":
        # Ignored with benchmark files except `mode`; named after RecBole's leave-one-out.
        config["eval_args"] = {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"}
        config["metrics"] = ["Hit", "NDCG"]
    elif kind != "ratio":
        raise ValueError(f"split kind must be one of {SPLITS}; got {kind!r}")
    config.update(MODEL_CONFIGS[model])
    return config


PATH_KEYS = ("data_path", "checkpoint_dir")


def run_fingerprint(model: str, name: str, config: dict, split_sha256: str, split_kind: str = "ratio") -> str:
    """What a checkpoint must match to be resumed: the config without its paths, and the split.

    The split kind is part of it; "ratio" is hashed as absent, so that checkpoints written
    before --split existed (all ratio) keep their fingerprint and still resume.
    """
    if split_kind not in SPLITS:
        raise ValueError(f"split kind must be one of {SPLITS}; got {split_kind!r}")
    kept = {k: v for k, v in config.items() if k not in PATH_KEYS}
    what = {"model": model, "dataset": name, "config": kept, "split": split_sha256}
    if split_kind != "ratio":
        what["split_kind"] = split_kind
    blob = json.dumps(what, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def run_dir_name(name: str, model: str, neg_samples: int = 1, profile: bool = False) -> str:
    """NAME-MODEL, -negN when not one negative, -profile for a --profile-batches measurement."""
    return f"{name}-{model}" + (f"-neg{neg_samples}" if neg_samples != 1 else "") + ("-profile" if profile else "")


def run_model(model: str, args, py: pathlib.Path, data_root: pathlib.Path, name: str, work: pathlib.Path,
              split_sha256: str) -> dict:
    # A fixed folder per (split, model), so that rerunning the same command finds the checkpoint.
    kind = getattr(args, "split", "ratio")
    profile = getattr(args, "profile_batches", None)
    run_dir = work / "runs" / run_dir_name(name, model, getattr(args, "neg_samples", 1), profile=bool(profile))
    if (args.fresh or profile) and run_dir.exists():
        print(f"[{model}] {'--profile-batches' if profile else '--fresh'}: deleting {run_dir}", flush=True)
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = recbole_config(model, args, data_root, run_dir)
    run = {"model": model, "dataset": name, "split": kind, "threads": args.threads,
           "time_limit_s": None if args.time_limit is None else 60.0 * args.time_limit,
           "checkpoint": str(run_dir / "last.pth"),
           "fingerprint": run_fingerprint(model, name, config, split_sha256, kind),
           "config_dict": config}
    if profile:
        run["profile"] = {"train_batches": int(profile), "eval_users": getattr(args, "profile_eval_users", None)}
    (run_dir / "run.json").write_text(json.dumps(run, indent=2))
    result_path = run_dir / "result.json"
    result_path.unlink(missing_ok=True)  # an earlier session's result must not pass for this one's
    threads = str(args.threads)
    env = _clean_env(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    cmd = [str(py), str(DRIVER), "--config", str(run_dir / "run.json"), "--result", str(result_path)]
    print(f"[{model}] {' '.join(cmd)}  (cwd {run_dir})", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=run_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace")
    try:
        for line in proc.stdout:
            print(f"[{model}] {ANSI.sub('', line)}", end="", flush=True)
        rc = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise
    wall = time.perf_counter() - t0
    if rc != 0 or not result_path.exists():
        return {"model": model, "error": f"driver exited {rc}; see the [{model}] lines above", "run_dir": str(run_dir)}
    result = json.loads(result_path.read_text())
    result.update({"subprocess_wall_s": wall, "run_dir": str(run_dir), "config": run["config_dict"]})
    return result


def summary(result: dict, metrics: Sequence[str] = METRICS) -> dict:
    if "error" in result:
        return {"model": result["model"], "error": result["error"]}
    if "profile" in result:
        return profile_summary(result)

    def mean(key):
        xs = [e[key] for e in result["history"]]
        return sum(xs) / len(xs) if xs else None

    out = {k: result[k] for k in ("model", "status", "sessions", "best_epoch", "epochs_run", "stopped_by",
                                  "time_to_best_s", "train_s_total", "valid_s_total", "fit_s_total", "total_s",
                                  "data_s", "test_eval_s")}
    for key in ("train_s", "valid_s", "batch_wait_s", "forward_s", "optimizer_step_s", "backward_other_s"):
        out[f"{key}_mean"] = mean(key)
    out["valid_ndcg@10"] = (result["best_valid"] or {}).get("ndcg@10")
    out.update({f"test_{m}": (result["test"] or {}).get(m) for m in metrics})
    out["threads"] = result["threads"]
    return out


def profile_summary(result: dict) -> dict:
    """The row of a --profile-batches measurement: per-batch and evaluation times."""
    prof = result["profile"]
    return {"model": result["model"], "threads": result["threads"], **{k: prof.get(k) for k in (
        "batches", "rows_per_batch", "batches_per_epoch", "s_per_batch", "s_per_batch_after_first",
        "epoch_s_estimate", "history_max_len", "eval_users", "eval_s", "eval_s_all_users_estimate")}}


def profile_table(rows: Sequence[dict]) -> str:
    cols = [("model", "model", "{}"), ("batches", "batches", "{}"), ("rows_per_batch", "rows/batch", "{}"),
            ("history_max_len", "hist len", "{}"), ("s_per_batch", "s/batch", "{:.2f}"),
            ("s_per_batch_after_first", "s/batch>1", "{:.2f}"), ("batches_per_epoch", "batches/ep", "{}"),
            ("epoch_s_estimate", "~s/epoch", "{:.0f}"), ("eval_users", "eval users", "{}"),
            ("eval_s", "eval s", "{:.1f}"), ("eval_s_all_users_estimate", "~s/valid", "{:.0f}")]
    return _render(rows, cols, error_col="batches")


def table(rows: Sequence[dict], metrics: Sequence[str] = METRICS) -> str:
    cols = [("model", "model", "{}"), ("status", "status", "{}"), ("sessions", "sess", "{}"),
            ("best_epoch", "best ep", "{}"), ("epochs_run", "epochs", "{}"),
            ("stopped_by", "stop", "{}"), ("train_s_mean", "s/epoch", "{:.1f}"),
            ("valid_s_mean", "s/valid", "{:.1f}"), ("time_to_best_s", "to best s", "{:.0f}"),
            ("total_s", "total s", "{:.0f}"), ("valid_ndcg@10", "val N@10", "{:.4f}")]
    cols += [(f"test_{m}", m.replace("recall", "R").replace("hit", "HR").replace("ndcg", "N"), "{:.4f}")
             for m in metrics]
    return _render(rows, cols)


def _render(rows: Sequence[dict], cols: Sequence[tuple], error_col: str = "best_epoch") -> str:
    def cell(row, key, fmt):
        v = row.get(key)
        return "-" if v is None else fmt.format(v)

    body = [[cell(r, k, f) if "error" not in r or k == "model" else ("ERROR" if k == error_col else "")
             for k, _, f in cols] for r in rows]
    heads = [h for _, h, _ in cols]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(heads)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(heads, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def check_data_flags(parser: argparse.ArgumentParser, args) -> None:
    """--data belongs to ml-1m, --data-dir to ml-100k (one would be ignored); fills their defaults."""
    if args.dataset == "ml-1m":
        if args.data_dir is not None:
            parser.error("--data-dir is for --dataset ml-100k; ML-1M is read from the SASRec file --data")
        args.data = args.data or DEFAULT_DATA
    else:
        if args.data is not None:
            parser.error(f"--data is ML-1M's SASRec file; --dataset {args.dataset} is read from --data-dir")
        args.data_dir = args.data_dir or pathlib.Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def read_dataset(args):
    """The interactions to split: ML-1M from --data, the others through load_dataset."""
    if args.dataset == "ml-1m":
        return read_interactions(args.data, args.max_users)
    return load_interactions(args.dataset, args.data_dir, args.max_users)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODEL_CONFIGS), default=["LightGCN", "NGCF"])
    parser.add_argument("--split", choices=SPLITS, default="ratio",
                        help="ratio: our random 80/10/10 per user (Recall/NDCG); loo: our leave-one-out "
                             "(last item test, second last validation; HR/NDCG)")
    parser.add_argument("--dataset", choices=DATASETS, default="ml-1m",
                        help="ml-1m: the SASRec file --data; ml-100k: load_dataset('ml-100k', --data-dir), as "
                             "`tf-attnrec train --dataset ml-100k` reads it")
    parser.add_argument("--data", type=pathlib.Path, default=None,
                        help=f"--dataset ml-1m: SASRec-form `user item` text file (default {DEFAULT_DATA})")
    parser.add_argument("--data-dir", type=pathlib.Path, default=None,
                        help=f"--dataset ml-100k: folder holding ml-100k/ (default ${DATA_DIR_ENV}, "
                             f"else {DEFAULT_DATA_DIR})")
    parser.add_argument("--seed", type=int, default=2020, help="split seed and RecBole's seed")
    parser.add_argument("--epochs", type=int, default=1000, help="max epochs (early stopping usually ends first)")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="minutes of training per model and session; rerun to resume")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in the peer")
    parser.add_argument("--stopping-step", type=int, default=10)
    parser.add_argument("--train-batch-size", type=int, default=4096,
                        help="rows per batch after negative sampling (pointwise: positives + negatives)")
    parser.add_argument("--neg-samples", type=int, default=1,
                        help="uniform negatives per positive (RecBole's default 1; the NAIS paper used 4)")
    parser.add_argument("--eval-batch-size", type=int, default=2 ** 24)
    parser.add_argument("--max-users", type=int, default=None, help="smoke test: keep the first N users")
    parser.add_argument("--work-dir", type=pathlib.Path, default=DEFAULT_WORK)
    parser.add_argument("--venv", type=pathlib.Path, default=DEFAULT_VENV, help="the peer virtualenv")
    parser.add_argument("--requirements", type=pathlib.Path, default=REQUIREMENTS)
    parser.add_argument("--base-python", default=shutil.which("python3") or sys.executable,
                        help="interpreter that creates the venv (`-m venv`)")
    parser.add_argument("--rebuild-venv", action="store_true", help="delete and rebuild the peer venv")
    parser.add_argument("--setup-only", action="store_true", help="build the peer venv and exit")
    parser.add_argument("--output-json", type=pathlib.Path, default=None)
    parser.add_argument("--fresh", action="store_true",
                        help="delete each model's run folder (its checkpoint) and start over instead of resuming")
    parser.add_argument("--profile-batches", type=int, default=None,
                        help="only measure: train N batches of epoch 0 and time one validation (run folder "
                             "NAME-MODEL-profile, no checkpoint)")
    parser.add_argument("--profile-eval-users", type=int, default=None,
                        help="with --profile-batches: time the full-sort scoring of the first K validation users "
                             "and extrapolate by history length, instead of a whole validation")
    args = parser.parse_args(argv)
    if args.neg_samples < 1:
        parser.error("--neg-samples must be >= 1")
    if args.profile_eval_users is not None and not args.profile_batches:
        parser.error("--profile-eval-users needs --profile-batches")
    check_data_flags(parser, args)

    work = args.work_dir.expanduser().resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now().astimezone()
    try:
        versions = ensure_venv(args.venv.expanduser(), args.requirements, args.base_python,
                               work / "peer-venv-install.log", rebuild=args.rebuild_venv)
    except PeerSetupError as e:
        print(f"recbole_graph: {e}", file=sys.stderr)
        return 2
    if args.setup_only:
        return 0

    name = dataset_name(args.split, args.seed, args.max_users, args.dataset)
    data_root = work / "data"
    t0 = time.perf_counter()
    split_info = write_split(read_dataset(args), args.seed, data_root, name, args.split)
    print(f"[split] {name}: {split_info} written to {data_root / name} in {time.perf_counter() - t0:.1f}s",
          flush=True)

    py = venv_python(args.venv.expanduser())
    results, rows = [], []
    for model in args.models:
        result = run_model(model, args, py, data_root, name, work, split_info["sha256"])
        if "error" not in result and result["interactions"] != split_info["interactions"]:
            result["error"] = f"RecBole's part sizes {result['interactions']} differ from ours {split_info['interactions']}"
        results.append(result)
        rows.append(summary(result, METRICS_BY_SPLIT[args.split]))
        print(json.dumps(rows[-1]), flush=True)

    what = "ratio_split" if args.split == "ratio" else "leave_one_out_split"
    print(f"\nRecBole 1.2.1 on tf-attnrec's {what} of "
          f"{args.dataset} (seed {args.seed}, {split_info['users']} users, {split_info['items']} items, "
          f"{args.neg_samples} negative(s) per positive, CPU, {args.threads} threads; timings on a shared machine)")
    if args.profile_batches:
        print(profile_table(rows))
    else:
        print(table(rows, METRICS_BY_SPLIT[args.split]))
    if args.output_json:
        report = {"benchmark": "recbole_graph", "date": started.isoformat(timespec="seconds"),
                  "command": [sys.executable, *sys.argv], "host": platform.node(), "platform": platform.platform(),
                  "cpu_count": os.cpu_count(), "dataset": args.dataset,
                  "data": str(args.data if args.dataset == "ml-1m" else args.data_dir), "seed": args.seed,
                  "split": split_info,
                  "neg_samples": args.neg_samples, "profile_batches": args.profile_batches,
                  "peer_versions": versions, "time_limit_min": args.time_limit,
                  "finished": all(r.get("status") == "finished" for r in results), "summary": rows, "results": results}
        args.output_json.parent.mkdir(parents=True, exist_ok=True)
        args.output_json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.output_json}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
