"""`tf-attnrec`: a thin command layer over the library (train, evaluate, recommend, list-models).

    tf-attnrec train --dataset ml-1m [--model sasrec] [--config models/sasrec/config.yaml]
        [--data-dir D] [--output runs/NAME] [--epochs N] [--set hidden_dim=32 ...]
    tf-attnrec evaluate RUN_DIR [--protocol full|sampled] [--stage test|validation]
    tf-attnrec recommend RUN_DIR --history ID,ID,... [-k 10]
    tf-attnrec explain RUN_DIR --user U --item I [--output PNG] [--top 10]
    tf-attnrec list-models

A run directory holds what `train_sequential` saves (`model_config.json`, `weights/`,
`vocabulary.json`, `metrics.json`, `history.csv`) plus `config.yaml`, the resolved run config
in the zoo-config format (model, dataset, data_dir, model_config, training), so `evaluate`
rebuilds the same leave-one-out split without retraining and `train --config RUN/config.yaml`
repeats the run, and `items.json`, the item titles for `recommend`.

User errors (bad flags, missing files, malformed data or configs) print one line on stderr
and exit non-zero; library modules are imported only by the commands that need them.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import pathlib
import sys
from typing import Any, Callable, Optional, Sequence

import numpy as np
import yaml

from tf_attnrec.version import __version__

PROG = "tf-attnrec"
RUN_CONFIG_FILE = "config.yaml"
ITEMS_FILE = "items.json"
METRICS_FILE = "metrics.json"  # written by tf_attnrec.training.train_sequential
ITEMS_FORMAT = "tf_attnrec.items/1"
DEFAULT_MODEL = "sasrec"
# Keys of a zoo / run config: the first five are used, the rest are provenance that `train`
# writes into a run's config.yaml (`_provenance`) and that is read back without effect.
PROVENANCE_KEYS = ("source", "created", "version", "init_from")
CONFIG_KEYS = ("model", "dataset", "data_dir", "model_config", "training", *PROVENANCE_KEYS)
# train_sequential arguments that the command sets itself rather than the config.
_RESERVED_TRAINING_KEYS = ("model", "split", "run_dir", "extra_config", "callbacks", "verbose")


# ------------------------------------------------------------------------------------ configs

def _provenance(data, stamp: str, init_from) -> dict:
    """What a run's config.yaml records besides its config (keys: PROVENANCE_KEYS)."""
    provenance = {"source": data.source, "created": stamp, "version": __version__}
    if init_from:
        provenance["init_from"] = str(init_from)
    return provenance


def zoo_config_path(model: str) -> Optional[pathlib.Path]:
    """`models/<model>/config.yaml` of the repository this package lives in, if present.

    Args:
        model: A zoo model name.

    Returns:
        The path, or None when the package is installed without the repository's `models/`.
    """
    path = pathlib.Path(__file__).resolve().parents[1] / "models" / model / "config.yaml"
    return path if path.is_file() else None


