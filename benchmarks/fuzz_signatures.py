"""Fuzzes every serving signature with random raw requests and counts the cases and the failures.

The "resilience" bar: each signature (sasrec retrieval with string, int and fused-content ids,
its `encode` and `embed_items`, the collaborative `user_topk` export, the din and bst rankers with
`explain`, the retrieval-then-ranking cascade and the multi-task export) answers random raw ids,
"", whitespace, odd unicode, NUL bytes, non-UTF-8 bytes, very long strings, numeric-looking
strings, empty batches and histories of up to 2,500 entries with zero failures: the declared
shapes, finite scores, probabilities in [0, 1], served ids only and no history item returned.

The exports, the request strategies and the properties are those of
`tests/export/test_signature_fuzz.py` (imported as a module); this script runs them with the large
hypothesis profile ("fuzz") and keeps going after a failure, so every failure is listed.

Usage:
    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 python benchmarks/fuzz_signatures.py [--cases N]

    --cases N   generated requests in total, split evenly over the signatures (default 12,000;
                the bar is at least 10,000 per run).

Prints one line per signature (cases, failures, seconds), the total, then each failure with its
request. Exits 1 if any property failed.
"""

from __future__ import annotations

import argparse
import importlib
import math
import pathlib
import sys
import tempfile
import time
import types
from typing import Optional, Sequence

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_CASES = 12_000


def load_fuzz_module() -> types.ModuleType:
    """The test module, whose strategies and properties this script runs (the repository root goes on the path)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module("tests.export.test_signature_fuzz")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=DEFAULT_CASES, help="generated requests in total")
    args = parser.parse_args(argv)
    if args.cases < 1:
        parser.error("--cases must be at least 1")

    fuzz = load_fuzz_module()
    from hypothesis import Phase, settings

    targets = fuzz.TARGETS
    per_target = math.ceil(args.cases / len(targets))
    # Generation only: failures are collected, not raised, so there is nothing to shrink.
    run_settings = settings(settings.get_profile("fuzz"), max_examples=per_target, phases=[Phase.generate])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fuzz_signatures_") as root:
        exports = fuzz.build_exports(pathlib.Path(root))
        built = time.perf_counter() - started
        print(f"exports built and loaded in {built:.1f} s; {per_target} cases per signature")
        print(f"{'signature':<30} {'cases':>7} {'failures':>9} {'seconds':>8}")
        failures: list = []
        total = 0
        for target in targets:
            before, start = len(failures), time.perf_counter()
            cases = fuzz.fuzz(exports, target, run_settings, failures)
            total += cases
            print(f"{target.name:<30} {cases:>7} {len(failures) - before:>9} {time.perf_counter() - start:>8.1f}",
                  flush=True)
    print(f"{'total':<30} {total:>7} {len(failures):>9} {time.perf_counter() - started:>8.1f}")
    for name, batch, error in failures:
        print(f"\nFAILURE {name}: {type(error).__name__}: {str(error)[:2000]}\n  request: {batch!r}"[:6000])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
