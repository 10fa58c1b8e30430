"""Named datasets: local resolution, and the download path against a local HTTP server."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import pathlib
import threading
import zipfile

import pandas as pd
import pytest

from tf_attnrec.data import datasets
from tf_attnrec.data.dataset import Dataset
from tf_attnrec.data.datasets import (
    DATASET_REGISTRY,
    DatasetSpec,
    FormRecipe,
    LocalForm,
    get_dataset_spec,
    list_datasets,
    load_dataset,
    locate_dataset,
    register_dataset,
)
from tf_attnrec.data.downloads import DATASET_SOURCES, ArchiveSource, fetch_archive
from tf_attnrec.data.errors import ChecksumMismatchError, DataFormatError, DownloadError
from tf_attnrec.data.readers import read_movielens_ratings, read_sasrec_txt

ML1M_FILES = {
    "ml-1m/ratings.dat": "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298709\n3::661::2::978297000\n",
    "ml-1m/movies.dat": "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
    "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n",
    "ml-1m/users.dat": "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n",
    "ml-1m/README": "SUMMARY\n",
}
ML100K_FILES = {
    "ml-100k/u.data": "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t1\t878887116\n",
    "ml-100k/u.item": "242|Kolya (1996)|24-Jan-1997||http://us.imdb.com/M/title-exact?Kolya%20(1996)|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
    "302|L.A. Confidential (1997)|01-Jan-1997||http://us.imdb.com/M/title-exact?L%2EA%2E+Confidential+(1997)|0|0|0|0|0|0|1|0|0|0|1|0|0|1|0|0|1|0|0\n",
    "ml-100k/u.user": "186|39|F|executive|00000\n196|49|M|writer|55105\n",
    "ml-100k/u.genre": "".join(f"{name}|{i}\n" for i, name in enumerate(
        ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
         "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
         "Thriller", "War", "Western"])) + "\n",
}  # fmt: skip


def _zip(path: pathlib.Path, files: dict) -> str:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text.encode("ISO-8859-1"))
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    requests: list = []

    def do_GET(self):  # noqa: N802 (http.server naming)
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Serves GroupLens-layout zips from a temp folder on 127.0.0.1; yields (base_url, folder, log)."""
    folder = tmp_path_factory.mktemp("grouplens")
    log: list = []
    handler = functools.partial(type("Handler", (_CountingHandler,), {"requests": log}), directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", folder, log
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def ml1m_zip(server):
    base, folder, _ = server
    sha = _zip(folder / "ml-1m.zip", ML1M_FILES)
    return dataclasses.replace(DATASET_SOURCES["ml-1m"], url=f"{base}/ml-1m.zip", sha256=sha, size=(folder / "ml-1m.zip").stat().st_size)


def _leftovers(cache: pathlib.Path) -> list:
    return sorted(p.name for p in cache.rglob("*")) if cache.exists() else []


def test_download_over_http_verifies_caches_and_reuses(server, ml1m_zip, tmp_path):
    _, _, log = server
    cache = tmp_path / "cache"
    before = len(log)
    data = load_dataset(
        "ml-1m", data_dir=tmp_path / "nothing-here", cache_dir=cache, source=ml1m_zip, form="grouplens"
    )
    assert len(log) == before + 1
    assert (data.num_users, data.num_items, data.num_interactions) == (3, 2, 4)
    assert data.form == "grouplens (all ratings)"
    assert data.items.set_index("item_id").loc[1193, "year"] == 1975
    assert data.users["gender"].tolist() == ["F", "M", "M"]
    assert (cache / "ml-1m.zip").is_file() and (cache / "ml-1m" / "ratings.dat").is_file()
    assert not [name for name in _leftovers(cache) if name.startswith(".")]  # no temp files
    again = load_dataset("ml-1m", cache_dir=cache, source=ml1m_zip, form="grouplens")
    assert len(log) == before + 1  # served from the cache, no second request
    assert again.num_interactions == 4
    with pytest.raises(DataFormatError, match=r"ml-1m/ratings\.dat: no rating .* SASRec form is empty; pass form='grouplens'"):
        load_dataset("ml-1m", cache_dir=cache, source=ml1m_zip, download=False)  # "auto": 4 ratings, no 5-core


def test_checksum_mismatch_deletes_the_file_and_raises(server, ml1m_zip, tmp_path):
    cache = tmp_path / "cache"
    wrong = dataclasses.replace(ml1m_zip, sha256="0" * 64)
    with pytest.raises(ChecksumMismatchError, match=r"sha256 [0-9a-f]{64} does not match the expected 0{64}\. The file was deleted"):
        load_dataset("ml-1m", cache_dir=cache, source=wrong)
    assert _leftovers(cache) == []
    short = dataclasses.replace(ml1m_zip, size=ml1m_zip.size + 1)
    with pytest.raises(ChecksumMismatchError, match=rf"downloaded {ml1m_zip.size:,} bytes, expected {ml1m_zip.size + 1:,}"):
        fetch_archive("ml-1m", cache, short)
    assert _leftovers(cache) == []


def test_corrupt_cached_archive_is_replaced(server, ml1m_zip, tmp_path):
    _, _, log = server
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "ml-1m.zip").write_bytes(b"truncated download")
    before = len(log)
    folder = fetch_archive("ml-1m", cache, ml1m_zip)
    assert len(log) == before + 1
    assert hashlib.sha256((cache / "ml-1m.zip").read_bytes()).hexdigest() == ml1m_zip.sha256
    assert (folder / "users.dat").read_text() == ML1M_FILES["ml-1m/users.dat"]


