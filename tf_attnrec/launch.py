"""Starts N `tf-attnrec` workers on this host, each with its `TF_CONFIG`: multi-worker training on one machine.

Usage:
    python -m tf_attnrec.launch --workers 2 -- train --model sasrec --dataset ml-100k --output runs/mw

Adds `--strategy multiworker` to the command. Worker 0 is the chief: its output goes to this
terminal and it alone writes the run directory; worker i's output goes to
`<output>.worker-<i>.log` beside it (or the current folder). Exits with the first non-zero
status of any worker. On several hosts, start one `tf-attnrec train --strategy multiworker`
per host instead, each with the same cluster in `TF_CONFIG` and its own index (README).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time
from typing import Optional, Sequence

from tf_attnrec.distribute import local_cluster


def _log_path(command: Sequence[str], index: int) -> pathlib.Path:
    output = next((command[i + 1] for i, arg in enumerate(command[:-1]) if arg == "--output"), "tf-attnrec")
    return pathlib.Path(f"{output.rstrip('/')}.worker-{index}.log")


def _wait(processes: list) -> list:
    """Exit statuses of all workers; when one fails, the others are stopped (they would wait on it forever)."""
    while any(process.poll() is None for process in processes):
        if any(process.poll() for process in processes):
            for process in processes:
                if process.poll() is None:
                    process.terminate()
        time.sleep(0.5)
    return [process.returncode for process in processes]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tf_attnrec.launch", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes to start (default 2)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the tf-attnrec command, e.g. train ...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or command[0] != "train":
        parser.error("give the training command after --, e.g. -- train --model sasrec --dataset ml-100k")
    if args.workers < 1:
        parser.error(f"--workers must be positive; got {args.workers}")
    command = [*command, "--strategy", "multiworker"]
    processes = []
    for index, tf_config in enumerate(local_cluster(args.workers)):
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
        if index == 0:
            output = None
        else:
            log = _log_path(command, index)
            log.parent.mkdir(parents=True, exist_ok=True)
            output = open(log, "w")  # closed when the launcher exits
        processes.append(subprocess.Popen([sys.executable, "-m", "tf_attnrec.cli", *command], env=env,
                                          stdout=output, stderr=subprocess.STDOUT if output else None))
    statuses = _wait(processes)
    failed = [(index, status) for index, status in enumerate(statuses) if status]
    for index, status in failed:
        where = "above" if index == 0 else str(_log_path(command, index))
        print(f"worker {index} exited with status {status}; its output is {where}.", file=sys.stderr)
    return failed[0][1] if failed else 0


if __name__ == "__main__":
    sys.exit(main())
