"""Property-based fuzzing of every serving signature (retrieval, collaborative, ranking, cascade, multi-task).

Each kind of export is built once (tiny models) and loaded with `tf.saved_model.load`; hypothesis
then sends its signatures random requests: batches of 0 to 6 rows (now and then up to 200), histories
of 0 to 2,500 entries (padding on either side), raw ids drawn from the known ids, unknown ids, "", whitespace,
odd unicode (emoji, RTL, combining marks, NUL bytes), bytes that are not UTF-8, very long strings
and numeric-looking strings ("0010", "-1", "1e9"). Every answer must come back without an error,
with the declared shapes, finite scores, probabilities in [0, 1], only served item ids (the blank
"" only where a row has fewer than k unseen items left) and, where the export excludes the
history, none of the row's history items. `embed_items` also reads a year past the trained range
as the nearest trained year (0 and below: unknown).

Profiles: "ci" (25 examples per signature, derandomized) by default; `TF_ATTNREC_FUZZ_PROFILE=fuzz`
selects the large one. `benchmarks/fuzz_signatures.py` imports this module and runs the
same properties with the large profile, counting the generated cases.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import tf_attnrec  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("signature_fuzz")]

PROFILE_ENV = "TF_ATTNREC_FUZZ_PROFILE"
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
# database=None: no .hypothesis/ folder in the checkout; "ci" is derandomized so CI is reproducible.
settings.register_profile("ci", max_examples=25, deadline=None, database=None, derandomize=True,
                          suppress_health_check=_HEALTH)
settings.register_profile("fuzz", max_examples=1000, deadline=None, database=None, suppress_health_check=_HEALTH,
                          phases=[Phase.explicit, Phase.generate, Phase.shrink])


def profile() -> settings:
    """The settings of this run: "ci" unless `TF_ATTNREC_FUZZ_PROFILE` names another profile."""
    return settings.get_profile(os.environ.get(PROFILE_ENV, "ci"))


FLOAT32_MIN = np.finfo(np.float32).min
MAX_ROWS = 6
BIG_BATCHES = (32, 200)  # rows of a big batch (a few rows repeated)
HUGE_LENGTHS = (1000, 2500)


# ----------------------------------------------------------------------------- raw values
class _ShortRepr:
    """IPython-style pretty printing (hypothesis' falsifying examples) through the short `__repr__`."""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


class Repeated(_ShortRepr, bytes):
    """A very long raw value, printed short in hypothesis' falsifying examples."""

    def __new__(cls, unit: bytes, times: int) -> "Repeated":
        value = super().__new__(cls, unit * times)
        value.unit, value.times = unit, times
        return value

    def __repr__(self) -> str:
        return f"Repeated({self.unit!r}, {self.times})"


class Joined(_ShortRepr, bytes):
    """Genres "A|B" joined from raw parts, printed as its parts (a part may be `Repeated`)."""

    def __new__(cls, parts: Sequence[bytes]) -> "Joined":
        value = super().__new__(cls, b"|".join(parts))
        value.parts = tuple(parts)
        return value

    def __repr__(self) -> str:
        return f"Joined({self.parts!r})"


class Tiled(_ShortRepr, tuple):
    """A huge history row (or a big batch of rows): `pattern` repeated to `length` entries, printed short."""

    def __new__(cls, pattern: Sequence[bytes], length: int) -> "Tiled":
        pattern = tuple(pattern)
        row = super().__new__(cls, (pattern * (length // len(pattern) + 1))[:length])
        row.pattern, row.length = pattern, length
        return row

    def __repr__(self) -> str:
        return f"Tiled({self.pattern!r}, {self.length})"


def _utf8(values: Sequence[str]) -> list[bytes]:
    return [value.encode("utf-8") for value in values]


WHITESPACE = _utf8([" ", "   ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\u00a0", "\u2003", "\u3000", "\u200b",
                    "\ufeff", "\u2028"])
ODD_UNICODE = _utf8([
    "\x00", "a\x00b", "\x00\x00\x00", "\U0001f642", "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\U0001f1fa\U0001f1f8",
    "\u202eRTL\u202c", "\u05e2\u05d1\u05e8\u05d9\u05ea", "\u0645\u0631\u062d\u0628\u0627", "e\u0301", "\u0085",
    "\ufffd", "\U0001d518\U0001d52b\U0001d526", "\u03a9", "\u01c5", "\u0130", "\u00df", "\x7f", "\U0010ffff",
    "NaN", "null", "None", "%s%n", "../..", "\\", "'\"", "<script>", "|", "||", "(1995)",
])
NUMERIC = _utf8(["0", "00", "0010", "-1", "+1", "-0", "1e9", "1E9", "1.5", "1.0", "0x1F", "9" * 25, "-" + "9" * 25,
                 "\uff11\uff12", "\u0663", "inf", "-inf", "nan", " 7", "7 ", "2147483648", "-2147483649"])
NOT_UTF8 = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"m\xff01"]


def raw_values(known: Sequence[bytes], long: bool = True) -> st.SearchStrategy[bytes]:
    """Raw id strings as a client might send them: mostly known ids, then everything else."""
    known = list(known)
    known_ids = st.sampled_from(known)
    variants = st.tuples(known_ids, st.sampled_from([
        lambda v: v + b" ", lambda v: b" " + v, lambda v: v.upper(), lambda v: b"0" + v, lambda v: v + b"\x00",
        lambda v: v * 2, lambda v: "\u200b".encode() + v, lambda v: b"-" + v, lambda v: v[:-1] or b"?",
    ])).map(lambda pair: pair[1](pair[0]))
    options = [
        known_ids, known_ids, known_ids,
        st.just(b""),
        st.sampled_from(WHITESPACE),
        st.sampled_from(ODD_UNICODE),
        st.sampled_from(NUMERIC),
        variants,
        st.text(st.characters(exclude_categories=("Cs",)), max_size=12).map(lambda text: text.encode("utf-8")),
        st.binary(max_size=6) | st.sampled_from(NOT_UTF8),
    ]
    if long:
        options.append(st.builds(Repeated, st.sampled_from([b"x", b" ", "\U0001f642".encode(), known[0]]),
                                 st.integers(1000, 20000)))
    return st.one_of(options)


def history_rows(known: Sequence[bytes], k: int) -> st.SearchStrategy[tuple]:
    """One history: short and odd, huge (tiled), or (almost) the whole catalogue (fewer than k unseen)."""
    short = st.lists(raw_values(known), max_size=12).map(tuple)
    huge = st.builds(Tiled, st.lists(raw_values(known, long=False), min_size=1, max_size=6),
                     st.integers(*HUGE_LENGTHS))
    whole = st.builds(lambda order, keep: tuple(order[:keep]), st.permutations(list(known)),
                      st.integers(max(len(known) - k - 2, 0), len(known)))
    return st.one_of(short, short, huge, whole)


@dataclasses.dataclass(frozen=True)
class Batch:
    """A request: one tuple of raw values per row (`columns` names them); `history` is padded to a
    rectangle with `extra` more "" columns on the `side` ("right", "left" or "both")."""

    columns: tuple
    rows: tuple
    extra: int = 0
    side: str = "right"

    def column(self, name: str) -> list:
        index = self.columns.index(name)
        return [row[index] for row in self.rows]

    def history(self) -> np.ndarray:
        rows = self.column("history")
        width = max((len(row) for row in rows), default=0) + self.extra
        padded = np.full([len(rows), width], b"", dtype=object)
        for position, row in enumerate(rows):
            gap = width - len(row)
            start = {"right": 0, "left": gap, "both": gap // 2}[self.side]
            padded[position, start:start + len(row)] = list(row)
        return padded

    def tensors(self) -> dict:
        tensors = {}
        for name in self.columns:
            if name == "history":
                history = self.history()
                tensors[name] = tf.reshape(tf.constant(history.reshape(-1), tf.string), history.shape)
            elif name == "year":
                tensors[name] = tf.constant(np.asarray(self.column(name), np.int64).reshape(-1), tf.int64)
            else:
                tensors[name] = tf.constant(np.asarray(self.column(name), dtype=object).reshape(-1), tf.string)
        return tensors


def batches(columns: Mapping[str, st.SearchStrategy]) -> st.SearchStrategy[Batch]:
    """Requests of 0..MAX_ROWS rows (now and then a big batch of repeated rows), one value per column per row."""
    names, row = tuple(columns), st.tuples(*columns.values())
    small = st.lists(row, max_size=MAX_ROWS).map(tuple)
    big = st.builds(Tiled, st.lists(row, min_size=1, max_size=3), st.integers(*BIG_BATCHES))
    return st.builds(Batch, st.just(names), st.one_of(small, small, small, small, small, big),
                     st.integers(0, 3), st.sampled_from(["right", "left", "both"]))


# ----------------------------------------------------------------------------- exports
@dataclasses.dataclass(repr=False)
class Served:
    """A loaded export and what its answers are checked against."""

    loaded: Any
    items: tuple  # the raw item ids it serves (bytes, id order)
    k: int = 0
    exclude_history: bool = True
    max_length: int = 0
    extra: dict = dataclasses.field(default_factory=dict)

    def signature(self, name: str) -> Any:
        return self.loaded.signatures[name]

    def __repr__(self) -> str:  # short in pytest's failure reports
        return f"Served({len(self.items)} items, k={self.k}, signatures={sorted(self.loaded.signatures)})"


def _raw(vocabulary: Any) -> tuple:
    from tf_attnrec.export.common import raw_id_strings

    return tuple(_utf8(raw_id_strings(vocabulary)))


# Item ids a client could not type: the string vocabulary serves them as they are.
ODD_ITEM_IDS = ["\U0001f642", "\u05e2\u05d1\u05e8\u05d9\u05ea", "\u202eRTL", "a b", " lead", "trail ", " ", "0010",
                "-1", "1e9", "a\x00b", "e\u0301"]


def build_sasrec_str(root: pathlib.Path) -> Served:
    """String ids (odd ones included), history excluded, popularity for unknown histories."""
    from tests.export.conftest import K, MAX_LENGTH, tiny_model
    from tf_attnrec.data.vocabulary import Vocabulary
    from tf_attnrec.export import export_retrieval

    vocabulary = Vocabulary.from_ids(ODD_ITEM_IDS + [f"m{i:02d}" for i in range(28)])
    model = tiny_model(vocabulary, seed=1)
    model.adapt([np.arange(2, 12), np.arange(5, 30)])
    export_retrieval(model, root / "sasrec_str" / "1", k=K, vocabulary=vocabulary)
    return Served(tf.saved_model.load(str(root / "sasrec_str" / "1")), _raw(vocabulary), K, True, MAX_LENGTH)


def build_sasrec_int(root: pathlib.Path) -> Served:
    """Int ids (negative and 0 too) served as decimal strings, history kept, no popularity."""
    from tests.export.conftest import K, MAX_LENGTH, tiny_model
    from tf_attnrec.data.vocabulary import Vocabulary
    from tf_attnrec.export import export_retrieval

    vocabulary = Vocabulary.from_ids([-5, 0] + [3 * i + 7 for i in range(28)])
    model = tiny_model(vocabulary, seed=2)
    export_retrieval(model, root / "sasrec_int" / "1", k=K, exclude_history=False, vocabulary=vocabulary)
    return Served(tf.saved_model.load(str(root / "sasrec_int" / "1")), _raw(vocabulary), K, False, MAX_LENGTH)


def _fused_sasrec() -> tuple:
    """An untrained sasrec with `item_features` (genres, title, year) and its retrieval data."""
    from tests.models.test_fused_items import CONFIG, dataset
    from tf_attnrec.models.registry import get_model_spec
    from tf_attnrec.tasks import get_task

    task = get_task("retrieval")
    data = task.build_data(dataset(), CONFIG, {"split": "cold_items", "cold_fraction": 0.2, "split_seed": 1})
    tf.keras.utils.set_random_seed(4)
    model = task.build_model(get_model_spec("sasrec"), data, CONFIG)
    model.adapt(data.train)  # cold items get no id vector; popularity for unknown histories
    return model, data, CONFIG


def build_sasrec_fused(root: pathlib.Path, fused: tuple) -> Served:
    from tests.export.conftest import K
    from tf_attnrec.export import export_retrieval

    model, data, config = fused
    export_retrieval(model, root / "sasrec_fused" / "1", k=K, vocabulary=data.vocabulary)
    content = data.item_content
    tower = model.encoder.item_tower
    extra = {"titles": tuple(_utf8(str(t) for t in content.titles[2:])),
             "genres": tuple(sorted({g.encode() for item in content.genres[2:] for g in str(item).split("|") if g})),
             "year_range": tuple(int(y) for y in tower.year_range), "modalities": len(tower.modality_names),
             "units": int(tower.units)}
    return Served(tf.saved_model.load(str(root / "sasrec_fused" / "1")), _raw(data.vocabulary), K, True,
                  int(config["max_length"]), extra)


def build_lightgcn(root: pathlib.Path) -> Served:
    """The collaborative export (`user_topk`) of test_user_topk's tiny LightGCN."""
    from tests.export.test_user_topk import ITEMS, K, U, USERS, _graph
    from tf_attnrec.export.user_topk import export_user_topk
    from tf_attnrec.models.lightgcn import LightGCN

    tf.keras.utils.set_random_seed(3)
    model = LightGCN(num_users=U, vocab_size=ITEMS.size, embedding_dim=8, num_layers=2)
    model.build_variables()
    graph = _graph()
    model.set_graph(graph)
    export_user_topk(model, root / "lightgcn" / "1", k=K, vocabulary=ITEMS, user_vocabulary=USERS)
    items, users = _raw(ITEMS), _raw(USERS)
    seen = {users[row]: {items[j] for j in graph.item_index[graph.user_index == row]} for row in range(U)}
    return Served(tf.saved_model.load(str(root / "lightgcn" / "1")), items, K, True, 0,
                  {"users": users, "seen": seen})


RANKER_LENGTH = 6


def _ranking_data() -> Any:
    from tests.models.test_fused_items import dataset
    from tf_attnrec.data.ranking_examples import build_ranking_data

    return build_ranking_data(dataset(), max_length=RANKER_LENGTH, train_positions_per_user=3)


def _ranker(name: str, data: Any) -> Any:
    from tf_attnrec.models.registry import create_model

    tf.keras.utils.set_random_seed(5)
    vocabularies = data.vocabularies
    options = {"din": {"hidden_units": (16,), "attention_units": (8,)},
               "bst": {"hidden_dim": 16, "hidden_units": (16,)}}[name]
    model = create_model(name, vocab_size=vocabularies.item.size, feature_sizes=vocabularies.sizes(),
                         max_length=RANKER_LENGTH, embedding_dim=8, **options)
    model.build_variables()
    return model


def _user_values(data: Any) -> dict:
    from tf_attnrec.export.common import raw_id_strings

    vocabularies = data.vocabularies
    return {key: tuple(_utf8(raw_id_strings(getattr(vocabularies, key), key)))
            for key in ("gender", "age", "occupation")}


def build_ranker(root: pathlib.Path, name: str, data: Any, model: Any) -> Served:
    from tf_attnrec.export.score import export_ranking_model

    export_ranking_model(model, root / name / "1", vocabularies=data.vocabularies, item_genres=data.item_genres,
                         item_year=data.item_year)
    return Served(tf.saved_model.load(str(root / name / "1")), _raw(data.vocabularies.item), 0, False,
                  RANKER_LENGTH, _user_values(data))


CANDIDATES = 12


def build_cascade(root: pathlib.Path, fused: tuple, data: Any, ranker: Any) -> Served:
    """The fused sasrec (40 items) retrieves 12 unseen candidates, din ranks them, 5 come back."""
    from tests.export.conftest import K
    from tf_attnrec.export.cascade import export_cascade

    model, retrieval_data, config = fused
    export_cascade(model, ranker, root / "cascade" / "1", retrieval_vocabulary=retrieval_data.vocabulary,
                   ranking_vocabularies=data.vocabularies, item_genres=data.item_genres, item_year=data.item_year,
                   candidates=CANDIDATES, k=K)
    return Served(tf.saved_model.load(str(root / "cascade" / "1")), _raw(retrieval_data.vocabulary), K, True,
                  int(config["max_length"]), {**_user_values(data), "candidates": CANDIDATES})


def build_multitask(root: pathlib.Path) -> Served:
    """test_multitask's tiny mmoe, trained one epoch (the export reads its priors)."""
    from tests.tasks.test_multitask import _model, _ratings
    from tf_attnrec.data.rating_split import rating_split
    from tf_attnrec.export.multitask import export_multitask
    from tf_attnrec.tasks.multitask import train_multitask

    split = rating_split(_ratings(), fractions=(0.7, 0.1, 0.2), seed=0)
    model = _model(split)
    train_multitask(model, split, epochs=1, batch_size=256, patience=None, evaluate_test=False)
    export_multitask(model, root / "multitask" / "1", k=5, vocabulary=split.vocabulary,
                     user_vocabulary=split.user_vocabulary)
    return Served(tf.saved_model.load(str(root / "multitask" / "1")), _raw(split.vocabulary), 5, False, 0,
                  {"users": _raw(split.user_vocabulary)})


def build_exports(root: pathlib.Path) -> dict[str, Served]:
    """Every kind of export, tiny, written under `root` and loaded."""
    root = pathlib.Path(root)
    fused = _fused_sasrec()
    ranking = _ranking_data()
    din, bst = _ranker("din", ranking), _ranker("bst", ranking)
    return {
        "sasrec_str": build_sasrec_str(root),
        "sasrec_int": build_sasrec_int(root),
        "sasrec_fused": build_sasrec_fused(root, fused),
        "lightgcn": build_lightgcn(root),
        "din": build_ranker(root, "din", ranking, din),
        "bst": build_ranker(root, "bst", ranking, bst),
        "cascade": build_cascade(root, fused, ranking, din),
        "multitask": build_multitask(root),
    }


# ----------------------------------------------------------------------------- requests
def history_requests(served: Served) -> st.SearchStrategy[Batch]:
    return batches({"history": history_rows(served.items, served.k)})


def _attribute(values: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(st.sampled_from(list(values)), raw_values(values))


def ranking_requests(served: Served) -> st.SearchStrategy[Batch]:
    users = raw_values([b"1", b"42", b"u1"])
    return batches({"user_id": users, "gender": _attribute(served.extra["gender"]),
                    "age": _attribute(served.extra["age"]), "occupation": _attribute(served.extra["occupation"]),
                    "history": history_rows(served.items, 1), "item_id": raw_values(served.items)})


def cascade_requests(served: Served) -> st.SearchStrategy[Batch]:
    users = raw_values([b"1", b"42", b"u1"])
    return batches({"user_id": users, "gender": _attribute(served.extra["gender"]),
                    "age": _attribute(served.extra["age"]), "occupation": _attribute(served.extra["occupation"]),
                    "history": history_rows(served.items, served.k)})


def user_requests(served: Served) -> st.SearchStrategy[Batch]:
    return batches({"user_id": raw_values(served.extra["users"])})


def multitask_requests(served: Served) -> st.SearchStrategy[Batch]:
    return batches({"user_id": raw_values(served.extra["users"]), "item_id": raw_values(served.items)})


YEARS = st.one_of(st.integers(-(2 ** 63), 2 ** 63 - 1), st.integers(-3000, 3000), st.just(0),
                  st.sampled_from([2 ** 31 - 1, 2 ** 31, 2 ** 32, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 32)]),
                  st.builds(lambda year, wraps: year + wraps * 2 ** 32, st.integers(1, 3000), st.integers(-5, 5)))


def content_requests(served: Served) -> st.SearchStrategy[Batch]:
    genres = served.extra["genres"]
    genre_lists = st.lists(st.one_of(st.sampled_from(list(genres)), raw_values(genres)),
                           max_size=5).map(Joined)
    return batches({"title": raw_values(served.extra["titles"]), "genres": genre_lists, "year": YEARS})


# ----------------------------------------------------------------------------- properties
def _shape(outputs: Mapping[str, np.ndarray], name: str, shape: tuple) -> np.ndarray:
    value = outputs[name]
    assert value.shape == shape, f"{name}: shape {value.shape}, declared {shape}"
    return value


def _finite(name: str, value: np.ndarray) -> None:
    assert np.isfinite(value).all(), f"{name}: non-finite values {value[~np.isfinite(value)][:5]}"


def check_ranked_row(served: Served, row: int, ids: np.ndarray, scores: np.ndarray, history: set,
                     unseen: Optional[int]) -> list:
    """One row of a top-k answer; returns its non-blank ids.

    `unseen`: how many served items the row has not seen (None: nothing is excluded, k come back).
    """
    items = [bytes(item) for item in ids]
    expected = served.k if unseen is None else min(served.k, unseen)
    real = [item for item in items if item != b""]
    assert items[:expected] == real and len(real) == expected, (
        f"row {row}: {len(real)} items for {expected} expected (blank \"\" only after the last item): {items}")
    assert set(real) <= set(served.items), f"row {row}: ids not served: {set(real) - set(served.items)}"
    assert len(set(real)) == len(real), f"row {row}: repeated ids {items}"
    if unseen is not None:
        assert not set(real) & history, f"row {row}: history items returned: {set(real) & history}"
    assert (scores[expected:] == FLOAT32_MIN).all(), f"row {row}: blank slots scored {scores[expected:]}"
    assert (np.diff(scores[:expected]) <= 1e-6).all(), f"row {row}: scores not best first {scores}"
    return real


def _history_sets(batch: Batch) -> list[set]:
    return [set(row) for row in batch.column("history")]


def check_retrieval(served: Served, batch: Batch, outputs: Mapping[str, np.ndarray]) -> None:
    count = len(batch.rows)
    ids = _shape(outputs, "item_ids", (count, served.k))
    scores = _shape(outputs, "scores", (count, served.k))
    assert scores.dtype == np.float32
    _finite("scores", scores)
    catalogue = set(served.items)
    for row, history in enumerate(_history_sets(batch)):
        unseen = len(catalogue - history) if served.exclude_history else None
        check_ranked_row(served, row, ids[row], scores[row], history, unseen)


def check_encode(served: Served, batch: Batch, outputs: Mapping[str, np.ndarray]) -> None:
    query = outputs["query_embedding"]
    assert query.ndim == 2 and query.shape[0] == len(batch.rows), query.shape
    _finite("query_embedding", query)


def check_embed_items(served: Served, batch: Batch, outputs: Mapping[str, np.ndarray]) -> None:
    count, extra = len(batch.rows), served.extra
    vectors = _shape(outputs, "item_embedding", (count, extra["units"]))
    weights = _shape(outputs, "modality_weights", (count, extra["modalities"]))
    _finite("item_embedding", vectors)
    _finite("modality_weights", weights)
    assert ((weights >= 0) & (weights <= 1 + 1e-6)).all(), weights
    sums = weights.sum(axis=1)
    assert (np.isclose(sums, 0, atol=1e-5) | np.isclose(sums, 1, atol=1e-5)).all(), sums
    assert (weights[:, 0] == 0).all(), "a new item has no trained id"
    # A year outside the trained range means its nearest trained year; 0 and below mean unknown.
    first, last = extra["year_range"]
    index = batch.columns.index("year")
    meant = tuple(row[:index] + (0 if row[index] <= 0 else min(max(row[index], first), last),) + row[index + 1:]
                  for row in batch.rows)
    if meant != batch.rows:
        again = answer(served, "embed_items", dataclasses.replace(batch, rows=meant))
        np.testing.assert_allclose(vectors, again["item_embedding"], rtol=1e-5, atol=1e-6,
                                   err_msg=f"years {batch.column('year')} are not read as {[r[index] for r in meant]}")


def check_user_topk(served: Served, batch: Batch, outputs: Mapping[str, np.ndarray]) -> None:
    count = len(batch.rows)
    ids = _shape(outputs, "item_ids", (count, served.k))
    scores = _shape(outputs, "scores", (count, served.k))
    known = _shape(outputs, "known_user", (count,))
    _finite("scores", scores)
    seen = served.extra["seen"]
    for row, user in enumerate(batch.column("user_id")):
        assert bool(known[row]) == (user in seen), f"row {row}: known_user {known[row]} for {user!r}"
        history = seen.get(user, set())
        check_ranked_row(served, row, ids[row], scores[row], history, len(set(served.items) - history))


def _probabilities(name: str, value: np.ndarray) -> None:
    _finite(name, value)
    assert ((value >= 0) & (value <= 1)).all(), f"{name} outside [0, 1]: {value}"


def check_probability(served: Served, batch: Batch, outputs: Mapping[str, np.ndarray]) -> None:
    _probabilities("probability", _shape(outputs, "probability", (len(batch.rows),)))


def check_explain(served: Served, batch: Batch, outputs: Mapping[str, np.ndarray]) -> None:
    count, length = len(batch.rows), served.max_length
    _probabilities("probability", _shape(outputs, "probability", (count,)))
    weights = _shape(outputs, "attention_weights", (count, length))
    _finite("attention_weights", weights)
    for row, history in enumerate(batch.column("history")):
        padding = length - min(sum(value != b"" for value in history), length)  # left-padded to L
        assert (weights[row, :padding] == 0).all(), f"row {row}: weight at padding {weights[row]}"


def check_cascade(served: Served, batch: Batch, outputs: Mapping[str, np.ndarray]) -> None:
    count, k = len(batch.rows), served.k
    ids = _shape(outputs, "item_ids", (count, k))
    scores = _shape(outputs, "scores", (count, k))
    ranks = _shape(outputs, "retrieval_rank", (count, k))
    retrieval_scores = _shape(outputs, "retrieval_scores", (count, k))
    _finite("scores", scores)
    _finite("retrieval_scores", retrieval_scores)
    catalogue = set(served.items)
    for row, history in enumerate(_history_sets(batch)):
        real = check_ranked_row(served, row, ids[row], scores[row], history, len(catalogue - history))
        _probabilities("scores", scores[row, :len(real)])
        assert ((ranks[row, :len(real)] >= 1) & (ranks[row, :len(real)] <= served.extra["candidates"])).all()
        assert len(set(ranks[row, :len(real)].tolist())) == len(real) and (ranks[row, len(real):] == 0).all()
        assert (retrieval_scores[row, len(real):] == FLOAT32_MIN).all()


def check_multitask(served: Served, batch: Batch, outputs: Mapping[str, np.ndarray]) -> None:
    count, k = len(batch.rows), served.k
    ids = _shape(outputs, "top_k_item_ids", (count, k))
    scores = _shape(outputs, "top_k_scores", (count, k))
    _finite("top_k_scores", scores)
    _finite("rating", _shape(outputs, "rating", (count,)))
    _probabilities("click_probability", _shape(outputs, "click_probability", (count,)))
    gates = outputs["task_gates"]
    assert gates.shape[:2] == (count, 3), gates.shape
    _finite("task_gates", gates)
    known_user = _shape(outputs, "known_user", (count,))
    known_item = _shape(outputs, "known_item", (count,))
    assert (gates[~known_user] == 0).all(), "an unknown user has no gates"
    np.testing.assert_allclose(gates[known_user].sum(axis=-1), 1.0, rtol=1e-5)
    users = set(served.extra["users"])
    for row, (user, item) in enumerate(zip(batch.column("user_id"), batch.column("item_id"))):
        assert bool(known_user[row]) == (user in users) and bool(known_item[row]) == (item in served.items)
        check_ranked_row(served, row, ids[row], scores[row], set(), None)


@dataclasses.dataclass(frozen=True)
class Target:
    """One signature of one export, the requests it gets and the property its answers keep."""

    export: str
    signature: str
    requests: Callable[[Served], st.SearchStrategy[Batch]]
    check: Callable[[Served, Batch, Mapping[str, np.ndarray]], None]

    @property
    def name(self) -> str:
        return f"{self.export}/{self.signature}"


TARGETS = [
    Target("sasrec_str", "serving_default", history_requests, check_retrieval),
    Target("sasrec_str", "encode", history_requests, check_encode),
    Target("sasrec_int", "serving_default", history_requests, check_retrieval),
    Target("sasrec_int", "encode", history_requests, check_encode),
    Target("sasrec_fused", "serving_default", history_requests, check_retrieval),
    Target("sasrec_fused", "encode", history_requests, check_encode),
    Target("sasrec_fused", "embed_items", content_requests, check_embed_items),
    Target("lightgcn", "serving_default", user_requests, check_user_topk),
    Target("din", "serving_default", ranking_requests, check_probability),
    Target("din", "explain", ranking_requests, check_explain),
    Target("bst", "serving_default", ranking_requests, check_probability),
    Target("bst", "explain", ranking_requests, check_explain),
    Target("cascade", "serving_default", cascade_requests, check_cascade),
    Target("multitask", "serving_default", multitask_requests, check_multitask),
]


def answer(served: Served, signature: str, batch: Batch) -> dict[str, np.ndarray]:
    """The signature's answer to `batch`, checked against the outputs the signature declares."""
    function = served.signature(signature)
    outputs = function(**batch.tensors())
    declared = function.structured_outputs
    assert set(outputs) == set(declared), f"outputs {sorted(outputs)}, declared {sorted(declared)}"
    for name, spec in declared.items():
        value = outputs[name]
        assert value.dtype == spec.dtype and spec.shape.is_compatible_with(value.shape), (
            f"{name}: {value.dtype.name} {value.shape.as_list()}, declared {spec.dtype.name} {spec.shape}")
    return {name: value.numpy() for name, value in outputs.items()}


def fuzz(exports: Mapping[str, Served], target: Target, run_settings: settings,
         failures: Optional[list] = None) -> int:
    """Runs `target`'s property on `run_settings.max_examples` generated requests.

    Args:
        exports: `build_exports`' loaded exports.
        target: The signature to fuzz.
        run_settings: Hypothesis settings (a profile).
        failures: None: the first failure raises (hypothesis shrinks it to a minimal request).
            A list: each failure is appended as `(target name, request, error)` and the run goes on.

    Returns:
        The number of requests the signature answered (shrinking included).
    """
    served = exports[target.export]
    cases = 0

    @run_settings
    @given(batch=target.requests(served))
    def property_holds(batch: Batch) -> None:
        nonlocal cases
        cases += 1
        try:
            target.check(served, batch, answer(served, target.signature, batch))
        except Exception as error:  # noqa: BLE001  (any failure of the signature is a finding)
            if failures is None:
                raise
            failures.append((target.name, batch, error))

    property_holds()
    return cases


# ----------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Served]:
    return build_exports(tmp_path_factory.mktemp("signature_fuzz"))


@pytest.mark.parametrize("target", TARGETS, ids=[target.name for target in TARGETS])
def test_signature_keeps_its_properties_on_random_requests(exports, target):
    assert fuzz(exports, target, profile()) >= 1


# ----------------------------------------------------------------------------- regressions
def test_embed_items_saturates_years_past_int32_instead_of_wrapping(exports):
    """Found by the fuzzing: `embed_items` took int64 years and the tower cast them to int32, so
    2**32 + 1995 was embedded as 1995 and -2**32 + 1995 as a known year (tf_attnrec/export/topk.py,
    `_embed_items`). Now a year past int32 is the last trained year and one below it unknown."""
    served = exports["sasrec_fused"]
    first, last = served.extra["year_range"]
    years = [2 ** 32 + first, -(2 ** 32) + first, 2 ** 31, 2 ** 63 - 1, -(2 ** 63), -(2 ** 31) - 1]
    meant = [last, 0, last, last, 0, 0]

    def embed(values):
        count = len(values)
        return served.signature("embed_items")(title=tf.constant([b""] * count), genres=tf.constant([b""] * count),
                                               year=tf.constant(values, tf.int64))

    served_years, meant_years = embed(years), embed(meant)
    np.testing.assert_allclose(served_years["item_embedding"].numpy(), meant_years["item_embedding"].numpy(),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(served_years["modality_weights"].numpy(), meant_years["modality_weights"].numpy())
    assert (meant_years["modality_weights"].numpy()[[1, 4, 5]] == 0).all()  # unknown year, nothing else: no modality