def test_file_url_and_cache_env_var(tmp_path, monkeypatch):
    archive = tmp_path / "ml-100k.zip"
    sha = _zip(archive, ML100K_FILES)
    cache = tmp_path / "env-cache"
    monkeypatch.setenv("TF_ATTNREC_CACHE_DIR", str(cache))
    monkeypatch.delenv("TF_ATTNREC_DATA_DIR", raising=False)
    source = dataclasses.replace(DATASET_SOURCES["ml-100k"], url=archive.as_uri(), sha256=sha, size=None)
    data = load_dataset("ml-100k", source=source)
    assert (data.num_users, data.num_items, data.num_interactions) == (2, 2, 3)
    assert data.items.set_index("item_id").loc[302, "genres"] == ("Crime", "Film-Noir", "Mystery", "Thriller")
    assert (cache / "ml-100k" / "u.data").is_file()


def test_archive_without_grouplens_layout_is_rejected(server, tmp_path):
    base, folder, _ = server
    sha = _zip(folder / "flat.zip", {"ratings.dat": ML1M_FILES["ml-1m/ratings.dat"]})
    source = dataclasses.replace(DATASET_SOURCES["ml-1m"], url=f"{base}/flat.zip", sha256=sha, size=None)
    with pytest.raises(DownloadError, match=r"lacks \['ml-1m/ratings.dat', 'ml-1m/movies.dat', 'ml-1m/users.dat'\]"):
        fetch_archive("ml-1m", tmp_path / "cache", source)
    assert not (tmp_path / "cache" / "ml-1m").exists()


def test_unreachable_url_is_a_clear_error(server, tmp_path):
    base, _, _ = server
    source = dataclasses.replace(DATASET_SOURCES["ml-1m"], url=f"{base}/missing.zip")
    with pytest.raises(DownloadError, match=r"Could not download http://127\.0\.0\.1:\d+/missing\.zip.*data_dir"):
        fetch_archive("ml-1m", tmp_path / "cache", source)
    assert _leftovers(tmp_path / "cache") == []


def test_no_local_copy_and_no_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=False"):
        load_dataset("ml-100k", data_dir=tmp_path, cache_dir=tmp_path / "cache", download=False)
    # The SASRec form would be derived from the GroupLens download, which download=False forbids.
    with pytest.raises(FileNotFoundError, match=r"download=False\. .*ml-1m/ with ml-1m\.txt or ratings\.dat"):
        load_dataset("ml-1m", data_dir=tmp_path, cache_dir=tmp_path / "cache", form="sasrec", download=False)
    with pytest.raises(ValueError, match=r"Unknown dataset 'ml-20m'; available: \['ml-100k', 'ml-1m'\]"):
        load_dataset("ml-20m")


