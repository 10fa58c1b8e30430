"""Property-based fuzzing of every reader in `tf_attnrec.data.readers`.

Every reader gets hostile input: random bytes, valid files with corrupted lines (a field
dropped or added, a non-integer, negative or huge id such as 10**30, a wrong separator, a blank
line), wrong encodings (ISO-8859-1 or UTF-16 bytes where UTF-8 or ASCII is expected), empty and
header-only files, duplicate headers, missing or clashing columns and contradictory column flags
(`read_interactions`), broken metadata joins (`read_sasrec_movielens_1m`, `read_movielens_100k`)
and missing files; and valid generated files. For every generated case:

(a) the reader returns data or raises `DataFormatError`; `FileNotFoundError` only for a missing
    file, a plain `ValueError` only for contradictory arguments (one column selected twice);
(b) a `DataFormatError` message names the file, the 1-based line for a row-level problem (in
    "error" mode), and what was expected;
(c) valid content reads back exactly as written (ids, order, counts, int64 dtypes, or a
    Parquet column's nullable Int64); with on_bad_lines="skip" the result is exactly the valid
    rows, with a warning counting the others.

CSV logs are written plain or gzip-compressed. `REGRESSIONS` pins the inputs on which the
fuzzing found bugs (fixed in readers.py), so they are checked on every run whatever is drawn.

Profiles: "ci" (the default: 30 cases per reader, derandomized, no example database) and "fuzz"
(large, random); `TF_ATTNREC_FUZZ_PROFILE=fuzz` selects the large one. They are registered as
"readers-ci" / "readers-fuzz" and applied to each test, not loaded globally: profile names are
global to Hypothesis, and tests/export/test_signature_fuzz.py registers its own "ci" / "fuzz".

`benchmarks/fuzz_readers.py` runs the same `TARGETS` with the large profile (>= 10,000 cases) and
counts the cases per reader and the exception types seen.
"""

from __future__ import annotations

import calendar
import collections
import csv
import dataclasses
import datetime
import gzip
import importlib.util
import io
import math
import os
import pathlib
import re
import tempfile
import warnings
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from tf_attnrec.data import readers
from tf_attnrec.data.dataset import Dataset
from tf_attnrec.data.errors import DataFormatError

# ------------------------------------------------------------------------------- profiles
PROFILE_ENV = "TF_ATTNREC_FUZZ_PROFILE"
# Writing files per example is slow next to Hypothesis' budget, and random byte strings are big.
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
           HealthCheck.large_base_example]  # fmt: skip
settings.register_profile("readers-ci", max_examples=30, deadline=None, database=None, derandomize=True,
                          suppress_health_check=_HEALTH)  # fmt: skip
settings.register_profile("readers-fuzz", max_examples=1200, deadline=None, database=None,
                          suppress_health_check=_HEALTH)  # fmt: skip


def profile(name: Optional[str] = None) -> settings:
    """Settings for a run: `name`, else `$TF_ATTNREC_FUZZ_PROFILE`, else "ci"."""
    name = name or os.environ.get(PROFILE_ENV, "ci")
    try:
        return settings.get_profile(f"readers-{name}")
    except InvalidArgument:
        return settings.get_profile(name)


# ------------------------------------------------------------------- cases and judgement
@dataclasses.dataclass(frozen=True)
class Expect:
    """What a reader must do with a case.

    kind: "data" (returns `data`), "error" (raises `DataFormatError` naming `file`, `line` if
    set, and one of `words`), "either" (data, or a `DataFormatError` naming one of the case's
    files), "missing" (`FileNotFoundError` naming `file`) or "argument" (a plain `ValueError`).
    `warns`: substrings each of which some warning must contain (skip mode). `otherwise`: a second
    outcome that is also right.
    """

    kind: str
    data: Any = None
    file: str = ""
    line: Optional[int] = None
    words: tuple[str, ...] = ()
    warns: tuple[str, ...] = ()
    otherwise: Optional[Expect] = None


@dataclasses.dataclass(frozen=True)
class Case:
    """One generated input: files to write, the reader call, and the expected outcome."""

    reader: str
    files: dict  # file name -> bytes (a file absent from the dict is not written)
    expect: Expect
    target: str = ""  # the file passed to a single-file reader; "" passes the folder
    kwargs: dict = dataclasses.field(default_factory=dict)

    def __repr__(self) -> str:
        shown = {name: (raw if len(raw) <= 300 else raw[:300] + b"...") for name, raw in self.files.items()}
        return f"Case({self.reader}, target={self.target!r}, kwargs={self.kwargs}, files={shown}, expect={self.expect})"


@dataclasses.dataclass
class Tally:
    """Counts cases and outcomes; `strict` turns every problem into an AssertionError at once."""

    strict: bool = True
    cases: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    outcomes: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    problems: list = dataclasses.field(default_factory=list)

    def add(self, case: Case, outcome: Any, problem: Optional[str]) -> None:
        self.cases[case.reader] += 1
        name = type(outcome).__name__ if isinstance(outcome, BaseException) else "data"
        self.outcomes[(case.reader, name)] += 1
        if problem is None:
            return
        self.problems.append((case.reader, problem, case))
        if self.strict:
            raise AssertionError(f"{case.reader}: {problem}\n{case!r}")


READERS: dict[str, Callable[..., Any]] = {
    "read_sasrec_txt": readers.read_sasrec_txt,
    "read_movielens_ratings": readers.read_movielens_ratings,
    "read_movielens_movies": readers.read_movielens_movies,
    "read_movielens_users": readers.read_movielens_users,
    "read_movielens_1m": readers.read_movielens_1m,
    "read_sasrec_movielens_1m": readers.read_sasrec_movielens_1m,
    "read_movielens_100k": readers.read_movielens_100k,
    "read_interactions": readers.read_interactions,
}


