"""`DataSource`: users' own logs (CSV, TSV, Parquet, SASRec text, YAML) and named datasets."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
import yaml

from tf_attnrec.data.errors import DataFormatError
from tf_attnrec.data.sources import DataSource

LOG_CSV = (
    "uid,sku,ts,price\n"
    "u1,a,2003-02-28 17:49:50,1.5\n"
    "u1,b,2003-02-28 17:49:51,2.0\n"
    "u2,a,2003-03-01 00:00:00,1.5\n"
    "u2,c,2003-03-02 00:00:00,3.0\n"
    "u3,b,2003-03-03 00:00:00,2.0\n"
)


@pytest.fixture
def log_csv(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(LOG_CSV)
    return path


def _round_trip(source: DataSource) -> DataSource:
    config = source.to_config()
    assert yaml.safe_load(yaml.safe_dump(config)) == config == json.loads(json.dumps(config))
    again = DataSource.from_config(config)
    assert again == source
    return again


# ----------------------------------------------------------------------------- files
def test_csv_with_custom_column_names(log_csv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = DataSource.from_file("log.csv", user_col="uid", item_col="sku", time_col="ts")
    assert source.interactions == str(log_csv) and os.path.isabs(source.interactions)
    data = source.load()
    assert (data.name, data.source, data.form) == ("log", str(log_csv), "")
    assert list(data.interactions.columns) == ["user_id", "item_id", "timestamp", "price"]
    assert data.interactions["timestamp"].iloc[0] == 1046454590
    assert (data.num_users, data.num_items, data.num_interactions) == (3, 3, 5)
    assert data.items is None and data.users is None
    assert source.describe() == f"log.csv (CSV; user=uid item=sku time=ts) from {tmp_path}"
    assert source.to_config() == {
        "kind": "file", "interactions": str(log_csv), "user_col": "uid", "item_col": "sku", "time_col": "ts",
    }  # fmt: skip
    _round_trip(source)


def test_tsv_separator_is_inferred_and_sep_is_recorded(tmp_path):
    tsv = tmp_path / "log.tsv"
    tsv.write_text(LOG_CSV.replace(",", "\t"))
    assert DataSource.from_file(tsv, user_col="uid", item_col="sku").load().num_interactions == 5
    semi = tmp_path / "semi.csv"
    semi.write_text(LOG_CSV.replace(",", ";"))
    source = DataSource.from_file(semi, user_col="uid", item_col="sku", sep=";", name="clicks")
    data = _round_trip(source).load()
    assert (data.name, data.num_items) == ("clicks", 3)
    assert source.describe() == f"clicks: semi.csv (CSV; user=uid item=sku; sep=';') from {tmp_path}"


def test_parquet(tmp_path):
    path = tmp_path / "events.parquet"
    pd.DataFrame({"user": [1, 1, 2], "item": [10, 11, 10], "t": [3, 4, 5]}).to_parquet(path)
    source = DataSource.from_file(path, user_col="user", item_col="item", time_col="t")
    data = source.load()
    assert data.interactions[["user_id", "item_id", "timestamp"]].values.tolist() == [[1, 10, 3], [1, 11, 4], [2, 10, 5]]
    assert data.name == "events"
    assert source.describe().startswith("events.parquet (Parquet; user=user item=item time=t)")
    _round_trip(source)


def test_sasrec_text(tmp_path):
    path = tmp_path / "beauty.txt"
    path.write_text("1 5\n1 6\n2 5\n")
    source = DataSource.from_file(path)
    data = source.load()
    assert data.interactions.values.tolist() == [[1, 5, 0], [1, 6, 1], [2, 5, 2]]
    assert source.describe() == f"beauty.txt (SASRec text: 'user item' per line) from {tmp_path}"
    assert source.to_config() == {"kind": "file", "interactions": str(path)}
    with pytest.raises(ValueError, match=r"beauty\.txt: \['user_col', 'time_col'\] do not apply to a SASRec text file"):
        DataSource.from_file(path, user_col="uid", time_col="ts")


def test_missing_files(tmp_path, log_csv):
    with pytest.raises(FileNotFoundError, match=r"nope\.csv: no such file \(the interactions file"):
        DataSource.from_file(tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError, match=r"items\.csv: no such file \(the items file"):
        DataSource.from_file(log_csv, items=tmp_path / "items.csv")
    source = DataSource.from_file(log_csv, user_col="uid", item_col="sku")
    log_csv.unlink()  # the data moved after the run was recorded
    with pytest.raises(FileNotFoundError, match=r"log\.csv: no such file \(the interactions of data source log\.csv"):
        source.load()


# ----------------------------------------------------------------------------- YAML
def _dataset_yaml(tmp_path, **overrides) -> os.PathLike:
    folder = tmp_path / "mydata"
    (folder / "logs").mkdir(parents=True)
    rows = ["user,item,time"] + [f"{u},{i},{10 * u + i}" for u in range(1, 5) for i in range(1, 4)]
    rows += ["5,1,99", "1,9,100"]  # user 5 and item 9: one interaction each
    (folder / "logs" / "clicks.csv").write_text("\n".join(rows) + "\n")
    (folder / "items.csv").write_text(
        "item_id,title,genres,year,color\n"
        "1,Alpha,Comedy|Drama,1999,red\n"
        "2,Beta,,,blue\n"
        "3,Gamma,Horror,2001,\n"
        "9,Rare,Drama,1980,green\n"
    )
    pd.DataFrame({"user_id": [1, 2, 3, 4, 5], "gender": list("MFMFM"), "age": [18, 25, 35, 45, 56],
                  "occupation": ["writer", "artist", "doctor", "none", "lawyer"]}).to_parquet(folder / "users.parquet")  # fmt: skip
    config = {"interactions": "logs/clicks.csv", "user_col": "user", "item_col": "item", "time_col": "time",
              "items": "items.csv", "users": "users.parquet", "k_core": 3, **overrides}  # fmt: skip
    path = folder / "data.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in config.items() if v is not ...}))
    return path


def test_yaml_with_side_files_and_k_core(tmp_path, monkeypatch):
    path = _dataset_yaml(tmp_path)
    monkeypatch.chdir(tmp_path)  # relative paths are resolved against the YAML's folder, not the cwd
    source = DataSource.from_yaml(path)
    folder = path.parent
    assert source.interactions == str(folder / "logs" / "clicks.csv")
    assert (source.items, source.users, source.k_core) == (str(folder / "items.csv"), str(folder / "users.parquet"), 3)
    data = source.load()
    assert (data.name, data.form, data.source) == ("clicks", "3-core", source.interactions)
    assert (data.num_users, data.num_items, data.num_interactions) == (4, 3, 12)  # user 5 and item 9 dropped
    items = data.items.set_index("item_id")
    assert items.loc[1, "genres"] == ("Comedy", "Drama") and items.loc[2, "genres"] == ()
    assert str(items["year"].dtype) == "Int64" and items["year"].isna().tolist() == [False, True, False, False]
    assert items.loc[1, "color"] == "red"  # other columns kept
    assert data.users["occupation"].tolist() == ["writer", "artist", "doctor", "none", "lawyer"]
    assert source.describe() == (
        f"clicks.csv (CSV; user=user item=item time=time; items=items.csv; users=users.parquet; 3-core) "
        f"from {folder / 'logs'}"
    )
    again = _round_trip(source)
    saved = tmp_path / "saved.yaml"  # to_config written out is itself a dataset YAML
    saved.write_text(yaml.safe_dump(again.to_config()))
    assert DataSource.from_yaml(saved) == source


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"colour": "red"}, r"unknown key\(s\) \['colour'\] for a file data source; expected keys among \['kind', 'interactions'"),
        ({"k_core": "5"}, r"key 'k_core' must be an integer >= 1 or null; got '5'"),
        ({"k_core": True}, r"key 'k_core' must be an integer >= 1 or null; got True"),
        ({"k_core": 0}, r"key 'k_core' must be an integer >= 1 or null; got 0"),
        ({"user_col": 3}, r"key 'user_col' must be a column name \(a string\); got 3"),
        ({"sep": ""}, r"key 'sep' must be a field separator"),
        ({"interactions": ...}, r"missing key 'interactions'; expected the interaction log's path"),
        ({"kind": "named"}, r"unknown key\(s\) \['interactions', 'item_col', .* for a named data source"),
        ({"form": "sasrec"}, r"unknown key\(s\) \['form'\] for a file data source"),
    ],
)
def test_yaml_errors_name_the_file_and_key(tmp_path, overrides, message):
    path = _dataset_yaml(tmp_path, **overrides)
    with pytest.raises(ValueError, match=rf"{path}: {message}"):
        DataSource.from_yaml(path)


def test_yaml_files_that_are_not_mappings_or_name_missing_files(tmp_path):
    path = tmp_path / "data.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match=rf"{path}: expected a mapping with an 'interactions' key.*got list"):
        DataSource.from_yaml(path)
    path.write_text("interactions: [unclosed\n")
    with pytest.raises(ValueError, match=rf"{path}: not valid YAML"):
        DataSource.from_yaml(path)
    path.write_text("interactions: missing.csv\n")
    with pytest.raises(FileNotFoundError, match=rf"{path}: key 'interactions': {tmp_path / 'missing.csv'} does not exist"):
        DataSource.from_yaml(path)
    with pytest.raises(FileNotFoundError, match=r"nothing\.yaml: no such file; expected a dataset YAML"):
        DataSource.from_yaml(tmp_path / "nothing.yaml")


def test_side_file_errors_name_the_file_and_column(tmp_path, log_csv):
    items = tmp_path / "items.csv"
    items.write_text("sku,title\na,Alpha\n")
    source = DataSource.from_file(log_csv, user_col="uid", item_col="sku", items=items)
    with pytest.raises(DataFormatError, match=rf"{items}: no column 'item_id'; the file has columns \['sku', 'title'\]"):
        source.load()
    items.write_text("item_id,year\na,1999\na,2000\n")
    with pytest.raises(DataFormatError, match=r"items\.csv: item_id value\(s\) \['a'\] appear more than once"):
        source.load()
    items.write_text("item_id,year\na,soon\n")
    with pytest.raises(DataFormatError, match=r"items\.csv: column 'year' holds 'soon' \(row\(s\) \[0\]\); expected integer years"):
        source.load()
    items.write_text("item_id\n1\n2\n")
    with pytest.raises(DataFormatError, match=r"items\.csv: none of its item_id values .* occur in the interactions"):
        source.load()
    users = tmp_path / "users.csv"
    users.write_text("id,gender\nu1,M\n")
    with pytest.raises(DataFormatError, match=rf"{users}: no column 'user_id'"):
        DataSource.from_file(log_csv, user_col="uid", item_col="sku", users=users).load()


def test_k_core_that_leaves_nothing_is_an_error(log_csv):
    with pytest.raises(DataFormatError, match=r"log\.csv: k_core=5 leaves no interactions"):
        DataSource.from_file(log_csv, user_col="uid", item_col="sku", k_core=5).load()


# ----------------------------------------------------------------------------- config dicts
@pytest.mark.parametrize(
    "config, message",
    [
        (["ml-1m"], r"expected a mapping with a 'kind' key, got list"),
        ({"name": "ml-1m"}, r"missing key 'kind'; expected 'named' or 'file'"),
        ({"kind": "zoo", "name": "ml-1m"}, r"key 'kind' must be 'named' or 'file'; got 'zoo'"),
        ({"kind": "named"}, r"missing key 'name'"),
        ({"kind": "named", "name": "ml-20m"}, r"Unknown dataset 'ml-20m'; available: \['ml-100k', 'ml-1m'\]"),
        ({"kind": "named", "name": "ml-100k", "form": "sasrec"}, r"form must be one of 'auto', 'grouplens' for ml-100k"),
        ({"kind": "named", "name": "ml-1m", "items": "x.csv"}, r"unknown key\(s\) \['items'\] for a named data source"),
        ({"kind": "named", "name": "ml-1m", "data_dir": 5}, r"key 'data_dir' must be a folder path"),
        ({"kind": "file", "interactions": "a.txt", "sep": ","}, r".*a\.txt: \['sep'\] do not apply to a SASRec text file"),
    ],
)
def test_bad_configs(config, message):
    with pytest.raises(ValueError, match=rf"^data source config: {message}"):
        DataSource.from_config(config)


# ----------------------------------------------------------------------------- named
def test_named_dataset(shared_data_dir, tmp_path):
    source = DataSource.named("ML-100K", data_dir=shared_data_dir)
    assert source.to_config() == {"kind": "named", "name": "ml-100k", "data_dir": str(shared_data_dir.resolve())}
    _round_trip(source)
    assert source.describe() == f"ml-100k (grouplens form: all ratings) from {shared_data_dir.resolve() / 'ml-100k'}"
    data = source.load(download=False)
    assert (data.name, data.num_interactions, data.form) == ("ml-100k", 100_000, "grouplens (all ratings)")
    assert data.source == str(shared_data_dir.resolve() / "ml-100k")
    moved = DataSource.named("ml-100k", data_dir=tmp_path / "old-place", k_core=20)
    with pytest.raises(FileNotFoundError, match="download=False"):
        moved.load(download=False)
    data = moved.load(download=False, data_dir=shared_data_dir)  # data_dir overrides the recorded one
    assert data.form == "grouplens (all ratings), 20-core"
    assert data.interactions.groupby("item_id").size().min() >= 20
    assert _round_trip(moved).to_config()["k_core"] == 20
    with pytest.raises(ValueError, match=r"\['interactions'\] apply to file sources only"):
        DataSource(kind="named", name="ml-1m", interactions="/x.csv")


@pytest.mark.slow
def test_named_ml1m_describes_the_file_it_reads(shared_data_dir):
    source = DataSource.named("ml-1m", data_dir=shared_data_dir)
    assert source.describe() == f"ml-1m (sasrec form: ml-1m.txt) from {shared_data_dir.resolve() / 'ml-1m'}"
    data = source.load(download=False)
    assert (data.num_users, data.num_items, data.num_interactions) == (6040, 3416, 999_611)
    assert data.form == "sasrec (ml-1m.txt)"
