"""Runs one RecBole model on pre-split atomic files, resumably; runs INSIDE the peer virtualenv.

Started by `benchmarks/recbole_graph.py` (never imported by tf-attnrec): it needs `recbole`
and `torch`, which live only in the peer virtualenv. It follows RecBole 1.2.1's
`quick_start.run_recbole` step for step (Config, init_seed, create_dataset,
data_preparation, init_seed, model, trainer.fit, trainer.evaluate on test), with these
differences, for measurement and for resuming only:

* the Trainer is a subclass that times every training epoch (split into waiting for batches,
  i.e. negative sampling and collation; `calculate_loss`, the forward pass; the optimizer
  step; and the rest, mostly `backward`) and every validation;
* after every validation `fit`'s `callback_fn` writes a "last" checkpoint (see below), so a
  run killed mid-epoch loses at most that epoch;
* a time budget per session: RecBole has none, so the callback raises `_TimeUp` at the first
  epoch boundary where one more epoch as long as the last one would end past
  `time_limit_s` (counted from this session's start of `fit`);
* resume: when the checkpoint file exists, the trainer is restored from it before `fit`,
  which then continues at the next epoch (RecBole's own `resume_checkpoint` restores neither
  the best result, the loss history nor the RNG states, and its `torch.load` fails on
  torch >= 2.6, whose `weights_only=True` default refuses the pickled `Config`);
* the best epoch's weights are kept in memory and in the checkpoint instead of RecBole's
  separate best-model file (`fit(saved=False)`): the best epoch may belong to an earlier
  session, whose RecBole file would have another name. Test is evaluated on them with
  `load_best_model=False`, which is what `evaluate(load_best_model=True)` does after
  reloading: state dict plus `other_parameter` (LightGCN's / NGCF's cached
  `restore_user_e` / `restore_item_e` from the best validation; FISM and NAIS have none:
  their users' training histories, `history_item_matrix`, are rebuilt from the train file
  when the model is built, with the same seed, and are not in the state dict).

The checkpoint (`torch.save` to a temporary file, fsync, `os.replace`) holds the model and
optimizer state, the last epoch, `cur_step` (the early-stopping counter), the best valid
score / result / epoch / weights, the per-epoch history, one record per session, and the RNG
states that the next epoch draws from: Python's `random`, NumPy's global RNG (RecBole's
negative sampler), torch's global RNG (dropout) and the training loader's own
`torch.Generator` (the shuffle). It also holds a fingerprint of the run's config and split;
a checkpoint with another fingerprint is refused.

FLOPs counting (`get_flops`, thop) and the environment table of `run_recbole` are skipped.

Profile mode (`"profile": {"train_batches": N, "eval_users": K or null}` in run.json; set by
`recbole_graph.py --profile-batches N [--profile-eval-users K]`): no `fit`, no checkpoint. It
trains the first N batches of epoch 0 (timed as an epoch, plus each batch's wall time), then
times one validation: the whole of it (K null, with its metrics), or `full_sort_predict` for
the first K validation users, extrapolated to all validation users by the sum of their
training-history lengths (FISM / NAIS score a user in time proportional to it; other models:
by the number of users).

Usage (what recbole_graph.py runs, cwd = the model's run folder):

    <venv>/bin/python benchmarks/peers/recbole_driver.py --config run.json --result result.json

`run.json`: {"model": "LightGCN", "dataset": NAME, "config_dict": {...RecBole config...},
"threads": 2, "time_limit_s": 3600 or null, "checkpoint": PATH, "fingerprint": HEX}.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import sys
import time
from logging import getLogger

CHECKPOINT_FORMAT = 1


class _TimeUp(Exception):
    """Raised from `fit`'s callback when the session's time budget is spent."""


class CheckpointMismatch(Exception):
    """The checkpoint file belongs to another config or split."""


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for name in ("recbole", "torch", "numpy", "scipy", "pandas"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def _plain(result) -> dict | None:
    return None if result is None else {str(k): float(v) for k, v in dict(result).items()}


# --------------------------------------------------------------------------------------
# Pure helpers (no torch; tested in tests/test_recbole_benchmark_resume.py).
# --------------------------------------------------------------------------------------
def atomic_save(obj, path: str, save) -> None:
    """`save(obj, file)` to `path` so that a kill at any moment leaves the old or the new file."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def time_is_up(elapsed_s: float, last_epoch_s: float, limit_s: float | None) -> bool:
    """True when one more epoch as long as the last one would end past the limit."""
    return limit_s is not None and elapsed_s + last_epoch_s > limit_s