def run_case(case: Case, tally: Tally) -> None:
    """Writes the case's files into a fresh folder, calls the reader and judges the outcome."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        for name, raw in case.files.items():
            (folder / name).write_bytes(raw)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                outcome = READERS[case.reader](folder / case.target if case.target else folder, **case.kwargs)
            except Exception as error:  # noqa: BLE001 (judged below: only DataFormatError may leave)
                outcome = error
        tally.add(case, outcome, judge(case, outcome, [str(w.message) for w in caught]))


def judge(case: Case, outcome: Any, warned: list[str]) -> Optional[str]:
    """None if `outcome` is what `case.expect` (or its `otherwise`) allows, else what is wrong."""
    problem = _judge(case, case.expect, outcome, warned)
    if problem and case.expect.otherwise is not None:
        return _judge(case, case.expect.otherwise, outcome, warned) and problem
    return problem


def _judge(case: Case, expect: Expect, outcome: Any, warned: list[str]) -> Optional[str]:
    if isinstance(outcome, BaseException):
        message = str(outcome)
        if isinstance(outcome, DataFormatError):
            if expect.kind == "either":
                if not any(name in message for name in case.files):
                    return f"DataFormatError names none of the files {list(case.files)}: {message}"
                return None
            if expect.kind != "error":
                return f"raised DataFormatError where {expect.kind} was expected: {message}"
            return _judge_message(expect, message)
        if isinstance(outcome, FileNotFoundError) and expect.kind == "missing":
            return None if expect.file in message else f"FileNotFoundError does not name {expect.file}: {message}"
        if type(outcome) is ValueError and expect.kind == "argument":
            return None
        return f"raised {type(outcome).__name__}: {message}"
    if expect.kind == "either":
        return None
    if expect.kind != "data":
        return f"returned data where {expect.kind} ({expect.file} {expect.words}) was expected"
    mismatch = _compare(_as_plain(outcome), expect.data)
    if mismatch:
        return f"silently wrong data: {mismatch}"
    for text in expect.warns:
        if not any(text in w for w in warned):
            return f"no warning says {text!r} (warnings: {warned})"
    if not expect.warns and any("skipped" in w for w in warned):
        return f"warned about skipped lines in a valid file: {warned}"
    return None


def _judge_message(expect: Expect, message: str) -> Optional[str]:
    if expect.file not in message:
        return f"message does not name the file {expect.file}: {message}"
    if expect.line is not None:
        # "line 3", "line(s) 3" or "line(s) 2, 3": the expected line among those named.
        numbers = re.findall(r"\blines?(?:\(s\))? ((?:\d+, )*\d+)", message, flags=re.IGNORECASE)
        if str(expect.line) not in ", ".join(numbers).split(", "):
            return f"message does not name line {expect.line}: {message}"
    if expect.words and not any(word.lower() in message.lower() for word in expect.words):
        return f"message says none of {expect.words}: {message}"
    return None


def _py(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return _py(value.item())
    if isinstance(value, tuple):
        return tuple(_py(v) for v in value)
    return value


def _frame_plain(frame: pd.DataFrame) -> dict:
    return {col: ([_py(v) for v in frame[col].tolist()], str(frame[col].dtype)) for col in frame.columns}


def _as_plain(result: Any) -> dict:
    if isinstance(result, Dataset):
        return {
            "interactions": _frame_plain(result.interactions),
            "items": None if result.items is None else _frame_plain(result.items),
            "users": None if result.users is None else _frame_plain(result.users),
        }
    return {"frame": _frame_plain(result)}


def _compare(actual: dict, expected: dict) -> Optional[str]:
    for table, columns in expected.items():
        got = actual.get(table)
        if columns is None or got is None:
            if columns is not got:
                return f"{table}: expected {columns}, got {got}"
            continue
        if list(got) != list(columns):
            return f"{table}: columns {list(got)}, expected {list(columns)}"
        for col, want in columns.items():
            values, dtype = got[col]
            # int64; "Int64" (nullable) where a Parquet column was so, as read; "year" is nullable.
            if want and all(type(v) is int for v in want) and col != "year" and dtype not in ("int64", "Int64"):
                return f"{table}.{col}: dtype {dtype}, expected int64 for {want[:5]}"
            if values != want:
                return f"{table}.{col}: read {values[:8]}, wrote {want[:8]}"
    return None


# ------------------------------------------------------------------ line-format strategies
INT64_MAX = 2**63 - 1
LATIN1 = readers.MOVIELENS_ENCODING
_KINDS = st.sampled_from(["valid"] * 5 + ["corrupt"] * 7 + ["encoding"] * 2 + ["empty"] + ["random", "mutated"] * 2)
_ID = st.one_of(st.integers(0, 9_999), st.integers(0, INT64_MAX), st.sampled_from([0, 1, INT64_MAX]))
_BAD_INT = st.one_of(
    st.sampled_from(["-1", "-0", "x", "1.5", "1e3", "+1", "0x1f", "1_000", "NaN", " ", "", str(2**63),
                     str(10**30), "9" * 40]),  # fmt: skip
    st.integers(max_value=-1).map(str),
    st.integers(min_value=2**63).map(str),
)
# Digits outside ASCII, which `\d` in a str regex accepts: only writable in a UTF-8 file.
_BAD_INT_UTF8 = st.sampled_from(["\u0661", "\uff11\uff12", "\u0967\u0968"])
_BLANK = st.sampled_from(["", " ", "\t", "  "])


def _codec(encoding: str) -> str:
    return {"ascii": "ascii", "utf-8": "utf-8"}.get(encoding.lower(), "latin-1")


def _text(encoding: str, exclude: str, min_size: int = 0, max_size: int = 10) -> st.SearchStrategy[str]:
    """Free text for one field: any character of the file's encoding except `exclude` and line ends."""
    chars = st.characters(codec=_codec(encoding), exclude_characters=exclude + "\r\n")
    return st.text(chars, min_size=min_size, max_size=max_size)


@dataclasses.dataclass(frozen=True)
class Row:
    values: tuple  # what the reader must return for the row
    fields: tuple  # the row's fields as written


@st.composite
def _int_field(draw, value_strategy=_ID) -> tuple[int, str]:
    value = draw(value_strategy)
    return value, draw(st.sampled_from(["", "", "", "0", "000"])) + str(value)


@dataclasses.dataclass(frozen=True)
class LineFormat:
    """A one-record-per-line file format, from which valid and corrupted lines are drawn."""

    file: str
    encoding: str
    rows: st.SearchStrategy  # of Row
    sep: str
    int_fields: tuple
    columns: Callable[[list], dict]  # the expected columns for a list of Row.values
    bad_fields: dict = dataclasses.field(default_factory=dict)  # field index -> bad text strategy
    wrong_seps: tuple = (",", ";", "|", "\t")
    whitespace_sep: bool = False  # SASRec: any run of spaces/tabs, also around the line

    @st.composite
    def line(draw, self, row: Row) -> str:
        if not self.whitespace_sep:
            return self.sep.join(row.fields)
        gaps = [draw(st.sampled_from([" ", "\t", "  ", " \t "])) for _ in row.fields[1:]]
        text = row.fields[0] + "".join(gap + field for gap, field in zip(gaps, row.fields[1:]))
        pad = st.sampled_from(["", "", " ", "\t"])
        return draw(pad) + text + draw(pad)

    @st.composite
    def bad_line(draw, self, row: Row) -> str:
        """A line the format's documented pattern rejects, derived from a valid row."""
        fields = list(row.fields)
        kind = draw(st.sampled_from(["int", "int", "field", "drop", "add", "sep", "blank"]))
        if kind == "field" and self.bad_fields:
            index = draw(st.sampled_from(sorted(self.bad_fields)))
            fields[index] = draw(self.bad_fields[index])
        elif kind == "drop":
            del fields[draw(st.integers(0, len(fields) - 1))]
        elif kind == "add":
            fields.insert(draw(st.integers(0, len(fields))), draw(st.sampled_from(["5", "x", "0"])))
        elif kind == "sep":
            return draw(st.sampled_from(self.wrong_seps)).join(fields)
        elif kind == "blank":
            return draw(_BLANK)
        else:
            bad = st.one_of(_BAD_INT, _BAD_INT_UTF8) if self.encoding.lower() == "utf-8" else _BAD_INT
            fields[draw(st.sampled_from(self.int_fields))] = draw(bad)
        sep = " " if self.whitespace_sep else self.sep
        return sep.join(fields)


@st.composite
def _rows_of(draw, fields: list) -> Row:
    """A Row from per-field strategies; an int field is drawn with `_int_field` (leading zeros)."""
    values, texts = [], []
    for spec in fields:
        if spec is int:
            value, text = draw(_int_field())
        else:
            value, text = draw(spec)
        values.append(value)
        texts.append(text)
    return Row(tuple(values), tuple(texts))


