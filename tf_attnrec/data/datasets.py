"""Named datasets: a registry of `DatasetSpec`s resolved to local files or a verified download.

Each named dataset ("ml-1m", "ml-100k") is one `DatasetSpec`: its download (`ArchiveSource`),
the local files it can be read from (`LocalForm`: a marker file and its reader) and, per
form, the preprocessing that turns what was read into that form (`FormRecipe`). Adding a
dataset is one `register_dataset(DatasetSpec(...))` call; `load_dataset` has no per-name code.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
from typing import Callable, Literal, Optional, Union

from tf_attnrec.data.dataset import Dataset
from tf_attnrec.data.downloads import DATASET_SOURCES, ArchiveSource, default_cache_dir, fetch_archive
from tf_attnrec.data.errors import DataFormatError
from tf_attnrec.data.preprocessing import sasrec_form
from tf_attnrec.data.readers import (
    OnBadLines,
    read_movielens_1m,
    read_movielens_100k,
    read_sasrec_movielens_1m,
)

DATA_DIR_ENV = "TF_ATTNREC_DATA_DIR"
Form = Literal["auto", "sasrec", "grouplens"]
Reader = Callable[..., Dataset]  # reader(folder, on_bad_lines=...) -> Dataset
Preprocess = Callable[[Dataset], Dataset]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class FormRecipe:
    """How a `LocalForm`'s files become one form of the dataset.

    Args:
        form: the form's name, as passed to `load_dataset(form=...)`, e.g. "sasrec".
        description: recorded as `Dataset.form`, e.g. "sasrec (ml-1m.txt)".
        preprocess: applied to the `Dataset` the reader returns; None keeps it as read.
    """

    form: str
    description: str
    preprocess: Optional[Preprocess] = None


@dataclasses.dataclass(frozen=True)
class LocalForm:
    """One set of files a named dataset can be read from.

    Args:
        marker: the file whose presence in a folder selects this form, e.g. "ml-1m.txt".
        reader: `reader(folder, on_bad_lines=...) -> Dataset`.
        recipes: the forms these files can give, in no particular order.

    Example:
        ```python
        LocalForm("u.data", read_movielens_100k, (FormRecipe("grouplens", "grouplens (all ratings)"),))
        ```
    """

    marker: str
    reader: Reader
    recipes: tuple[FormRecipe, ...]

    def recipe(self, form: str) -> Optional[FormRecipe]:
        """The recipe giving `form` from these files, or None."""
        return next((recipe for recipe in self.recipes if recipe.form == form), None)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: where to download it, which local files it can be read from, and how.

    Args:
        name: the registry key (lower case), e.g. "ml-1m".
        source: the archive `load_dataset` downloads when no local copy is found.
        local_forms: the files searched for in each candidate folder, in this order (the
            first one that exists and can give the requested form wins).
        default_form: the form `form="auto"` stands for.
        description: one line for `list_datasets` users and docs.

    Raises:
        ValueError: `default_form` is not given by any local form, or no local form reads the
            archive (none of the markers is among `source.required_files`).

    Example:
        ```python
        spec = get_dataset_spec("ml-1m")
        spec.forms  # ('sasrec', 'grouplens')
        ```
    """

    name: str
    source: ArchiveSource
    local_forms: tuple[LocalForm, ...]
    default_form: str
    description: str = ""

    def __post_init__(self):
        if self.default_form not in self.forms:
            raise ValueError(
                f"DatasetSpec {self.name!r}: default_form {self.default_form!r} is not among the "
                f"forms its local files give, {list(self.forms)}."
            )
        self.archive_form(self.source)  # validates the archive layout

    @property
    def forms(self) -> tuple[str, ...]:
        """Every form some local file gives, in order of first mention."""
        names = [recipe.form for local in self.local_forms for recipe in local.recipes]
        return tuple(dict.fromkeys(names))

    def resolve_form(self, form: str) -> str:
        """Maps "auto" to `default_form` and checks that `form` is known.

        Raises:
            ValueError: `form` is not "auto" nor one of `forms`.
        """
        if form == "auto":
            return self.default_form
        if form not in self.forms:
            choices = ", ".join(repr(f) for f in ("auto", *self.forms))
            raise ValueError(f"form must be one of {choices} for {self.name}; got {form!r}.")
        return form

    def archive_form(self, source: Optional[ArchiveSource] = None) -> LocalForm:
        """The local form that reads the extracted archive of `source` (default `self.source`)."""
        source = source or self.source
        for local in self.local_forms:
            if local.marker in source.required_files:
                return local
        raise ValueError(
            f"{self.name}: the archive's required_files {list(source.required_files)} include none "
            f"of the local markers {[local.marker for local in self.local_forms]}; expected one of "
            "them so the downloaded folder can be read."
        )

    def markers(self, form: str) -> list[str]:
        """The marker files that can give `form`, in search order."""
        return [local.marker for local in self.local_forms if local.recipe(form) is not None]