def read_config(path: pathlib.Path) -> dict:
    """Reads and checks a zoo / run config (YAML).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a mapping, unknown keys, or `model_config` / `training` not mappings.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"config file {path} not found; pass a zoo config such as models/sasrec/config.yaml "
            "or a run's config.yaml."
        )
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error}).".replace("\n", " ")) from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a YAML mapping with keys {CONFIG_KEYS[:5]}; got {type(config).__name__}.")
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; a config may contain {list(CONFIG_KEYS)}.")
    for key in ("model_config", "training"):
        if not isinstance(config.get(key) or {}, dict):
            raise ValueError(f"{path}: `{key}` must be a mapping of keyword arguments; got {config[key]!r}.")
    return config


def _model_task(name: str) -> str:
    """"retrieval" or "ranking" (the registry's `ModelSpec.task`)."""
    from tf_attnrec.models.registry import get_model_spec

    return get_model_spec(name).task


def _check_model_name(name: str) -> None:
    import tf_attnrec.ranking  # noqa: F401  (registers the ranking zoo)
    from tf_attnrec.models.registry import list_models

    if name not in list_models():
        raise ValueError(f"unknown model {name!r}; choose one of {list_models()} (see `{PROG} list-models`).")


def _parse_assignments(assignments: Sequence[str]) -> dict:
    """`["hidden_dim=32", "loss=bce"]` -> `{"hidden_dim": 32, "loss": "bce"}` (YAML values)."""
    result = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE (e.g. --set hidden_dim=32); got {assignment!r}.")
        try:
            result[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError(f"--set {assignment!r}: {value!r} is not a valid value.") from None
    return result


def resolve_train_config(args: argparse.Namespace) -> dict:
    """The run config of `train`: --config (or the zoo config, or registry defaults) + flags.

    Returns:
        `{"model", "dataset", "data_dir", "model_config", "training"}` with every value
        resolved (the zoo config's values overridden by the command-line flags).
    """
    from tf_attnrec.models.registry import default_training_config

    if args.config is not None:
        config = read_config(pathlib.Path(args.config))
        model = config.get("model") or args.model or DEFAULT_MODEL
        if args.model is not None and args.model != model:
            raise ValueError(
                f"--model {args.model} conflicts with {args.config}, which configures {model!r}; "
                "drop one of them."
            )
    else:
        model = args.model or DEFAULT_MODEL
        path = zoo_config_path(model)
        config = read_config(path) if path is not None else {}
    _check_model_name(model)
    if args.config is None and not config:  # installed without the repository's models/
        config = {"model_config": {}, "training": default_training_config(model)}
    model_config = dict(config.get("model_config") or {})
    if args.max_length is not None:
        model_config["max_length"] = args.max_length
    model_config.update(_parse_assignments(args.set or ()))
    training = dict(config.get("training") or {})
    for flag in ("epochs", "batch_size", "learning_rate", "patience", "eval_every", "validation_users", "seed"):
        value = getattr(args, flag)
        if value is not None:
            training[flag] = value
    if args.jit:
        training["jit_compile"] = True
    _check_training_keys(training, _model_task(model))
    dataset = args.dataset or config.get("dataset")
    if not dataset:
        raise ValueError("no dataset given: pass --dataset (e.g. --dataset ml-1m or ml-100k).")
    data_dir = args.data_dir or config.get("data_dir")
    return {
        "model": model,
        "dataset": dataset,
        "data_dir": str(pathlib.Path(data_dir).expanduser().resolve()) if data_dir else None,
        "model_config": model_config,
        "training": training,
    }


def _check_training_keys(training: dict, task: str = "retrieval") -> None:
    if task == "ranking":
        from tf_attnrec.ranking.training import DATA_KEYS, train_ranker

        allowed = set(inspect.signature(train_ranker).parameters) | set(DATA_KEYS)
        allowed -= {"data", "run_dir", "extra_config", "callbacks", "verbose", "model"}
    else:
        from tf_attnrec.training import train_sequential

        allowed = set(inspect.signature(train_sequential).parameters) - set(_RESERVED_TRAINING_KEYS)
    unknown = sorted(set(training) - allowed)
    if unknown:
        raise ValueError(f"unknown training keys {unknown}; `training` accepts {sorted(allowed)}.")


# ------------------------------------------------------------------------------ evaluation
def evaluate_split(
    model: Any,
    split: Any,
    stage: str = "test",
    protocol: str = "full",
    ks: Sequence[int] = (10, 20),
    num_negatives: int = 100,
    seed: int = 0,
) -> dict:
    """Ranking metrics of a trained model on the validation or test items of a split.

    "full" ranks the target against the whole catalogue (seen items excluded) and adds the
    beyond-accuracy metrics of the top-K lists (coverage@K, novelty@K, mean_popularity@K,
    gini@K; popularity from the training sequences); "sampled" ranks it against
    `num_negatives` sampled items (keys prefixed "sampled100_").
    """
    from tf_attnrec.training import evaluate_sequential

    return evaluate_sequential(
        model,
        split,
        stage,
        ks=ks,
        protocol=protocol,
        beyond_accuracy=protocol == "full",
        num_negatives=num_negatives,
        seed=seed,
    )


def format_metrics(metrics: dict, title: str) -> str:
    """A metrics dict as a text table: one row per metric, one column per cut-off K."""
    prefix = next((k.split("_", 1)[0] + "_" for k in metrics if k.startswith("sampled")), "")
    rows: dict[str, dict[int, float]] = {}
    scalars = {}
    for key, value in metrics.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        name = key[len(prefix):] if prefix and key.startswith(prefix) else key
        if "@" in name:
            metric, k = name.rsplit("@", 1)
            rows.setdefault(metric, {})[int(k)] = float(value)
        else:
            scalars[name] = value
    ks = sorted({k for row in rows.values() for k in row})
    width = max([len(name) for name in rows] + [len(name) + 12 for name in scalars] + [6])
    lines = [title, f"  {'metric':<{width}}" + "".join(f"{'@' + str(k):>11}" for k in ks)]
    for name, row in rows.items():
        cells = "".join(f"{row[k]:>11.4f}" if k in row else f"{'-':>11}" for k in ks)
        lines.append(f"  {name:<{width}}{cells}")
    for name, value in scalars.items():
        text = f"{value:,}" if isinstance(value, int) else f"{value:.4f}"
        label = f"{name} (all ranks)" if name in rows else name  # e.g. MRR without a cut-off
        lines.append(f"  {label:<{width}}{text:>11}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- run folders
def write_items(items: Any, vocabulary: Any, path: pathlib.Path) -> int:
    """Writes title / genres / year of the vocabulary's items to `items.json`; returns count."""
    known = items[items["item_id"].isin(vocabulary.raw_ids(np.arange(2, vocabulary.size)))]
    records = {}
    for row in known.itertuples(index=False):
        record = {"title": str(row.title)} if hasattr(row, "title") else {}
        if hasattr(row, "genres") and isinstance(row.genres, (tuple, list)):
            record["genres"] = [str(g) for g in row.genres]
        year = getattr(row, "year", None)
        if year is not None and not _is_missing(year):
            record["year"] = int(year)
        records[str(row.item_id)] = record
    path.write_text(json.dumps({"format": ITEMS_FORMAT, "items": records}))
    return len(records)


def _is_missing(value: Any) -> bool:
    try:
        return bool(value != value) or value is None  # NaN / pandas NA
    except TypeError:  # pandas.NA in a boolean context
        return True


def read_items(run_dir: pathlib.Path) -> dict:
    """`{str(raw item id): {"title": ..., ...}}` from a run's `items.json` ({} if absent)."""
    path = run_dir / ITEMS_FILE
    if not path.is_file():
        return {}
    payload = json.loads(path.read_text())
    if payload.get("format") != ITEMS_FORMAT:
        raise ValueError(f"{path}: not a tf-attnrec items file (format {payload.get('format')!r}).")
    return payload["items"]


def read_run_config(run_dir: pathlib.Path) -> dict:
    """The `config.yaml` that `train` wrote into `run_dir` (clear error if it is not a run)."""
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} not found; pass a folder written by `{PROG} train`.")
    path = run_dir / RUN_CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a run directory written by `{PROG} train`.")
    return read_config(path)


def _load_split(config: dict, vocabulary: Any, data_dir: Optional[str], download: bool) -> Any:
    """The leave-one-out split the run was trained on, rebuilt from its recorded dataset."""
    from tf_attnrec.data import Vocabulary, leave_one_out_split, load_dataset

    data = load_dataset(config["dataset"], data_dir=data_dir, download=download)
    if vocabulary is not None and Vocabulary.from_ids(data.interactions["item_id"]) != vocabulary:
        raise ValueError(
            f"the {config['dataset']} data read from {data.source} does not have the items the run "
            "was trained on; pass --data-dir with the data used for training."
        )
    return leave_one_out_split(data.interactions, vocabulary=vocabulary)


# -------------------------------------------------------------------------------- commands
def _progress_bar() -> Any:
    """Keras' progress bar, shown although `train_sequential` calls `fit(verbose=0)`."""
    import tensorflow as tf

    class ProgressBar(tf.keras.callbacks.ProgbarLogger):
        def set_params(self, params: dict) -> None:
            super().set_params({**params, "verbose": 1})

    return ProgressBar(count_mode="steps")


def cmd_train(args: argparse.Namespace) -> int:
    from tf_attnrec.data import leave_one_out_split, load_dataset
    from tf_attnrec.models.registry import create_model
    from tf_attnrec.training import train_sequential

    config = resolve_train_config(args)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = pathlib.Path(args.output or f"runs/{config['model']}-{config['dataset']}-{stamp}")
    if (run_dir / "model_config.json").exists() and not args.overwrite:
        raise FileExistsError(f"{run_dir} already holds a trained model; pass another --output or --overwrite.")
    if _model_task(config["model"]) == "ranking":
        return _train_ranking(args, config, run_dir, stamp)
    data = load_dataset(config["dataset"], data_dir=config["data_dir"], download=not args.no_download)
    split = leave_one_out_split(data.interactions)
    model = create_model(config["model"], vocab_size=split.vocabulary.size, **config["model_config"])
    run_dir.mkdir(parents=True, exist_ok=True)
    provenance = _provenance(data, stamp, args.init_from)
    (run_dir / RUN_CONFIG_FILE).write_text(yaml.safe_dump({**config, **provenance}, sort_keys=False))
    if data.items is not None and "title" in data.items:
        write_items(data.items, split.vocabulary, run_dir / ITEMS_FILE)
    print(
        f"Training {config['model']} on {config['dataset']} ({data.num_users:,} users, "
        f"{split.vocabulary.num_items:,} items, {data.num_interactions:,} interactions) -> {run_dir}",
        flush=True,
    )
    result = train_sequential(
        model,
        split,
        **config["training"],
        evaluate_test=False,
        run_dir=run_dir,
        extra_config={"model": config["model"], "dataset": config["dataset"]},
        init_from=args.init_from,
        time_limit_minutes=args.time_limit,
        # The progress bar's end-of-epoch line carries the val_* metrics, so train_sequential's
        # own per-validation line would only repeat them (and break the bar).
        callbacks=[] if args.quiet else [_progress_bar()],
        verbose=0,
    )
    test = evaluate_split(result.model, split, "test", "full")
    metrics_path = run_dir / METRICS_FILE
    summary = json.loads(metrics_path.read_text())
    summary["test"] = test
    metrics_path.write_text(json.dumps(summary, indent=2, default=float))
    best = f", best pass {result.best_epoch}" if result.best_epoch else ""
    if result.stopped_by == "time_limit":
        print(f"\nStopped by --time-limit {args.time_limit:g} min (best weights kept).")
    print(format_metrics(result.validation, f"\nvalidation (full catalogue, best weights{best})"))
    print(format_metrics(test, "\ntest (full catalogue, seen items excluded)"))
    print(f"\nSaved the model and metrics to {run_dir} ({metrics_path.name}).")
    return 0


def format_ctr_metrics(results: dict) -> str:
    """Validation / test AUC, GAUC and log loss of a ranking run as a text table."""
    lines = [f"  {'stage':<11}{'AUC':>9}{'GAUC':>9}{'log loss':>10}{'examples':>10}"]
    for stage in ("validation", "test"):
        m = results[stage]
        lines.append(f"  {stage:<11}{m['auc']:>9.4f}{m['gauc']:>9.4f}{m['log_loss']:>10.4f}{m['num_examples']:>10,}")
    return "\n".join(lines)


def _train_ranking(args: argparse.Namespace, config: dict, run_dir: pathlib.Path, stamp: str) -> int:
    from tf_attnrec.data import load_dataset
    from tf_attnrec.models.registry import create_model, get_model_spec
    from tf_attnrec.ranking import build_ranking_data, train_ranker
    from tf_attnrec.ranking.training import DATA_KEYS

    for flag in ("init_from", "time_limit"):
        if getattr(args, flag, None) is not None:
            raise ValueError(f"--{flag.replace('_', '-')} applies to retrieval models, not to the ranking model {config['model']!r}.")
    training = dict(config["training"])
    data_config = {key: training.pop(key) for key in DATA_KEYS if key in training}
    data_config["seed"] = data_config.pop("data_seed", 0)
    max_length = config["model_config"].get("max_length", get_model_spec(config["model"]).default_config()["max_length"])
    data = load_dataset(config["dataset"], data_dir=config["data_dir"], download=not args.no_download)
    ranking_data = build_ranking_data(data, max_length=max_length, **data_config)
    vocabularies = ranking_data.vocabularies
    model = create_model(
        config["model"], vocab_size=vocabularies.item.size, feature_sizes=vocabularies.sizes(),
        **{**config["model_config"], "max_length": max_length},
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    provenance = _provenance(data, stamp, None)
    (run_dir / RUN_CONFIG_FILE).write_text(yaml.safe_dump({**config, **provenance}, sort_keys=False))
    if "title" in data.items:
        write_items(data.items, ranking_data.split.vocabulary, run_dir / ITEMS_FILE)
    print(
        f"Training {config['model']} on {config['dataset']} click examples: "
        f"{ranking_data.num_examples('train'):,} train, {ranking_data.num_examples('validation'):,} "
        f"validation, {ranking_data.num_examples('test'):,} test -> {run_dir}",
        flush=True,
    )
    results = train_ranker(
        model, ranking_data, **training, run_dir=run_dir, verbose=0 if args.quiet else 2,
        extra_config={"model": config["model"], "dataset": config["dataset"], "data": data_config},
    )
    print(f"\nbest epoch {results['best_epoch']} of {results['epochs_run']}, "
          f"{results['train_seconds']:.0f} s of training")
    print(format_ctr_metrics(results))
    print(f"\nSaved the model and metrics to {run_dir} ({METRICS_FILE}).")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tf_attnrec.models.saving import load_model

    run_dir = pathlib.Path(args.run_dir)
    config = read_run_config(run_dir)
    model, vocabulary, _ = load_model(run_dir)
    split = _load_split(config, vocabulary, args.data_dir or config.get("data_dir"), not args.no_download)
    ks = tuple(args.ks)
    metrics = evaluate_split(model, split, args.stage, args.protocol, ks=ks, num_negatives=args.num_negatives)
    protocol = "full catalogue, seen items excluded" if args.protocol == "full" else f"{args.num_negatives} sampled negatives"
    print(format_metrics(metrics, f"{args.stage} ({protocol}) of {run_dir}"))
    if args.output:
        pathlib.Path(args.output).write_text(json.dumps(metrics, indent=2, default=float))
        print(f"Wrote {args.output}.")
    return 0


def _history_ids(text: str, vocabulary: Any) -> tuple[list, np.ndarray, list]:
    """Parses `--history` into (raw ids, known int32 ids, unknown raw ids)."""
    tokens = [token.strip() for token in text.split(",") if token.strip()]
    if not tokens:
        raise ValueError("--history is empty; pass raw item ids separated by commas, e.g. --history 1,50,181.")
    integer_ids = vocabulary.num_items > 0 and np.issubdtype(vocabulary.raw_ids([2]).dtype, np.integer)
    raw = [_as_int(token) if integer_ids else token for token in tokens]
    ids = np.array([int(vocabulary.lookup(value)) for value in raw], np.int32)
    unknown = [value for value, item in zip(raw, ids) if item < 2]
    return raw, ids[ids >= 2], unknown


def _as_int(token: str) -> Any:
    """`"50"` -> 50; a token that is not an integer stays a string (an unknown item)."""
    try:
        return int(token)
    except ValueError:
        return token


def cmd_recommend(args: argparse.Namespace) -> int:
    import tensorflow as tf

    from tf_attnrec.models.saving import load_model
    from tf_attnrec.training import make_score_fn

    run_dir = pathlib.Path(args.run_dir)
    if args.k < 1:
        raise ValueError(f"-k must be >= 1; got {args.k}.")
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} not found; pass a folder written by `{PROG} train`.")
    model, vocabulary, _ = load_model(run_dir)
    if vocabulary is None:
        raise FileNotFoundError(f"{run_dir / 'vocabulary.json'} not found; cannot map raw item ids.")
    raw, history, unknown = _history_ids(args.history, vocabulary)
    if not len(history):
        raise ValueError(
            f"none of the --history ids {raw} is an item the model knows; item ids look like "
            f"{', '.join(map(str, vocabulary.raw_ids(np.arange(2, min(5, vocabulary.size)))))}."
        )
    if unknown:
        print(f"{PROG}: warning: ignoring {len(unknown)} item id(s) not in the model's vocabulary: "
              f"{', '.join(map(str, unknown))}", file=sys.stderr)
    scores = make_score_fn(model, model.max_length)(tf.constant(history[None, :])).numpy()[0]
    scores[:2] = -np.inf  # padding, OOV
    if not args.include_seen:
        scores[history] = -np.inf
    k = min(args.k, int(np.isfinite(scores).sum()))
    top = np.argsort(-scores, kind="stable")[:k]
    titles = read_items(run_dir)
    recommended = [
        {"rank": rank, "item_id": _jsonable(raw_id), "score": float(scores[item]),
         "title": titles.get(str(raw_id), {}).get("title")}
        for rank, (item, raw_id) in enumerate(zip(top, vocabulary.raw_ids(top)), start=1)
    ]
    if args.format == "json":
        print(json.dumps({"history": [_jsonable(v) for v in raw if v not in unknown], "recommendations": recommended}))
        return 0
    print(f"History ({len(history)} items, most recent last):")
    for raw_id in vocabulary.raw_ids(history):
        print(f"  {raw_id}  {titles.get(str(raw_id), {}).get('title', '')}".rstrip())
    print(f"Top {k} recommendations{'' if args.include_seen else ' (history items excluded)'}:")
    print(f"  {'rank':>4}  {'item_id':>8}  {'score':>9}  title")
    for row in recommended:
        print(f"  {row['rank']:>4}  {row['item_id']!s:>8}  {row['score']:>9.3f}  {row['title'] or ''}".rstrip())
    return 0


def _jsonable(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def cmd_list_models(args: argparse.Namespace) -> int:
    import tf_attnrec.ranking  # noqa: F401  (registers the ranking zoo)
    from tf_attnrec.models.registry import get_model_spec, list_models

    names = list_models()
    width = max(len(name) for name in names)
    for name in names:
        zoo = " [zoo config]" if zoo_config_path(name) else ""
        print(f"{name:<{width}}  {get_model_spec(name).description}{zoo}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from tf_attnrec.export import export_run
    from tf_attnrec.ranking.saving import is_ranking_run

    if is_ranking_run(args.run_dir):  # raw features in, click probability out
        from tf_attnrec.ranking.export import export_ranker

        retrieval_only = [flag for flag, given in (
            ("-k", args.k != 10), ("--index", args.index != "brute_force"), ("--include-seen", args.include_seen),
        ) if given]
        if retrieval_only:
            raise ValueError(
                f"{', '.join(retrieval_only)} only apply to retrieval exports; {args.run_dir} is a ranking run "
                "(it scores one candidate item per request). Drop the flag(s)."
            )
        print(export_ranker(args.run_dir, args.output, overwrite=args.overwrite))
        return 0
    summary = export_run(
        args.run_dir,
        args.output,
        k=args.k,
        index=args.index,
        exclude_history=not args.include_seen,
        overwrite=args.overwrite,
    )
    print(summary)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Attention weights of one (user, item) example of a `din` / `bst` run: table + PNG."""
    from tf_attnrec.ranking import explain
    from tf_attnrec.ranking.saving import is_ranking_run, load_ranker

    run_dir = pathlib.Path(args.run_dir)
    config = read_run_config(run_dir)
    supported = ", ".join(explain.explainable_models())
    if not is_ranking_run(run_dir):
        raise ValueError(
            f"{run_dir} is a {config.get('model', 'retrieval')} run, not a ranking run; `explain` "
            f"shows the history attention of the ranking models {supported}."
        )
    try:
        explain.require_matplotlib()
    except ImportError as error:
        print(f"{PROG} explain: error: {error}", file=sys.stderr)
        return 1
    model, vocabularies, item_tables, _ = load_ranker(run_dir)
    explain.check_explainable(model)
    from tf_attnrec.data import load_dataset

    data = load_dataset(config["dataset"], data_dir=args.data_dir or config.get("data_dir"),
                        download=not args.no_download)
    explanation = explain.explain_example(
        model, vocabularies, item_tables, data, _as_int(args.user), _as_int(args.item))
    titles = read_items(run_dir)
    output = pathlib.Path(args.output or run_dir / f"explain_user{explanation['user']}_item{explanation['item']}.png")
    print(explain.format_explanation(explanation, titles, top=args.top))
    explain.plot_attention(explanation, output, titles=titles, highlight=args.top)
    print(f"Wrote the attention heatmap to {output}.")
    return 0


# ---------------------------------------------------------------------------------- parser
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `tf-attnrec` (one sub-command per library task)."""
    parser = argparse.ArgumentParser(prog=PROG, description="Attention-based recommenders on TensorFlow Recommenders.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a zoo model (leave-one-out split, early stopping)",
                                description="Train a zoo model with early stopping on full-catalogue "
                                "validation NDCG@10, then report test metrics and save the run.")
    train.add_argument("--model", help=f"zoo model name (default: the config's, else {DEFAULT_MODEL})")
    train.add_argument("--dataset", help="dataset name: ml-1m or ml-100k (default: the config's)")
    train.add_argument("--data-dir", help="folder holding <dataset>/ (default: $TF_ATTNREC_DATA_DIR, else download)")
    train.add_argument("--config", help="zoo/run config YAML (default: models/<model>/config.yaml)")
    train.add_argument("--output", help="run directory (default: runs/<model>-<dataset>-<time>)")
    train.add_argument("--overwrite", action="store_true", help="replace a run already in --output")
    train.add_argument("--epochs", type=_positive_int, help="maximum passes over the training data")
    train.add_argument("--batch-size", type=_positive_int)
    train.add_argument("--learning-rate", type=float)
    train.add_argument("--patience", type=_positive_int, help="passes without improvement before stopping")
    train.add_argument("--eval-every", type=_positive_int, help="validate every N passes")
    train.add_argument("--validation-users", type=_positive_int, help="validate on the first N users only")
    train.add_argument("--seed", type=int)
    train.add_argument("--max-length", type=_positive_int, help="history length the model reads")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a model_config key, e.g. --set hidden_dim=32 (repeatable)")
    train.add_argument("--jit", action="store_true", help="compile the train step with XLA")
    train.add_argument("--init-from", metavar="RUN_DIR",
                       help="warm-start from a saved run (same model config and dataset) to continue it")
    train.add_argument("--time-limit", type=float, metavar="MINUTES",
                       help="stop after the first validation past this many minutes (best weights kept)")
    train.add_argument("--no-download", action="store_true", help="fail instead of downloading the dataset")
    train.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser("evaluate", help="evaluate a trained run on its split")
    evaluate.add_argument("run_dir", metavar="RUN_DIR")
    evaluate.add_argument("--protocol", choices=("full", "sampled"), default="full",
                          help="full catalogue (default) or 100 sampled negatives (SASRec paper)")
    evaluate.add_argument("--stage", choices=("test", "validation"), default="test")
    evaluate.add_argument("--ks", type=_positive_int, nargs="+", default=[10, 20], metavar="K")
    evaluate.add_argument("--num-negatives", type=_positive_int, default=100)
    evaluate.add_argument("--data-dir", help="read the dataset from here instead of the recorded folder")
    evaluate.add_argument("--output", help="also write the metrics as JSON to this file")
    evaluate.add_argument("--no-download", action="store_true")
    evaluate.set_defaults(handler=cmd_evaluate)

    recommend = commands.add_parser("recommend", help="top-K items for a history of raw item ids")
    recommend.add_argument("run_dir", metavar="RUN_DIR")
    recommend.add_argument("--history", required=True, help="raw item ids, most recent last, e.g. 1,50,181")
    recommend.add_argument("-k", type=int, default=10, help="number of items (default 10)")
    recommend.add_argument("--include-seen", action="store_true", help="allow items of the history")
    recommend.add_argument("--format", choices=("text", "json"), default="text")
    recommend.set_defaults(handler=cmd_recommend)

    export = commands.add_parser(
        "export", help="write a TF Serving SavedModel (retrieval: raw ids in, top-k out; ranking: raw features in, probability out)")
    export.add_argument("run_dir", metavar="RUN_DIR")
    export.add_argument("--output", required=True, help="serving/<model_name>/<version> (version: an integer)")
    export.add_argument("-k", type=_positive_int, default=10, help="items returned per history (default 10)")
    export.add_argument("--index", choices=("brute_force", "scann"), default="brute_force",
                        help="exact top-k (plain TensorFlow ops) or ScaNN (needs the `ann` extra)")
    export.add_argument("--include-seen", action="store_true", help="do not exclude history items")
    export.add_argument("--overwrite", action="store_true", help="replace an existing export")
    export.set_defaults(handler=cmd_export)

    explain = commands.add_parser("explain", help="which history items drove a ranking score (din, bst)",
                                  description="Score one candidate item for one user of a din / bst "
                                  "ranking run and show the attention weight of each history item "
                                  "(the user's history at test time): a text table and a PNG heatmap.")
    explain.add_argument("run_dir", metavar="RUN_DIR")
    explain.add_argument("--user", required=True, help="raw user id, as in the dataset files")
    explain.add_argument("--item", required=True, help="raw item id of the candidate")
    explain.add_argument("--output", help="PNG path (default: RUN_DIR/explain_user<U>_item<I>.png)")
    explain.add_argument("--top", type=_positive_int, default=10,
                         help="history items listed (and bold in the heatmap), by weight (default 10)")
    explain.add_argument("--data-dir", help="read the dataset from here instead of the recorded folder")
    explain.add_argument("--no-download", action="store_true")
    explain.set_defaults(handler=cmd_explain)

    list_models = commands.add_parser("list-models", help="list the zoo models")
    list_models.set_defaults(handler=cmd_list_models)
    return parser


def _user_errors() -> tuple:
    """Exceptions that mean bad input (reported in one line), not a bug (traceback)."""
    errors: tuple = (OSError, ValueError, LookupError, yaml.YAMLError)
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "errors"):
        errors += (tf.errors.OpError,)
    return errors


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs `tf-attnrec` with `argv` (default: `sys.argv[1:]`) and returns the exit status.

    Args:
        argv: Command-line arguments without the program name.

    Returns:
        0 on success, 1 on a user error (one line on stderr), 130 when interrupted;
        argparse exits with 2 on bad flags.

    Example:
        ```python
        main(["train", "--dataset", "ml-100k", "--epochs", "1", "--output", "runs/demo"])
        main(["recommend", "runs/demo", "--history", "1,50,181", "-k", "5"])
        ```
    """
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        message = " ".join(str(message).split())  # one line
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
