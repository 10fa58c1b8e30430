"""Readers for interaction logs and MovieLens files.

Every reader checks each line against the file's documented format before parsing, so a
malformed line raises `DataFormatError` naming the file, the 1-based line number, what was
found and what was expected. Nothing is dropped unless the caller passes
`on_bad_lines="skip"`, which drops malformed lines and warns with their count.

Parsing itself is vectorised (one regular-expression scan to validate, then pandas' C
parser), so the 1M-line SASRec file reads in well under a second.
"""

from __future__ import annotations

import csv
import io
import os
import pathlib
import re
import warnings
from typing import Literal, Optional, Sequence, Union

import numpy as np
import pandas as pd

from tf_attnrec.data.dataset import Dataset
from tf_attnrec.data.errors import DataFormatError

PathLike = Union[str, os.PathLike]
OnBadLines = Literal["error", "skip"]

MOVIELENS_ENCODING = "ISO-8859-1"
# [0-9], not \d: a str regex's \d also matches digits such as "\u0661" (in a file read with
# encoding="utf-8"), which pandas then fails to convert with a raw ArrowInvalid/ValueError.
_YEAR_IN_TITLE = re.compile(r"\(([0-9]{4})\)\s*$")
_ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


# --------------------------------------------------------------------------------------
# Line-format helpers shared by the fixed-format readers.
# --------------------------------------------------------------------------------------
def _uint_at_most(limit: int) -> str:
    """A regex for the decimal integers 0..`limit` (ASCII digits, leading zeros allowed)."""
    digits = str(limit)
    same_length = [
        f"{digits[:i]}[0-{int(d) - 1}][0-9]{{{len(digits) - i - 1}}}" for i, d in enumerate(digits) if d != "0"
    ]
    return "0*(?:" + "|".join([f"[0-9]{{1,{len(digits) - 1}}}", *same_length, digits]) + ")"


# An integer field of the fixed formats. It was `\d+`, which let ids such as 10**30 (and
# non-ASCII digits) through the line check, so pandas raised OverflowError / ValueError instead
# of a DataFormatError naming the line; now such a line is malformed like any other.
_INT = _uint_at_most(2**63 - 1)
_INT_RANGE = "integers from 0 to 2**63-1"


def _check_on_bad_lines(on_bad_lines: str) -> None:
    if on_bad_lines not in ("error", "skip"):
        raise ValueError(f"on_bad_lines must be 'error' or 'skip', got {on_bad_lines!r}.")


def _read_text(path: PathLike, encoding: str, expected: str) -> tuple[pathlib.Path, str]:
    """Reads a whole text file strictly in `encoding`; empty files are an error."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; expected a file with lines {expected}.")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataFormatError(f"{path}: the file is empty; expected lines {expected}.")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise DataFormatError(
            f"{path}, line {line}: byte 0x{raw[error.start]:02x} is not valid {encoding}. "
            f"Pass the file's real encoding with encoding=... (GroupLens MovieLens files are "
            f"{MOVIELENS_ENCODING})."
        ) from None
    return path, text.removeprefix("\ufeff")


def _valid_lines(
    path: pathlib.Path, text: str, line_regex: str, expected: str, on_bad_lines: OnBadLines
) -> str:
    """Returns `text` with only lines matching `line_regex`; raises or warns on the rest.

    One trailing newline ends the last line; any other empty line is malformed.
    """
    _check_on_bad_lines(on_bad_lines)
    body = text[:-1] if text.endswith("\n") else text
    bad_line = re.compile(rf"^(?!{line_regex}\r?$).*$", re.MULTILINE)
    first_bad = bad_line.search(body)
    if first_bad is None:
        return body
    if on_bad_lines == "error":
        line = body.count("\n", 0, first_bad.start()) + 1
        found = first_bad.group(0).rstrip("\r")
        raise DataFormatError(
            f"{path}, line {line}: found {found[:120]!r}; expected {expected}. Fix the line, "
            "or pass on_bad_lines='skip' to drop malformed lines with a warning."
        )
    good_line = re.compile(rf"{line_regex}\r?")
    lines = body.split("\n")
    kept = [line for line in lines if good_line.fullmatch(line)]
    bad_numbers = [i + 1 for i, line in enumerate(lines) if not good_line.fullmatch(line)]
    warnings.warn(
        f"{path}: skipped {len(bad_numbers)} malformed line(s) (first: line "
        f"{bad_numbers[0]}) that did not match {expected}.",
        stacklevel=3,
    )
    if not kept:
        raise DataFormatError(f"{path}: no line matches {expected}; nothing to read.")
    return "\n".join(kept)


def _parse_fields(body: str, sep: str, names: Sequence[str], dtypes: dict) -> pd.DataFrame:
    """Parses already validated lines with pandas' C parser."""
    return pd.read_csv(
        io.StringIO(body), sep=sep, header=None, names=list(names), dtype=dtypes,
        engine="c", keep_default_na=False, quoting=csv.QUOTE_NONE,
    )  # fmt: skip