def stop_reason(epoch_idx: int, cur_step: int, stopping_step: int, epochs: int) -> str | None:
    """Why `fit` ends after this epoch, if it does (RecBole's `early_stopping`: cur_step > max)."""
    if cur_step > stopping_step:
        return "early_stopping"
    if epoch_idx + 1 >= epochs:
        return "epochs"
    return None


def totals(history: list[dict], sessions: list[dict], best_epoch: int | None) -> dict:
    """Cumulative times over all sessions; to-best counts epochs 0..best (train + validation)."""
    return {
        "train_s_total": sum(e["train_s"] for e in history),
        "valid_s_total": sum(e["valid_s"] for e in history),
        "time_to_best_s": (None if best_epoch is None else
                           sum(e["train_s"] + e["valid_s"] for e in history if e["epoch"] <= best_epoch)),
        "fit_s_total": sum(s["fit_s"] for s in sessions),
        "total_s": sum(s["wall_s"] for s in sessions),
    }


class Stopwatch:
    """Adds up the seconds spent inside the calls it wraps."""

    def __init__(self):
        self.seconds = 0.0

    def wrap(self, fn):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t
        return timed


class TimedBatches:
    """Iterates a dataloader, timing each `next` (RecBole samples negatives and collates there).

    `seconds` sums the waits for `next`; `batch_s` holds each batch's wall time, from asking
    for it to asking for the one after (its wait plus the consumer's step on it). With `limit`
    it stops after that many batches (profile mode).
    """

    def __init__(self, loader, limit: int | None = None):
        self.loader = loader
        self.limit = limit
        self.seconds = 0.0
        self.batches = 0
        self.batch_s: list[float] = []

    def __iter__(self):
        it = iter(self.loader)
        start = None
        while True:
            t = time.perf_counter()
            if start is not None:
                self.batch_s.append(t - start)
            if self.limit is not None and self.batches >= self.limit:
                return
            start = t
            try:
                batch = next(it)
            except StopIteration:
                return
            finally:
                self.seconds += time.perf_counter() - t
            self.batches += 1
            yield batch

    def __getattr__(self, name):
        return getattr(self.loader, name)


# --------------------------------------------------------------------------------------
# The resumable trainer.
# --------------------------------------------------------------------------------------
def _model_state(model) -> dict:
    """A copy of the weights and RecBole's `other_parameter` (cached propagated embeddings)."""
    def clone(v):
        return None if v is None else v.detach().clone()
    return {"state_dict": {k: clone(v) for k, v in model.state_dict().items()},
            "other_parameter": {k: clone(v) for k, v in model.other_parameter().items()}}


def _load_model_state(model, state: dict) -> None:
    model.load_state_dict(state["state_dict"])
    model.load_other_parameter(state["other_parameter"])


def _rng_state(loader_generator) -> dict:
    import random

    import numpy as np
    import torch

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "loader": loader_generator.get_state()}


def _set_rng_state(state: dict, loader_generator) -> None:
    import random

    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    loader_generator.set_state(state["loader"])


def load_checkpoint(path: str, fingerprint: str) -> dict | None:
    """The checkpoint at `path`, None if there is none; refuses one of another run."""
    import torch

    if not os.path.exists(path):
        return None
    # Our own file (it pickles NumPy's RNG state), hence weights_only=False.
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("format") != CHECKPOINT_FORMAT or state.get("fingerprint") != fingerprint:
        raise CheckpointMismatch(
            f"{path} was written for another config or split (fingerprint {state.get('fingerprint')}, "
            f"this run {fingerprint}); rerun with --fresh to discard it, or use another --work-dir")
    return state


