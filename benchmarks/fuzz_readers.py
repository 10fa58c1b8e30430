"""Fuzzes every data reader with generated hostile and valid files, counting cases and outcomes.

The "resilience" bar: each reader (`read_sasrec_txt`, `read_movielens_ratings` / `_movies` /
`_users`, the `read_movielens_1m`, `read_sasrec_movielens_1m` and `read_movielens_100k` folders,
and `read_interactions` on CSV or Parquet with column flags) gets random bytes, corrupted lines
(a field dropped or added, non-integer, negative or huge ids such as 10**30, wrong separators,
blank lines), wrong encodings, empty and header-only files, duplicate headers, missing or
clashing columns, broken metadata joins, missing files, and valid files. It must return exactly
what was written (with on_bad_lines="skip": exactly the valid rows, and a warning) or raise
`DataFormatError` naming the file, the line of a row problem, and what was expected; any other
exception is a failure, except `FileNotFoundError` for a missing file and `ValueError` for
contradictory column flags (the same column selected twice).

The strategies and properties are those of `tests/data/test_reader_fuzz.py` (imported as a module);
this script runs them with the large Hypothesis profile ("fuzz"), generation only, and keeps
going after a failure, so every failure is listed.

Usage:
    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 python benchmarks/fuzz_readers.py [--cases N]

    --cases N   generated cases in total, split evenly over the 8 readers (default 10,000, the
                bar for one run).

Prints one line per reader (cases, outcomes by type, failures, seconds), the total, the count of
each exception type, then each failure with its input. Exits 1 if any property failed or fewer
than N cases ran.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import math
import pathlib
import sys
import time
import types
from typing import Optional, Sequence

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_CASES = 10_000
# Raised by design: a missing file; the same column passed as two of the column flags.
EXPECTED_OTHERS = {"FileNotFoundError": "missing files", "ValueError": "contradictory column flags"}
WIDTHS = (6, 6, 16, 6, 9, 8)  # of the table's columns after the reader's name


def load_fuzz_module() -> types.ModuleType:
    """The test module, whose strategies and properties this script runs (the repository root goes on the path)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module("tests.data.test_reader_fuzz")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=DEFAULT_CASES, help="generated cases in total")
    args = parser.parse_args(argv)
    if args.cases < 1:
        parser.error("--cases must be at least 1")

    import tf_attnrec  # noqa: F401  (selects Keras 2 before anything imports TensorFlow)

    fuzz = load_fuzz_module()
    from hypothesis import Phase, settings

    per_target = math.ceil(args.cases / len(fuzz.TARGETS))
    # Generation only: failures are collected, not raised, so there is nothing to shrink.
    run_settings = settings(fuzz.profile("fuzz"), max_examples=per_target, phases=[Phase.generate])
    tally = fuzz.Tally(strict=False)
    print(f"{per_target} cases per reader")
    columns = ("cases", "data", "DataFormatError", "other", "failures", "seconds")
    print(f"{'reader':<26} " + " ".join(f"{name:>{width}}" for name, width in zip(columns, WIDTHS)))
    started = time.perf_counter()
    for target in fuzz.TARGETS:
        failures_before, start = len(tally.problems), time.perf_counter()
        fuzz.run_target(target, run_settings, tally)
        outcomes = {kind: n for (reader, kind), n in tally.outcomes.items() if reader == target.name}
        others = sum(n for kind, n in outcomes.items() if kind not in ("data", "DataFormatError"))
        values = (tally.cases[target.name], outcomes.get("data", 0), outcomes.get("DataFormatError", 0), others,
                  len(tally.problems) - failures_before, f"{time.perf_counter() - start:.1f}")  # fmt: skip
        print(f"{target.name:<26} " + " ".join(f"{v:>{w}}" for v, w in zip(values, WIDTHS)), flush=True)
    total = sum(tally.cases.values())
    values = (total, "", "", "", len(tally.problems), f"{time.perf_counter() - started:.1f}")
    print(f"{'total':<26} " + " ".join(f"{v:>{w}}" for v, w in zip(values, WIDTHS)))

    by_type: collections.Counter = collections.Counter()
    for (_, kind), n in tally.outcomes.items():
        by_type[kind] += n
    print("\noutcomes by type:")
    for kind, n in by_type.most_common():
        note = "returned data" if kind == "data" else EXPECTED_OTHERS.get(kind, "")
        print(f"  {kind:<24} {n:>6}  {note}")
    for reader, problem, case in tally.problems:
        print(f"\nFAILURE {reader}: {problem[:2000]}\n  input: {case!r}"[:6000])
    if total < args.cases:
        print(f"\nonly {total} cases ran, fewer than the {args.cases} asked for")
    return 1 if tally.problems or total < args.cases else 0


if __name__ == "__main__":
    sys.exit(main())
