"""Named datasets: resolve "ml-1m" / "ml-100k" to local files or a verified download."""

from __future__ import annotations

import logging
import os
import pathlib
from typing import Literal, Optional, Union

from tf_attnrec.data.dataset import Dataset
from tf_attnrec.data.downloads import DATASET_SOURCES, ArchiveSource, default_cache_dir, fetch_archive
from tf_attnrec.data.readers import (
    OnBadLines,
    read_movielens_1m,
    read_movielens_100k,
    read_sasrec_movielens_1m,
)

DATA_DIR_ENV = "TF_ATTNREC_DATA_DIR"
Form = Literal["auto", "sasrec", "grouplens"]

logger = logging.getLogger(__name__)


def list_datasets() -> list[str]:
    """Names accepted by `load_dataset`."""
    return sorted(DATASET_SOURCES)


def _local_folder(name: str, data_dir: pathlib.Path, form: Form) -> Optional[tuple[pathlib.Path, str]]:
    """Finds `name` under `data_dir` (as `data_dir/<name>/` or `data_dir` itself)."""
    for folder in (data_dir / name, data_dir):
        if name == "ml-1m":
            if form in ("auto", "sasrec") and (folder / "ml-1m.txt").is_file():
                return folder, "sasrec"
            if form in ("auto", "grouplens") and (folder / "ratings.dat").is_file():
                return folder, "grouplens"
        elif name == "ml-100k" and (folder / "u.data").is_file():
            return folder, "grouplens"
    return None


def _read(name: str, folder: pathlib.Path, form: str, on_bad_lines: OnBadLines) -> Dataset:
    if name == "ml-100k":
        return read_movielens_100k(folder, on_bad_lines=on_bad_lines)
    if form == "sasrec":
        return read_sasrec_movielens_1m(folder, on_bad_lines=on_bad_lines)
    return read_movielens_1m(folder, on_bad_lines=on_bad_lines)


def load_dataset(
    name: str,
    data_dir: Optional[Union[str, os.PathLike]] = None,
    cache_dir: Optional[Union[str, os.PathLike]] = None,
    download: bool = True,
    form: Form = "auto",
    source: Optional[ArchiveSource] = None,
    on_bad_lines: OnBadLines = "error",
) -> Dataset:
    """Loads a named dataset from a local folder, the cache, or GroupLens (verified download).

    Lookup order: `data_dir` (argument, else `$TF_ATTNREC_DATA_DIR`), as `data_dir/<name>/`
    or `data_dir` itself; then the cache (`cache_dir`, else `$TF_ATTNREC_CACHE_DIR`, else
    `~/.cache/tf_attnrec`); then, if `download`, the GroupLens zip, sha256-checked.

    For "ml-1m" a folder with `ml-1m.txt` gives the SASRec/BERT4Rec form (6,040 users, 3,416
    items, 999,611 interactions, dense ids, joined to movies.dat/users.dat metadata through
    `ml-1m_original_ids.txt`); a folder with `ratings.dat` gives the original GroupLens form
    (all 1,000,209 ratings). GroupLens only hosts the latter, so `form="sasrec"` needs local
    files.

    Args:
        name: "ml-1m" or "ml-100k" (see `list_datasets()`).
        data_dir: folder holding `<name>/` (e.g. the project's `../shared/data`).
        cache_dir: download cache folder.
        download: allow downloading when no local copy is found.
        form: "auto", "sasrec" or "grouplens" (ml-1m only).
        source: overrides the URL / checksum / layout of the download.
        on_bad_lines: "error" or "skip", passed to the readers.

    Returns:
        `Dataset` (interactions, items and users metadata, name, source folder).

    Raises:
        ValueError: unknown name or form.
        FileNotFoundError: no local copy and `download=False` (or `form="sasrec"`).

    Example:
        ```python
        data = load_dataset("ml-1m", data_dir="../shared/data")
        ```
    """
    key = name.lower()
    if key not in DATASET_SOURCES:
        raise ValueError(f"Unknown dataset {name!r}; available: {list_datasets()}.")
    if form not in ("auto", "sasrec", "grouplens") or (form == "sasrec" and key != "ml-1m"):
        raise ValueError(
            f"form must be 'auto', 'sasrec' (ml-1m only) or 'grouplens'; got {form!r} for {key}."
        )
    searched = []
    data_dir = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    if data_dir is not None:
        data_dir = pathlib.Path(data_dir).expanduser()
        found = _local_folder(key, data_dir, form)
        if found is not None:
            return _read(key, found[0], found[1], on_bad_lines)
        searched.append(str(data_dir))
    if form == "sasrec":
        raise FileNotFoundError(
            f"No ml-1m.txt found under {searched or 'no data_dir'}; the SASRec form is not hosted by "
            f"GroupLens. Pass data_dir= (or set {DATA_DIR_ENV}) to a folder holding ml-1m/ml-1m.txt."
        )
    source = source or DATASET_SOURCES[key]
    cache = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = cache / source.folder
    if all((folder / f).is_file() for f in source.required_files):
        return _read(key, folder, "grouplens", on_bad_lines)
    searched.append(str(cache))
    if not download:
        raise FileNotFoundError(
            f"{key} not found in {searched} and download=False. Pass download=True to fetch "
            f"{source.url}, or data_dir= a folder holding {source.folder}/."
        )
    logger.info("%s not found locally (%s); downloading.", key, searched)
    folder = fetch_archive(key, cache, source)
    return _read(key, folder, "grouplens", on_bad_lines)