def _year_from_title(titles: pd.Series) -> pd.Series:
    return titles.str.extract(_YEAR_IN_TITLE, expand=False).astype("Int64")


# --------------------------------------------------------------------------------------
# SASRec / BERT4Rec text form.
# --------------------------------------------------------------------------------------
def read_sasrec_txt(path: PathLike, on_bad_lines: OnBadLines = "error") -> pd.DataFrame:
    """Reads the SASRec/BERT4Rec `user item` text form (one interaction per line, time-ordered).

    Args:
        path: the text file, e.g. `ml-1m.txt` of the SASRec repository.
        on_bad_lines: "error" (default) raises `DataFormatError` at the first malformed line;
            "skip" drops malformed lines and warns with their count.

    Returns:
        DataFrame with int64 columns `user_id`, `item_id` and `timestamp`, where `timestamp`
        is the 0-based row index (the file is already in time order).

    Raises:
        DataFormatError: empty file, undecodable bytes or a line that is not two integers.

    Example:
        ```python
        df = read_sasrec_txt("ml-1m/ml-1m.txt")  # 999,611 rows
        ```
    """
    expected = f"'user item' (two {_INT_RANGE} separated by whitespace)"
    path, text = _read_text(path, "ascii", expected)
    body = _valid_lines(path, text, rf"[ \t]*{_INT}[ \t]+{_INT}[ \t]*", expected, on_bad_lines)
    frame = _parse_fields(body, r"\s+", ["user_id", "item_id"], {"user_id": "int64", "item_id": "int64"})
    frame["timestamp"] = np.arange(len(frame), dtype=np.int64)
    return frame


# --------------------------------------------------------------------------------------
# GroupLens MovieLens-1M (`::`-separated, ISO-8859-1).
# --------------------------------------------------------------------------------------
def read_movielens_ratings(
    path: PathLike, encoding: str = MOVIELENS_ENCODING, on_bad_lines: OnBadLines = "error"
) -> pd.DataFrame:
    """Reads GroupLens `ratings.dat` (`UserID::MovieID::Rating::Timestamp`).

    Args:
        path: the `ratings.dat` file.
        encoding: file encoding; GroupLens uses ISO-8859-1.
        on_bad_lines: "error" or "skip" (drop malformed lines with a warning).

    Returns:
        DataFrame with int64 columns `user_id`, `item_id`, `rating`, `timestamp` (Unix seconds),
        in file order.

    Example:
        ```python
        ratings = read_movielens_ratings("ml-1m/ratings.dat")
        ```
    """
    names = ["user_id", "item_id", "rating", "timestamp"]
    return _read_double_colon_file(
        path, encoding, on_bad_lines,
        f"'UserID::MovieID::Rating::Timestamp' (four {_INT_RANGE} separated by '::')",
        rf"{_INT}::{_INT}::{_INT}::{_INT}", {n: "int64" for n in names},
    )


def read_movielens_movies(
    path: PathLike, encoding: str = MOVIELENS_ENCODING, on_bad_lines: OnBadLines = "error"
) -> pd.DataFrame:
    """Reads GroupLens `movies.dat` (`MovieID::Title (Year)::Genre1|Genre2`).

    Args:
        path: the `movies.dat` file (titles such as "Café au lait" are ISO-8859-1); `encoding`
            and `on_bad_lines` as for `read_movielens_ratings`.

    Returns:
        DataFrame with `item_id` (int64), `title` (str, as in the file, year included),
        `genres` (tuple of str) and `year` (nullable Int64 parsed from the title's "(YYYY)").

    Example:
        ```python
        movies = read_movielens_movies("ml-1m/movies.dat")
        ```
    """
    expected = f"'MovieID::Title (Year)::Genre1|Genre2|...' (MovieID one of the {_INT_RANGE})"
    path, text = _read_text(path, encoding, expected)
    field = r"(?:(?!::)[^\r\n])"
    body = _valid_lines(path, text, rf"{_INT}::{field}+::{field}*", expected, on_bad_lines)
    rows = [line.rstrip("\r").split("::") for line in body.split("\n")]
    movies = pd.DataFrame(rows, columns=["item_id", "title", "genres"])
    movies["item_id"] = movies["item_id"].astype("int64")
    movies["genres"] = [tuple(g for g in genres.split("|") if g) for genres in movies["genres"]]
    movies["year"] = _year_from_title(movies["title"])
    return movies


