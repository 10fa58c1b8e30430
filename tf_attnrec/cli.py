"""`tf-attnrec`: parse, dispatch through the model's task, print. No library logic lives here.

    tf-attnrec train [--model sasrec] [--config models/sasrec/config.yaml]
        (--dataset ml-1m [--data-dir D] | --data FILE [--user-col U --item-col I --time-col T])
        [--output runs/NAME] [--epochs N] [--set hidden_dim=32 ...] [--init-from RUN]
        [--strategy none|mirrored|multiworker] [--deterministic]
    tf-attnrec evaluate RUN_DIR [--protocol full|sampled] [--stage test|validation]
    tf-attnrec recommend RUN_DIR --history ID,ID,... [-k 10]
        [--ranking RANKING_RUN --gender G --age A --occupation O [--candidates 200]]
    tf-attnrec export RUN_DIR --output serving/NAME/1 [-k 10] [--quantize float16|int8]
    tf-attnrec cascade --retrieval RUN_A --ranking RUN_B --output serving/NAME/1 [--candidates 200] [-k 10]
    tf-attnrec explain RUN_DIR --user U [--item I] [--output PNG]
    tf-attnrec list-models [--task retrieval|ranking|collaborative|multitask]

Every command works for every registered model through its task (`tf_attnrec.tasks`); a
command that a kind of model cannot do prints one line saying what to use instead. A run
directory (`tf_attnrec.runs`) records the data source, so `evaluate`, `recommend` and
`explain` reload the same data. User errors (bad flags, missing files, malformed data or
configs) print one line on stderr and exit non-zero; library modules are imported only by the
commands that need them.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import pathlib
import shutil
import sys
import tempfile
from typing import Any, Callable, Optional, Sequence

import numpy as np
import yaml

from tf_attnrec.distribute import STRATEGIES
from tf_attnrec.training import PRECISIONS
from tf_attnrec.version import __version__
from tf_attnrec.yaml_loader import load_yaml

PROG = "tf-attnrec"
DEFAULT_MODEL = "sasrec"
TRAINING_FLAGS = ("epochs", "batch_size", "learning_rate", "patience", "eval_every", "validation_users", "seed")


# ------------------------------------------------------------------------------------ configs
def zoo_config_path(model: str) -> Optional[pathlib.Path]:
    """`models/<model>/config.yaml` of the repository this package lives in, if present.

    Returns:
        The path, or None when the package is installed without the repository's `models/`.
    """
    path = pathlib.Path(__file__).resolve().parents[1] / "models" / model / "config.yaml"
    return path if path.is_file() else None


def _spec(name: str) -> Any:
    import tf_attnrec  # noqa: F401  (registers every family)
    from tf_attnrec.models.registry import get_model_spec, list_models

    if name not in list_models():
        raise ValueError(f"unknown model {name!r}; choose one of {list_models()} (see `{PROG} list-models`).")
    return get_model_spec(name)


def _task(spec: Any) -> Any:
    from tf_attnrec.tasks import get_task

    return get_task(spec.task)


def _parse_assignments(assignments: Sequence[str]) -> dict:
    """`["hidden_dim=32", "loss=bce"]` -> `{"hidden_dim": 32, "loss": "bce"}` (YAML values)."""
    result = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE (e.g. --set hidden_dim=32); got {assignment!r}.")
        try:
            result[key.strip()] = load_yaml(value)
        except yaml.YAMLError:
            raise ValueError(f"--set {assignment!r}: {value!r} is not a valid value.") from None
    return result


def _data_source(args: argparse.Namespace, config: dict) -> Any:
    """Where `train` reads its data: --data / --dataset, else the config's `data` / `dataset`."""
    from tf_attnrec.data.sources import DataSource

    if getattr(args, "data", None):
        path = pathlib.Path(args.data)
        if path.suffix.lower() in (".yaml", ".yml"):
            return DataSource.from_yaml(path)
        return DataSource.from_file(
            path, user_col=args.user_col, item_col=args.item_col, time_col=args.time_col, sep=args.sep,
            items=args.items, users=args.users, k_core=args.k_core,
        )
    if getattr(args, "dataset", None):
        data_dir = args.data_dir or (config.get("data_dir") if config.get("dataset") == args.dataset else None)
        return DataSource.named(args.dataset, data_dir=data_dir, form=args.dataset_form)
    if config.get("data"):
        source = DataSource.from_config(config["data"])
        if getattr(args, "data_dir", None) and source.kind == "named":
            source = dataclasses.replace(source, data_dir=str(pathlib.Path(args.data_dir).expanduser().resolve()))
        return source
    if config.get("dataset"):
        return DataSource.named(config["dataset"], data_dir=args.data_dir or config.get("data_dir"),
                                form=getattr(args, "dataset_form", "auto"))
    raise ValueError("no data given: pass --dataset (e.g. --dataset ml-1m) or --data FILE (CSV, Parquet or SASRec .txt).")