@dataclasses.dataclass(frozen=True)
class DatasetLocation:
    """Where `load_dataset` would read a named dataset from (see `locate_dataset`).

    Args:
        spec: the registry entry.
        form: the resolved form ("auto" already mapped).
        folder: the folder to read, or None when it must be downloaded first.
        local_form: the files read there (for a download: the archive's form).
        recipe: how they become `form`; None when the download cannot give `form`.
        origin: "data_dir", "cache" or "download".
        cache_dir: the cache folder a download goes to.
        searched: the folders looked in without success, for error messages.
    """

    spec: DatasetSpec
    form: str
    folder: Optional[pathlib.Path]
    local_form: LocalForm
    recipe: Optional[FormRecipe]
    origin: Literal["data_dir", "cache", "download"]
    cache_dir: pathlib.Path
    searched: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------
# The registry.
# --------------------------------------------------------------------------------------
DATASET_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Adds `spec` to the registry under `spec.name` (lower case).

    Args:
        spec: the dataset's spec.
        replace: allow replacing an existing entry of the same name.

    Returns:
        `spec`.

    Raises:
        ValueError: the name is taken and `replace` is False.

    Example:
        ```python
        register_dataset(dataclasses.replace(get_dataset_spec("ml-1m"), name="ml-1m-mirror",
                                             source=my_mirror))
        ```
    """
    key = spec.name.lower()
    if key in DATASET_REGISTRY and not replace:
        raise ValueError(f"A dataset named {key!r} is already registered; pass replace=True.")
    DATASET_REGISTRY[key] = spec
    return spec


def get_dataset_spec(name: str) -> DatasetSpec:
    """The registered `DatasetSpec` for `name` (case-insensitive).

    Raises:
        ValueError: unknown name (the message lists the available ones).
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in DATASET_REGISTRY:
        raise ValueError(f"Unknown dataset {name!r}; available: {list_datasets()}.")
    return DATASET_REGISTRY[key]


def list_datasets() -> list[str]:
    """Names accepted by `load_dataset`, from the registry."""
    return sorted(DATASET_REGISTRY)


def _sasrec_from_ratings(data: Dataset) -> Dataset:
    interactions = sasrec_form(data.interactions)
    if interactions.empty:
        raise DataFormatError(
            f"{pathlib.Path(data.source) / 'ratings.dat'}: no rating has both a user and an item "
            "with >= 5 ratings, so the SASRec form is empty; pass form='grouplens' to read all "
            "ratings."
        )
    return dataclasses.replace(data, interactions=interactions)


ALL_RATINGS = "grouplens (all ratings)"

register_dataset(
    DatasetSpec(
        name="ml-1m",
        source=DATASET_SOURCES["ml-1m"],
        local_forms=(
            LocalForm(
                "ml-1m.txt",
                read_sasrec_movielens_1m,
                (FormRecipe("sasrec", "sasrec (ml-1m.txt)"),),
            ),
            LocalForm(
                "ratings.dat",
                read_movielens_1m,
                (
                    FormRecipe(
                        "sasrec", "sasrec (5-core, chronological, from ratings.dat)", _sasrec_from_ratings
                    ),
                    FormRecipe("grouplens", ALL_RATINGS),
                ),
            ),
        ),
        default_form="sasrec",
        description="MovieLens 1M: 6,040 users; SASRec form 3,416 items / 999,611 interactions.",
    )
)
register_dataset(
    DatasetSpec(
        name="ml-100k",
        source=DATASET_SOURCES["ml-100k"],
        local_forms=(LocalForm("u.data", read_movielens_100k, (FormRecipe("grouplens", ALL_RATINGS),)),),
        default_form="grouplens",
        description="MovieLens 100K: 943 users, 1,682 items, 100,000 ratings.",
    )
)