def read_movielens_users(
    path: PathLike, encoding: str = MOVIELENS_ENCODING, on_bad_lines: OnBadLines = "error"
) -> pd.DataFrame:
    """Reads GroupLens `users.dat` (`UserID::Gender::Age::Occupation::Zip-code`).

    Args:
        path: the `users.dat` file; `encoding` and `on_bad_lines` as for `read_movielens_ratings`.

    Returns:
        DataFrame with `user_id` (int64), `gender` ("M"/"F"), `age` (int64 age-group code as
        in the GroupLens README: 1, 18, 25, 35, 45, 50, 56), `occupation` (int64 code 0-20 as in
        the README) and `zip_code` (str).

    Example:
        ```python
        users = read_movielens_users("ml-1m/users.dat")
        ```
    """
    return _read_double_colon_file(
        path, encoding, on_bad_lines,
        f"'UserID::Gender::Age::Occupation::Zip-code' (Gender M or F, the others {_INT_RANGE}, "
        "no tab in the zip code)",
        # No tab in the zip code: the fields are parsed tab-separated below, so a tab there made
        # pandas see six fields (ParserError, or with every line so, a silent shift into an index).
        rf"{_INT}::[MF]::{_INT}::{_INT}::[^:\t\r\n]*",
        {"user_id": "int64", "gender": str, "age": "int64", "occupation": "int64", "zip_code": str},
    )


def _read_double_colon_file(
    path: PathLike, encoding: str, on_bad_lines: OnBadLines, expected: str, pattern: str, dtypes: dict
) -> pd.DataFrame:
    """A GroupLens `::`-separated file whose every line matches `pattern`; columns = `dtypes` keys."""
    path, text = _read_text(path, encoding, expected)
    body = _valid_lines(path, text, pattern, expected, on_bad_lines)
    return _parse_fields(body.replace("::", "\t"), "\t", list(dtypes), dtypes)


def read_movielens_1m(directory: PathLike, on_bad_lines: OnBadLines = "error") -> Dataset:
    """Reads an extracted GroupLens `ml-1m.zip` folder (`ratings.dat`, `movies.dat`, `users.dat`).

    Args:
        directory: the folder holding the three files (the zip's `ml-1m/` folder).
        on_bad_lines: "error" or "skip", passed to each reader.

    Returns:
        `Dataset` with all ratings as interactions (`user_id`, `item_id`, `rating`,
        `timestamp`), `items` from movies.dat and `users` from users.dat.

    Example:
        ```python
        data = read_movielens_1m("~/.cache/tf_attnrec/ml-1m")
        ```
    """
    directory = pathlib.Path(directory).expanduser()
    return Dataset(
        interactions=read_movielens_ratings(directory / "ratings.dat", on_bad_lines=on_bad_lines),
        items=read_movielens_movies(directory / "movies.dat", on_bad_lines=on_bad_lines),
        users=read_movielens_users(directory / "users.dat", on_bad_lines=on_bad_lines),
        name="ml-1m",
        source=str(directory),
    )


def read_sasrec_movielens_1m(directory: PathLike, on_bad_lines: OnBadLines = "error") -> Dataset:
    """Reads the SASRec-preprocessed ML-1M (`ml-1m.txt`) and joins it to GroupLens metadata.

    `ml-1m_original_ids.txt` holds the same rows as `ml-1m.txt` with the original MovieLens
    ids; it maps every dense SASRec id to exactly one original id (checked), through which
    each item gets its title, genres and year from `movies.dat` and each user its gender, age
    and occupation from `users.dat`. Without those three files only the interactions are read.

    Args:
        directory: folder holding `ml-1m.txt` (and optionally `ml-1m_original_ids.txt`,
            `movies.dat`, `users.dat`).
        on_bad_lines: "error" or "skip", passed to each reader.

    Returns:
        `Dataset` whose interactions use the dense SASRec ids (`user_id`, `item_id`,
        `timestamp` = row index) plus `original_user_id` / `original_item_id` when the id
        file is present; `items` / `users` keyed by the SASRec ids. With
        `on_bad_lines="skip"` the row-aligned join is not sound, so no metadata is attached.

    Raises:
        DataFormatError: the id file does not line up with `ml-1m.txt`, or an item/user has
            no metadata row.

    Example:
        ```python
        data = read_sasrec_movielens_1m("../shared/data/ml-1m")  # 6,040 users, 3,416 items
        ```
    """
    directory = pathlib.Path(directory).expanduser()
    interactions = read_sasrec_txt(directory / "ml-1m.txt", on_bad_lines=on_bad_lines)
    data = Dataset(interactions=interactions, name="ml-1m", source=str(directory))
    id_file = directory / "ml-1m_original_ids.txt"
    if not id_file.is_file() or on_bad_lines == "skip":
        # Row-aligned joining is only sound when no line was dropped from either file.
        return data
    original = read_sasrec_txt(id_file)
    if len(original) != len(interactions):
        raise DataFormatError(
            f"{id_file}: has {len(original):,} rows but ml-1m.txt has {len(interactions):,}; "
            "expected the same rows in the same order."
        )
    interactions["original_user_id"] = original["user_id"].to_numpy()
    interactions["original_item_id"] = original["item_id"].to_numpy()
    item_map = _one_to_one(interactions, "item_id", "original_item_id", id_file)
    user_map = _one_to_one(interactions, "user_id", "original_user_id", id_file)

    if (directory / "movies.dat").is_file():
        movies = read_movielens_movies(directory / "movies.dat", on_bad_lines=on_bad_lines)
        movies = movies.rename(columns={"item_id": "original_item_id"})
        data.items = _join_metadata(item_map, movies, "original_item_id", directory / "movies.dat")
    if (directory / "users.dat").is_file():
        users = read_movielens_users(directory / "users.dat", on_bad_lines=on_bad_lines)
        users = users.rename(columns={"user_id": "original_user_id"})
        data.users = _join_metadata(user_map, users, "original_user_id", directory / "users.dat")
    return data