def _same(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """A field written exactly as its value."""
    return strategy.map(lambda value: (value, value))


def _columns(names: list) -> Callable[[list], dict]:
    return lambda rows: {name: [row[i] for row in rows] for i, name in enumerate(names)}


def sasrec_format(file: str = "seq.txt") -> LineFormat:
    def columns(rows):
        return {"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows], "timestamp": list(range(len(rows)))}

    return LineFormat(file, "ascii", _rows_of([int, int]), " ", (0, 1), columns,
                      wrong_seps=(",", ";", "::", "|", "-", "_"), whitespace_sep=True)  # fmt: skip


def ratings_format(encoding: str = LATIN1) -> LineFormat:
    return LineFormat("ratings.dat", encoding, _rows_of([int] * 4), "::", (0, 1, 2, 3),
                      _columns(["user_id", "item_id", "rating", "timestamp"]),
                      wrong_seps=(":", ",", "\t", " :: ", ":::", "|"))  # fmt: skip


_GENDER = _same(st.sampled_from(["M", "F"]))
_BAD_GENDER = st.sampled_from(["X", "m", "f", "", "MF", " M", "M "])


def users_format(encoding: str = LATIN1) -> LineFormat:
    zip_code = _same(_text(encoding, ":\t"))
    bad_zip = st.sampled_from(["a\tb", "\t", "1:2", ":"])  # a tab would split the field when parsed
    return LineFormat("users.dat", encoding, _rows_of([int, _GENDER, int, int, zip_code]), "::", (0, 2, 3),
                      _columns(["user_id", "gender", "age", "occupation", "zip_code"]),
                      bad_fields={1: _BAD_GENDER, 4: bad_zip},
                      wrong_seps=(":", ",", "\t", " :: ", ":::", "|"))  # fmt: skip


@st.composite
def _title(draw, encoding: str, exclude: str) -> tuple[str, Optional[int]]:
    """A title (words joined by " " or ": ", never "::") and the year the reader must find in it."""
    words = draw(st.lists(_text(encoding, exclude + ":(", min_size=1, max_size=8), min_size=1, max_size=3))
    title = draw(st.sampled_from([" ", ": "])).join(words)
    suffixes = [("", None), (" (95)", None), ("(12345)", None)]
    year = draw(st.integers(1000, 2999))
    suffixes += [(f" ({year})", year)] * 3
    if encoding.lower() == "utf-8":
        suffixes.append((" (\u0661\u0669\u0669\u0665)", None))  # not a GroupLens year: ASCII digits only
    suffix, found = draw(st.sampled_from(suffixes))
    return title + suffix, found


def movies_format(encoding: str = LATIN1) -> LineFormat:
    genre = _text(encoding, ":|", min_size=1, max_size=8)

    @st.composite
    def rows(draw):
        value, text = draw(_int_field())
        title, year = draw(_title(encoding, ""))
        genres = tuple(draw(st.lists(genre, max_size=3)))
        return Row((value, title, genres, year), (text, title, "|".join(genres)))

    return LineFormat("movies.dat", encoding, rows(), "::", (0,), _columns(["item_id", "title", "genres", "year"]),
                      bad_fields={1: st.just("")}, wrong_seps=(":", ",", "\t", " :: ", "|"))  # fmt: skip


def u_data_format() -> LineFormat:
    return LineFormat("u.data", LATIN1, _rows_of([int] * 4), "\t", (0, 1, 2, 3),
                      _columns(["user_id", "item_id", "rating", "timestamp"]),
                      wrong_seps=(" ", ",", "::", "  ", "|"))  # fmt: skip


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def u_item_format(genre_names: tuple) -> LineFormat:
    """u.item with one 0/1 flag per genre of `genre_names` (in index order)."""
    free = _text(LATIN1, "|")

    @st.composite
    def rows(draw):
        value, text = draw(_int_field())
        title, year = draw(_title(LATIN1, "|"))
        release_year = draw(st.integers(1900, 2099))
        date = f"{draw(st.integers(1, 28)):02d}-{draw(st.sampled_from(_MONTHS))}-{release_year}"
        release = draw(st.sampled_from(["", date]))
        url = "http://us.imdb.com/" + draw(free)
        flags = draw(st.lists(st.sampled_from("01"), min_size=len(genre_names), max_size=len(genre_names)))
        genres = tuple(name for name, flag in zip(genre_names, flags) if flag == "1")
        found = year if year is not None else (release_year if release else None)
        return Row((value, title, genres, found, release, url), (text, title, release, draw(free), url, *flags))

    flag_index = range(5, 5 + len(genre_names))
    bad_flag = st.sampled_from(["2", "", "x", "00", "-1", " 1", "1 "])
    return LineFormat("u.item", LATIN1, rows(), "|", (0,),
                      _columns(["item_id", "title", "genres", "year", "release_date", "imdb_url"]),
                      bad_fields={i: bad_flag for i in flag_index}, wrong_seps=(",", "\t", "||", ";"))  # fmt: skip


def u_user_format() -> LineFormat:
    free = _same(_text(LATIN1, "|"))

    def columns(rows):
        names = ["user_id", "age", "gender", "occupation", "zip_code"]
        picked = _columns(names)(rows)
        return {name: picked[name] for name in ["user_id", "gender", "age", "occupation", "zip_code"]}

    return LineFormat("u.user", LATIN1, _rows_of([int, int, _GENDER, free, free]), "|", (0, 1), columns,
                      bad_fields={2: _BAD_GENDER}, wrong_seps=(",", "\t", "::", ";"))  # fmt: skip


# ------------------------------------------------------------------------ whole files
@dataclasses.dataclass(frozen=True)
class TextFile:
    raw: bytes
    good: tuple  # Row.values of the valid lines, in file order
    bad_lines: tuple  # 1-based numbers of the corrupted lines


@st.composite
def text_file(draw, fmt: LineFormat, corrupt: bool = False, rows: Optional[list] = None,
              encoding: Optional[str] = None) -> TextFile:  # fmt: skip
    """A file of `fmt` lines (drawn, or from `rows`), optionally with 1-3 corrupted lines."""
    if rows is None:
        rows = draw(st.lists(fmt.rows, min_size=1, max_size=6))
    lines: list = [(draw(fmt.line(row)), row) for row in rows]
    if corrupt:
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(lines)))
            source = lines[at][1] if at < len(lines) and lines[at][1] else draw(fmt.rows)
            bad = (draw(fmt.bad_line(source)), None)
            if at < len(lines) and draw(st.booleans()):
                lines[at] = bad
            else:
                lines.insert(at, bad)
    eol = draw(st.sampled_from(["\n", "\n", "\r\n"]))
    trailing = draw(st.booleans()) or lines[-1][0] == ""  # else a last empty line would vanish
    text = eol.join(line for line, _ in lines) + (eol if trailing else "")
    encoding = encoding or fmt.encoding
    if encoding.lower() == "utf-8" and draw(st.integers(0, 4)) == 0:
        text = "\ufeff" + text  # a UTF-8 byte-order mark is allowed
    good = tuple(row.values for _, row in lines if row is not None)
    bad_lines = tuple(i + 1 for i, (_, row) in enumerate(lines) if row is None)
    return TextFile(text.encode(encoding), good, bad_lines)


def expect_text_file(f: TextFile, fmt: LineFormat, mode: str) -> Expect:
    """What a fixed-format reader must do with `f` in on_bad_lines `mode`."""
    if not f.raw.strip():
        return Expect("error", file=fmt.file, words=("empty",))
    if not f.bad_lines:
        return Expect("data", data=fmt.columns(list(f.good)))
    if mode == "error":
        return Expect("error", file=fmt.file, line=f.bad_lines[0], words=("expected",))
    if not f.good:
        return Expect("error", file=fmt.file, words=("no line matches",))
    warning = f"skipped {len(f.bad_lines)} malformed line(s) (first: line {f.bad_lines[0]})"
    return Expect("data", data=fmt.columns(list(f.good)), warns=(warning,))


def expect_decoding(raw: bytes, encoding: str, file: str, otherwise: Expect) -> Expect:
    """A file that does not decode must be reported at the line of its first bad byte."""
    try:
        raw.decode(encoding)
    except UnicodeDecodeError as error:
        return Expect("error", file=file, line=raw.count(b"\n", 0, error.start) + 1, words=("not valid",))
    return otherwise


_EMPTY = st.sampled_from([b"", b"\n", b"\r\n", b" \t\n", b"\n\n\n"])


