"""`DataSource`: where a run's data comes from, as a small serializable record.

A run directory stores `DataSource.to_config()` (a plain dict, YAML/JSON-safe); `evaluate`
and `recommend` rebuild it with `DataSource.from_config` and `load()` the same data again.

Two kinds:

- "named": a registry dataset (`DataSource.named("ml-1m")`), read by `load_dataset`.
- "file": a user's interaction log (`DataSource.from_file("log.csv", user_col="uid", ...)`
  or a dataset YAML, `DataSource.from_yaml("data.yaml")`) with optional item / user
  side-feature files and an optional iterative k-core filter.

A dataset YAML (relative paths are resolved against the YAML's folder):

```yaml
interactions: logs/clicks.csv   # CSV/TSV, Parquet, or SASRec text ('user item' per line, .txt)
user_col: uid                    # default user_id
item_col: sku                    # default item_id
time_col: ts                     # default none (file order is the time order)
sep: ";"                         # default: tab for .tsv, else comma
items: items.csv                 # optional: item_id, title, genres ("a|b"), year
users: users.parquet             # optional: user_id, gender, age, occupation
k_core: 5                        # optional: iterative k-core filter
name: clicks                     # optional: the dataset name (default: the log's file stem)
```
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any, Literal, Mapping, Optional, Union

import numpy as np
import pandas as pd
import yaml

from tf_attnrec.data.dataset import Dataset
from tf_attnrec.data.datasets import get_dataset_spec, load_dataset, locate_dataset
from tf_attnrec.data.errors import DataFormatError
from tf_attnrec.data.readers import read_interactions, read_parquet_table, read_sasrec_txt
from tf_attnrec.data.splits import k_core_filter
from tf_attnrec.yaml_loader import load_yaml

PathLike = Union[str, os.PathLike]
Kind = Literal["named", "file"]

_COMPRESSION = {".gz", ".bz2", ".zip", ".xz", ".zst"}
_PARQUET = {".parquet", ".pq"}
_FILE_DEFAULTS = {"user_col": "user_id", "item_col": "item_id", "time_col": None, "sep": None}
_OPTIONAL_STR = "a string or null"
# key -> (expected type(s), description for messages), per kind; `kind` itself is handled apart.
_NAMED_KEYS = {
    "name": ((str,), "a registered dataset name (a string)"),
    "data_dir": ((str, type(None)), "a folder path (a string) or null"),
    "form": ((str,), "'auto', 'sasrec' or 'grouplens'"),
    "k_core": ((int, type(None)), "an integer >= 1 or null"),
}
_FILE_KEYS = {
    "interactions": ((str,), "the interaction log's path (a string)"),
    "name": ((str, type(None)), _OPTIONAL_STR),
    "user_col": ((str,), "a column name (a string)"),
    "item_col": ((str,), "a column name (a string)"),
    "time_col": ((str, type(None)), "a column name (a string) or null"),
    "sep": ((str, type(None)), "a field separator (a non-empty string) or null"),
    "items": ((str, type(None)), "an item side-feature file path (a string) or null"),
    "users": ((str, type(None)), "a user side-feature file path (a string) or null"),
    "k_core": ((int, type(None)), "an integer >= 1 or null"),
}
_PATH_KEYS = {"named": ("data_dir",), "file": ("interactions", "items", "users")}


@dataclasses.dataclass(frozen=True)
class DataSource:
    """Where a run's data comes from; build it with `named`, `from_file`, `from_yaml` or `from_config`.

    Args:
        kind: "named" (a registry dataset) or "file" (a user's interaction log).
        name: named: the registry name; file: the dataset name (None: the log's file stem).
        data_dir: named: the folder `load_dataset` searches first (absolute), or None.
        form: named: "auto", "sasrec" or "grouplens" (see `load_dataset`).
        interactions: file: absolute path of the log (CSV/TSV, Parquet, or SASRec `.txt`).
        user_col, item_col, time_col: file: the log's column names (not for `.txt`).
        sep: file: CSV field separator; None means tab for `.tsv`, else comma (not for `.txt`).
        items: file: absolute path of an item side-feature file (CSV or Parquet), or None.
        users: file: absolute path of a user side-feature file (CSV or Parquet), or None.
        k_core: iterative k-core filter applied after reading (`k_core_filter`), or None.

    Raises:
        ValueError: fields that do not fit the kind (e.g. `form` for a file, column options
            for a SASRec `.txt`), an unknown dataset name or form, or `k_core` < 1.

    Example:
        ```python
        source = DataSource.from_file("clicks.csv", user_col="uid", item_col="sku", time_col="ts")
        data = source.load()
        yaml.safe_dump(source.to_config())  # recorded in the run directory
        ```
    """

    kind: Kind
    name: Optional[str] = None
    data_dir: Optional[str] = None
    form: str = "auto"
    interactions: Optional[str] = None
    user_col: str = "user_id"
    item_col: str = "item_id"
    time_col: Optional[str] = None
    sep: Optional[str] = None
    items: Optional[str] = None
    users: Optional[str] = None
    k_core: Optional[int] = None

    def __post_init__(self):
        if self.kind not in ("named", "file"):
            raise ValueError(f"DataSource: kind must be 'named' or 'file', got {self.kind!r}.")
        if self.k_core is not None and (
            isinstance(self.k_core, bool) or not isinstance(self.k_core, (int, np.integer)) or self.k_core < 1
        ):
            raise ValueError(f"DataSource: k_core must be an integer >= 1 or None, got {self.k_core!r}.")
        if self.kind == "named":
            if not isinstance(self.name, str) or not self.name:
                raise ValueError(f"DataSource: a named source needs a dataset name, got {self.name!r}.")
            extra = [f for f in ("interactions", *_FILE_DEFAULTS, "items", "users") if _changed(self, f)]
            if extra:
                raise ValueError(
                    f"DataSource: {extra} apply to file sources only, not to the named dataset "
                    f"{self.name!r}."
                )
            get_dataset_spec(self.name).resolve_form(self.form)  # unknown name / form
            return
        if not isinstance(self.interactions, str) or not self.interactions:
            raise ValueError(
                f"DataSource: a file source needs the interactions path, got {self.interactions!r}."
            )
        extra = [f for f in ("data_dir", "form") if _changed(self, f)]
        if extra:
            raise ValueError(f"DataSource: {extra} apply to named datasets only, not to {self.interactions}.")
        if self.sep is not None and (not isinstance(self.sep, str) or not self.sep):
            raise ValueError(f"DataSource: sep must be a non-empty string or None, got {self.sep!r}.")
        if self.file_format == "sasrec":
            flags = [f for f in _FILE_DEFAULTS if _changed(self, f)]
            if flags:
                raise ValueError(
                    f"{self.interactions}: {flags} do not apply to a SASRec text file ('user item' "
                    "per line, file order = time order); drop them, or give the log another "
                    "suffix (.csv, .tsv) if it is a CSV file with a header."
                )

    # ---------------------------------------------------------------------- constructors
    @classmethod
    def named(
        cls,
        name: str,
        data_dir: Optional[PathLike] = None,
        form: str = "auto",
        *,
        k_core: Optional[int] = None,
    ) -> "DataSource":
        """A registry dataset (see `list_datasets()`), read with `load_dataset`.

        Args:
            name: e.g. "ml-1m".
            data_dir: folder searched first (stored as an absolute path); None uses
                `$TF_ATTNREC_DATA_DIR`, the cache, then a download.
            form: "auto", "sasrec" or "grouplens".
            k_core: optional iterative k-core filter applied after reading.

        Example:
            ```python
            DataSource.named("ml-1m", data_dir="../shared/data")
            ```
        """
        return cls(kind="named", name=name.lower() if isinstance(name, str) else name,
                   data_dir=_absolute(data_dir), form=form, k_core=k_core)  # fmt: skip

    @classmethod
    def from_file(
        cls,
        path: PathLike,
        user_col: str = "user_id",
        item_col: str = "item_id",
        time_col: Optional[str] = None,
        sep: Optional[str] = None,
        items: Optional[PathLike] = None,
        users: Optional[PathLike] = None,
        k_core: Optional[int] = None,
        *,
        name: Optional[str] = None,
    ) -> "DataSource":
        """A user's interaction log: CSV/TSV (header row), Parquet, or SASRec text (`.txt`).

        Args:
            path: the log. `.txt` is read as SASRec text (`user item` per line, file order is
                the time order; the column options do not apply), `.parquet`/`.pq` as Parquet,
                anything else as CSV (see `read_interactions`).
            user_col, item_col: the user / item id columns (renamed to `user_id` / `item_id`).
            time_col: optional time column (renamed to `timestamp`).
            sep: CSV separator; None means tab for `.tsv`, else comma.
            items: optional item side-feature file (CSV/Parquet with `item_id`, optional
                `title`, `genres` as "a|b", `year`).
            users: optional user side-feature file (CSV/Parquet with `user_id`, optional
                `gender`, `age`, `occupation`).
            k_core: optional iterative k-core filter.
            name: the dataset name; default the log's file stem.

        Returns:
            A file `DataSource` with absolute paths.

        Raises:
            FileNotFoundError: the log or a side file does not exist.
            ValueError: inconsistent options (see the class).

        Example:
            ```python
            DataSource.from_file("clicks.tsv", user_col="uid", item_col="sku", time_col="ts")
            ```
        """
        paths = {"interactions": path, "items": items, "users": users}
        for key, value in paths.items():
            if value is not None and not pathlib.Path(value).expanduser().is_file():
                raise FileNotFoundError(
                    f"{_absolute(value)}: no such file (the {key} file of this data source)."
                )
        return cls(
            kind="file", name=name, interactions=_absolute(path), user_col=user_col, item_col=item_col,
            time_col=time_col, sep=sep, items=_absolute(items), users=_absolute(users), k_core=k_core,
        )  # fmt: skip

    @classmethod
    def from_yaml(cls, path: PathLike) -> "DataSource":
        """Reads a dataset YAML (keys in the module docstring; or a saved `to_config()` dump).

        Relative paths are resolved against the YAML's folder. Without a `kind` key the YAML
        describes a file source.

        Raises:
            FileNotFoundError: the YAML, or a file it names, does not exist.
            ValueError: not a YAML mapping, unknown keys or wrong types (the message names the
                YAML file, the key and what is expected).

        Example:
            ```python
            source = DataSource.from_yaml("data/clicks.yaml")
            ```
        """
        path = pathlib.Path(path).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file; expected a dataset YAML.")
        try:
            config = load_yaml(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise ValueError(f"{path}: not valid YAML ({error}).") from None
        if not isinstance(config, Mapping):
            raise ValueError(
                f"{path}: expected a mapping with an 'interactions' key (and optional user_col, "
                f"item_col, time_col, sep, items, users, k_core); got {type(config).__name__}."
            )
        config = dict(config)
        config.setdefault("kind", "file")
        source = _from_mapping(config, where=str(path), base_dir=path.parent)
        if source.kind == "file":
            for key in _PATH_KEYS["file"]:
                value = getattr(source, key)
                if value is not None and not pathlib.Path(value).is_file():
                    raise FileNotFoundError(f"{path}: key {key!r}: {value} does not exist.")
        return source

    @classmethod
    def from_config(cls, config: Mapping[str, Any], base_dir: Optional[PathLike] = None) -> "DataSource":
        """Rebuilds a `DataSource` from `to_config()`'s dict.

        Args:
            config: a mapping with `kind` ("named" or "file") and that kind's keys.
            base_dir: folder relative paths are resolved against (default: the working
                directory); `to_config` writes absolute paths, so it rarely matters.

        Raises:
            ValueError: not a mapping, missing or unknown `kind`, unknown keys or wrong types.

        Example:
            ```python
            DataSource.from_config({"kind": "named", "name": "ml-1m", "form": "sasrec"})
            ```
        """
        if not isinstance(config, Mapping):
            raise ValueError(
                f"data source config: expected a mapping with a 'kind' key, got {type(config).__name__}."
            )
        if "kind" not in config:
            raise ValueError("data source config: missing key 'kind'; expected 'named' or 'file'.")
        base = pathlib.Path(base_dir).expanduser() if base_dir is not None else pathlib.Path.cwd()
        return _from_mapping(dict(config), where="data source config", base_dir=base)

    # ---------------------------------------------------------------------- use
    @property
    def dataset_name(self) -> str:
        """The `Dataset.name` that `load` gives: the registry name or the log's file stem."""
        if self.name:
            return self.name
        return _stem(pathlib.Path(self.interactions))

    @property
    def file_format(self) -> Optional[str]:
        """"csv", "tsv", "parquet" or "sasrec" for file sources; None for named ones."""
        if self.kind != "file":
            return None
        path = pathlib.Path(self.interactions)
        if path.suffix.lower() == ".txt":
            return "sasrec"
        core = [s.lower() for s in path.suffixes if s.lower() not in _COMPRESSION]
        if core and core[-1] in _PARQUET:
            return "parquet"
        return "tsv" if core and core[-1] == ".tsv" else "csv"

    def to_config(self) -> dict:
        """A plain dict (str / int / None values) with `kind` and the non-default keys.

        For a file source the keys are those of the dataset YAML, so the dict (minus `kind`)
        is itself a valid dataset YAML.

        Example:
            ```python
            DataSource.named("ml-1m").to_config()  # {'kind': 'named', 'name': 'ml-1m'}
            ```
        """
        config: dict = {"kind": self.kind}
        keys = _NAMED_KEYS if self.kind == "named" else _FILE_KEYS
        for key in keys:
            value = getattr(self, key)
            if key in ("name", "interactions") and value is not None:
                config[key] = value
            elif value != _default(key):
                config[key] = int(value) if key == "k_core" else value
        return config

    def load(self, download: bool = True, data_dir: Optional[PathLike] = None) -> Dataset:
        """Reads the data (and applies `k_core`).

        Args:
            download: named sources: allow downloading when no local copy is found.
            data_dir: named sources: overrides the recorded `data_dir` (e.g. the data moved);
                ignored for file sources, whose paths are absolute.

        Returns:
            `Dataset` with `name` (`dataset_name`), `source` (the folder or log path), `form`
            (as `load_dataset` records it; "" for a user's log) plus ", <k>-core" when
            `k_core` is set, and `items` / `users` from the side files.

        Raises:
            FileNotFoundError: a recorded file is gone.
            DataFormatError: a file does not have the expected format or columns.

        Example:
            ```python
            data = DataSource.from_config(run_config["data"]).load(download=False)
            ```
        """
        if self.kind == "named":
            data = load_dataset(
                self.name, data_dir=data_dir if data_dir is not None else self.data_dir,
                download=download, form=self.form,
            )  # fmt: skip
        else:
            data = self._read_files()
        if self.k_core is not None:
            filtered = k_core_filter(data.interactions, k=int(self.k_core))
            if filtered.empty:
                raise DataFormatError(
                    f"{data.source}: k_core={self.k_core} leaves no interactions (every user or "
                    f"item has fewer than {self.k_core}); lower k_core."
                )
            form = f"{data.form}, {self.k_core}-core" if data.form else f"{self.k_core}-core"
            data = dataclasses.replace(data, interactions=filtered, form=form)
        return data

    def describe(self) -> str:
        """One line for the CLI, e.g. "ml-1m (sasrec form: ml-1m.txt) from /data/ml-1m".

        Named sources are located (not read) to say which file would be used.
        """
        suffix = f"; {self.k_core}-core" if self.k_core is not None else ""
        if self.kind == "named":
            location = locate_dataset(self.name, data_dir=self.data_dir, form=self.form)
            if location.recipe is None:
                return f"{self.name} ({location.form} form{suffix}; not found locally)"
            form, _, detail = location.recipe.description.partition(" (")
            detail = detail.removesuffix(")")
            detail = f": {detail}" if detail else ""
            what = f"{self.name} ({form} form{detail}{suffix})"
            if location.folder is None:
                url = location.spec.source.url
                return f"{what} from {url} (not downloaded yet)"
            return f"{what} from {location.folder}"
        path = pathlib.Path(self.interactions)
        fmt = self.file_format
        if fmt == "sasrec":
            parts = ["SASRec text: 'user item' per line"]
        else:
            columns = f"user={self.user_col} item={self.item_col}"
            if self.time_col is not None:
                columns += f" time={self.time_col}"
            parts = [{"csv": "CSV", "tsv": "TSV", "parquet": "Parquet"}[fmt], columns]
            if self.sep is not None:
                parts.append(f"sep={self.sep!r}")
        if self.items is not None:
            parts.append(f"items={pathlib.Path(self.items).name}")
        if self.users is not None:
            parts.append(f"users={pathlib.Path(self.users).name}")
        label = path.name if self.dataset_name == _stem(path) else f"{self.dataset_name}: {path.name}"
        return f"{label} ({'; '.join(parts)}{suffix}) from {path.parent}"

    # ---------------------------------------------------------------------- file reading
    def _read_files(self) -> Dataset:
        path = pathlib.Path(self.interactions)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no such file (the interactions of data source {self.describe()}). Move "
                "it back, or build a new DataSource for its new place."
            )
        fmt = self.file_format
        if fmt == "sasrec":
            frame = read_sasrec_txt(path)
        else:
            frame = read_interactions(
                path, user_col=self.user_col, item_col=self.item_col, timestamp_col=self.time_col,
                format="parquet" if fmt == "parquet" else "csv", sep=self._sep(path),
            )  # fmt: skip
        items = self._side_file(self.items, "item_id", frame) if self.items is not None else None
        users = self._side_file(self.users, "user_id", frame) if self.users is not None else None
        return Dataset(frame, items, users, name=self.dataset_name, source=str(path), form="")

    def _sep(self, path: pathlib.Path) -> str:
        if self.sep is not None:
            return self.sep
        core = [s.lower() for s in path.suffixes if s.lower() not in _COMPRESSION]
        return "\t" if core and core[-1] == ".tsv" else ","

    def _side_file(self, location: str, id_col: str, interactions: pd.DataFrame) -> pd.DataFrame:
        path = pathlib.Path(location)
        what = "item" if id_col == "item_id" else "user"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no such file (the {what} side-feature file of this data source)."
            )
        frame = _read_table(path, self._sep(path))
        if id_col not in frame.columns:
            raise DataFormatError(
                f"{path}: no column {id_col!r}; the file has columns {list(frame.columns)}. Expected "
                f"an {id_col!r} column holding the same ids as the interactions."
            )
        if frame[id_col].isna().any():
            rows = np.flatnonzero(frame[id_col].isna().to_numpy())[:5].tolist()
            raise DataFormatError(
                f"{path}: column {id_col!r} is empty in row(s) {rows}; expected an id in every row."
            )
        if frame[id_col].dtype.kind == "f":
            if not np.all(np.mod(frame[id_col].to_numpy(), 1) == 0):
                raise DataFormatError(f"{path}: column {id_col!r} holds non-integer numbers; expected ids.")
            frame[id_col] = frame[id_col].astype("int64")
        duplicated = frame[id_col][frame[id_col].duplicated()].unique()[:5].tolist()
        if duplicated:
            raise DataFormatError(
                f"{path}: {id_col} value(s) {duplicated} appear more than once; expected one row per {what}."
            )
        known = pd.Index(interactions[id_col].unique())
        if not frame[id_col].isin(known).any():
            raise DataFormatError(
                f"{path}: none of its {id_col} values (e.g. {frame[id_col].head(3).tolist()}, dtype "
                f"{frame[id_col].dtype}) occur in the interactions (e.g. {known[:3].tolist()}, dtype "
                f"{known.dtype}); expected the same ids."
            )
        if id_col == "item_id":
            if "genres" in frame.columns:
                frame["genres"] = [_genres(value, path) for value in frame["genres"]]
            if "year" in frame.columns:
                frame["year"] = _years(frame["year"], path)
        return frame.reset_index(drop=True)