def _one_to_one(frame: pd.DataFrame, dense: str, original: str, source: pathlib.Path) -> pd.DataFrame:
    pairs = frame[[dense, original]].drop_duplicates().sort_values(dense, kind="stable")
    if pairs[dense].duplicated().any() or pairs[original].duplicated().any():
        bad = pairs[pairs[dense].duplicated(keep=False) | pairs[original].duplicated(keep=False)]
        raise DataFormatError(
            f"{source}: {dense} and {original} are not one-to-one (e.g. "
            f"{bad.head(3).to_dict('records')}); expected each dense id to stand for exactly one "
            "original id."
        )
    return pairs.reset_index(drop=True)


def _join_metadata(
    id_map: pd.DataFrame, metadata: pd.DataFrame, key: str, source: pathlib.Path
) -> pd.DataFrame:
    # A repeated id made the one-to-one merge raise pandas' MergeError. Row i is line i + 1:
    # metadata is only joined when no line was skipped.
    repeated = np.flatnonzero(metadata[key].duplicated().to_numpy())
    if len(repeated):
        value = metadata[key].iloc[repeated[0]]
        first = int(np.flatnonzero((metadata[key] == value).to_numpy())[0])
        raise DataFormatError(
            f"{source}, line {repeated[0] + 1}: duplicate id {value} (first on line {first + 1}); "
            "expected one row per id."
        )
    joined = id_map.merge(metadata, on=key, how="left", validate="one_to_one")
    missing = joined[joined.iloc[:, 2].isna()]
    if len(missing):
        raise DataFormatError(
            f"{source}: no metadata for {len(missing)} id(s) used in the interactions, e.g. "
            f"{key}={missing[key].head(5).tolist()}; expected one row per id."
        )
    return joined


# --------------------------------------------------------------------------------------
# GroupLens MovieLens-100K.
# --------------------------------------------------------------------------------------
def read_movielens_100k(directory: PathLike, on_bad_lines: OnBadLines = "error") -> Dataset:
    """Reads an extracted GroupLens `ml-100k.zip` folder (`u.data`, `u.item`, `u.user`).

    Args:
        directory: the folder holding `u.data`, `u.item`, `u.user` (and `u.genre`, whose
            genre names label the 19 genre flags of `u.item`; the README's list if absent).
        on_bad_lines: "error" or "skip".

    Returns:
        `Dataset` with interactions (`user_id`, `item_id`, `rating`, `timestamp`), `items`
        (`item_id`, `title`, `genres` tuple, `year` from the title or else the release date,
        `release_date`, `imdb_url`) and `users` (`user_id`, `gender`, `age`, `occupation`
        name, `zip_code`).

    Example:
        ```python
        data = read_movielens_100k("../shared/data/ml-100k")  # 943 users, 1,682 items
        ```
    """
    directory = pathlib.Path(directory).expanduser()
    expected = f"'user<TAB>item<TAB>rating<TAB>timestamp' (four {_INT_RANGE})"
    path, text = _read_text(directory / "u.data", MOVIELENS_ENCODING, expected)
    body = _valid_lines(path, text, rf"{_INT}\t{_INT}\t{_INT}\t{_INT}", expected, on_bad_lines)
    names = ["user_id", "item_id", "rating", "timestamp"]
    ratings = _parse_fields(body, "\t", names, {n: "int64" for n in names})

    genre_names = _read_100k_genres(directory / "u.genre")
    expected = (
        "'id|title|release date|video release date|IMDb URL' then "
        f"{len(genre_names)} 0/1 genre flags, '|'-separated (id one of the {_INT_RANGE})"
    )
    path, text = _read_text(directory / "u.item", MOVIELENS_ENCODING, expected)
    regex = rf"{_INT}(?:\|[^|\r\n]*){{4}}" + r"\|[01]" * len(genre_names)
    body = _valid_lines(path, text, regex, expected, on_bad_lines)
    # The flag columns are named by position: a genre named like a fixed column ("title") made
    # pandas raise "Duplicate names are not allowed".
    flag_columns = [f"genre_flag_{i}" for i in range(len(genre_names))]
    columns = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *flag_columns]
    items = _parse_fields(body, "|", columns, {c: str for c in columns})
    flags = items[flag_columns].to_numpy() == "1"
    items = items[["item_id", "title", "release_date", "imdb_url"]].copy()
    items["item_id"] = items["item_id"].astype("int64")
    # dtype=object: a fixed-width numpy str array drops trailing NULs ("Drama\x00" -> "Drama").
    items["genres"] = [tuple(np.asarray(genre_names, dtype=object)[row]) for row in flags]
    release_year = items["release_date"].str.extract(r"([0-9]{4})$", expand=False).astype("Int64")
    items["year"] = _year_from_title(items["title"]).fillna(release_year)
    items = items[["item_id", "title", "genres", "year", "release_date", "imdb_url"]]

    expected = f"'user id|age|gender|occupation|zip code' (gender M or F, user id and age {_INT_RANGE})"
    path, text = _read_text(directory / "u.user", MOVIELENS_ENCODING, expected)
    body = _valid_lines(path, text, rf"{_INT}\|{_INT}\|[MF]\|[^|\r\n]*\|[^|\r\n]*", expected, on_bad_lines)
    names = ["user_id", "age", "gender", "occupation", "zip_code"]
    dtypes = {"user_id": "int64", "age": "int64", "gender": str, "occupation": str, "zip_code": str}
    users = _parse_fields(body, "|", names, dtypes)[["user_id", "gender", "age", "occupation", "zip_code"]]
    return Dataset(ratings, items, users, name="ml-100k", source=str(directory))