# --------------------------------------------------------------------------------------
# Lookup and loading.
# --------------------------------------------------------------------------------------
def locate_dataset(
    name: str,
    data_dir: Optional[Union[str, os.PathLike]] = None,
    cache_dir: Optional[Union[str, os.PathLike]] = None,
    form: Form = "auto",
    source: Optional[ArchiveSource] = None,
) -> DatasetLocation:
    """Finds where `load_dataset` would read `name` from, without reading or downloading.

    Args: as `load_dataset`.

    Returns:
        A `DatasetLocation`; its `folder` is None when only a download can provide it.

    Raises:
        ValueError: unknown name or form.

    Example:
        ```python
        locate_dataset("ml-1m", data_dir="../shared/data").recipe.description
        # 'sasrec (ml-1m.txt)'
        ```
    """
    spec = get_dataset_spec(name)
    form = spec.resolve_form(form)
    searched = []
    cache = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    data_dir = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    if data_dir is not None:
        data_dir = pathlib.Path(data_dir).expanduser()
        for folder in (data_dir / spec.name, data_dir):
            for local in spec.local_forms:
                recipe = local.recipe(form)
                if recipe is not None and (folder / local.marker).is_file():
                    return DatasetLocation(
                        spec, form, folder, local, recipe, "data_dir", cache, tuple(searched)
                    )
        searched.append(str(data_dir))
    source = source or spec.source
    archive = spec.archive_form(source)
    folder = cache / source.folder
    recipe = archive.recipe(form)
    if recipe is not None and all((folder / f).is_file() for f in source.required_files):
        return DatasetLocation(spec, form, folder, archive, recipe, "cache", cache, tuple(searched))
    searched.append(str(cache))
    return DatasetLocation(spec, form, None, archive, recipe, "download", cache, tuple(searched))


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
    `~/.cache/tf_attnrec`); then, if `download`, the GroupLens zip, sha256-checked. What each
    name can be read from is its `DatasetSpec` in the registry (`get_dataset_spec`).

    For "ml-1m", `form="auto"` means "sasrec", the form the zoo's numbers are on:
    a folder with `ml-1m.txt` is read as it is (6,040 users, 3,416 items, 999,611
    interactions, dense SASRec ids, joined to movies.dat/users.dat metadata through
    `ml-1m_original_ids.txt`); otherwise GroupLens `ratings.dat` (local, cached or
    downloaded) is turned into the same form by `sasrec_form` (5-core in one pass,
    chronological per user; raw MovieLens ids; expected 6,040 / 3,416 / 999,611).
    `form="grouplens"` reads all 1,000,209 ratings of `ratings.dat`. `Dataset.form` records
    which one was read.

    Args:
        name: "ml-1m" or "ml-100k" (see `list_datasets()`).
        data_dir: folder holding `<name>/` (e.g. the project's `../shared/data`).
        cache_dir: download cache folder.
        download: allow downloading when no local copy is found.
        form: "auto", "sasrec" (ml-1m only) or "grouplens".
        source: overrides the URL / checksum / layout of the download.
        on_bad_lines: "error" or "skip", passed to the readers.

    Returns:
        `Dataset` (interactions, items and users metadata, name, source folder, form).

    Raises:
        ValueError: unknown name or form.
        FileNotFoundError: no local copy and `download=False` (or a form the download cannot
            give).

    Example:
        ```python
        data = load_dataset("ml-1m", data_dir="../shared/data")
        data.form  # 'sasrec (ml-1m.txt)'
        ```
    """
    location = locate_dataset(name, data_dir=data_dir, cache_dir=cache_dir, form=form, source=source)
    spec, folder, recipe = location.spec, location.folder, location.recipe
    if folder is None:
        source = source or spec.source
        if recipe is None:
            raise FileNotFoundError(
                f"No {' or '.join(spec.markers(location.form))} found under "
                f"{list(location.searched[:-1]) or 'no data_dir'}; the {location.form} form of "
                f"{spec.name} is not hosted by GroupLens ({source.url} gives "
                f"{[r.form for r in location.local_form.recipes]}). Pass data_dir= "
                f"(or set {DATA_DIR_ENV}) to a folder holding {spec.name}/"
                f"{spec.markers(location.form)[0]}."
            )
        if not download:
            raise FileNotFoundError(
                f"{spec.name} not found in {list(location.searched)} and download=False. Pass "
                f"download=True to fetch {source.url}, or data_dir= a folder holding "
                f"{source.folder}/ with {' or '.join(spec.markers(location.form))}."
            )
        logger.info("%s not found locally (%s); downloading.", spec.name, list(location.searched))
        folder = fetch_archive(spec.name, location.cache_dir, source)
    data = location.local_form.reader(folder, on_bad_lines=on_bad_lines)
    if recipe.preprocess is not None:
        data = recipe.preprocess(data)
    return dataclasses.replace(data, name=spec.name, form=recipe.description)
