"""Readers: exact counts on the real files, metadata joins, and clear errors on bad input."""

from __future__ import annotations

import pathlib

import numpy as np
import pandas as pd
import pytest

from tf_attnrec.data.errors import DataFormatError
from tf_attnrec.data.readers import (
    read_interactions,
    read_movielens_1m,
    read_movielens_movies,
    read_movielens_ratings,
    read_movielens_users,
    read_sasrec_movielens_1m,
    read_sasrec_txt,
)


# ----------------------------------------------------------------------------- real data
def test_ml1m_sasrec_counts(ml1m):
    frame = ml1m.interactions
    assert (ml1m.num_users, ml1m.num_items, ml1m.num_interactions) == (6040, 3416, 999_611)
    # Dense 1-based ids, and the row index is the time order.
    assert frame["user_id"].min() == 1 and frame["user_id"].max() == 6040
    assert frame["item_id"].min() == 1 and frame["item_id"].max() == 3416
    np.testing.assert_array_equal(frame["timestamp"].to_numpy(), np.arange(999_611))
    # First line of the file is "1 1"; the id file says user 5988 rated movie 1198 first.
    assert frame.iloc[0][["user_id", "item_id", "original_user_id", "original_item_id"]].tolist() == [1, 1, 5988, 1198]


def test_ml1m_every_item_and_user_has_metadata(ml1m):
    items, users = ml1m.items, ml1m.users
    assert len(items) == 3416 and items["item_id"].is_unique
    assert set(items["item_id"]) == set(ml1m.interactions["item_id"])
    assert items["title"].notna().all() and (items["title"].str.len() > 0).all()
    assert items["genres"].map(len).min() >= 1
    assert items["year"].notna().all()
    assert items["year"].between(1919, 2000).all()
    assert len(users) == 6040 and users["user_id"].is_unique
    assert set(users["user_id"]) == set(ml1m.interactions["user_id"])
    assert users[["gender", "age", "occupation"]].notna().all().all()
    assert set(users["gender"]) == {"M", "F"}
    assert set(users["age"]) <= {1, 18, 25, 35, 45, 50, 56}
    assert users["occupation"].between(0, 20).all()
    # Spot-check the join against movies.dat: SASRec item 1 is MovieID 1198.
    raiders = items.loc[items["item_id"] == 1].iloc[0]
    assert raiders["original_item_id"] == 1198
    assert raiders["title"] == "Raiders of the Lost Ark (1981)"
    assert raiders["genres"] == ("Action", "Adventure") and raiders["year"] == 1981


def test_movies_dat_is_latin1(shared_data_dir):
    movies = read_movielens_movies(shared_data_dir / "ml-1m" / "movies.dat")
    assert len(movies) == 3883
    assert movies["title"].str.contains("é").any()  # decoded as ISO-8859-1, not mangled


def test_ml100k_counts_and_metadata(ml100k):
    assert (ml100k.num_users, ml100k.num_items, ml100k.num_interactions) == (943, 1682, 100_000)
    assert ml100k.interactions.columns.tolist() == ["user_id", "item_id", "rating", "timestamp"]
    assert ml100k.interactions["rating"].between(1, 5).all()
    items = ml100k.items.set_index("item_id")
    assert len(items) == 1682
    assert items.loc[1, "title"] == "Toy Story (1995)"
    assert items.loc[1, "genres"] == ("Animation", "Children's", "Comedy")
    assert items.loc[1, "year"] == 1995
    assert items.loc[267, "title"] == "unknown" and pd.isna(items.loc[267, "year"])
    assert items["genres"].map(len).min() >= 1
    users = ml100k.users.set_index("user_id")
    assert len(users) == 943
    assert users.loc[1, ["gender", "age", "occupation"]].tolist() == ["M", 24, "technician"]


# ------------------------------------------------------------------------- small fixtures
def _write(path: pathlib.Path, text: str, encoding: str = "utf-8") -> pathlib.Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_sasrec_malformed_line_names_file_and_line(tmp_path):
    path = _write(tmp_path / "seq.txt", "1 1\n1 2\n1 x\n2 3\n")
    with pytest.raises(DataFormatError, match=r"seq\.txt, line 3: found '1 x'; expected 'user item'"):
        read_sasrec_txt(path)


def test_sasrec_blank_line_is_malformed_but_trailing_newline_is_not(tmp_path):
    assert len(read_sasrec_txt(_write(tmp_path / "ok.txt", "1 1\n1 2\n"))) == 2
    with pytest.raises(DataFormatError, match="line 2"):
        read_sasrec_txt(_write(tmp_path / "blank.txt", "1 1\n\n1 2\n"))


def test_sasrec_skip_warns_with_count(tmp_path):
    path = _write(tmp_path / "seq.txt", "1 1\nbad\n1 2\n1 2 3\n2 5\n")
    with pytest.warns(UserWarning, match=r"skipped 2 malformed line\(s\) \(first: line 2\)"):
        frame = read_sasrec_txt(path, on_bad_lines="skip")
    assert frame[["user_id", "item_id"]].to_numpy().tolist() == [[1, 1], [1, 2], [2, 5]]
    np.testing.assert_array_equal(frame["timestamp"], [0, 1, 2])