def resolve_train_config(args: argparse.Namespace) -> dict:
    """The run config of `train`: defaults < spec < --config (or the zoo config) < flags.

    Returns:
        `{"model", "dataset", "data_dir", "data", "model_config", "training"}`, and `precision`
        when it is not float32 (`--precision`, else the config's); `data` is the `DataSource`
        (its `to_config()` is what the run directory records).
    """
    from tf_attnrec import runs

    if args.config is not None:
        config = runs.read_config(pathlib.Path(args.config))
        model = config.get("model") or args.model or DEFAULT_MODEL
        if args.model is not None and args.model != model:
            raise ValueError(
                f"--model {args.model} conflicts with {args.config}, which configures {model!r}; drop one of them."
            )
    else:
        model = args.model or DEFAULT_MODEL
        path = zoo_config_path(model)
        config = runs.read_config(path) if path is not None else {}
    spec = _spec(model)
    task = _task(spec)
    model_config = dict(config.get("model_config") or {})
    if args.max_length is not None:
        model_config["max_length"] = args.max_length
    # --set names a model_config key, or else a training key (e.g. `split=ratio`, `patience=5`).
    assignments = _parse_assignments(args.set or ())
    model_keys = spec.default_config()
    training_assignments = {key: value for key, value in assignments.items()
                            if key not in model_keys and key in task.training_keys()}
    model_config.update({key: value for key, value in assignments.items() if key not in training_assignments})
    training = {**task.training_defaults, **spec.training, **(config.get("training") or {}), **training_assignments}
    training.update({flag: getattr(args, flag) for flag in TRAINING_FLAGS if getattr(args, flag) is not None})
    if args.jit:
        training["jit_compile"] = True
    task.check_training_keys(training)
    source = _data_source(args, config)
    precision = getattr(args, "precision", None) or config.get("precision") or "float32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} (from {args.config or 'the zoo config'}) must be one of {PRECISIONS}.")
    return {
        "model": model,
        "dataset": source.dataset_name,
        "data_dir": source.data_dir,
        "data": source,
        "model_config": model_config,
        "training": training,
        # Recorded (and compared when a run resumes) only when it is not the default.
        **({"precision": precision} if precision != "float32" else {}),
    }


# -------------------------------------------------------------------------------- commands
def _progress_bar() -> Any:
    """Keras' progress bar, shown although the training loop calls `fit(verbose=0)`."""
    import tensorflow as tf

    class ProgressBar(tf.keras.callbacks.ProgbarLogger):
        def set_params(self, params: dict) -> None:
            super().set_params({**params, "verbose": 1})

    return ProgressBar(count_mode="steps")


def _check_resumable(run_dir: pathlib.Path, config: dict, args: argparse.Namespace) -> bool:
    """Whether `train` resumes the interrupted run in `run_dir` (`tf_attnrec.backup`).

    A backup resumes only under the config it was started with (the recorded `config.yaml`,
    provenance aside); `--overwrite` discards it.
    """
    from tf_attnrec import runs

    backup = run_dir / runs.BACKUP_DIR
    if not backup.is_dir():
        return False
    if args.overwrite:
        shutil.rmtree(backup)
        return False
    recorded = runs.read_config(run_dir / runs.RUN_CONFIG_FILE) if (run_dir / runs.RUN_CONFIG_FILE).is_file() else {}
    recorded = {key: value for key, value in recorded.items() if key not in runs.PROVENANCE_KEYS or key == "init_from"}
    wanted = {**config, **({"init_from": str(args.init_from)} if args.init_from else {})}
    wanted = load_yaml(yaml.safe_dump(wanted))  # as config.yaml would record it (tuples as lists, ...)
    differing = sorted(key for key in {*recorded, *wanted} if recorded.get(key) != wanted.get(key))
    if differing:
        raise ValueError(
            f"{run_dir} holds an interrupted run (its {runs.BACKUP_DIR}/) started with another config: "
            f"{', '.join(differing)} differ. Rerun with the flags it was started with to resume it, or pass "
            "--overwrite to train afresh."
        )
    return True


