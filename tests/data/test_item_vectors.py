"""Per-item vector files: round trips, masked missing items, unknown ids, and clear errors."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pandas as pd
import pytest

from tf_attnrec.data.errors import DataFormatError
from tf_attnrec.data.item_vectors import ItemVectors, read_item_vectors
from tf_attnrec.data.vocabulary import Vocabulary

pytest.importorskip("pyarrow")  # Parquet; a dependency of the [parquet] extra

INT_VOCAB = Vocabulary.from_ids([10, 11, 12, 13])  # ids 2, 3, 4, 5
STR_VOCAB = Vocabulary.from_ids(["a", "b", "c"])  # ids 2, 3, 4
MATRIX = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]], dtype=np.float32)


def _text(path: pathlib.Path, content: str) -> pathlib.Path:
    path.write_text(content, encoding="utf-8")
    return path


def _npy(path: pathlib.Path, array) -> pathlib.Path:
    np.save(path, np.asarray(array))
    return path


def _parquet(path: pathlib.Path, ids, vectors, **columns) -> pathlib.Path:
    pd.DataFrame({"item_id": ids, "vector": vectors, **columns}).to_parquet(path)
    return path


def _at(path: pathlib.Path, where: str = "") -> str:
    """Regex for a message that starts with the file (escaped) and `where` (a regex)."""
    return "^" + re.escape(str(path)) + (", " + where if where else "")


def _check_int_round_trip(result: ItemVectors) -> None:
    """MATRIX rows were given for raw ids 12, 10 and 99 (unknown); 11 and 13 have none."""
    assert result.vectors.dtype == np.float32 and result.vectors.shape == (6, 3) and result.dim == 3
    np.testing.assert_array_equal(result.vectors[4], MATRIX[0])  # raw 12
    np.testing.assert_array_equal(result.vectors[2], MATRIX[1])  # raw 10
    assert result.present.tolist() == [False, False, True, False, True, False]
    assert not result.vectors[[0, 1, 3, 5]].any()  # padding, OOV and missing items are zeros
    assert result.unknown_ids.tolist() == [99] and result.num_present == 2
    assert "present=2 of 4 items, unknown_ids=1" in repr(result)


# ----------------------------------------------------------------------------- round trips
def test_npy_with_text_ids(tmp_path):
    # Whitespace, CRLF and a trailing newline are fine; "12" in the text is the integer 12.
    ids = _text(tmp_path / "ids.txt", " 12\r\n10\n99\n")
    result = read_item_vectors(_npy(tmp_path / "v.npy", MATRIX), INT_VOCAB, ids_path=ids)
    _check_int_round_trip(result)
    assert str(tmp_path / "v.npy") in result.source and str(ids) in result.source


def test_npy_with_npy_ids(tmp_path):
    ids = _npy(tmp_path / "ids.npy", np.array([12, 10, 99], dtype=np.int64))
    _check_int_round_trip(read_item_vectors(_npy(tmp_path / "v.npy", MATRIX.astype(np.float64)), INT_VOCAB, ids))
    # String ids saved as str arrays, and whole-number float ids, work too.
    as_text = _npy(tmp_path / "ids_str.npy", np.array(["12", "10", "99"]))
    _check_int_round_trip(read_item_vectors(tmp_path / "v.npy", INT_VOCAB, as_text))
    as_float = _npy(tmp_path / "ids_float.npy", np.array([12.0, 10.0, 99.0]))
    _check_int_round_trip(read_item_vectors(tmp_path / "v.npy", INT_VOCAB, as_float))


def test_string_vocabulary_takes_integer_ids_as_text(tmp_path):
    vocabulary = Vocabulary.from_ids(["7", "8", "x"])  # ids 2, 3, 4
    ids = _npy(tmp_path / "ids.npy", np.array([8, 7], dtype=np.int32))
    result = read_item_vectors(_npy(tmp_path / "v.npy", MATRIX[:2]), vocabulary, ids_path=ids)
    np.testing.assert_array_equal(result.vectors[[3, 2]], MATRIX[:2])
    assert result.present.tolist() == [False, False, True, True, False]
    assert len(result.unknown_ids) == 0


def test_parquet_round_trip_with_a_null_vector(tmp_path):
    path = _parquet(
        tmp_path / "v.parquet", ["c", "a", "zz", "b"],
        [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], None],  # b's vector is null: masked, not an error
    )
    result = read_item_vectors(path, STR_VOCAB)
    assert result.vectors.tolist() == [[0, 0], [0, 0], [3, 4], [0, 0], [1, 2]]
    assert result.present.tolist() == [False, False, True, False, True]
    assert result.unknown_ids.tolist() == ["zz"] and result.source == str(path)


def test_parquet_with_own_column_names_and_int_ids(tmp_path):
    path = tmp_path / "v.pq"
    pd.DataFrame({"movie": [13, 11], "emb": [np.ones(4, np.float32), np.zeros(4, np.float32)]}).to_parquet(path)
    result = read_item_vectors(path, INT_VOCAB, id_column="movie", vector_column="emb")
    assert result.dim == 4 and result.present.tolist() == [False, False, False, True, False, True]
    np.testing.assert_array_equal(result.vectors[5], np.ones(4))


# ----------------------------------------------------------------------------- errors
def test_id_count_must_match_vector_count(tmp_path):
    vectors = _npy(tmp_path / "v.npy", MATRIX)
    ids = _text(tmp_path / "ids.txt", "10\n11\n")
    with pytest.raises(DataFormatError, match=_at(ids) + r" has 2 ids \(lines\) but .*v\.npy has 3 vectors"):
        read_item_vectors(vectors, INT_VOCAB, ids_path=ids)
    ids = _npy(tmp_path / "ids.npy", [10, 11, 12, 13])
    with pytest.raises(DataFormatError, match=_at(ids) + r" has 4 ids \(entries\) but"):
        read_item_vectors(vectors, INT_VOCAB, ids_path=ids)


def test_duplicate_ids_name_both_places(tmp_path):
    vectors = _npy(tmp_path / "v.npy", MATRIX)
    ids = _text(tmp_path / "ids.txt", "12\n10\n012\n")  # 012 is 12 in an integer vocabulary
    with pytest.raises(DataFormatError, match=_at(ids, "line 3") + ": duplicate id 12, already at line 1"):
        read_item_vectors(vectors, INT_VOCAB, ids_path=ids)
    ids = _npy(tmp_path / "ids.npy", ["b", "a", "b"])
    with pytest.raises(DataFormatError, match=_at(ids, r"entry 2 \(0-based\)") + ": duplicate id 'b', already at entry 0"):
        read_item_vectors(vectors, STR_VOCAB, ids_path=ids)
    path = _parquet(tmp_path / "v.parquet", ["a", "b", "a"], [[1.0], [2.0], [3.0]])
    with pytest.raises(DataFormatError, match=_at(path, r"row 2 \(0-based\)") + ": duplicate id 'a', already at row 0"):
        read_item_vectors(path, STR_VOCAB)


def test_non_finite_values_name_the_row(tmp_path):
    ids = _text(tmp_path / "ids.txt", "10\n11\n12\n")
    bad = MATRIX.copy()
    bad[2, 1] = np.inf
    with pytest.raises(DataFormatError, match=_at(tmp_path / "v.npy", r"row 2 \(0-based, id 12\)") + ": a non-finite value"):
        read_item_vectors(_npy(tmp_path / "v.npy", bad), INT_VOCAB, ids_path=ids)
    huge = MATRIX.astype(np.float64)
    huge[1, 0] = 1e39  # finite in float64, inf in float32: never stored silently
    with pytest.raises(DataFormatError, match=_at(tmp_path / "h.npy", r"row 1 \(0-based, id 11\)") + ": a value float32 cannot hold"):
        read_item_vectors(_npy(tmp_path / "h.npy", huge), INT_VOCAB, ids_path=ids)
    path = _parquet(tmp_path / "v.parquet", ["a", "b"], [[1.0, 2.0], [3.0, None]])  # null element -> NaN
    with pytest.raises(DataFormatError, match=_at(path, r"row 1 \(0-based, id 'b'\)") + r": a non-finite value \(nan\)"):
        read_item_vectors(path, STR_VOCAB)


def test_wrong_dimensions(tmp_path):
    ids = _text(tmp_path / "ids.txt", "10\n11\n12\n")
    with pytest.raises(DataFormatError, match=_at(tmp_path / "v1.npy") + r": found an array of shape \(3,\); expected a 2-D"):
        read_item_vectors(_npy(tmp_path / "v1.npy", [1.0, 2.0, 3.0]), INT_VOCAB, ids_path=ids)
    with pytest.raises(DataFormatError, match=r"shape \(3, 1, 2\); expected a 2-D"):
        read_item_vectors(_npy(tmp_path / "v3.npy", np.zeros((3, 1, 2))), INT_VOCAB, ids_path=ids)
    with pytest.raises(DataFormatError, match=r"shape \(3, 0\)"):
        read_item_vectors(_npy(tmp_path / "v0.npy", np.zeros((3, 0))), INT_VOCAB, ids_path=ids)
    ids_2d = _npy(tmp_path / "ids2d.npy", [[10], [11], [12]])
    with pytest.raises(DataFormatError, match=_at(ids_2d) + r": found an id array of shape \(3, 1\)"):
        read_item_vectors(_npy(tmp_path / "v.npy", MATRIX), INT_VOCAB, ids_path=ids_2d)
    with pytest.raises(DataFormatError, match=_at(tmp_path / "s.npy") + ": found values of dtype <U1"):
        read_item_vectors(_npy(tmp_path / "s.npy", [["a"], ["b"], ["c"]]), INT_VOCAB, ids_path=ids)


def test_ragged_parquet_vectors(tmp_path):
    path = _parquet(tmp_path / "v.parquet", ["a", "b", "c"], [[1.0, 2.0], [3.0, 4.0], [5.0]])
    with pytest.raises(DataFormatError, match=_at(path, r"row 2 \(0-based\)") + ": 'vector' has length 1; expected 2 like row 0"):
        read_item_vectors(path, STR_VOCAB)
    path = _parquet(tmp_path / "e.parquet", ["a"], [[]])
    with pytest.raises(DataFormatError, match=_at(path, r"row 0 \(0-based\)") + ": 'vector' is an empty list"):
        read_item_vectors(path, STR_VOCAB)
    path = tmp_path / "t.parquet"
    pd.DataFrame({"item_id": ["a", "b"], "vector": ["0.1 0.2", "0.3 0.4"]}).to_parquet(path)
    with pytest.raises(DataFormatError, match=_at(path, r"row 0 \(0-based\)") + ": 'vector' holds str '0.1 0.2'"):
        read_item_vectors(path, STR_VOCAB)


def test_empty_files(tmp_path):
    ids = _text(tmp_path / "ids.txt", "10\n")
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(DataFormatError, match=_at(tmp_path / "empty.npy") + ": the file is empty"):
        read_item_vectors(tmp_path / "empty.npy", INT_VOCAB, ids_path=ids)
    with pytest.raises(DataFormatError, match=_at(tmp_path / "rows.npy") + ": the matrix has no rows"):
        read_item_vectors(_npy(tmp_path / "rows.npy", np.zeros((0, 3))), INT_VOCAB, ids_path=ids)
    vectors = _npy(tmp_path / "v.npy", MATRIX[:1])
    blank = _text(tmp_path / "blank.txt", "\n \n")
    with pytest.raises(DataFormatError, match=_at(blank) + ": the file is empty; expected one item id per line"):
        read_item_vectors(vectors, INT_VOCAB, ids_path=blank)
    (tmp_path / "empty.parquet").write_bytes(b"")
    with pytest.raises(DataFormatError, match=_at(tmp_path / "empty.parquet") + ": the file is empty"):
        read_item_vectors(tmp_path / "empty.parquet", STR_VOCAB)
    no_rows = _parquet(tmp_path / "rows.parquet", pd.Series([], dtype=str), pd.Series([], dtype=object))
    with pytest.raises(DataFormatError, match=_at(no_rows) + ": the Parquet file has no rows"):
        read_item_vectors(no_rows, STR_VOCAB)
    all_null = _parquet(tmp_path / "null.parquet", ["a"], [None])
    with pytest.raises(DataFormatError, match=_at(all_null) + ": every 'vector' is null"):
        read_item_vectors(all_null, STR_VOCAB)


def test_missing_column_names_the_columns_found(tmp_path):
    path = tmp_path / "wide.parquet"
    pd.DataFrame({"item_id": ["a"], "v0": [0.1], "v1": [0.2]}).to_parquet(path)
    with pytest.raises(DataFormatError, match=_at(path) + r": no column\(s\) \['vector'\]; the file has columns \['item_id', 'v0', 'v1'\]"):
        read_item_vectors(path, STR_VOCAB)
    with pytest.raises(DataFormatError, match=r"no column\(s\) \['sku'\]"):
        read_item_vectors(path, STR_VOCAB, id_column="sku", vector_column="v0")


def test_unreadable_files(tmp_path):
    ids = _text(tmp_path / "ids.txt", "10\n")
    garbage = tmp_path / "g.npy"
    garbage.write_bytes(b"not a numpy file at all")
    with pytest.raises(DataFormatError, match=_at(garbage) + ": not a readable .npy file"):
        read_item_vectors(garbage, INT_VOCAB, ids_path=ids)
    pickled = tmp_path / "o.npy"
    np.save(pickled, np.array([{"id": 1}], dtype=object), allow_pickle=True)  # needs a pickle: refused
    with pytest.raises(DataFormatError, match=_at(pickled) + ": not a readable .npy file"):
        read_item_vectors(_npy(tmp_path / "v.npy", MATRIX[:1]), INT_VOCAB, ids_path=pickled)
    bad_parquet = tmp_path / "g.parquet"
    bad_parquet.write_bytes(b"PAR1 but not really")
    with pytest.raises(DataFormatError, match=_at(bad_parquet) + ": not a readable Parquet file"):
        read_item_vectors(bad_parquet, STR_VOCAB)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("10\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=_at(latin1, "line 2") + ": byte 0xe9 is not valid UTF-8"):
        read_item_vectors(_npy(tmp_path / "v2.npy", MATRIX[:2]), STR_VOCAB, ids_path=latin1)
    with pytest.raises(FileNotFoundError, match="nope.npy: no such file"):
        read_item_vectors(tmp_path / "nope.npy", INT_VOCAB, ids_path=ids)


def test_ids_that_do_not_fit_the_vocabulary_type(tmp_path):
    vectors = _npy(tmp_path / "v.npy", MATRIX[:2])
    words = _text(tmp_path / "ids.txt", "10\ntt0114709\n")
    with pytest.raises(DataFormatError, match=_at(words, "line 2") + ": found id 'tt0114709'; expected an integer id"):
        read_item_vectors(vectors, INT_VOCAB, ids_path=words)
    gap = _text(tmp_path / "gap.txt", "10\n\n")
    with pytest.raises(DataFormatError, match=_at(gap, "line 2") + ": empty line"):
        read_item_vectors(vectors, INT_VOCAB, ids_path=gap)
    fractional = _npy(tmp_path / "f.npy", [10.0, 11.5])
    with pytest.raises(DataFormatError, match=_at(fractional, r"entry 1 \(0-based\)") + ": id 11.5 is not a whole number"):
        read_item_vectors(vectors, INT_VOCAB, ids_path=fractional)
    path = _parquet(tmp_path / "v.parquet", ["a", None], [[1.0], [2.0]])
    with pytest.raises(DataFormatError, match=_at(path, r"row 1 \(0-based\)") + ": 'item_id' is missing"):
        read_item_vectors(path, STR_VOCAB)


def test_usage_errors(tmp_path):
    vectors = _npy(tmp_path / "v.npy", MATRIX)
    with pytest.raises(ValueError, match="needs ids_path"):
        read_item_vectors(vectors, INT_VOCAB)
    path = _parquet(tmp_path / "v.parquet", ["a"], [[1.0]])
    with pytest.raises(ValueError, match="ids_path is for .npy matrices"):
        read_item_vectors(path, STR_VOCAB, ids_path=vectors)
    csv = _text(tmp_path / "v.csv", "a,1\n")
    with pytest.raises(ValueError, match=r"unsupported file type '\.csv'"):
        read_item_vectors(csv, STR_VOCAB)