def resumable_trainer(base, logger):
    """`base` (RecBole's trainer class for the model) with timings, checkpoints and a time budget."""
    import torch

    class ResumableTrainer(base):
        def __init__(self, config, model, loader_generator, checkpoint: str, fingerprint: str,
                     time_limit_s: float | None):
            super().__init__(config, model)
            self.loader_generator = loader_generator
            self.checkpoint, self.fingerprint, self.time_limit_s = checkpoint, fingerprint, time_limit_s
            self.history: list[dict] = []
            self.sessions: list[dict] = []  # earlier sessions; this one is self.session
            self.session: dict | None = None
            self.session_t0 = None
            self.best_epoch, self.best_model = None, None
            self.finished_by: str | None = None  # early_stopping / epochs once the run is over
            self.fit_start = None
            self.resume_point: dict = {}
            self._epoch: dict = {}
            self.max_batches: int | None = None  # profile mode: stop an epoch after this many batches
            self.last_batch_s: list[float] = []
            # RecBole calls `scaler.step(optimizer)`, i.e. `optimizer.step()`: time it on the instance.
            self._step_clock = Stopwatch()
            self.optimizer.step = self._step_clock.wrap(self.optimizer.step)

        # -- restore / save ----------------------------------------------------------------
        def restore(self, state: dict) -> None:
            _load_model_state(self.model, state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.start_epoch = state["epoch"] + 1
            self.cur_step = state["cur_step"]
            self.best_valid_score = state["best_valid_score"]
            self.best_valid_result = state["best_valid_result"]
            self.best_epoch, self.best_model = state["best_epoch"], state["best_model"]
            self.history, self.sessions = state["history"], state["sessions"]
            self.train_loss_dict = {e["epoch"]: e["loss"] for e in self.history}
            self.finished_by = state["finished_by"]
            _set_rng_state(state["rng"], self.loader_generator)
            self.resume_point = {k: v for k, v in state.items()
                                 if k not in ("format", "fingerprint", "history", "sessions")}
            logger.info(f"resumed from {self.checkpoint}: epoch {self.start_epoch} next, best epoch "
                        f"{self.best_epoch} ({self.best_valid_score:.6f}), cur_step {self.cur_step}, "
                        f"{len(self.sessions)} earlier session(s)")

        def take_resume_point(self, epoch_idx: int) -> None:
            """Copies what the next epoch starts from: the test evaluation later loads other weights."""
            self.resume_point = {
                "epoch": int(epoch_idx), "finished_by": self.finished_by,
                "model": _model_state(self.model), "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "cur_step": self.cur_step, "best_valid_score": float(self.best_valid_score),
                "best_valid_result": _plain(self.best_valid_result),
                "best_epoch": self.best_epoch, "best_model": self.best_model,
                "rng": _rng_state(self.loader_generator),
            }

        def save(self) -> None:
            state = {"format": CHECKPOINT_FORMAT, "fingerprint": self.fingerprint, **self.resume_point,
                     "history": self.history, "sessions": self.all_sessions()}
            atomic_save(state, self.checkpoint, lambda obj, f: torch.save(obj, f, pickle_protocol=4))

        def all_sessions(self) -> list[dict]:
            return self.sessions + ([self.session] if self.session else [])

        # -- timed epochs --------------------------------------------------------------------
        def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
            if self.fit_start is None:
                self.fit_start = time.perf_counter()
            # RecBole logs an epoch only when it ends, which on full ML-1M is minutes later.
            logger.info(f"epoch {epoch_idx} training started")
            batches, forward = TimedBatches(train_data, limit=self.max_batches), Stopwatch()
            self._step_clock.seconds = 0.0
            t = time.perf_counter()
            loss_func = forward.wrap(loss_func or self.model.calculate_loss)
            loss = super()._train_epoch(batches, epoch_idx, loss_func=loss_func, show_progress=show_progress)
            train_s = time.perf_counter() - t
            self.last_batch_s = batches.batch_s
            self._epoch = {"epoch": int(epoch_idx), "session": len(self.sessions) + 1, "train_s": train_s,
                           "batches": batches.batches, "batch_wait_s": batches.seconds, "forward_s": forward.seconds,
                           "optimizer_step_s": self._step_clock.seconds,
                           "backward_other_s": train_s - batches.seconds - forward.seconds - self._step_clock.seconds}
            return loss

        def _valid_epoch(self, valid_data, show_progress=False):
            t = time.perf_counter()
            score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
            self._epoch.update(valid_s=time.perf_counter() - t, valid_score=float(score), valid=_plain(result))
            return score, result

        def end_epoch(self, epoch_idx, valid_score):
            """fit's callback_fn: after early_stopping() has updated cur_step and the best result."""
            self._epoch["loss"] = float(self.train_loss_dict[epoch_idx])
            self.history.append(self._epoch)
            if self.cur_step == 0:  # this validation was a new best
                self.best_epoch, self.best_model = int(epoch_idx), _model_state(self.model)
            self.finished_by = stop_reason(epoch_idx, self.cur_step, self.stopping_step, self.epochs)
            elapsed = time.perf_counter() - self.fit_start
            up = self.finished_by is None and time_is_up(
                elapsed, self._epoch["train_s"] + self._epoch["valid_s"], self.time_limit_s)
            self.update_session(stopped_by=self.finished_by or ("time_limit" if up else None))
            self.take_resume_point(epoch_idx)
            self.save()
            if up:
                logger.info(f"time limit of {self.time_limit_s:.0f}s: stopping after epoch {epoch_idx} "
                            f"({elapsed:.1f}s into this session's training); rerun to resume")
                raise _TimeUp()

        def begin_session(self, started: str, t0: float) -> None:
            """Opens this session's record; `t0` is the driver's start (perf_counter)."""
            self.session_t0 = t0
            self.session = {"session": len(self.sessions) + 1, "started": started,
                            "threads": int(torch.get_num_threads()), "first_epoch": self.start_epoch,
                            "startup_s": time.perf_counter() - t0, "stopped_by": None}
            self.update_session()

        def update_session(self, **kw) -> None:
            now = time.perf_counter()
            self.session.update(kw, epochs_run=sum(e["session"] == self.session["session"] for e in self.history),
                                fit_s=0.0 if self.fit_start is None else now - self.fit_start,
                                wall_s=now - self.session_t0)

    return ResumableTrainer


# --------------------------------------------------------------------------------------
# Profile mode.
# --------------------------------------------------------------------------------------
def extrapolate(seconds: float, measured_cost: float, total_cost: float) -> float | None:
    """Time for `total_cost` at the rate of `seconds` per `measured_cost` (None if nothing measured)."""
    return None if measured_cost <= 0 else seconds * total_cost / measured_cost


def profile(trainer, model, train_data, valid_data, spec: dict, logger) -> dict:
    """Times `spec["train_batches"]` training batches and one (possibly partial) validation."""
    import statistics

    import torch
    from recbole.data.interaction import Interaction

    trainer.max_batches = int(spec["train_batches"])
    logger.info(f"profile: training {trainer.max_batches} batches of epoch 0")
    loss = trainer._train_epoch(train_data, 0, show_progress=False)
    epoch, batch_s = dict(trainer._epoch), list(trainer.last_batch_s)
    n = max(epoch["batches"], 1)
    later = batch_s[1:] or batch_s
    out = {**{k: epoch[k] for k in ("train_s", "batches", "batch_wait_s", "forward_s", "optimizer_step_s",
                                    "backward_other_s")},
           "loss_sum": float(loss), "rows_per_batch": int(train_data._batch_size),
           "batches_per_epoch": len(train_data), "s_per_batch": epoch["train_s"] / n,
           "s_per_batch_after_first": sum(later) / len(later) if later else None,
           "s_per_batch_median": statistics.median(batch_s) if batch_s else None, "batch_s": batch_s}
    out["epoch_s_estimate"] = (out["s_per_batch_after_first"] or out["s_per_batch"]) * out["batches_per_epoch"]
    out["train_peak_rss_mb"] = _peak_rss_mb()
    lens = getattr(model, "history_lens", None)
    if lens is not None:
        out["history_max_len"] = int(model.history_item_matrix.shape[1])
    users = torch.as_tensor(valid_data.uid_list, dtype=torch.int64)
    k = spec.get("eval_users")
    if not k:
        logger.info(f"profile: one full validation ({len(users)} users)")
        t = time.perf_counter()
        score, result = trainer._valid_epoch(valid_data, show_progress=False)
        out.update(eval_users=len(users), eval_s=time.perf_counter() - t, valid=_plain(result))
        out["eval_s_all_users_estimate"] = out["eval_s"]
        out["peak_rss_mb"] = _peak_rss_mb()
        return out
    chosen = users[: int(k)]
    model.eval()
    step = max(1, int(trainer.config["eval_batch_size"]) // int(valid_data._dataset.item_num))
    logger.info(f"profile: full_sort_predict for {len(chosen)} of {len(users)} validation users")
    t = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(chosen), step):
            batch = Interaction({trainer.config["USER_ID_FIELD"]: chosen[start:start + step]})
            model.full_sort_predict(batch)
    seconds = time.perf_counter() - t
    cost = (lambda u: float(lens[u].sum())) if lens is not None else (lambda u: float(len(u)))
    out.update(eval_users=len(chosen), eval_s=seconds, eval_cost_measured=cost(chosen), eval_cost_all=cost(users),
               eval_extrapolated_by="history length" if lens is not None else "users")
    out["eval_s_all_users_estimate"] = extrapolate(seconds, out["eval_cost_measured"], out["eval_cost_all"])
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def _peak_rss_mb() -> float | None:
    """This process's peak resident memory so far (Linux: ru_maxrss in KiB), None elsewhere."""
    try:
        import resource
    except ImportError:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------------------
# One run.
# --------------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    with open(args.config) as f:
        run = json.load(f)

    t_start = time.perf_counter()
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
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

    trainer_class = resumable_trainer(get_trainer(config["MODEL_TYPE"], config["model"]), logger)
    trainer = trainer_class(config, model, train_data.generator, run["checkpoint"], run["fingerprint"],
                            run.get("time_limit_s"))
    if run.get("profile"):
        measured = profile(trainer, model, train_data, valid_data, run["profile"], logger)
        logger.info(f"profile: {json.dumps({k: v for k, v in measured.items() if k != 'batch_s'})}")
        result = {"model": run["model"], "split": run.get("split", "ratio"), "profile": measured,
                  "data_s": data_s, "model_build_s": model_build_s,
                  "interactions": {"train": int(train_data._dataset.inter_num),
                                   "valid": int(valid_data._dataset.inter_num),
                                   "test": int(test_data._dataset.inter_num)},
                  "valid_users": len(valid_data.uid_list), "threads": int(torch.get_num_threads()),
                  "versions": _versions(), "total_s": time.perf_counter() - t_start}
        with open(args.result, "w") as f:
            json.dump(result, f, indent=2)
        return 0
    try:
        state = load_checkpoint(run["checkpoint"], run["fingerprint"])
    except CheckpointMismatch as e:
        logger.error(str(e))
        return 3
    if state is not None:
        trainer.restore(state)  # last: it sets the RNG states the next epoch draws from
    resumed_from = trainer.start_epoch if state is not None else None

    if trainer.finished_by is None:
        trainer.begin_session(started, t_start)
        try:
            trainer.fit(train_data, valid_data, saved=False, show_progress=config["show_progress"],
                        callback_fn=trainer.end_epoch)
        except _TimeUp:
            pass
    else:
        logger.info(f"{run['checkpoint']} is a finished run ({trainer.finished_by}); evaluating its best epoch")

    t0 = time.perf_counter()
    _load_model_state(trainer.model, trainer.best_model)
    test_result = trainer.evaluate(test_data, load_best_model=False, show_progress=config["show_progress"])
    test_eval_s = time.perf_counter() - t0
    logger.info(f"best valid (epoch {trainer.best_epoch}): {trainer.best_valid_result}")
    logger.info(f"test result: {test_result}")
    if trainer.session is not None:
        trainer.update_session()  # so the session's wall time includes the test evaluation
        trainer.save()
    sessions = trainer.all_sessions()

    train_inter = train_data._dataset.inter_num
    result = {
        "model": run["model"],
        "split": run.get("split", "ratio"),
        "status": "finished" if trainer.finished_by else "partial",
        "stopped_by": trainer.finished_by or "time_limit",
        "sessions": len(sessions),
        "resumed_from_epoch": resumed_from,
        "best_epoch": trainer.best_epoch,
        "epochs_run": len(trainer.history),
        "time_limit_s": run.get("time_limit_s"),
        **totals(trainer.history, sessions, trainer.best_epoch),
        "data_s": data_s,
        "model_build_s": model_build_s,
        "test_eval_s": test_eval_s,
        "best_valid_score": float(trainer.best_valid_score),
        "best_valid": _plain(trainer.best_valid_result),
        "test": _plain(test_result),
        "history": trainer.history,
        "session_log": sessions,
        "num_users": int(dataset.user_num - 1),  # RecBole counts the [PAD] id
        "num_items": int(dataset.item_num - 1),
        "interactions": {"train": int(train_inter), "valid": int(valid_data._dataset.inter_num),
                         "test": int(test_data._dataset.inter_num)},
        "valid_users": len(valid_data.uid_list),
        "test_users": len(test_data.uid_list),
        "threads": int(torch.get_num_threads()),
        "device": str(config["device"]),
        "versions": _versions(),
        "checkpoint": run["checkpoint"],
    }
    with open(args.result, "w") as f:
        json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