def _train_run_dir(args: argparse.Namespace, config: dict, source: Any, stamp: str,
                   chief: bool) -> tuple[pathlib.Path, bool]:
    """The folder `train` writes, and whether it resumes an interrupted run there.

    Workers other than the chief train alike but write a scratch copy, deleted at the end.
    """
    from tf_attnrec import runs

    if not chief:
        return pathlib.Path(tempfile.mkdtemp(prefix="tf-attnrec-worker-")), False
    run_dir = pathlib.Path(args.output or f"runs/{config['model']}-{source.dataset_name}-{stamp}")
    if (run_dir / runs.CONFIG_FILE).exists() and not args.overwrite:
        raise FileExistsError(f"{run_dir} already holds a trained model; pass another --output or --overwrite.")
    return run_dir, _check_resumable(run_dir, {**config, "data": source.to_config()}, args)


def cmd_train(args: argparse.Namespace) -> int:
    import tensorflow as tf

    from tf_attnrec import runs
    from tf_attnrec.distribute import is_chief, make_strategy, weights_fingerprint

    strategy = make_strategy(args.strategy)  # first: a multi-worker strategy must precede every op
    chief = is_chief(strategy)
    config = resolve_train_config(args)
    spec = _spec(config["model"])
    task = _task(spec)
    source = config.pop("data")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir, resuming = _train_run_dir(args, config, source, stamp, chief)
    if args.deterministic:
        tf.config.experimental.enable_op_determinism()
    if args.init_from and task.name in ("ranking", "multitask"):
        raise ValueError(f"--init-from applies to retrieval and collaborative models, not to the {task.name} model "
                         f"{config['model']!r}.")
    dataset = source.load(download=not args.no_download)
    training = dict(config["training"])
    data_options = {key: training.pop(key) for key in task.data_keys if key in training}
    model_config = {"max_length": spec.default_config().get("max_length"), **config["model_config"]}
    data = task.build_data(dataset, model_config, data_options)
    run_dir.mkdir(parents=True, exist_ok=True)
    provenance = {"source": dataset.source, "form": dataset.form, "created": stamp, "version": __version__}
    if args.init_from:
        provenance["init_from"] = str(args.init_from)
    if not resuming:
        runs.write_run_config(run_dir, {**config, "data": source.to_config(), **provenance})
    if dataset.items is not None and "title" in dataset.items:
        runs.write_items(dataset.items, task.item_vocabulary(data), run_dir)
    print(f"{'Resuming' if resuming else 'Training'} {config['model']} ({task.name}) on {source.describe()}: "
          f"{dataset!r} -> {run_dir}", flush=True)
    precision = config.get("precision", "float32")
    tf.keras.mixed_precision.set_global_policy(precision)  # before the layers exist
    with strategy.scope():  # the variables, the optimizer and fit, mirrored over the replicas
        model = task.build_model(spec, data, config["model_config"])
        result = task.fit(
            model, data, **training, run_dir=run_dir,
            extra_config={"model": config["model"], "dataset": source.dataset_name, "data": data_options,
                          "precision": precision},
            init_from=args.init_from, time_limit_minutes=args.time_limit,
            # The progress bar's end-of-epoch line carries the val_* metrics, so the loop's own
            # per-validation line would only repeat them (and break the bar).
            callbacks=[] if args.quiet or not chief else [_progress_bar()],
            verbose=0,
        )
    if args.strategy != "none":
        print(f"{strategy.num_replicas_in_sync} replicas; weights fingerprint (sum of squares): "
              f"{weights_fingerprint(result.model):.10e}", flush=True)
    if not chief:
        shutil.rmtree(run_dir, ignore_errors=True)
        return 0
    test = result.test
    best = f", best pass {result.best_epoch}" if result.best_epoch else ""
    if result.stopped_by == "time_limit":
        print(f"\nStopped by --time-limit {args.time_limit:g} min (best weights kept).")
    if result.validation is not None:  # a multi-task split may have no validation rows
        print(task.format_metrics(result.validation, f"\nvalidation (best weights{best})"))
    print(task.format_metrics(test, f"\ntest ({task.describe_protocol('full')})"))
    print(f"\nSaved the model and metrics to {run_dir} ({runs.METRICS_FILE}).")
    return 0