def _read_100k_genres(path: pathlib.Path) -> tuple[str, ...]:
    if not path.is_file():
        return _ML100K_GENRES
    expected = "'genre name|index'"
    path, text = _read_text(path, MOVIELENS_ENCODING, expected)
    body = _valid_lines(path, text.rstrip("\r\n") + "\n", r"[^|\r\n]+\|\d+", expected, "error")
    pairs = [line.rstrip("\r").split("|") for line in body.split("\n")]
    # A repeated genre name made the genre list ambiguous (and the u.item columns clash).
    first_line: dict = {}
    for number, (name, _) in enumerate(pairs, start=1):
        if name in first_line:
            raise DataFormatError(
                f"{path}, line {number}: duplicate genre name {name!r} (first on line {first_line[name]}); "
                "expected each genre name once."
            )
        first_line[name] = number
    return tuple(name for name, _ in sorted(pairs, key=lambda pair: int(pair[1])))


# --------------------------------------------------------------------------------------
# A user's own CSV / Parquet interaction log.
# --------------------------------------------------------------------------------------
def read_interactions(
    path: PathLike,
    user_col: str,
    item_col: str,
    timestamp_col: Optional[str] = None,
    format: Optional[Literal["csv", "parquet"]] = None,  # noqa: A002 (mirrors pandas/issue naming)
    sep: str = ",",
    encoding: str = "utf-8",
    on_bad_lines: OnBadLines = "error",
) -> pd.DataFrame:
    """Reads a user's own interaction log from CSV (with a header row) or Parquet.

    Args:
        path: the file. `.csv`, `.tsv`, `.txt` (optionally `.gz`/`.zip`/...) read as CSV,
            `.parquet`/`.pq` as Parquet; anything else needs `format`.
        user_col: column holding the user id (renamed to `user_id`).
        item_col: column holding the item id (renamed to `item_id`).
        timestamp_col: optional column with the event time (renamed to `timestamp`): integers
            are kept as they are; date/time strings are parsed (ISO 8601 or pandas-parseable)
            and converted to int64 Unix seconds (UTC).
        format: "csv" or "parquet"; None infers it from the file name.
        sep: CSV field separator.
        encoding: CSV text encoding.
        on_bad_lines: "error" raises on rows with the wrong number of fields or missing
            user/item/timestamp; "skip" drops them and warns with the count.

    Returns:
        DataFrame with `user_id`, `item_id` (dtype as read: int or str), `timestamp` (int64) if
        requested, and every other column kept unchanged, in file order.

    Raises:
        DataFormatError: empty file, duplicate header names, unknown column names, wrong
            encoding, malformed rows or unparseable timestamps; the message names the file and,
            for row problems, the line.
        ValueError: the same column passed as two of user_col / item_col / timestamp_col.

    Example:
        ```python
        log = read_interactions("clicks.csv", user_col="uid", item_col="sku", timestamp_col="ts")
        ```
    """
    _check_on_bad_lines(on_bad_lines)
    selected = [col for col in (user_col, item_col, timestamp_col) if col is not None]
    if len(set(selected)) < len(selected):
        # The renaming dict below would keep only one of them: a missing "user_id" (KeyError)
        # or a silently absent column.
        raise ValueError(f"user_col, item_col and timestamp_col must name different columns, got {selected}.")
    path = pathlib.Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file.")
    fmt = format or _infer_format(path)
    if fmt == "csv":
        frame = _read_csv_log(path, sep, encoding, on_bad_lines)
        first_line = 2  # row 0 is on line 2, after the header
    elif fmt == "parquet":
        frame = read_parquet_table(path)
        first_line = None
    else:
        raise ValueError(f"format must be 'csv' or 'parquet', got {fmt!r}.")

    wanted = {user_col: "user_id", item_col: "item_id"}
    if timestamp_col is not None:
        wanted[timestamp_col] = "timestamp"
    unknown = [col for col in wanted if col not in frame.columns]
    if unknown:
        raise DataFormatError(
            f"{path}: no column(s) {unknown}; the file has columns {list(frame.columns)}. "
            "Pass the right user_col / item_col / timestamp_col."
        )
    clashes = [new for old, new in wanted.items() if new in frame.columns and new != old]
    if clashes:
        raise DataFormatError(
            f"{path}: the file already has column(s) {clashes} besides the ones you selected; "
            "rename them first, since these names are reserved for the selected columns."
        )
    frame = frame.rename(columns=wanted)

    required = list(wanted.values())
    long = np.zeros(len(frame), dtype=bool)  # rows with too many fields
    if fmt == "csv" and on_bad_lines == "skip":  # marked rows in their places (see _read_csv_log)
        long = np.array([value is _LONG_ROW for value in frame.iloc[:, 0]], dtype=bool)
    missing = frame[required].isna().any(axis=1).to_numpy() & ~long
    short = np.zeros_like(long)  # rows with too few fields
    if fmt == "csv":
        short = _short_rows(path, sep, encoding, on_bad_lines, frame) & ~missing & ~long
    if missing.any():
        where = _describe_rows(np.flatnonzero(missing), first_line)
        if on_bad_lines == "error":
            raise DataFormatError(
                f"{path}: {int(missing.sum())} row(s) lack a value in {required} ({where}). "
                "Fill them in, or pass on_bad_lines='skip' to drop them with a warning."
            )
        warnings.warn(
            f"{path}: skipped {int(missing.sum())} row(s) missing {required} ({where}).", stacklevel=2
        )
    if short.any():
        # pandas fills a short row's missing trailing fields with NaN, so its values sat under
        # the wrong columns without a word.
        where = _describe_rows(np.flatnonzero(short), first_line)
        if on_bad_lines == "error":
            raise DataFormatError(
                f"{path}: {int(short.sum())} row(s) have fewer fields than the header ({where}); expected "
                f"{len(frame.columns)} '{sep}'-separated fields per row. Fix them, or pass "
                "on_bad_lines='skip' to drop them with a warning."
            )
        warnings.warn(f"{path}: skipped {int(short.sum())} row(s) with too few fields ({where}).", stacklevel=2)
    rows = np.arange(len(frame))  # each row's place among the file's rows, for line numbers
    dropped = long | missing | short
    if dropped.any():
        rows = np.flatnonzero(~dropped)
        if not len(rows):
            raise DataFormatError(
                f"{path}: every row lacks {required} or has the wrong number of fields; nothing to read."
            )
        if fmt == "csv":
            # pandas chose the columns' dtypes with the dropped rows still in: a stray word made an
            # int column str, a NaN made it float (rounding values above 2**53), so the kept rows
            # did not read back as written. Read just the kept rows again (skiprows counts records).
            frame = _read_kept_rows(path, sep, encoding, set(np.flatnonzero(dropped) + 1)).rename(columns=wanted)
            rows = rows if len(rows) == len(frame) else np.arange(len(frame))
        else:  # Parquet columns have their types already
            frame = frame.loc[~dropped].reset_index(drop=True)
    for col in ("user_id", "item_id"):
        if frame[col].dtype.kind in "fu" or frame[col].dtype == object:
            frame[col] = _to_int64(frame[col], path, col, first_line, "ids", rows)
    if timestamp_col is not None:
        frame["timestamp"] = _timestamps_to_int64(frame["timestamp"], path, first_line, rows)
    return frame