def test_invalid_on_bad_lines_option(tmp_path):
    with pytest.raises(ValueError, match="on_bad_lines must be 'error' or 'skip'"):
        read_sasrec_txt(_write(tmp_path / "seq.txt", "1 1\n"), on_bad_lines="ignore")


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(DataFormatError, match=r"empty\.txt: the file is empty"):
        read_sasrec_txt(_write(tmp_path / "empty.txt", ""))
    with pytest.raises(DataFormatError, match="the file is empty"):
        read_movielens_ratings(_write(tmp_path / "ratings.dat", "\n\n"))
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_sasrec_txt(tmp_path / "nope.txt")


def test_ratings_dat_format(tmp_path):
    path = _write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1357::5::978298709\n")
    ratings = read_movielens_ratings(path)
    assert ratings.columns.tolist() == ["user_id", "item_id", "rating", "timestamp"]
    assert ratings.to_numpy().tolist() == [[1, 1193, 5, 978300760], [1, 661, 3, 978302109], [2, 1357, 5, 978298709]]
    assert (ratings.dtypes == "int64").all()
    bad = _write(tmp_path / "bad.dat", "1::1193::5::978300760\n1,661,3,978302109\n")
    with pytest.raises(DataFormatError, match=r"bad\.dat, line 2: found '1,661,3,978302109'; expected 'UserID::MovieID::Rating::Timestamp'"):
        read_movielens_ratings(bad)


def test_movies_and_users_dat(tmp_path):
    movies = read_movielens_movies(
        _write(tmp_path / "movies.dat", "1::Toy Story (1995)::Animation|Children's|Comedy\n"
               "2::Café Society, The (1995)::Drama\r\n3::No Year::\n", encoding="ISO-8859-1")
    )
    assert movies["title"].tolist() == ["Toy Story (1995)", "Café Society, The (1995)", "No Year"]
    assert movies["genres"].tolist() == [("Animation", "Children's", "Comedy"), ("Drama",), ()]
    assert movies["year"].tolist()[:2] == [1995, 1995] and pd.isna(movies["year"].iloc[2])
    with pytest.raises(DataFormatError, match=r"line 2: .*expected 'MovieID::Title \(Year\)::Genre1\|Genre2"):
        read_movielens_movies(_write(tmp_path / "m.dat", "1::A (1995)::Drama\n2::B (1996)\n"))

    users = read_movielens_users(_write(tmp_path / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072-1234\n"))
    assert users.to_dict("list") == {
        "user_id": [1, 2], "gender": ["F", "M"], "age": [1, 56], "occupation": [10, 16],
        "zip_code": ["48067", "70072-1234"],
    }
    with pytest.raises(DataFormatError, match=r"users\.dat, line 1: .*Gender M or F"):
        read_movielens_users(_write(tmp_path / "users.dat", "1::X::1::10::48067\n"))


def test_wrong_encoding_is_a_clear_error(tmp_path):
    path = _write(tmp_path / "movies.dat", "1::A (1995)::Drama\n2::Café (1996)::Drama\n", encoding="ISO-8859-1")
    with pytest.raises(DataFormatError, match=r"movies\.dat, line 2: byte 0xe9 is not valid utf-8"):
        read_movielens_movies(path, encoding="utf-8")


def test_read_movielens_1m_grouplens_folder(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    _write(folder / "ratings.dat", "1::10::5::100\n1::20::3::50\n2::10::4::70\n")
    _write(folder / "movies.dat", "10::Ten (1990)::Drama\n20::Twenty (1991)::Comedy|Drama\n")
    _write(folder / "users.dat", "1::F::1::10::48067\n2::M::25::3::12345\n")
    data = read_movielens_1m(folder)
    assert (data.num_users, data.num_items, data.num_interactions) == (2, 2, 3)
    assert data.items["title"].tolist() == ["Ten (1990)", "Twenty (1991)"]
    assert data.users["gender"].tolist() == ["F", "M"]


def test_sasrec_id_file_must_line_up(tmp_path):
    _write(tmp_path / "ml-1m.txt", "1 1\n1 2\n2 1\n")
    _write(tmp_path / "ml-1m_original_ids.txt", "7 70\n7 80\n")
    with pytest.raises(DataFormatError, match="has 2 rows but ml-1m.txt has 3"):
        read_sasrec_movielens_1m(tmp_path)
    _write(tmp_path / "ml-1m_original_ids.txt", "7 70\n7 80\n8 90\n")  # item 1 -> 70 and 90
    with pytest.raises(DataFormatError, match="not one-to-one"):
        read_sasrec_movielens_1m(tmp_path)
    _write(tmp_path / "ml-1m_original_ids.txt", "7 70\n7 80\n8 70\n")
    _write(tmp_path / "movies.dat", "70::Seventy (1970)::Drama\n")  # no row for movie 80
    with pytest.raises(DataFormatError, match=r"no metadata for 1 id\(s\).*original_item_id=\[80\]"):
        read_sasrec_movielens_1m(tmp_path)


# ------------------------------------------------------------------- user CSV / Parquet
def test_read_interactions_csv_keeps_extra_columns(tmp_path):
    path = _write(tmp_path / "log.csv", "uid,sku,ts,price,device\nu1,a,30,9.5,ios\nu2,b,10,1.0,web\nu1,c,20,2.5,ios\n")
    frame = read_interactions(path, user_col="uid", item_col="sku", timestamp_col="ts")
    assert frame.columns.tolist() == ["user_id", "item_id", "timestamp", "price", "device"]
    assert frame["user_id"].tolist() == ["u1", "u2", "u1"]
    assert frame["timestamp"].dtype == np.int64 and frame["timestamp"].tolist() == [30, 10, 20]
    assert frame["price"].tolist() == [9.5, 1.0, 2.5]


def test_read_interactions_parses_datetimes(tmp_path):
    path = _write(tmp_path / "log.csv", "u,i,when\n1,5,2003-02-28 17:49:50\n2,6,1970-01-01T00:01:00Z\n")
    frame = read_interactions(path, "u", "i", "when")
    assert frame["timestamp"].tolist() == [1046454590, 60]
    bad = _write(tmp_path / "bad.csv", "u,i,when\n1,5,2003-02-28\n2,6,yesterday\n")
    with pytest.raises(DataFormatError, match=r"cannot parse timestamp 'yesterday' \(line\(s\) 3\)"):
        read_interactions(bad, "u", "i", "when")


def test_read_interactions_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "log.parquet"
    pd.DataFrame({"user": [3, 1], "item": [10, 11], "t": [5, 6], "score": [0.1, 0.2]}).to_parquet(path)
    frame = read_interactions(path, "user", "item", "t")
    assert frame.to_dict("list") == {"user_id": [3, 1], "item_id": [10, 11], "timestamp": [5, 6], "score": [0.1, 0.2]}
    with pytest.raises(DataFormatError, match=r"no column\(s\) \['usr'\]; the file has columns \['user', 'item', 't', 'score'\]"):
        read_interactions(path, "usr", "item")
    pd.DataFrame({"user": [], "item": []}).to_parquet(tmp_path / "empty.parquet")
    with pytest.raises(DataFormatError, match="has no rows"):
        read_interactions(tmp_path / "empty.parquet", "user", "item")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"the file is empty"),
        ("u,i,t\n", r"has a header but no data rows"),
        ("u,i,u\n1,2,3\n", r"line 1: duplicate column name\(s\) \['u'\]"),
        ("u,i,t\n1,2,3\n4,5\n", r"row\(s\) lack a value.*line\(s\) 3"),
        ("u,i,t\n1,2,3\n4,5,6,7\n", r"Expected 3 fields in line 3, saw 4"),
        ("u,i,t\n1,,3\n", r"lack a value in \['user_id', 'item_id', 'timestamp'\] \(line\(s\) 2\)"),
    ],
)
def test_read_interactions_bad_csv(tmp_path, text, message):
    path = _write(tmp_path / "log.csv", text)
    with pytest.raises(DataFormatError, match=message):
        read_interactions(path, "u", "i", "t")