def _load_run(run_dir: pathlib.Path) -> tuple[Any, Any]:
    """`(task, Run)` of a run directory."""
    from tf_attnrec import runs

    config = runs.read_run_config(run_dir)
    spec = _spec(config.get("model") or "")
    task = _task(spec)
    return task, task.load_run(run_dir, config)


def _run_dataset(run: Any, args: argparse.Namespace) -> Any:
    """The data a run was trained on, reloaded from its recorded source (flags may move it)."""
    from tf_attnrec.data.sources import DataSource

    config = run.config
    if getattr(args, "data", None):
        source = _data_source(args, {})
    elif config.get("data"):
        source = DataSource.from_config(config["data"])
    elif config.get("dataset"):  # a run written before data sources were recorded
        source = DataSource.named(config["dataset"], data_dir=config.get("data_dir"))
    else:
        raise ValueError(
            f"{run.run_dir} records no data source (it was saved by the library, not by `{PROG} train`); "
            "pass --data FILE with the data it was trained on."
        )
    return source.load(download=not args.no_download, data_dir=args.data_dir)


def _task_data(task: Any, run: Any, args: argparse.Namespace) -> Any:
    dataset = _run_dataset(run, args)
    training = run.config.get("training") or {}
    options = {key: training[key] for key in task.data_keys if key in training}
    return task.build_data(dataset, {"max_length": run.model.max_length}, options, run)


def cmd_evaluate(args: argparse.Namespace) -> int:
    run_dir = pathlib.Path(args.run_dir)
    task, run = _load_run(run_dir)
    data = _task_data(task, run, args)
    metrics = task.evaluate(run.model, data, args.stage, protocol=args.protocol, ks=tuple(args.ks),
                            num_negatives=args.num_negatives)
    print(task.format_metrics(metrics, f"{args.stage} ({task.describe_protocol(args.protocol, args.num_negatives)}) of {run_dir}"))
    if args.output:
        pathlib.Path(args.output).write_text(json.dumps(metrics, indent=2, default=float))
        print(f"Wrote {args.output}.")
    return 0


def _as_int(token: str) -> Any:
    """`"50"` -> 50; a token that is not an integer stays a string (an unknown item)."""
    try:
        return int(token)
    except ValueError:
        return token


