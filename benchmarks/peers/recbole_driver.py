"""Runs one RecBole model on pre-split atomic files; runs INSIDE the peer virtualenv.

Started by `benchmarks/recbole_graph.py` (never imported by tf-attnrec): it needs `recbole`
and `torch`, which live only in the peer virtualenv. It follows RecBole 1.2.1's
`quick_start.run_recbole` step for step (Config, init_seed, create_dataset,
data_preparation, init_seed, model, trainer.fit, trainer.evaluate on test), with three
differences, each for measurement only:

* the Trainer is a subclass that times every training epoch and every validation, and notes
  the wall time (from the start of `fit`) at which each new best validation score was saved;
* a time budget: RecBole has no time limit, so `fit`'s per-validation `callback_fn` raises
  `_TimeUp` once `time_limit_s` has passed since the start of `fit` (checked after each
  epoch's validation, so the epoch that crosses the budget still finishes and its checkpoint,
  if best, is saved); the driver then evaluates the best checkpoint on test as
  `run_recbole` would after early stopping;
* the best checkpoint is reloaded here with `torch.load(..., weights_only=False)` (the file
  is the one this run just wrote) and test is evaluated with `load_best_model=False`:
  RecBole 1.2.1's own reload calls `torch.load` without `weights_only`, which torch >= 2.6
  defaults to True and which then refuses the checkpoint's pickled `Config`. The reload
  copies RecBole's (state dict plus `other_parameter`, i.e. LightGCN's / NGCF's cached
  `restore_user_e` / `restore_item_e`), so the test numbers are those `run_recbole` gives.

FLOPs counting (`get_flops`, thop) and the environment table of `run_recbole` are skipped.

Usage (what recbole_graph.py runs, cwd = the model's run folder):

    <venv>/bin/python benchmarks/peers/recbole_driver.py --config run.json --result result.json

`run.json`: {"model": "LightGCN", "dataset": NAME, "config_dict": {...RecBole config...},
"threads": 2, "time_limit_s": 3600 or null}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from logging import getLogger


class _TimeUp(Exception):
    """Raised from `fit`'s callback when the time budget is spent."""


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for name in ("recbole", "torch", "numpy", "scipy", "pandas"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def _plain(result) -> dict:
    return None if result is None else {str(k): float(v) for k, v in dict(result).items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    with open(args.config) as f:
        run = json.load(f)

    t_start = time.perf_counter()
    import torch

    torch.set_num_threads(int(run["threads"]))
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    config = Config(model=run["model"], dataset=run["dataset"], config_dict=run["config_dict"])
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(config)
    torch.set_num_threads(int(run["threads"]))  # init_logger/Config leave it, but be sure

    t0 = time.perf_counter()
    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    data_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(model)
    model_build_s = time.perf_counter() - t0

    time_limit_s = run.get("time_limit_s")
    base = get_trainer(config["MODEL_TYPE"], config["model"])

    class TimedTrainer(base):
        """RecBole's trainer for this model, with per-epoch timings and a time budget."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.fit_start = None
            self.train_epoch_s, self.valid_s, self.valid_scores = [], [], []
            self.best_epoch, self.time_to_best_s = None, None
            self.stopped_by = "epochs"

        def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
            if self.fit_start is None:
                self.fit_start = time.perf_counter()
            t = time.perf_counter()
            loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
            self.train_epoch_s.append(time.perf_counter() - t)
            return loss

        def _valid_epoch(self, valid_data, show_progress=False):
            t = time.perf_counter()
            score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
            self.valid_s.append(time.perf_counter() - t)
            self.valid_scores.append(float(score))
            return score, result

        def on_validated(self, epoch_idx, valid_score):
            # fit() calls this after early_stopping() and after saving a new best checkpoint;
            # cur_step == 0 means this validation was a new best.
            now = time.perf_counter() - self.fit_start
            if self.cur_step == 0:
                self.best_epoch, self.time_to_best_s = int(epoch_idx), now
            if time_limit_s is not None and now >= time_limit_s:
                self.stopped_by = "time_limit"
                logger.info(f"time limit of {time_limit_s:.0f}s reached after epoch {epoch_idx} ({now:.1f}s)")
                raise _TimeUp()

    trainer = TimedTrainer(config, model)
    t0 = time.perf_counter()
    try:
        trainer.fit(train_data, valid_data, saved=True, show_progress=config["show_progress"],
                    callback_fn=trainer.on_validated)
        if trainer.stopped_by != "time_limit" and len(trainer.train_epoch_s) < config["epochs"]:
            trainer.stopped_by = "early_stopping"
    except _TimeUp:
        pass
    fit_s = time.perf_counter() - t0
    best_valid_score, best_valid_result = trainer.best_valid_score, trainer.best_valid_result

    # Test on the best checkpoint, as trainer.evaluate(load_best_model=True) does.
    t0 = time.perf_counter()
    checkpoint = torch.load(trainer.saved_model_file, map_location=trainer.device, weights_only=False)
    trainer.model.load_state_dict(checkpoint["state_dict"])
    trainer.model.load_other_parameter(checkpoint.get("other_parameter"))
    logger.info(f"Loading model structure and parameters from {trainer.saved_model_file}")
    test_result = trainer.evaluate(test_data, load_best_model=False, show_progress=config["show_progress"])
    test_eval_s = time.perf_counter() - t0
    logger.info(f"best valid : {best_valid_result}")
    logger.info(f"test result: {test_result}")

    train_inter = train_data._dataset.inter_num
    result = {
        "model": run["model"],
        "best_epoch": trainer.best_epoch,
        "epochs_run": len(trainer.train_epoch_s),
        "stopped_by": trainer.stopped_by,
        "time_limit_s": time_limit_s,
        "time_to_best_s": trainer.time_to_best_s,
        "fit_s": fit_s,
        "data_s": data_s,
        "model_build_s": model_build_s,
        "test_eval_s": test_eval_s,
        "total_s": time.perf_counter() - t_start,
        "train_epoch_s": trainer.train_epoch_s,
        "valid_s": trainer.valid_s,
        "valid_scores": trainer.valid_scores,
        "train_loss": [float(trainer.train_loss_dict[k]) for k in sorted(trainer.train_loss_dict)],
        "best_valid_score": float(best_valid_score),
        "best_valid": _plain(best_valid_result),
        "test": _plain(test_result),
        "num_users": int(dataset.user_num - 1),  # RecBole counts the [PAD] id
        "num_items": int(dataset.item_num - 1),
        "interactions": {"train": int(train_inter), "valid": int(valid_data._dataset.inter_num),
                         "test": int(test_data._dataset.inter_num)},
        "valid_users": len(valid_data.uid_list),
        "test_users": len(test_data.uid_list),
        "threads": int(torch.get_num_threads()),
        "device": str(config["device"]),
        "versions": _versions(),
        "checkpoint": trainer.saved_model_file,
    }
    with open(args.result, "w") as f:
        json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