@st.composite
def mutated(draw, raw: bytes) -> bytes:
    """`raw` with a few bytes overwritten, inserted or deleted."""
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        byte = draw(st.integers(0, 255))
        action = draw(st.sampled_from(["set", "insert", "delete"]))
        if action == "insert" or at == len(data):
            data.insert(at, byte)
        elif action == "set":
            data[at] = byte
        else:
            del data[at]
    return bytes(data)


@st.composite
def hostile_file(draw, fmt: LineFormat, kind: str, mode: str, read_encoding: str) -> tuple[bytes, Expect]:
    """A file of `fmt` of the given kind, and what the reader must do with it."""
    if kind in ("valid", "corrupt"):
        f = draw(text_file(fmt, corrupt=kind == "corrupt", encoding=read_encoding))
        return f.raw, expect_text_file(f, fmt, mode)
    if kind == "empty":
        return draw(_EMPTY), Expect("error", file=fmt.file, words=("empty",))
    if kind == "random":
        return draw(st.binary(max_size=200)), Expect("either")
    if kind == "mutated":
        return draw(mutated(draw(text_file(fmt)).raw)), Expect("either")
    # Wrong encoding: UTF-16, or ISO-8859-1 bytes where UTF-8 / ASCII is expected.
    text = draw(text_file(fmt, encoding=LATIN1 if fmt.encoding != "ascii" else "ascii")).raw.decode(
        LATIN1 if fmt.encoding != "ascii" else "ascii"
    )
    if read_encoding.lower() != "utf-8" and fmt.encoding != "ascii" or draw(st.booleans()):
        raw = text.encode("utf-16")
        # Decodable as ISO-8859-1, but "\xff\xfe" cannot start a line of any of these formats, and
        # the NUL after each byte spoils every other line.
        otherwise = Expect("error", file=fmt.file, line=1, words=("expected",))
        if mode == "skip":
            otherwise = Expect("error", file=fmt.file, words=("no line matches",))
        return raw, expect_decoding(raw, read_encoding, fmt.file, otherwise)
    at = draw(st.integers(0, len(text)))
    raw = (text[:at] + draw(st.sampled_from("\xe9\xfc\xdf\xff\xa0")) + text[at:]).encode(LATIN1)
    return raw, expect_decoding(raw, read_encoding, fmt.file, Expect("either"))


def _single(expect: Expect) -> Expect:
    """A single-file reader returns one frame."""
    return dataclasses.replace(expect, data={"frame": expect.data}) if expect.kind == "data" else expect


def _mode_kwargs(mode: str, draw) -> dict:
    return {"on_bad_lines": mode} if mode == "skip" or draw(st.booleans()) else {}


# ---------------------------------------------------------------------- per-reader cases
@st.composite
def sasrec_cases(draw) -> Case:
    fmt, mode, kind = sasrec_format(), draw(st.sampled_from(["error", "skip"])), draw(_KINDS)
    raw, expect = draw(hostile_file(fmt, kind, mode, "ascii"))
    return Case("read_sasrec_txt", {fmt.file: raw}, _single(expect), fmt.file, _mode_kwargs(mode, draw))


def _movielens_file_cases(reader: str, make_format: Callable[[str], LineFormat]):
    @st.composite
    def cases(draw) -> Case:
        mode, kind = draw(st.sampled_from(["error", "skip"])), draw(_KINDS)
        encoding = draw(st.sampled_from([LATIN1, LATIN1, "utf-8"]))
        fmt = make_format(LATIN1 if kind == "encoding" else encoding)  # wrong-encoding text: ISO-8859-1
        raw, expect = draw(hostile_file(fmt, kind, mode, encoding))
        kwargs = _mode_kwargs(mode, draw)
        if encoding != LATIN1:
            kwargs["encoding"] = encoding
        return Case(reader, {fmt.file: raw}, _single(expect), fmt.file, kwargs)

    return cases()


def _first_problem(parts: list) -> Optional[Expect]:
    """The expectation of the first file (in reading order) that is not plain data."""
    for expect in parts:
        if expect.kind != "data":
            return expect
    return None


@st.composite
def movielens_1m_cases(draw) -> Case:
    mode = draw(st.sampled_from(["error", "skip"]))
    formats = [ratings_format(), movies_format(), users_format()]
    hostile = draw(st.sampled_from([None, None, 0, 1, 2]))
    files, parts = {}, []
    for i, fmt in enumerate(formats):
        if i == hostile and draw(st.integers(0, 5)) == 0:
            parts.append(Expect("missing", file=fmt.file))
            continue
        kind = draw(_KINDS) if i == hostile else "valid"
        files[fmt.file], expect = draw(hostile_file(fmt, kind, mode, LATIN1))
        parts.append(dataclasses.replace(expect, file=fmt.file))
    problem = _first_problem(parts)
    if problem is None:
        data = {"interactions": parts[0].data, "items": parts[1].data, "users": parts[2].data}
        problem = Expect("data", data=data, warns=sum((p.warns for p in parts), ()))
    return Case("read_movielens_1m", files, problem, "", _mode_kwargs(mode, draw))