def _jsonable(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def cmd_recommend(args: argparse.Namespace) -> int:
    from tf_attnrec import runs

    if args.k < 1:
        raise ValueError(f"-k must be >= 1; got {args.k}.")
    tokens = [token.strip() for token in args.history.split(",") if token.strip()]
    if not tokens:
        raise ValueError("--history is empty; pass raw item ids separated by commas, e.g. --history 1,50,181.")
    if args.ranking:
        return _recommend_with_ranker(args, tokens)
    task, run = _load_run(pathlib.Path(args.run_dir))
    vocabulary = run.artifacts.get("vocabulary")
    integer_ids = vocabulary is None or np.issubdtype(vocabulary.raw_ids([2]).dtype, np.integer)
    raw = [_as_int(token) if integer_ids else token for token in tokens]
    result = task.recommend(run, raw, k=args.k, include_seen=args.include_seen)
    if result["unknown"]:
        print(f"{PROG}: warning: ignoring {len(result['unknown'])} item id(s) not in the model's vocabulary: "
              f"{', '.join(map(str, result['unknown']))}", file=sys.stderr)
    titles = runs.read_items(run.run_dir)
    recommended = [
        {"rank": rank, "item_id": _jsonable(raw_id), "score": float(score),
         "title": titles.get(str(raw_id), {}).get("title")}
        for rank, (raw_id, score) in enumerate(zip(result["raw_ids"], result["scores"]), start=1)
    ]
    history = [_jsonable(v) for v in vocabulary.raw_ids(result["history"])]
    if args.format == "json":
        print(json.dumps({"history": history, "recommendations": recommended}))
        return 0
    print(f"History ({len(history)} items, most recent last):")
    for raw_id in history:
        print(f"  {raw_id}  {titles.get(str(raw_id), {}).get('title', '')}".rstrip())
    print(f"Top {len(recommended)} recommendations{'' if args.include_seen else ' (history items excluded)'}:")
    print(f"  {'rank':>4}  {'item_id':>8}  {'score':>9}  title")
    for row in recommended:
        print(f"  {row['rank']:>4}  {row['item_id']!s:>8}  {row['score']:>9.3f}  {row['title'] or ''}".rstrip())
    return 0


def _recommend_with_ranker(args: argparse.Namespace, tokens: list[str]) -> int:
    """`recommend RUN --ranking RUN_B`: the two-stage cascade, as `tf-attnrec cascade` exports it."""
    from tf_attnrec import runs
    from tf_attnrec.cascade import Cascade

    if args.include_seen:
        raise ValueError("--include-seen does not apply with --ranking: the cascade never returns history items.")
    cascade = Cascade.from_runs(args.run_dir, args.ranking)
    users = {"gender": [args.gender or ""], "age": [args.age or ""], "occupation": [args.occupation or ""]}
    result = cascade.recommend([tokens], users, candidates=args.candidates, k=args.k)
    titles = runs.read_items(pathlib.Path(args.run_dir))
    recommended = [
        {"rank": rank, "item_id": item, "score": float(score), "retrieval_rank": int(retrieval_rank),
         "title": titles.get(item, {}).get("title")}
        for rank, (item, score, retrieval_rank) in enumerate(
            zip(result["item_ids"][0], result["scores"][0], result["retrieval_rank"][0]), start=1) if item
    ]
    if args.format == "json":
        print(json.dumps({"history": tokens, "user": {key: values[0] for key, values in users.items()},
                          "recommendations": recommended}))
        return 0
    print(f"Top {len(recommended)} of {args.candidates} retrieved candidates, ordered by the ranker "
          "(history items excluded):")
    print(f"  {'rank':>4}  {'item_id':>8}  {'probability':>11}  {'retrieved':>9}  title")
    for row in recommended:
        print(f"  {row['rank']:>4}  {row['item_id']:>8}  {row['score']:>11.4f}  {row['retrieval_rank']:>9}  "
              f"{row['title'] or ''}".rstrip())
    return 0


def cmd_cascade(args: argparse.Namespace) -> int:
    from tf_attnrec.export.cascade import export_cascade_runs

    print(export_cascade_runs(args.retrieval, args.ranking, pathlib.Path(args.output), candidates=args.candidates,
                              k=args.k, index=args.index, overwrite=args.overwrite))
    return 0


def cmd_list_models(args: argparse.Namespace) -> int:
    import tf_attnrec  # noqa: F401  (registers every family)
    from tf_attnrec.models.registry import get_model_spec, list_models

    names = list_models(task=args.task)
    width = max(len(name) for name in names)
    for name in names:
        spec = get_model_spec(name)
        zoo = " [zoo config]" if zoo_config_path(name) else ""
        print(f"{name:<{width}}  [{spec.task}] {spec.description}{zoo}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from tf_attnrec.tasks import UnsupportedCommand

    task, run = _load_run(pathlib.Path(args.run_dir))
    # Only flags the user set reach the task; those its exports do not take are refused by name.
    given = {"k": ("-k", args.k), "index": ("--index", args.index),
             "exclude_history": ("--include-seen", False if args.include_seen else None),
             "new_items": ("--new-items", args.new_items), "quantize": ("--quantize", args.quantize)}
    options = {name: value for name, (_, value) in given.items() if value is not None}
    refused = [given[name][0] for name in options if name not in task.export_options]
    if refused:
        raise UnsupportedCommand(
            f"{', '.join(refused)} do not apply to {task.name} exports ({run.run_dir} is a {task.name} run of "
            f"{run.config.get('model')}); drop the flag(s)."
        )
    print(task.export(run, pathlib.Path(args.output), overwrite=args.overwrite, **options))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """The attention behind one recommendation (retrieval), one score (ranking) or one user's
    expert gates (multi-task): table, PNG and the weights as JSON beside it."""
    from tf_attnrec import explain, runs

    from tf_attnrec import explain_gates, explain_graph, explain_modalities

    task, run = _load_run(pathlib.Path(args.run_dir))
    task.check_explainable(run)
    try:
        explain.require_matplotlib()
    except ImportError as error:
        print(f"{PROG} explain: error: {error}", file=sys.stderr)
        return 1
    dataset = _run_dataset(run, args)
    item = _as_int(args.item) if args.item is not None else None
    explanation = task.explain(run, dataset, _as_int(args.user), item)
    titles = runs.read_items(run.run_dir)
    if explanation.get("kind") == explain_gates.KIND:  # a user's gates, whatever the item
        output = pathlib.Path(args.output or run.run_dir / f"explain_user{explanation['user']}_gates.png")
        print(explain_gates.format_gates(explanation))
        explain_gates.plot_gates(explanation, output)
        print(f"Wrote the gate heatmap to {output}, the weights to "
              f"{explain.write_explanation_json(explanation, output.with_suffix('.json'))}.")
        return 0
    output = pathlib.Path(args.output or run.run_dir / f"explain_user{explanation['user']}_item{explanation['item']}.png")
    if explanation.get("kind") == explain_graph.KIND:
        print(explain_graph.format_graph_explanation(explanation, titles, top=args.top))
        explain_graph.plot_graph_attention(explanation, output, titles=titles)
    else:
        print(explain.format_explanation(explanation, titles, top=args.top))
        explain.plot_attention(explanation, output, titles=titles, highlight=args.top)
    print(f"Wrote the attention heatmap to {output}.")
    if "modalities" in explanation:  # a model with item_features: the item tower's weights too
        modalities = output.with_name(f"{output.stem}_modalities.png")
        print("\n" + explain_modalities.format_modalities(explanation["modalities"], titles))
        explain_modalities.plot_modalities(explanation["modalities"], modalities, titles=titles)
        print(f"Wrote the modality heatmap to {modalities}.")
    print(f"Wrote the weights to {explain.write_explanation_json(explanation, output.with_suffix('.json'))}.")
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


def _add_data_flags(parser: argparse.ArgumentParser, for_training: bool) -> None:
    data = parser.add_argument_group("data (default: the config's, or the data the run recorded)")
    if for_training:
        data.add_argument("--dataset", help="named dataset: ml-1m or ml-100k (download, cache, checksum)")
        data.add_argument("--dataset-form", choices=("auto", "sasrec", "grouplens"), default="auto",
                          help="ml-1m: the SASRec form (5-core, chronological; default) or all GroupLens ratings")
    data.add_argument("--data-dir", help="folder holding <dataset>/ (default: $TF_ATTNREC_DATA_DIR, else download)")
    data.add_argument("--data", metavar="FILE",
                      help="your interaction log: CSV/TSV, Parquet, SASRec .txt, or a dataset YAML")
    data.add_argument("--user-col", default="user_id", help="user column of --data (default user_id)")
    data.add_argument("--item-col", default="item_id", help="item column of --data (default item_id)")
    data.add_argument("--time-col", help="timestamp column of --data (default: none, file order)")
    data.add_argument("--sep", help="field separator of a CSV --data (default: inferred)")
    data.add_argument("--items", metavar="FILE", help="item side features (item_id, title, genres, year)")
    data.add_argument("--users", metavar="FILE", help="user side features (user_id, gender, age, occupation)")
    data.add_argument("--k-core", type=_positive_int, help="keep users and items with at least K interactions")
    data.add_argument("--no-download", action="store_true", help="fail instead of downloading the dataset")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `tf-attnrec` (one sub-command per task step)."""
    parser = argparse.ArgumentParser(prog=PROG, description="Attention-based recommenders on TensorFlow Recommenders.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a zoo model (early stopping on validation)",
                                description="Train a zoo model with early stopping on validation (full-catalogue "
                                "NDCG@10 for retrieval, AUC for ranking), then report test metrics and save the run.")
    train.add_argument("--model", help=f"zoo model name (default: the config's, else {DEFAULT_MODEL})")
    train.add_argument("--config", help="zoo/run config YAML (default: models/<model>/config.yaml)")
    train.add_argument("--output", help="run directory (default: runs/<model>-<data>-<time>)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace a run already in --output, or train afresh over an interrupted one's backup "
                            "(by default, rerunning the same command resumes it)")
    _add_data_flags(train, for_training=True)
    train.add_argument("--epochs", type=_positive_int, help="maximum passes over the training data")
    train.add_argument("--batch-size", type=_positive_int)
    train.add_argument("--learning-rate", type=float)
    train.add_argument("--patience", type=_positive_int, help="passes without improvement before stopping")
    train.add_argument("--eval-every", type=_positive_int, help="validate every N passes")
    train.add_argument("--validation-users", type=_positive_int, help="validate on the first N users only")
    train.add_argument("--seed", type=int)
    train.add_argument("--max-length", type=_positive_int, help="history length the model reads")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a model_config key (e.g. --set hidden_dim=32), or a training key "
                            "(e.g. --set split=ratio); repeatable")
    train.add_argument("--jit", action="store_true", help="compile the train step with XLA")
    train.add_argument("--init-from", metavar="RUN_DIR",
                       help="warm-start from a saved run: of the same model to continue it, or to update it with new "
                            "data (--data NEW: new items grow the vocabulary, known items keep their vectors; "
                            "same model config), or of another model to pretrain the weights both share (e.g. nais "
                            "from a fism run, as the NAIS paper does)")
    train.add_argument("--time-limit", type=float, metavar="MINUTES",
                       help="stop after the first validation past this many minutes (best weights kept)")
    train.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    train.add_argument("--strategy", choices=STRATEGIES, default="none",
                       help="tf.distribute strategy: none (one device), mirrored (this machine's GPUs) or "
                            "multiworker (the cluster in TF_CONFIG; see python -m tf_attnrec.launch). --batch-size "
                            "is the global batch, split over the replicas")
    train.add_argument("--precision", choices=PRECISIONS, default=None,
                       help="Keras dtype policy: mixed_bfloat16 or mixed_float16 compute the layers in 16 bits "
                            "(float16 with loss scaling); variables, scores and losses stay float32 "
                            "(default: the config's `precision`, else float32)")
    train.add_argument("--deterministic", action="store_true",
                       help="turn on TensorFlow's op determinism, so that the same seed gives the same metrics "
                            "(slower where an op has a faster non-deterministic kernel)")
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser("evaluate", help="evaluate a trained run on its data")
    evaluate.add_argument("run_dir", metavar="RUN_DIR")
    evaluate.add_argument("--protocol", choices=("full", "sampled"), default="full",
                          help="retrieval: full catalogue (default) or 100 sampled negatives (SASRec paper)")
    evaluate.add_argument("--stage", choices=("test", "validation"), default="test")
    evaluate.add_argument("--ks", type=_positive_int, nargs="+", default=[10, 20], metavar="K")
    evaluate.add_argument("--num-negatives", type=_positive_int, default=100)
    evaluate.add_argument("--output", help="also write the metrics as JSON to this file")
    _add_data_flags(evaluate, for_training=False)
    evaluate.set_defaults(handler=cmd_evaluate)

    recommend = commands.add_parser("recommend", help="top-K items for a history of raw item ids (retrieval)")
    recommend.add_argument("run_dir", metavar="RUN_DIR")
    recommend.add_argument("--history", required=True, help="raw item ids, most recent last, e.g. 1,50,181")
    recommend.add_argument("-k", type=int, default=10, help="number of items (default 10)")
    recommend.add_argument("--include-seen", action="store_true", help="allow items of the history")
    recommend.add_argument("--format", choices=("text", "json"), default="text")
    recommend.add_argument("--ranking", metavar="RANKING_RUN",
                           help="a ranking run: RUN_DIR retrieves --candidates items, this ranker orders them")
    recommend.add_argument("--candidates", type=_positive_int, default=200,
                           help="with --ranking: items retrieval hands to the ranker (default 200)")
    for field in ("gender", "age", "occupation"):
        recommend.add_argument(f"--{field}", default="", help=f"with --ranking: the user's {field} (raw value)")
    recommend.set_defaults(handler=cmd_recommend)

    cascade = commands.add_parser("cascade", help="export retrieval + ranking as one TF Serving SavedModel "
                                                  "(raw history and user attributes in, ranked top-k out)")
    cascade.add_argument("--retrieval", required=True, metavar="RUN_A", help="a retrieval run (sasrec, nais, ...)")
    cascade.add_argument("--ranking", required=True, metavar="RUN_B", help="a ranking run (din, bst, ...)")
    cascade.add_argument("--output", required=True, help="serving/<name>/<version> (version: an integer)")
    cascade.add_argument("--candidates", type=_positive_int, default=200,
                         help="items retrieval hands to the ranker (default 200)")
    cascade.add_argument("-k", type=_positive_int, default=10, help="items returned (default 10)")
    cascade.add_argument("--index", choices=("brute_force", "scann"), default="brute_force",
                         help="the retrieval stage's index (default exact)")
    cascade.add_argument("--overwrite", action="store_true", help="replace an existing export")
    cascade.set_defaults(handler=cmd_cascade)

    export = commands.add_parser(
        "export", help="write a TF Serving SavedModel (retrieval: raw ids in, top-k out; ranking: raw features in, probability out)")
    export.add_argument("run_dir", metavar="RUN_DIR")
    export.add_argument("--output", required=True, help="serving/<model_name>/<version> (version: an integer)")
    export.add_argument("-k", type=_positive_int, help="retrieval: items returned per history (default 10)")
    export.add_argument("--index", choices=("brute_force", "scann"),
                        help="retrieval: exact top-k (default; plain TensorFlow ops) or ScaNN (the `ann` extra)")
    export.add_argument("--include-seen", action="store_true", help="retrieval: do not exclude history items")
    export.add_argument("--new-items", metavar="CSV",
                        help="retrieval with item_features: add these items (item_id,title,genres,year; genres "
                             "A|B) to the served catalogue without retraining, embedded from their content")
    export.add_argument("--quantize", choices=("float16", "int8"),
                        help="retrieval (sasrec, exact index): store the item table as float16, or as int8 with a "
                             "float32 scale per row (default: float32)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing export")
    export.set_defaults(handler=cmd_export)

    explain = commands.add_parser("explain", help="which history items drove a recommendation or a score",
                                  description="Show the attention weight of each history item of one user (the "
                                  "user's history at test time) for a model with attention: the query's attention "
                                  "for a retrieval model (sasrec, lstm_attention, attention_pooling, gcsan), each history "
                                  "item's weight for the recommended item (nais), the "
                                  "candidate's for a ranking model (din, bst); for gat_cf the attention of the user "
                                  "over their items and of the item over its users. A text table and a PNG heatmap.")
    explain.add_argument("run_dir", metavar="RUN_DIR")
    explain.add_argument("--user", required=True, help="raw user id, as in the dataset files")
    explain.add_argument("--item", help="raw item id of the candidate (ranking: required; retrieval: "
                         "default the top recommendation)")
    explain.add_argument("--output", help="PNG path (default: RUN_DIR/explain_user<U>_item<I>.png)")
    explain.add_argument("--top", type=_positive_int, default=10,
                         help="history items listed (and bold in the heatmap), by weight (default 10)")
    _add_data_flags(explain, for_training=False)
    explain.set_defaults(handler=cmd_explain)

    list_models = commands.add_parser("list-models", help="list the zoo models")
    list_models.add_argument("--task", choices=("retrieval", "ranking", "collaborative", "multitask"),
                             help="only the models of one task")
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
        0 on success, 1 on a user error or a command the model cannot do (one line on
        stderr), 130 when interrupted; argparse exits with 2 on bad flags.

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