def test_read_interactions_unknown_columns_and_format(tmp_path):
    path = _write(tmp_path / "log.csv", "user,item\n1,2\n")
    with pytest.raises(DataFormatError, match=r"no column\(s\) \['ts'\]; the file has columns \['user', 'item'\]"):
        read_interactions(path, "user", "item", "ts")
    with pytest.raises(ValueError, match="cannot tell the format"):
        read_interactions(_write(tmp_path / "log.data", "user,item\n1,2\n"), "user", "item")
    assert len(read_interactions(tmp_path / "log.data", "user", "item", format="csv")) == 1


def test_read_interactions_wrong_encoding(tmp_path):
    path = _write(tmp_path / "log.csv", "user,item,title\n1,2,ok\n3,4,Café\n", encoding="ISO-8859-1")
    with pytest.raises(DataFormatError, match=r"log\.csv, line 3: not valid utf-8.*encoding='ISO-8859-1'"):
        read_interactions(path, "user", "item")
    assert read_interactions(path, "user", "item", encoding="ISO-8859-1")["title"].tolist() == ["ok", "Café"]


def test_read_interactions_skip_warns_with_count(tmp_path):
    path = _write(tmp_path / "log.csv", "u,i\n1,2\n3,4,5\n,6\n7,8\n")
    with pytest.warns(UserWarning) as record:
        frame = read_interactions(path, "u", "i", on_bad_lines="skip")
    messages = " ".join(str(w.message) for w in record)
    assert "skipped 1 row(s) with the wrong number of fields" in messages
    assert "skipped 1 row(s) missing ['user_id', 'item_id']" in messages
    assert frame[["user_id", "item_id"]].to_numpy().tolist() == [[1, 2], [7, 8]]