# --------------------------------------------------------------------------------------
# Helpers.
# --------------------------------------------------------------------------------------
def _default(key: str) -> Any:
    field = DataSource.__dataclass_fields__[key]
    return field.default


def _changed(source: DataSource, key: str) -> bool:
    return getattr(source, key) != _default(key)


def _absolute(path: Optional[PathLike]) -> Optional[str]:
    return None if path is None else str(pathlib.Path(path).expanduser().resolve())


def _stem(path: pathlib.Path) -> str:
    name = path.name
    for suffix in reversed(path.suffixes):
        if suffix.lower() in _COMPRESSION:
            name = name[: -len(suffix)]
            continue
        return name[: -len(suffix)] if name.endswith(suffix) else name
    return name


def _from_mapping(config: dict, where: str, base_dir: pathlib.Path) -> DataSource:
    kind = config.pop("kind")
    if kind not in ("named", "file"):
        raise ValueError(f"{where}: key 'kind' must be 'named' or 'file'; got {kind!r}.")
    keys = _NAMED_KEYS if kind == "named" else _FILE_KEYS
    unknown = [key for key in config if key not in keys]
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {unknown} for a {kind} data source; expected keys among "
            f"{['kind', *keys]}."
        )
    required = "name" if kind == "named" else "interactions"
    if required not in config:
        raise ValueError(f"{where}: missing key {required!r}; expected {keys[required][1]}.")
    for key, value in config.items():
        types, expected = keys[key]
        too_small = (key == "k_core" and isinstance(value, int) and value < 1) or (
            key == "sep" and value == ""
        )
        if isinstance(value, bool) or not isinstance(value, types) or too_small:
            raise ValueError(f"{where}: key {key!r} must be {expected}; got {value!r}.")
    for key in _PATH_KEYS[kind]:
        if config.get(key) is not None:
            config[key] = str((base_dir / pathlib.Path(config[key]).expanduser()).resolve())
    try:
        return DataSource(kind=kind, **config)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def _read_table(path: pathlib.Path, sep: str) -> pd.DataFrame:
    core = [s.lower() for s in path.suffixes if s.lower() not in _COMPRESSION]
    if core and core[-1] in _PARQUET:
        frame = read_parquet_table(path)
    else:
        try:
            frame = pd.read_csv(path, sep=sep)
        except pd.errors.EmptyDataError:
            raise DataFormatError(f"{path}: the file is empty; expected a header row then rows.") from None
        except UnicodeDecodeError as error:
            raise DataFormatError(
                f"{path}: not valid UTF-8 ({error.reason}); expected a UTF-8 CSV."
            ) from None
        except pd.errors.ParserError as error:
            raise DataFormatError(
                f"{path}: {error}; expected '{sep}'-separated fields as in the header."
            ) from None
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise DataFormatError(f"{path}: duplicate column name(s) {duplicated}; expected unique names.")
    return frame


def _genres(value: Any, path: pathlib.Path) -> tuple[str, ...]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ()
    if isinstance(value, str):
        return tuple(genre for genre in value.split("|") if genre)
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(str(genre) for genre in value)
    raise DataFormatError(
        f"{path}: column 'genres' holds {value!r}; expected a '|'-separated string such as "
        "'Comedy|Drama' (or a list of strings in Parquet)."
    )


def _years(values: pd.Series, path: pathlib.Path) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = (numbers.isna() & values.notna()).to_numpy() | (numbers.notna() & (numbers % 1 != 0)).to_numpy()
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        raise DataFormatError(
            f"{path}: column 'year' holds {values.iloc[rows[0]]!r} (row(s) {rows}); expected integer "
            "years or empty cells."
        )
    return numbers.astype("Int64")