def test_local_data_dir_argument_and_env_var(shared_data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TF_ATTNREC_DATA_DIR", str(shared_data_dir))
    ml100k = load_dataset("ml-100k", cache_dir=tmp_path, download=False)
    assert (ml100k.num_users, ml100k.num_items, ml100k.num_interactions) == (943, 1682, 100_000)
    assert ml100k.source == str(shared_data_dir / "ml-100k")
    ml1m = load_dataset("ml-1m", data_dir=shared_data_dir, download=False)  # argument wins
    assert (ml1m.num_users, ml1m.num_items, ml1m.num_interactions) == (6040, 3416, 999_611)
    assert ml1m.items is not None and ml1m.users is not None
    assert _leftovers(tmp_path) == []  # nothing was downloaded or cached


def test_published_sources_point_at_grouplens():
    for name, source in DATASET_SOURCES.items():
        assert source.url == f"https://files.grouplens.org/datasets/movielens/{name}.zip"
        assert len(source.sha256) == 64 and int(source.sha256, 16) >= 0
        assert source.size > 1_000_000


# ----------------------------------------------------------------------------- ML-1M forms
def _five_core_ratings() -> str:
    """ratings.dat lines: users 1-6 x items 10-50 survive SASRec's filter; user 7 and item 99 do not.

    Each user's rows are written newest first, so the chronological sort has work to do.
    """
    lines = []
    for user in range(1, 7):
        for rank, item in enumerate((10, 20, 30, 40, 50)):
            lines.append(f"{user}::{item}::4::{978300000 + 100 * user - rank}")
        if user <= 3:
            lines.append(f"{user}::99::3::{978300000 + 100 * user - 10}")  # item 99: 3 ratings
    lines += ["7::10::5::978301000", "7::20::5::978301001"]  # user 7: 2 ratings
    return "\n".join(lines) + "\n"


ML1M_5CORE_FILES = {
    **ML1M_FILES,
    "ml-1m/ratings.dat": _five_core_ratings(),
    "ml-1m/movies.dat": "".join(f"{i}::Movie {i} (1999)::Drama\n" for i in (10, 20, 30, 40, 50, 99)),
    "ml-1m/users.dat": "".join(f"{u}::M::25::{u}::00000\n" for u in range(1, 8)),
}


@pytest.fixture(scope="module")
def ml1m_5core_zip(server):
    base, folder, _ = server
    sha = _zip(folder / "ml-1m-5core.zip", ML1M_5CORE_FILES)
    return dataclasses.replace(DATASET_SOURCES["ml-1m"], url=f"{base}/ml-1m-5core.zip", sha256=sha, size=None)


def test_downloaded_ratings_are_turned_into_the_sasrec_form(server, ml1m_5core_zip, tmp_path):
    _, _, log = server
    cache = tmp_path / "cache"
    before = len(log)
    data = load_dataset("ml-1m", data_dir=tmp_path / "nothing-here", cache_dir=cache, source=ml1m_5core_zip)
    assert len(log) == before + 1
    assert data.form == "sasrec (5-core, chronological, from ratings.dat)"
    assert (data.num_users, data.num_items, data.num_interactions) == (6, 5, 30)
    frame = data.interactions
    assert frame["user_id"].tolist() == [u for u in range(1, 7) for _ in range(5)]  # raw ids kept
    assert frame.loc[frame["user_id"] == 1, "item_id"].tolist() == [50, 40, 30, 20, 10]  # oldest first
    assert (frame.groupby("user_id")["timestamp"].diff().dropna() > 0).all()
    assert data.items.set_index("item_id").loc[30, "title"] == "Movie 30 (1999)"  # metadata joins
    assert "form='sasrec (5-core, chronological, from ratings.dat)'" in repr(data)

    sasrec = load_dataset("ml-1m", cache_dir=cache, source=ml1m_5core_zip, form="sasrec", download=False)
    pd.testing.assert_frame_equal(sasrec.interactions, frame)
    everything = load_dataset("ml-1m", cache_dir=cache, source=ml1m_5core_zip, form="grouplens", download=False)
    assert everything.form == "grouplens (all ratings)"
    assert (everything.num_users, everything.num_items, everything.num_interactions) == (7, 6, 35)
    assert len(log) == before + 1  # both read from the cache


def test_local_ratings_dat_follows_the_form(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    for name, text in ML1M_5CORE_FILES.items():
        (tmp_path / name).write_text(text, encoding="ISO-8859-1")
    auto = load_dataset("ml-1m", data_dir=tmp_path, cache_dir=tmp_path / "cache", download=False)
    assert auto.form == "sasrec (5-core, chronological, from ratings.dat)" and auto.num_interactions == 30
    assert auto.source == str(folder)
    grouplens = load_dataset("ml-1m", data_dir=folder, form="grouplens", download=False)  # data_dir itself
    assert grouplens.num_interactions == 35
    (folder / "ml-1m.txt").write_text("1 1\n1 2\n2 1\n")  # a prepared SASRec file wins for "auto"
    assert load_dataset("ml-1m", data_dir=tmp_path, download=False).form == "sasrec (ml-1m.txt)"
    assert load_dataset("ml-1m", data_dir=tmp_path, form="grouplens", download=False).num_interactions == 35


def test_real_files_record_their_form(shared_data_dir):
    location = locate_dataset("ml-1m", data_dir=shared_data_dir)
    assert (location.origin, location.form, location.folder) == ("data_dir", "sasrec", shared_data_dir / "ml-1m")
    assert location.recipe.description == "sasrec (ml-1m.txt)"
    ml100k = load_dataset("ml-100k", data_dir=shared_data_dir, download=False)
    assert ml100k.form == "grouplens (all ratings)" and ml100k.name == "ml-100k"


# ----------------------------------------------------------------------------- the registry
def test_registry_lists_and_describes_the_named_datasets():
    assert list_datasets() == sorted(DATASET_REGISTRY) == ["ml-100k", "ml-1m"]
    ml1m = get_dataset_spec("ML-1M")
    assert ml1m.forms == ("sasrec", "grouplens") and ml1m.default_form == "sasrec"
    assert ml1m.source is DATASET_SOURCES["ml-1m"]
    assert [local.marker for local in ml1m.local_forms] == ["ml-1m.txt", "ratings.dat"]
    assert ml1m.archive_form().marker == "ratings.dat"
    ml100k = get_dataset_spec("ml-100k")
    assert ml100k.forms == ("grouplens",) and ml100k.resolve_form("auto") == "grouplens"
    with pytest.raises(ValueError, match=r"form must be one of 'auto', 'grouplens' for ml-100k; got 'sasrec'"):
        load_dataset("ml-100k", form="sasrec")
    with pytest.raises(ValueError, match=r"form must be one of 'auto', 'sasrec', 'grouplens' for ml-1m; got 'raw'"):
        load_dataset("ml-1m", form="raw")


def test_a_registered_dataset_is_loaded_without_new_code(tmp_path, monkeypatch):
    """A new spec is enough: lookup, forms, the not-hosted error and list_datasets come from it."""
    monkeypatch.setattr(datasets, "DATASET_REGISTRY", dict(DATASET_REGISTRY))
    archive = ArchiveSource(url="file:///nowhere/tiny.zip", sha256=None, folder="tiny", required_files=("ratings.dat",))

    def read_ratings(folder, on_bad_lines="error"):
        return Dataset(read_movielens_ratings(folder / "ratings.dat", on_bad_lines=on_bad_lines), source=str(folder))

    spec = DatasetSpec(
        name="tiny",
        source=archive,
        local_forms=(
            LocalForm("tiny.txt", lambda folder, on_bad_lines="error": Dataset(read_sasrec_txt(folder / "tiny.txt")),
                      (FormRecipe("sasrec", "sasrec (tiny.txt)"),)),
            LocalForm("ratings.dat", read_ratings, (FormRecipe("grouplens", "grouplens (all ratings)"),)),
        ),
        default_form="grouplens",
    )  # fmt: skip
    register_dataset(spec)
    assert "tiny" in list_datasets()
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(spec)
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "ratings.dat").write_text("1::2::3::4\n")
    data = load_dataset("tiny", data_dir=tmp_path, download=False)
    assert (data.name, data.form, data.num_interactions) == ("tiny", "grouplens (all ratings)", 1)
    with pytest.raises(FileNotFoundError, match=r"No tiny\.txt found under .*the sasrec form of tiny is not hosted"):
        load_dataset("tiny", data_dir=tmp_path, cache_dir=tmp_path / "cache", form="sasrec")
    with pytest.raises(ValueError, match=r"default_form 'ratings' is not among the forms"):
        dataclasses.replace(spec, default_form="ratings")
    with pytest.raises(ValueError, match=r"include none of the local markers \['tiny.txt', 'ratings.dat'\]"):
        dataclasses.replace(spec, source=dataclasses.replace(archive, required_files=("u.data",)))