@st.composite
def sasrec_movielens_1m_cases(draw) -> Case:
    """ml-1m.txt (dense ids), ml-1m_original_ids.txt (same rows, original ids) and metadata."""
    mode = draw(st.sampled_from(["error", "error", "skip"]))
    orig_users = draw(st.lists(_ID, min_size=1, max_size=4, unique=True))
    orig_items = draw(st.lists(_ID, min_size=1, max_size=5, unique=True))
    dense_users = draw(st.lists(_ID, min_size=len(orig_users), max_size=len(orig_users), unique=True))
    dense_items = draw(st.lists(_ID, min_size=len(orig_items), max_size=len(orig_items), unique=True))
    pairs = draw(st.lists(st.tuples(st.integers(0, len(orig_users) - 1), st.integers(0, len(orig_items) - 1)),
                          min_size=1, max_size=8))  # fmt: skip
    txt, ids = sasrec_format("ml-1m.txt"), sasrec_format("ml-1m_original_ids.txt")
    movies, users = movies_format(), users_format()
    dense_rows = [Row((dense_users[u], dense_items[i]), (str(dense_users[u]), str(dense_items[i]))) for u, i in pairs]
    orig_rows = [Row((orig_users[u], orig_items[i]), (str(orig_users[u]), str(orig_items[i]))) for u, i in pairs]
    used_items = sorted({i for _, i in pairs})
    used_users = sorted({u for u, _ in pairs})
    # Metadata: one row per used original id, plus unused extras, in any order.
    movie_rows = {orig_items[i]: draw(movies.rows) for i in used_items}
    user_rows = {orig_users[u]: draw(users.rows) for u in used_users}
    for extra in draw(st.lists(_ID, max_size=2)):
        movie_rows.setdefault(extra, draw(movies.rows))
    for extra in draw(st.lists(_ID, max_size=2)):
        user_rows.setdefault(extra, draw(users.rows))
    movie_rows = {k: _with_id(r, k) for k, r in movie_rows.items()}
    user_rows = {k: _with_id(r, k) for k, r in user_rows.items()}

    has_ids = draw(st.sampled_from([True, True, True, False]))
    has_movies, has_users = draw(st.booleans()), draw(st.booleans())
    flaw = draw(st.sampled_from(["none"] * 4 + ["line", "line", "rows", "one_to_one", "no_metadata",
                                                 "duplicate_metadata", "missing_txt"]))  # fmt: skip
    has_ids = has_ids if flaw == "none" else True
    if flaw in ("no_metadata", "duplicate_metadata"):
        has_movies = has_movies or not has_users
    joined = mode == "error"  # metadata is joined only when no line may be dropped
    corrupt_file = draw(st.sampled_from(["ml-1m.txt", "ml-1m_original_ids.txt", "movies.dat", "users.dat"]))
    expect: Optional[Expect] = None

    def file_of(fmt: LineFormat, rows: list, corrupt: bool) -> TextFile:
        return draw(text_file(fmt, corrupt=corrupt, rows=rows))

    if flaw == "rows":
        orig_rows = orig_rows + [draw(_rows_of([int, int]))]
    if flaw == "one_to_one":
        orig_rows, broken = _break_one_to_one(draw, orig_rows)
        flaw = flaw if broken else "none"
    movie_lines = [movie_rows[k] for k in draw(st.permutations(sorted(movie_rows)))]
    user_lines = [user_rows[k] for k in draw(st.permutations(sorted(user_rows)))]
    duplicate_line = None
    if flaw == "no_metadata":
        victim = orig_items[used_items[0]] if has_movies else orig_users[used_users[0]]
        if has_movies:
            movie_lines = [r for r in movie_lines if r.values[0] != victim]
        else:
            user_lines = [r for r in user_lines if r.values[0] != victim]
    if flaw == "duplicate_metadata":
        lines = movie_lines if has_movies else user_lines
        at = draw(st.integers(0, len(lines) - 1))
        copy = _with_id(draw(movies.rows if has_movies else users.rows), lines[at].values[0])
        insert_at = draw(st.integers(at + 1, len(lines)))
        lines.insert(insert_at, copy)
        duplicate_line = insert_at + 1

    files: dict = {}
    parts: dict = {}
    for fmt, rows, present in [(txt, dense_rows, flaw != "missing_txt"), (ids, orig_rows, has_ids),
                               (movies, movie_lines, has_movies), (users, user_lines, has_users)]:  # fmt: skip
        if not present:
            continue
        corrupt = flaw == "line" and fmt.file == corrupt_file
        if not rows:  # all metadata removed: an empty file
            files[fmt.file], parts[fmt.file] = b"", Expect("error", file=fmt.file, words=("empty",))
            continue
        f = file_of(fmt, rows, corrupt)
        files[fmt.file] = f.raw
        parts[fmt.file] = expect_text_file(f, fmt, mode if fmt.file == "ml-1m.txt" else "error")

    txt_part = parts.get("ml-1m.txt")
    if txt_part is None:
        expect = Expect("missing", file="ml-1m.txt")
    elif txt_part.kind != "data" or mode == "skip" or not has_ids:
        expect = txt_part
    elif parts["ml-1m_original_ids.txt"].kind != "data":
        expect = parts["ml-1m_original_ids.txt"]
    elif flaw == "rows":
        expect = Expect("error", file="ml-1m_original_ids.txt", words=("rows",))
    elif flaw == "one_to_one":
        expect = Expect("error", file="ml-1m_original_ids.txt", words=("one-to-one",))
    else:
        for name in ("movies.dat", "users.dat"):
            part = parts.get(name)
            if part is not None and part.kind != "data":
                expect = part
                break
            if part is not None and flaw == "duplicate_metadata" and (name == "movies.dat") == has_movies:
                expect = Expect("error", file=name, line=duplicate_line, words=("duplicate",))
                break
            if part is not None and flaw == "no_metadata" and (name == "movies.dat") == has_movies:
                expect = Expect("error", file=name, words=("no metadata",))
                break
    if expect is None:
        interactions = dict(txt_part.data)
        interactions["original_user_id"] = [r.values[0] for r in orig_rows]
        interactions["original_item_id"] = [r.values[1] for r in orig_rows]
        items = users_table = None
        if has_movies and joined:
            items = {"item_id": [], "original_item_id": [], "title": [], "genres": [], "year": []}
            for i in sorted(used_items, key=lambda i: dense_items[i]):
                _, title, genres, year = movie_rows[orig_items[i]].values
                for col, value in zip(items, (dense_items[i], orig_items[i], title, genres, year)):
                    items[col].append(value)
        if has_users and joined:
            users_table = {col: [] for col in ("user_id", "original_user_id", "gender", "age", "occupation", "zip_code")}
            for u in sorted(used_users, key=lambda u: dense_users[u]):
                _, gender, age, occupation, zip_code = user_rows[orig_users[u]].values
                for col, value in zip(users_table, (dense_users[u], orig_users[u], gender, age, occupation, zip_code)):
                    users_table[col].append(value)
        expect = Expect("data", data={"interactions": interactions, "items": items, "users": users_table})
    elif expect.kind == "data":  # skip mode, or no id file: the interactions only
        expect = Expect("data", data={"interactions": expect.data, "items": None, "users": None}, warns=expect.warns)
    return Case("read_sasrec_movielens_1m", files, expect, "", _mode_kwargs(mode, draw))


def _with_id(row: Row, value: int) -> Row:
    """`row` with its first (id) field set to `value`."""
    return Row((value, *row.values[1:]), (str(value), *row.fields[1:]))


def _break_one_to_one(draw, rows: list) -> tuple[list, bool]:
    """Gives one row of the id file an original item id that makes the mapping not one-to-one."""
    originals = sorted({r.values[1] for r in rows})
    at = draw(st.integers(0, len(rows) - 1))
    choices = [o for o in originals if o != rows[at].values[1]]
    if not choices:
        return rows, False
    user, _ = rows[at].values
    # Two dense items (or one dense item twice) now share an original id, or one dense item has two.
    replacement = draw(st.sampled_from(choices))
    rows = list(rows)
    rows[at] = Row((user, replacement), (str(user), str(replacement)))
    return rows, True


_DEFAULT_GENRES = readers._ML100K_GENRES


@st.composite
def movielens_100k_cases(draw) -> Case:
    mode = draw(st.sampled_from(["error", "skip"]))
    genre_file = draw(st.sampled_from(["default", "custom", "custom", "duplicate", "clash", "blank", "bad"]))
    if genre_file == "default":
        names = _DEFAULT_GENRES
    else:
        names = tuple(draw(st.lists(_text(LATIN1, "|", min_size=1, max_size=8), min_size=1, max_size=5, unique=True)))
        if genre_file == "clash":  # genre names equal to the reader's own column names
            own = st.sampled_from(["item_id", "title", "release_date", "imdb_url", "video_release_date"])
            names = tuple(dict.fromkeys((*names, *draw(st.lists(own, min_size=1, max_size=2)))))
    order = draw(st.permutations(range(len(names))))
    genre_lines = [f"{names[i]}|{i}" for i in order]
    genre_problem = None
    if genre_file == "duplicate":
        at = draw(st.integers(0, len(genre_lines) - 1))
        genre_lines.append(f"{names[order[at]]}|{len(names)}")
        genre_problem = Expect("error", file="u.genre", line=len(genre_lines), words=("duplicate",))
    elif genre_file in ("blank", "bad"):
        at = draw(st.integers(0, len(genre_lines) - 1))
        bad = "" if genre_file == "blank" else draw(st.sampled_from(["x", "x|", "x|y", "|1", "x|1|2", "x|-1"]))
        genre_lines.insert(at, bad)
        genre_problem = Expect("error", file="u.genre", line=at + 1, words=("expected",))
    files: dict = {}
    parts = []
    hostile = draw(st.sampled_from([None, None, "u.data", "u.item", "u.user"]))
    formats = {"u.data": u_data_format(), "u.item": u_item_format(names), "u.user": u_user_format()}
    for name in ("u.data", "u.genre", "u.item", "u.user"):
        if name == "u.genre":
            if genre_file != "default":
                files[name] = ("\n".join(genre_lines) + draw(st.sampled_from(["", "\n", "\n\n"]))).encode(LATIN1)
                parts.append(genre_problem or Expect("data"))
            continue
        fmt = formats[name]
        if name == hostile and draw(st.integers(0, 5)) == 0:
            parts.append(Expect("missing", file=name))
            continue
        kind = draw(_KINDS) if name == hostile else "valid"
        files[name], expect = draw(hostile_file(fmt, kind, mode, LATIN1))
        parts.append(dataclasses.replace(expect, file=name))
    expect = _first_problem(parts)
    if expect is None:
        data = {"interactions": parts[0].data, "items": parts[-2].data, "users": parts[-1].data}
        expect = Expect("data", data=data, warns=sum((p.warns for p in parts), ()))
    return Case("read_movielens_100k", files, expect, "", _mode_kwargs(mode, draw))


