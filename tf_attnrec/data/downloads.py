"""Download dataset archives into a cache, verify their sha256, extract them atomically.

The table of archives, `DATASET_SOURCES`, can be overridden per call (`source=`), e.g. to
point at a mirror or, in tests, at a local HTTP server or a `file://` URL.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import pathlib
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from typing import Optional, Union

from tf_attnrec.data.errors import ChecksumMismatchError, DownloadError

CACHE_DIR_ENV = "TF_ATTNREC_CACHE_DIR"
_CHUNK_BYTES = 1 << 20

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ArchiveSource:
    """Where a dataset's zip comes from and what it must contain.

    Args:
        url: http(s):// or file:// URL of the zip.
        sha256: expected hex sha256 of the zip; None skips verification (with a warning).
        size: expected size in bytes, or None.
        folder: the top-level folder inside the zip (e.g. "ml-1m").
        required_files: files that must exist inside `folder`.
    """

    url: str
    sha256: Optional[str]
    folder: str
    required_files: tuple[str, ...]
    size: Optional[int] = None


# sha256 and sizes: tensorflow/datasets, tensorflow_datasets/url_checksums/movielens.txt.
# The MD5s published alongside in several public loaders agree on the same files:
# ml-1m.zip c4d9eecfca2ab87c1945afe126590906, ml-100k.zip 0e33842e24a9c977be4e0107933c0723.
def grouplens_source(name: str, sha256: str, size: int, required_files: tuple[str, ...]) -> ArchiveSource:
    """The GroupLens zip `<name>.zip`, unpacked to the folder `<name>/`."""
    return ArchiveSource(url=f"https://files.grouplens.org/datasets/movielens/{name}.zip", sha256=sha256,
                         size=size, folder=name, required_files=required_files)


DATASET_SOURCES: dict[str, ArchiveSource] = {
    "ml-1m": grouplens_source("ml-1m", "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
                              5917549, ("ratings.dat", "movies.dat", "users.dat")),
    "ml-100k": grouplens_source("ml-100k", "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
                                4924029, ("u.data", "u.item", "u.user")),
}


def default_cache_dir() -> pathlib.Path:
    """`$TF_ATTNREC_CACHE_DIR` if set, else `~/.cache/tf_attnrec`."""
    configured = os.environ.get(CACHE_DIR_ENV)
    return pathlib.Path(configured or pathlib.Path.home() / ".cache" / "tf_attnrec").expanduser()


def file_sha256(path: Union[str, os.PathLike]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(
    url: str,
    destination: Union[str, os.PathLike],
    sha256: Optional[str],
    size: Optional[int] = None,
    timeout: float = 60.0,
) -> pathlib.Path:
    """Downloads `url` to `destination` atomically, verifying size and sha256.

    The bytes go to a temporary file next to `destination`, which is renamed into place only
    after the checksum matches, so an interrupted or corrupt download never looks complete.

    Args:
        url: http(s):// or file:// URL.
        destination: final file path (parent folders are created).
        sha256: expected hex digest; None skips verification with a warning.
        size: expected size in bytes, or None.
        timeout: socket timeout in seconds.

    Returns:
        `destination` as a Path.

    Raises:
        DownloadError: the URL could not be read.
        ChecksumMismatchError: size or sha256 differ (the partial file is deleted).

    Example:
        ```python
        source = DATASET_SOURCES["ml-1m"]
        download_file(source.url, "/tmp/ml-1m.zip", source.sha256, source.size)
        ```
    """
    destination = pathlib.Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".part", dir=destination.parent
    )
    digest = hashlib.sha256()
    received = 0
    try:
        with os.fdopen(handle, "wb") as out:
            try:
                # http(s):// and file:// are both wanted here (mirrors, tests).
                with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
                    for chunk in iter(lambda: response.read(_CHUNK_BYTES), b""):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
            except (urllib.error.URLError, OSError, ValueError) as error:
                raise DownloadError(
                    f"Could not download {url}: {error}. Check the network, or download the file "
                    f"yourself, unzip it and pass its parent folder as data_dir=..."
                ) from error
        if size is not None and received != size:
            raise ChecksumMismatchError(
                f"{url}: downloaded {received:,} bytes, expected {size:,}. The file was deleted; "
                "retry, or check whether the published file changed."
            )
        actual = digest.hexdigest()
        if sha256 is None:
            warnings.warn(
                f"{url}: no sha256 given, so the download was not verified (sha256={actual}).",
                stacklevel=2,
            )
        elif actual != sha256.lower():
            raise ChecksumMismatchError(
                f"{url}: sha256 {actual} does not match the expected {sha256}. The file was "
                "deleted. Retry; if it persists the server's file differs from the one this "
                "library pins (pass source=... with the new checksum only if you trust it)."
            )
        os.replace(temporary, destination)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return destination


def fetch_archive(
    name: str,
    cache_dir: Optional[Union[str, os.PathLike]] = None,
    source: Optional[ArchiveSource] = None,
) -> pathlib.Path:
    """Returns the extracted folder of a dataset archive, downloading it on first use.

    Args:
        name: a key of `DATASET_SOURCES` ("ml-1m", "ml-100k").
        cache_dir: cache folder; default `default_cache_dir()`.
        source: overrides the `DATASET_SOURCES` entry (URL, checksum, layout).

    Returns:
        `cache_dir/<folder>` holding the archive's files.

    Raises:
        DownloadError, ChecksumMismatchError: see `download_file`; DownloadError also when the
            archive lacks the expected files.

    Example:
        ```python
        folder = fetch_archive("ml-100k")  # ~/.cache/tf_attnrec/ml-100k
        ```
    """
    if source is None:
        if name not in DATASET_SOURCES:
            raise ValueError(f"No download source for {name!r}; known: {sorted(DATASET_SOURCES)}.")
        source = DATASET_SOURCES[name]
    cache = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = cache / source.folder
    if all((folder / f).is_file() for f in source.required_files):
        return folder
    archive = cache / f"{source.folder}.zip"
    verifiable = archive.is_file() and source.sha256 is not None
    if verifiable and file_sha256(archive) != source.sha256.lower():
        logger.warning("Cached %s fails its sha256 check; deleting and downloading again.", archive)
        archive.unlink()
    if not archive.is_file():
        logger.info("Downloading %s to %s", source.url, archive)
        download_file(source.url, archive, source.sha256, source.size)
    _extract(archive, cache, source)
    return folder


def _extract(archive: pathlib.Path, cache: pathlib.Path, source: ArchiveSource) -> None:
    """Extracts `source.folder` from the zip into `cache`, atomically (temp dir + rename)."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            names = set(zipped.namelist())
            missing = [f for f in source.required_files if f"{source.folder}/{f}" not in names]
            if missing:
                raise DownloadError(
                    f"{archive}: the archive lacks {[f'{source.folder}/{f}' for f in missing]}; "
                    f"expected the GroupLens layout with a top-level '{source.folder}/' folder."
                )
            members = [n for n in names if n.startswith(f"{source.folder}/")]
            for member in members:
                parts = pathlib.PurePosixPath(member).parts
                if member.startswith("/") or ".." in parts:
                    raise DownloadError(f"{archive}: unsafe path {member!r} in the archive.")
            staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{source.folder}.", dir=cache))
            try:
                zipped.extractall(staging, members=members)
                target = cache / source.folder
                if target.exists():
                    shutil.rmtree(target)  # an incomplete folder from an older extraction
                os.replace(staging / source.folder, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except zipfile.BadZipFile as error:
        archive.unlink(missing_ok=True)
        raise DownloadError(f"{archive}: not a valid zip ({error}); it was deleted, retry.") from error