def _infer_format(path: pathlib.Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    compression = {".gz", ".bz2", ".zip", ".xz", ".zst"}
    core = [s for s in suffixes if s not in compression]
    if core and core[-1] in (".parquet", ".pq"):
        return "parquet"
    if core and core[-1] in (".csv", ".tsv", ".txt"):
        return "csv"
    raise ValueError(
        f"{path}: cannot tell the format from the file name; pass format='csv' or format='parquet'."
    )


def _read_csv_log(path: pathlib.Path, sep: str, encoding: str, on_bad_lines: OnBadLines) -> pd.DataFrame:
    if path.stat().st_size == 0:
        raise DataFormatError(
            f"{path}: the file is empty; expected a header row then one interaction per row."
        )
    try:
        # header=None reads the header row verbatim (pandas would rename duplicates to "x.1").
        header_row = pd.read_csv(path, sep=sep, encoding=encoding, header=None, nrows=1, dtype=str)
        header = [str(name) for name in header_row.iloc[0].tolist()]
    except (UnicodeError, pd.errors.ParserError, pd.errors.EmptyDataError, IndexError):
        header = None  # reported with a line number by the full read below
    if header is not None:
        seen, duplicates = set(), []
        for name in header:
            if name in seen:
                duplicates.append(name)
            seen.add(name)
        if duplicates:
            raise DataFormatError(
                f"{path}, line 1: duplicate column name(s) {duplicates} in header {header}; "
                "expected unique column names."
            )
    skipped: list[list[str]] = []
    # index_col=False: by default pandas silently makes the extra leading field(s) of a first data
    # row longer than the header the index, shifting every row's values one column right (the
    # python engine also when the next row is that much longer); now it warns, raised below.
    kwargs = dict(sep=sep, encoding=encoding, skip_blank_lines=False, index_col=False)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if on_bad_lines == "skip":
                # A row with too many fields stays in its place as a marked row (pandas pads the
                # marker with NaN), so rows keep their line numbers; read_interactions drops it.
                mark = lambda row: skipped.append(row) or [_LONG_ROW]  # noqa: E731
                frame = pd.read_csv(path, engine="python", on_bad_lines=mark, **kwargs)
            else:
                frame = pd.read_csv(path, on_bad_lines="error", **kwargs)
    except UnicodeError as error:  # also "UTF-16 stream does not start with BOM", not a UnicodeDecodeError
        raise DataFormatError(
            f"{path}{_first_undecodable_line(path, encoding)}: not valid {encoding} "
            f"({getattr(error, 'reason', error)}). Pass the file's encoding, e.g. encoding='ISO-8859-1'."
        ) from None
    except pd.errors.EmptyDataError:
        raise DataFormatError(f"{path}: the file is empty; expected a header row then rows.") from None
    except pd.errors.ParserError as error:
        raise DataFormatError(
            f"{path}: {error}. Expected {len(header or [])} '{sep}'-separated fields per row as in "
            "the header; fix the row or pass on_bad_lines='skip'."
        ) from None
    for warning in caught:
        if "loss of data" in str(warning.message):  # see index_col=False above; skipping cannot undo it
            raise DataFormatError(
                f"{path}, line 2: has more fields than the header (line 1); expected {len(frame.columns)} "
                f"'{sep}'-separated fields per row as in the header. Fix the row."
            )
        warnings.warn(warning.message, stacklevel=3)
    if skipped:
        warnings.warn(f"{path}: skipped {len(skipped)} row(s) with the wrong number of fields.", stacklevel=3)
    if frame.empty:
        raise DataFormatError(
            f"{path}: has a header but no data rows (header {list(frame.columns)}); expected a header "
            "row then one interaction per row."
        )
    return frame


_LONG_ROW = object()  # marks, in "skip" mode, a row with more fields than the header


def _read_kept_rows(path: pathlib.Path, sep: str, encoding: str, skip: set) -> pd.DataFrame:
    """The CSV log without the records numbered in `skip` (the header is record 0)."""
    try:
        return pd.read_csv(
            path, sep=sep, encoding=encoding, skip_blank_lines=False, index_col=False, skiprows=lambda i: i in skip
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as error:
        raise DataFormatError(
            f"{path}: the rows kept by on_bad_lines='skip' do not read again ({error}); expected "
            f"'{sep}'-separated rows with as many fields as the header."
        ) from None


def _short_rows(
    path: pathlib.Path, sep: str, encoding: str, on_bad_lines: OnBadLines, frame: pd.DataFrame
) -> np.ndarray:
    """Rows of `frame` (as read from `path`) with fewer fields than the header.

    Only a row whose last column is NaN can be one, so only then are the fields counted: the C
    engine reads an absent field like an empty one. The csv module counts them (0.2 s a million
    rows); the python engine, exact too but ten times slower, where csv cannot read the file.
    """
    none = np.zeros(len(frame), dtype=bool)
    if not frame.iloc[:, -1].isna().any():
        return none
    try:
        if len(sep) == 1 and path.suffix.lower() not in {".gz", ".bz2", ".zip", ".xz", ".zst"}:
            with open(path, newline="", encoding=encoding) as handle:
                counts = np.fromiter((len(row) for row in csv.reader(handle, delimiter=sep)), dtype=np.int64)
            counts = counts[1:]  # after the header
            while len(counts) > len(frame) and counts[0] == 0:  # blank lines pandas skipped ("skip" mode)
                counts = counts[1:]
            short = counts < len(frame.columns)  # longer rows: marked in "skip" mode, errors otherwise
        else:
            long_rows = (lambda row: [None]) if on_bad_lines == "skip" else "error"  # kept in place
            raw = pd.read_csv(
                path, sep=sep, encoding=encoding, skip_blank_lines=False, index_col=False, engine="python",
                dtype=str, keep_default_na=False, on_bad_lines=long_rows,
            )  # fmt: skip
            short = raw.iloc[:, -1].isna().to_numpy()  # absent: NaN; empty: ""
    except (ValueError, csv.Error):  # the first read succeeded; its checks stand
        return none
    return short if len(short) == len(frame) else none


def _first_undecodable_line(path: pathlib.Path, encoding: str) -> str:
    """", line N" for the first undecodable byte of an uncompressed file, else ""."""
    if path.suffix.lower() in {".gz", ".bz2", ".zip", ".xz", ".zst"}:
        return ""
    raw = path.read_bytes()
    try:
        raw.decode(encoding)
    except UnicodeError as error:
        return f", line {raw.count(bytes([10]), 0, getattr(error, 'start', 0)) + 1}"
    return ""


def read_parquet_table(path: pathlib.Path) -> pd.DataFrame:
    """A Parquet file as a DataFrame; a missing pyarrow, a non-Parquet file, duplicate column
    names or no rows are clear errors naming the file."""
    try:
        frame = pd.read_parquet(path)
    except ImportError:
        raise ImportError("Reading Parquet needs pyarrow: pip install 'tf-attnrec[parquet]'.") from None
    except Exception as error:  # pyarrow raises several types for a non-Parquet file
        raise DataFormatError(f"{path}: not a readable Parquet file ({error}).") from None
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise DataFormatError(f"{path}: duplicate column name(s) {duplicated}; expected unique names.")
    if frame.empty:
        raise DataFormatError(f"{path}: the Parquet file has no rows.")
    return frame


def _describe_rows(rows: np.ndarray, first_line: Optional[int]) -> str:
    shown = rows[:5]
    if first_line is None:
        return "rows " + ", ".join(str(r) for r in shown) + (" ..." if len(rows) > 5 else "")
    return "line(s) " + ", ".join(str(r + first_line) for r in shown) + (" ..." if len(rows) > 5 else "")


def _to_int64(
    values: pd.Series, path: pathlib.Path, col: str, first_line: Optional[int], what: str, rows: np.ndarray
) -> pd.Series:
    """int64 from a column pandas read as floats, unsigned or (beyond 64 bits) Python ints.

    `astype("int64")` alone wrapped 1e30 or 2**63 around to -2**63 and rounded ids above 2**53
    that a missing value had turned into floats; such values are now an error with their lines.
    """
    kind = values.dtype.kind
    if values.dtype == object:  # not pandas' str dtype (also kind "O"): no per-value loop for it
        numbers = values.map(lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool))
        if not numbers.all():
            return values  # strings (or other objects): ids as read
        bad = ~values.map(lambda v: -(2**63) <= int(v) < 2**63).to_numpy(dtype=bool)
    elif kind == "u":
        bad = values.to_numpy() > np.iinfo(np.int64).max
    elif kind == "f":
        numbers = values.to_numpy()
        with np.errstate(invalid="ignore"):
            bad = ~((np.mod(numbers, 1) == 0) & (np.abs(numbers) <= 2**53))
    else:
        return values.astype("int64") if kind == "i" else values
    if bad.any():
        raise DataFormatError(
            f"{path}: column {col!r} holds {values.iloc[int(np.flatnonzero(bad)[0])]!r} "
            f"({_describe_rows(rows[bad], first_line)}); expected integer {what} from -2**63 "
            "to 2**63-1 (and, where pandas read the column as floats, at most 2**53 in size)."
        )
    return values.astype("int64")


def _timestamps_to_int64(
    values: pd.Series, path: pathlib.Path, first_line: Optional[int], rows: np.ndarray
) -> pd.Series:
    """`rows`: each value's place among the file's rows (rows dropped before), for line numbers."""
    if values.dtype.kind in "iuf":
        return _to_int64(values, path, "timestamp", first_line, "times", rows)
    if values.dtype.kind == "M":
        parsed = values
    else:
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
        bad = parsed.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataFormatError(
                f"{path}: cannot parse timestamp {values.iloc[row]!r} "
                f"({_describe_rows(rows[bad], first_line)}); expected integers or "
                "date/time strings such as '2003-02-28 17:49:50'."
            )
    if parsed.dt.tz is None:
        parsed = parsed.dt.tz_localize("UTC")
    # The epoch in the parsed unit: in nanoseconds, dates before 1677 or after 2262 (which pandas
    # parses in microseconds) raised OutOfBoundsDatetime.
    epoch = pd.Timestamp(0, tz="UTC").as_unit(parsed.dt.unit)
    return ((parsed - epoch) // pd.Timedelta(seconds=1)).astype("int64")