# ------------------------------------------------------------------- read_interactions
_RESERVED = ("user_id", "item_id", "timestamp")
HAVE_PYARROW = importlib.util.find_spec("pyarrow") is not None  # the "parquet" extra
_COLUMN_NAME = st.text("abcdefghijklmnopqrstuvwxyz0123456789_ -.\xe9", max_size=6).map(lambda s: "c" + s)


def _value_text(encoding: str) -> st.SearchStrategy[str]:
    # Quotes, separators and NUL are quoted/kept by the CSV writer; no line breaks (line numbers).
    chars = "abcXYZ0123456789 ,;|\t\"'\x00" + ("\xe9\xdf" if encoding != "ascii" else "")
    return st.text(chars, max_size=6).map(lambda s: "v" + s)


_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d")


@st.composite
def _column(draw, kind: str, n: int, encoding: str) -> tuple[list, list]:
    """n (value, text) pairs of a column of `kind`: the value the reader must return, the text written."""
    if kind == "int":
        values = draw(st.lists(st.one_of(st.integers(-(2**63), INT64_MAX), st.integers(-50, 5000),
                                         st.sampled_from([-(2**63), INT64_MAX])), min_size=n, max_size=n))  # fmt: skip
        return values, [str(v) for v in values]
    if kind == "date":
        moments = draw(st.lists(st.datetimes(datetime.datetime(1000, 1, 1), datetime.datetime(9999, 12, 31)),
                                min_size=n, max_size=n))  # fmt: skip
        texts, values = [], []
        for moment in moments:
            fmt = draw(st.sampled_from(_DATE_FORMATS))
            text = moment.strftime(fmt)
            parsed = datetime.datetime.strptime(text.removesuffix("Z"), fmt.removesuffix("Z"))
            texts.append(text)
            values.append(calendar.timegm(parsed.timetuple()))
        return values, texts
    values = draw(st.lists(_value_text(encoding), min_size=n, max_size=n))
    return values, values


_CSV_FLAWS = st.sampled_from(["valid"] * 6 + ["extra_field", "extra_field", "drop_field", "drop_field", "empty_value",
                              "blank_line", "duplicate_header", "missing_column", "clash", "same_column", "bad_id",
                              "bad_id", "bad_timestamp", "bad_timestamp", "encoding", "empty", "header_only",
                              "random", "mutated", "parquet"])  # fmt: skip


@st.composite
def interactions_cases(draw) -> Case:
    """A user's CSV (or Parquet) log, valid or with one flaw, and the column flags to read it with."""
    flaw = draw(_CSV_FLAWS)
    if flaw == "parquet" and HAVE_PYARROW:
        return draw(parquet_cases())
    mode = draw(st.sampled_from(["error", "skip"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "ISO-8859-1", "utf-16"]))
    sep = draw(st.sampled_from([",", ",", ";", "\t", "|"]))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    n = draw(st.integers(1, 5))
    names = draw(st.lists(_COLUMN_NAME, min_size=5, max_size=5, unique=True))
    user_col, item_col, ts_col = names[:3]
    with_ts = draw(st.booleans())
    extra = names[3:3 + draw(st.integers(0, 2))]
    header = [user_col, item_col] + ([ts_col] if with_ts else []) + list(extra)
    header = list(draw(st.permutations(header)))
    kinds = {user_col: draw(st.sampled_from(["int", "str"])), item_col: draw(st.sampled_from(["int", "str"])),
             ts_col: draw(st.sampled_from(["int", "date"]))}  # fmt: skip
    kinds.update({col: draw(st.sampled_from(["int", "str"])) for col in extra})
    columns = {col: draw(_column(kinds[col], n, encoding)) for col in header}
    texts = [[columns[col][1][r] for col in header] for r in range(n)]
    file = "log.csv"
    kwargs = {"user_col": user_col, "item_col": item_col}
    if with_ts:
        kwargs["timestamp_col"] = ts_col
    if sep != ",":
        kwargs["sep"] = sep
    if encoding != "utf-8":
        kwargs["encoding"] = encoding
    if mode == "skip" or draw(st.booleans()):
        kwargs["on_bad_lines"] = mode
    renamed = {user_col: "user_id", item_col: "item_id", ts_col: "timestamp"}
    required = [c for c in (user_col, item_col) + ((ts_col,) if with_ts else ())]

    def table(rows: list, as_text: Optional[str] = None) -> dict:
        """The frame of `rows` as the reader returns it (column `as_text` as the texts written)."""
        return {"frame": {renamed[c] if c in required else c: [texts[r][header.index(c)] if c == as_text
                                                               else columns[c][0][r] for r in rows]
                          for c in header}}  # fmt: skip
    keep = list(range(n))  # rows the reader must return
    expect: Optional[Expect] = None
    header_texts = list(header)
    lines: Optional[list] = None  # raw lines, when a flaw cannot be written by the CSV writer

    row = draw(st.integers(0, n - 1))
    line = row + 2
    if flaw == "extra_field":
        token = draw(st.sampled_from(["5", "x", ""]))
        texts[row] = texts[row] + [token]
        expect = Expect("error", file=file, line=line, words=("field",))
        if mode == "skip" and row > 0:
            keep.remove(row)
            expect = _csv_skip_expect("skipped 1 row(s) with the wrong number of fields")
        if row == 0 and token == "":  # a trailing separator: pandas' "delimiter at the end" form
            expect = dataclasses.replace(expect, otherwise=Expect("data", data=table(list(range(n)))))
    elif flaw == "drop_field":
        del texts[row][draw(st.integers(0, len(header) - 1))]
        if mode == "error":
            expect = Expect("error", file=file, line=line, words=("field", "lack a value"))
        else:
            keep.remove(row)
            expect = _csv_skip_expect("skipped 1 row(s)")
    elif flaw == "empty_value":
        texts[row][header.index(draw(st.sampled_from(required)))] = draw(st.sampled_from(["", "NA", "nan", "NULL"]))
        if mode == "error":
            expect = Expect("error", file=file, line=line, words=("lack a value",))
        else:
            keep.remove(row)
            expect = _csv_skip_expect("skipped 1 row(s) missing")
    elif flaw == "blank_line" and n > 1:  # between rows (pandas ignores one right after the header)
        row = draw(st.integers(1, n - 1))
        line = row + 2
        texts.insert(row, [])
        if mode == "error":
            expect = Expect("error", file=file, line=line, words=("lack a value",))
        else:
            expect = _csv_skip_expect("skipped 1 row(s)")
    elif flaw == "duplicate_header":
        at, source = draw(st.permutations(range(len(header))))[:2] if len(header) > 1 else (0, 0)
        header_texts[at] = header[source]
        if at != source:
            expect = Expect("error", file=file, line=1, words=("duplicate",))
    elif flaw == "missing_column":
        absent = draw(st.sampled_from(["user_col", "item_col", "timestamp_col"]))
        kwargs[absent] = names[4] if names[4] not in header else "no such column"
        expect = Expect("error", file=file, words=("no column",))
    elif flaw == "clash":
        at = draw(st.integers(0, len(header) - 1))
        reserved = draw(st.sampled_from(_RESERVED[:3] if with_ts else _RESERVED[:2]))
        if header[at] not in required:
            header_texts[at] = reserved
            expect = Expect("error", file=file, words=("already has",))
    elif flaw == "same_column":
        kwargs["item_col"] = user_col if draw(st.booleans()) or not with_ts else ts_col
        expect = Expect("argument")
    elif flaw == "bad_id":
        ints = [c for c in (user_col, item_col) if kinds[c] == "int"]
        if ints:
            col = draw(st.sampled_from(ints))
            token = draw(st.sampled_from(["1.5", "1e30", "-1e30", str(10**30), str(2**63), "inf", "1e300",
                                          str(-(2**63) - 1)]))  # fmt: skip
            texts[row][header.index(col)] = token
            expect = Expect("error", file=file, line=line, words=("expected",))
            if re.fullmatch(r"-?[0-9]+", token):
                # Digits beyond int64 next to negative ids: pandas reads the column as text, so the
                # ids come back as the strings written (documented: "dtype as read").
                expect = dataclasses.replace(expect, otherwise=Expect("data", data=table(keep, as_text=col)))
    elif flaw == "bad_timestamp":
        if with_ts:
            bad = ["yesterday", "1e30", str(2**63), str(10**30), "99999-01-01", "1.5", "2003-13-45"]
            texts[row][header.index(ts_col)] = draw(st.sampled_from(bad))
            expect = Expect("error", file=file, line=line, words=("timestamp",))
    elif flaw == "header_only":
        texts = []
        expect = Expect("error", file=file, words=("no data rows",))
    elif flaw == "empty":
        lines = []
        expect = Expect("error", file=file, words=("empty", "no data rows"))

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=sep, lineterminator=eol, quoting=csv.QUOTE_MINIMAL)
    for fields in [header_texts] + texts:
        if fields:
            writer.writerow(fields)
        else:
            buffer.write(eol)
    text = buffer.getvalue()
    if lines is not None:
        text = draw(st.sampled_from(["", "\n", "\r\n", "\n\n"]))
    elif texts and draw(st.booleans()):
        text = text[: -len(eol)]  # no newline after the last row
    raw = text.encode(encoding)
    if flaw == "encoding":  # read as UTF-8: UTF-16 bytes, or ISO-8859-1 bytes with an "\xe9"
        kwargs.pop("encoding", None)
        if draw(st.booleans()):
            raw = text.encode("utf-16")
        else:
            at = draw(st.integers(0, len(text)))
            raw = (text[:at] + "\xe9" + text[at:]).encode(LATIN1)
        expect = expect_decoding(raw, "utf-8", file, Expect("either"))
    elif flaw == "random":
        raw, expect = draw(st.binary(max_size=200)), Expect("either")
    elif flaw == "mutated":
        raw, expect = draw(mutated(raw)), Expect("either")
    elif draw(st.integers(0, 4)) == 0:  # gzip: pandas decompresses; rows are counted another way
        file, raw = "log.csv.gz", gzip.compress(raw)
        expect = dataclasses.replace(expect, file=file) if expect is not None and expect.file else expect
    if expect is None:
        expect = Expect("data")
    if expect.kind == "data":
        if not keep:
            words = ("every row", "no data rows", "nothing")
            expect = Expect("error", file=file, words=words, otherwise=expect.otherwise)
        else:
            expect = dataclasses.replace(expect, data=table(keep))
    return Case("read_interactions", {file: raw}, expect, file, kwargs)


def _csv_skip_expect(warning: str) -> Expect:
    """Skip mode drops the bad row, with a warning; the rest read back exactly as written."""
    return Expect("data", warns=(warning,))


@st.composite
def parquet_cases(draw) -> Case:
    """A Parquet log: valid, or with null/float/huge ids, duplicate or missing columns, no rows, bad bytes."""
    n = draw(st.integers(1, 5))
    flaw = draw(st.sampled_from(["valid"] * 4 + ["null_id", "float_id", "huge_id", "duplicate", "missing",
                                                 "no_rows", "random", "truncated", "datetime"]))  # fmt: skip
    users = draw(st.lists(st.one_of(st.integers(-(2**63), INT64_MAX)), min_size=n, max_size=n))
    items = draw(st.lists(_value_text("utf-8"), min_size=n, max_size=n))
    times = draw(st.lists(st.integers(-9 * 10**9, 9 * 10**9), min_size=n, max_size=n))  # datetime64[ns] range
    table = {"u": pd.array(users, dtype="int64"), "i": items, "t": pd.array(times, dtype="int64")}
    expect: Expect = Expect("data", data={"frame": {"user_id": users, "item_id": items, "timestamp": times}})
    row = draw(st.integers(0, n - 1))
    file = "log.parquet"
    if flaw == "null_id":
        table["u"] = pd.array([None if r == row else v for r, v in enumerate(users)], dtype="Int64")
        expect = Expect("error", file=file, words=("lack a value",))
    elif flaw == "float_id":
        bad = draw(st.sampled_from([1.5, 1e30, -1e30, math.inf, 2.0**63, 2.0**60 + 1024]))
        table["u"] = np.array([bad if r == row else float(v % 2**50) for r, v in enumerate(users)])
        expect = Expect("error", file=file, words=("expected",))
        if bad == 2.0**60 + 1024:
            expect = Expect("either")  # an exact float of an integer id: reading it as int64 is fine
    elif flaw == "huge_id":
        table["u"] = np.array([2**63 + r for r in range(n)], dtype="uint64")
        expect = Expect("error", file=file, words=("expected",))
    elif flaw == "datetime":
        moments = pd.to_datetime(np.array(times, dtype="int64"), unit="s", utc=draw(st.booleans()))
        table["t"] = moments
        expect = dataclasses.replace(expect, data={"frame": {"user_id": users, "item_id": items, "timestamp": times}})
    frame = pd.DataFrame(table)
    if flaw == "no_rows":
        frame = frame.iloc[:0]
        expect = Expect("error", file=file, words=("no rows",))
    buffer = io.BytesIO()
    if flaw == "duplicate":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table([pa.array(users), pa.array(items), pa.array(users)], names=["u", "i", "u"]), buffer)
        expect = Expect("error", file=file, words=("duplicate", "parquet"))
    else:
        frame.to_parquet(buffer)
    raw = buffer.getvalue()
    kwargs = {"user_col": "u", "item_col": "i", "timestamp_col": "t"}
    if flaw == "duplicate":
        kwargs.pop("timestamp_col")
    if flaw == "missing":
        kwargs[draw(st.sampled_from(["user_col", "item_col", "timestamp_col"]))] = "nope"
        expect = Expect("error", file=file, words=("no column",))
    if flaw == "random":
        raw, expect = draw(st.binary(max_size=200)), Expect("either")
    elif flaw == "truncated":
        raw, expect = raw[: draw(st.integers(0, len(raw) - 1))], Expect("error", file=file, words=("parquet",))
    if draw(st.booleans()):
        kwargs["format"] = "parquet"
    if flaw == "null_id" and draw(st.booleans()):  # "skip" drops the row with the null id
        kwargs["on_bad_lines"] = "skip"
        keep = [r for r in range(n) if r != row]
        expect = Expect("error", file=file, words=("every row",))
        if keep:
            data = {"user_id": [users[r] for r in keep], "item_id": [items[r] for r in keep],
                    "timestamp": [times[r] for r in keep]}  # fmt: skip
            expect = Expect("data", data={"frame": data}, warns=("skipped 1 row(s) missing",))
    elif flaw != "null_id" and draw(st.booleans()):  # the other flaws are not row problems
        kwargs["on_bad_lines"] = draw(st.sampled_from(["error", "skip"]))
    return Case("read_interactions", {file: raw}, expect, file, kwargs)


# -------------------------------------------------------------------------------- targets
@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    cases: st.SearchStrategy


TARGETS = (
    Target("read_sasrec_txt", sasrec_cases()),
    Target("read_movielens_ratings", _movielens_file_cases("read_movielens_ratings", ratings_format)),
    Target("read_movielens_movies", _movielens_file_cases("read_movielens_movies", movies_format)),
    Target("read_movielens_users", _movielens_file_cases("read_movielens_users", users_format)),
    Target("read_movielens_1m", movielens_1m_cases()),
    Target("read_sasrec_movielens_1m", sasrec_movielens_1m_cases()),
    Target("read_movielens_100k", movielens_100k_cases()),
    Target("read_interactions", interactions_cases()),
)


def run_target(target: Target, run_settings: settings, tally: Tally) -> None:
    """Runs `target`'s cases under `run_settings` (one Hypothesis test), judging each into `tally`."""

    @run_settings
    @given(case=target.cases)
    def property_holds(case: Case) -> None:
        run_case(case, tally)

    property_holds()


@pytest.mark.parametrize("target", TARGETS, ids=lambda target: target.name)
def test_reader_fuzz(target):
    tally = Tally(strict=True)
    run_target(target, profile(), tally)
    assert sum(tally.cases.values()) >= 1


# ------------------------------------------------------------------- regression inputs
def _error(file: str, line: Optional[int] = None, *words: str) -> Expect:
    return Expect("error", file=file, line=line, words=words or ("expected",))


def _frame(**columns) -> Expect:
    return Expect("data", data={"frame": columns})


_ML100K_TITLE_GENRE = {  # a genre named like the reader's own "title" column
    "u.data": b"1\t2\t3\t4\n", "u.genre": b"A|0\ntitle|1\n\x00|2\n", "u.user": b"1|20|M|x|y\n",
    "u.item": b"2|T (1995)|01-Jan-1995||http://x|0|1|1\n",
}
_ML100K_EXPECTED = {
    "interactions": {"user_id": [1], "item_id": [2], "rating": [3], "timestamp": [4]},
    "items": {"item_id": [2], "title": ["T (1995)"], "genres": [("title", "\x00")], "year": [1995],
              "release_date": ["01-Jan-1995"], "imdb_url": ["http://x"]},
    "users": {"user_id": [1], "gender": ["M"], "age": [20], "occupation": ["x"], "zip_code": ["y"]},
}  # fmt: skip


def _csv(text: str, expect: Expect, name: str = "log.csv", **kwargs) -> Case:
    return Case("read_interactions", {name: text.encode("utf-8")}, expect, name, kwargs)


# Each: what the reader did before the fix -> what it must do.
REGRESSIONS = [
    # OverflowError -> malformed line 2 (ids must fit int64).
    Case("read_sasrec_txt", {"seq.txt": b"1 1\n1 100000000000000000000000000000\n"}, _error("seq.txt", 2), "seq.txt"),
    Case("read_movielens_movies", {"movies.dat": b"99999999999999999999::T::A\n"}, _error("movies.dat", 1),
         "movies.dat"),
    # ValueError (pandas cannot parse "\u0661", which `\d` accepted) -> malformed line 1.
    Case("read_movielens_ratings", {"ratings.dat": "1::\u0661::3::4\n".encode()}, _error("ratings.dat", 1),
         "ratings.dat", {"encoding": "utf-8"}),
    # ArrowInvalid on the title's "(\u0661\u0669\u0669\u0665)" -> no year.
    Case("read_movielens_movies", {"movies.dat": "1::X (\u0661\u0669\u0669\u0665)::A\n".encode()},
         _frame(item_id=[1], title=["X (\u0661\u0669\u0669\u0665)"], genres=[("A",)], year=[None]),
         "movies.dat", {"encoding": "utf-8"}),
    # A tab in every zip code: the parsed fields silently shifted into an index -> malformed line 1.
    Case("read_movielens_users", {"users.dat": b"1::M::1::2::a\tb\n2::F::3::4::c\td\n"}, _error("users.dat", 1),
         "users.dat"),
    # "Duplicate names are not allowed" (genre "title"); "\x00" lost by a numpy str array -> read.
    Case("read_movielens_100k", _ML100K_TITLE_GENRE, Expect("data", data=_ML100K_EXPECTED)),
    # A repeated genre: accepted, then u.item blamed -> u.genre, line 2.
    Case("read_movielens_100k", {**_ML100K_TITLE_GENRE, "u.genre": b"A|0\nA|1\n\x00|2\n"},
         _error("u.genre", 2, "duplicate")),
    # pandas MergeError on a repeated MovieID -> movies.dat, line 2.
    Case("read_sasrec_movielens_1m", {"ml-1m.txt": b"1 1\n", "ml-1m_original_ids.txt": b"5 7\n",
                                      "movies.dat": b"7::A::\n7::B::\n"}, _error("movies.dat", 2, "duplicate")),  # fmt: skip
    # A first row longer than the header became the index, silently (also when its values are 0, 1).
    _csv("u,i\n0,5,6\n1,7,8\n", _error("log.csv", 2, "field")),
    _csv("u,i\n1,2,3\n4,5,6\n", _error("log.csv", 2, "field"), on_bad_lines="skip"),
    # The python engine ("skip") took line 2 as index names when line 3 was that much longer.
    _csv("u,i\n1,2\n3,4,,\n5,6\n", Expect("data", data={"frame": {"user_id": [1, 5], "item_id": [2, 6]}},
                                         warns=("skipped 1 row(s) with the wrong number of fields",)), "log.csv",  # fmt: skip
         user_col="u", item_col="i", on_bad_lines="skip"),
    # A short row's values silently sat under the wrong columns -> line 3 / skipped.
    _csv("u,i,x,y\n1,2,3,4\n5,6,7\n", _error("log.csv", 3, "fewer fields")),
    _csv("u,i,x\n1,2,9223372036854775807\n3,4\n5,6,7\n",  # and the kept x read back exactly, as int64
         Expect("data", data={"frame": {"user_id": [1, 5], "item_id": [2, 6], "x": [2**63 - 1, 7]}},
                warns=("skipped 1 row(s) with too few fields (line(s) 3)",)), "log.csv", on_bad_lines="skip"),  # fmt: skip
    # KeyError 'user_id' -> ValueError for the contradictory flags.
    _csv("u,i\n1,2\n", Expect("argument"), user_col="u", item_col="u"),
    # Wrapped to -2**63 / kept as Python ints / no line -> line 2.
    _csv("u,i\n1,1e30\n", _error("log.csv", 2)),
    _csv("u,i\n1,9223372036854775808\n", _error("log.csv", 2)),
    _csv("u,i\n1,-9223372036854775809\n5,6\n", _error("log.csv", 2)),
    _csv("u,i\n1.5,2\n", _error("log.csv", 2)),
    _csv("u,i,t\n1,2,9223372036854775808\n", _error("log.csv", 2, "timestamp"), timestamp_col="t"),
    # OutOfBoundsDatetime -> seconds (calendar.timegm of 1133-02-20 and 2262-05-01).
    _csv("u,i,t\n1,2,1133-02-20\n1,3,2262-05-01\n",
         _frame(user_id=[1, 1], item_id=[2, 3], timestamp=[-26408851200, 9225014400]), timestamp_col="t"),
    # UnicodeError "UTF-16 stream does not start with BOM" -> DataFormatError.
    Case("read_interactions", {"log.csv": b"\xecp\x8c\x18\xd1\xa7"}, _error("log.csv", None, "utf-16"), "log.csv",
         {"user_col": "u", "item_col": "i", "encoding": "utf-16"}),
]
for _case in REGRESSIONS:  # the flags most of the CSV cases share
    if _case.reader == "read_interactions" and "user_col" not in _case.kwargs:
        _case.kwargs.update(user_col="u", item_col="i")


@pytest.mark.parametrize("case", REGRESSIONS, ids=lambda case: f"{case.reader}-{next(iter(case.files.values()))[:24]!r}")
def test_reader_regressions(case):
    run_case(case, Tally(strict=True))
