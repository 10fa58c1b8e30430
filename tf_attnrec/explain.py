"""Which history items drove a recommendation or a ranking score: attention weights.

Two kinds of models have attention over a user's history:

* ranking models (`din`, `bst`): `explain_example` scores one candidate item for one user
  and returns the click probability with the attention weight of every history item;
* retrieval models with attention over the history (`sasrec`, `lstm_attention`,
  `attention_pooling`, `nais`): `explain_history` takes the model's top unseen recommendation (or a
  given item), its score and rank, and the attention of the query (the most recent
  position, whose state is the query vector) over the history.

`format_explanation` prints either explanation as a table and `plot_attention` draws it as a
heatmap (PNG). `tf-attnrec explain RUN_DIR --user U [--item I]` runs both on a saved run.
`explainable_models()` lists the zoo models that can be explained.

The history is the user's state at test time: the whole chronological sequence except the
last (test) item, most recent `model.max_length` items, left-padded with 0 (for ranking
models exactly the history of the user's test example in `build_ranking_data`).

What a weight means depends on the model:

* DIN: the activation unit's raw score per history item (no softmax unless the model was
  built with `use_softmax=True`), so weights need not sum to 1 and may be negative;
* BST: the candidate token's softmax attention over the history in the last Transformer
  block, per head and averaged over heads; each head also attends to the candidate itself,
  so a head's history weights sum to at most 1;
* SASRec: the last position's causal softmax attention in the last Transformer block, per
  head and averaged over heads (sums to 1 over the shown history);
* lstm_attention (NARM): the additive attention over the RNN states with the final state
  as query (softmax, sums to 1);
* attention_pooling: the additive attention pooling with the most recent item as query
  (softmax, sums to 1);
* NAIS: the attention network's weight of each history item for the explained item, a softmax
  whose denominator is raised to beta (0.5 in the zoo), so the weights sum to 1 only at
  beta = 1; a history item's share of the score is its weight times its similarity.
"""

from __future__ import annotations

import inspect
import json
import os
import pathlib
from typing import Any, Mapping, Optional, Union

import numpy as np
import tensorflow as tf

from tf_attnrec.data.dataset import Dataset
from tf_attnrec.data.splits import SequenceSplit, split_for
from tf_attnrec.data.vocabulary import FIRST_ID, Vocabulary
from tf_attnrec.data import schema
from tf_attnrec.data.features import FeatureVocabularies

PathLike = Union[str, os.PathLike]
PLOT_INSTALL_HINT = 'pip install "tf-attnrec[plot]"'
_TITLE_WIDTH = 48


# ------------------------------------------------------------------------------- support
def _attention_owner(model: Any) -> Any:
    """What holds the history attention: a retrieval model's encoder, else the model itself.

    Works on instances and on classes (a registry spec's first `configurable` class is the
    ranking model class or the retrieval model's encoder class).
    """
    from tf_attnrec.models.sequence_encoder import SequenceEncoder

    encoder = getattr(model, "encoder", None)
    return encoder if not isinstance(model, type) and isinstance(encoder, SequenceEncoder) else model


def _is_retrieval(model: Any) -> bool:
    """A model that scores the catalogue from a history: an encoder's, or its own (`nais`)."""
    return _attention_owner(model) is not model or _weights_need_candidate(model)


def _weights_need_candidate(model: Any) -> bool:
    """True when the history weights depend on the candidate item (`nais`: `candidates=`)."""
    method = getattr(model, "attention_weights", None)
    try:
        return callable(method) and "candidates" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def supports_explain(model: Any) -> bool:
    """True when the model (or a retrieval model's encoder) exposes `attention_weights`."""
    return callable(getattr(_attention_owner(model), "attention_weights", None))


def explainable_models() -> list[str]:
    """Zoo names of the models whose attention `explain` can show (e.g. bst, din, sasrec)."""
    from tf_attnrec.models.registry import get_model_spec, list_models

    names = []
    for name in list_models():
        configurable = get_model_spec(name).configurable
        if configurable and supports_explain(configurable[0]):
            names.append(name)
    return sorted(names)


def _model_name(model: Any) -> str:
    """The zoo name (zoo builders pass `name=<zoo name>`), else the class name."""
    name = getattr(model, "name", None)
    return str(name) if name else type(model).__name__


def check_explainable(model: Any) -> None:
    """Raises ValueError naming the supported models when `model` has no history attention."""
    if not supports_explain(model):
        raise ValueError(
            f"the {_model_name(model)} model has no attention over the history to explain; "
            f"explain supports the models {', '.join(explainable_models())}."
        )


# ------------------------------------------------------------------------------- features
def _coerce(value: Any, reference: np.ndarray) -> Any:
    """`"50"` -> 50 when the reference ids are integers (ids typed on a command line)."""
    if isinstance(value, str) and np.issubdtype(np.asarray(reference).dtype, np.integer):
        try:
            return int(value)
        except ValueError:
            return value
    return _python(value)


def _python(value: Any) -> Any:
    """numpy scalars as plain Python values (for printing and JSON)."""
    return value.item() if isinstance(value, np.generic) else value


def _examples(values: np.ndarray, count: int = 3) -> str:
    return ", ".join(str(v) for v in np.asarray(values)[:count])


def history_at_test_time(split: SequenceSplit, user: Any) -> tuple[int, np.ndarray]:
    """A user's row in the split and item ids before the test item (oldest first).

    Args:
        split: the run's leave-one-out split.
        user: raw user id (a digit string is accepted for integer ids).

    Returns:
        (row, int32 ids of the whole sequence except the test item; users too short to have
        a test item keep their whole sequence).

    Raises:
        LookupError: the user is not in the split.
    """
    raw = _coerce(user, split.users)
    rows = np.flatnonzero(split.users == raw) if split.num_users else np.zeros(0, np.int64)
    if not len(rows):
        raise LookupError(
            f"user {user!r} is not in the dataset ({split.num_users:,} users; ids look like "
            f"{_examples(split.users)})."
        )
    row = int(rows[0])
    sequence = _full_sequence(split, row)
    if split.test_target[row] > 0:
        sequence = sequence[:-1]
    return row, sequence.astype(np.int32)


def _lookup_item(vocabulary: Vocabulary, item: Any) -> tuple[Any, int]:
    """A raw item id and its model id.

    Args:
        vocabulary: the run's item vocabulary.
        item: raw item id (a digit string is accepted for integer ids).

    Returns:
        (the raw id as the vocabulary holds it, its model id `>= FIRST_ID`).

    Raises:
        LookupError: the model does not know the item.
    """
    known = vocabulary.raw_ids(np.arange(FIRST_ID, min(FIRST_ID + 3, vocabulary.size)))
    raw_item = _coerce(item, known)
    item_index = int(vocabulary.lookup(raw_item))
    if item_index < FIRST_ID:
        raise LookupError(
            f"item {item!r} is not one the model knows ({vocabulary.num_items:,} items; ids look like "
            f"{_examples(known)})."
        )
    return raw_item, item_index


def model_input(sequence: np.ndarray, length: int) -> np.ndarray:
    """int32 `[length]`: the most recent `length` items of `sequence`, left-padded with 0."""
    recent = np.asarray(sequence)[-length:]
    padded = np.zeros(length, np.int32)
    padded[length - len(recent):] = recent
    return padded


def _full_sequence(split: SequenceSplit, row: int) -> np.ndarray:
    parts = [split.train[row]]
    for target in (split.validation_target[row], split.test_target[row]):
        if target > 0:
            parts.append([target])
    return np.concatenate(parts).astype(np.int32)


def example_features(
    vocabularies: FeatureVocabularies,
    item_tables: Mapping[str, np.ndarray],
    users: Any,
    user: Any,
    item_index: int,
    history: np.ndarray,
    max_length: int,
) -> dict[str, np.ndarray]:
    """The model input of one example (batch of 1) in the `schema.MODEL_FEATURES` layout.

    Args:
        vocabularies: the run's `FeatureVocabularies`.
        item_tables: `{"item_genres", "item_year"}` from `tf_attnrec.runs.load_feature_tables`.
        users: user metadata table (`Dataset.users`).
        user: raw user id.
        item_index: the candidate's item id (vocabulary index).
        history: item ids, oldest first; the most recent `max_length` are kept.
        max_length: L of the model (left-padded with 0).

    Returns:
        dict of int32 numpy arrays: user features [1], candidate [1] / [1, G], history [1, L]
        / [1, L, G].
    """
    genres, years = np.asarray(item_tables["item_genres"]), np.asarray(item_tables["item_year"])
    recent = np.asarray(history, np.int32)[-max_length:] if max_length else np.zeros(0, np.int32)
    padded = np.zeros(max_length, np.int32)
    padded[max_length - len(recent):] = recent
    features = {name: np.asarray(values, np.int32) for name, values in vocabularies.user_table(users, [user]).items()}
    candidate = np.array([item_index], np.int32)
    features.update({
        schema.ITEM_ID: candidate,
        schema.ITEM_GENRES: genres[candidate].astype(np.int32),
        schema.ITEM_YEAR: years[candidate].astype(np.int32),
        schema.HISTORY_ITEM_IDS: padded[None, :],
        schema.HISTORY_GENRES: genres[padded][None].astype(np.int32),
        schema.HISTORY_YEAR: years[padded][None].astype(np.int32),
    })
    return features


# ---------------------------------------------------------------------------- explanation
def explain_example(
    model: Any,
    vocabularies: FeatureVocabularies,
    item_tables: Mapping[str, np.ndarray],
    data: Dataset,
    user: Any,
    item: Any,
    split: Optional[SequenceSplit] = None,
) -> dict[str, Any]:
    """Click probability of (user, item) and the attention weight of each history item.

    Args:
        model: a trained attention ranker with `attention_weights` (`din`, `bst`).
        vocabularies: the run's `FeatureVocabularies` (`tf_attnrec.runs.load_feature_tables`).
        item_tables: the run's `{"item_genres", "item_year"}` (the same).
        data: the dataset the run was trained on (interactions and `users` metadata).
        user: raw user id, as in the dataset files (a digit string is accepted).
        item: raw item id of the candidate (a digit string is accepted).
        split: the leave-one-out split of `data` with the run's item vocabulary; default
            built here (pass it to explain many examples without rebuilding it).

    Returns:
        dict with "model" (zoo name), "user", "item" (raw ids), "item_index",
        "probability", "logit", "history" (raw ids of the non-padded history, oldest first,
        list of length n <= L), "history_index" (int32 [n]), "weights" (float [n]; the mean
        over heads for BST), "head_weights" (float [heads, n] for BST, else None),
        "position_weights" (float [L], the model's output over every slot, 0 at padding),
        "features" (the model input, numpy, batch of 1), "sequence_length" (items before
        the test item, before truncation to L), "candidate_in_history" (bool: anywhere
        before the test item), "candidate_recency" (1 = most recent slot of the shown
        history, or None), "is_test_item" (bool) and "weight_kind" (what a weight means).

    Raises:
        ValueError: the model has no history attention, or `data` lacks user metadata or is
            not the run's data.
        LookupError: unknown user or item.

    Example:
        ```python
        model, _, _ = tf_attnrec.runs.load_model("runs/din")
        vocabularies, item_tables = tf_attnrec.runs.load_feature_tables("runs/din")
        data = load_dataset("ml-1m")
        explanation = explain_example(model, vocabularies, item_tables, data, user=1, item=50)
        explanation["probability"], explanation["weights"].argmax()
        ```
    """
    check_explainable(model)
    if _is_retrieval(model):
        raise ValueError(
            f"the {_model_name(model)} model is a retrieval model: explain it with explain_history "
            "(its recommendation for a user), not explain_example (a ranking model's click probability)."
        )
    if data.users is None:
        raise ValueError(f"{data.name or 'the dataset'} has no user metadata; explain needs the users table.")
    split = split_for(data, vocabularies.item) if split is None else split
    row, sequence = history_at_test_time(split, user)
    raw_user = split.users[row]
    item_vocabulary = vocabularies.item
    raw_item, item_index = _lookup_item(item_vocabulary, item)
    length = int(model.max_length)
    features = example_features(vocabularies, item_tables, data.users, raw_user, item_index, sequence, length)
    inputs = {key: tf.constant(value) for key, value in features.items()}
    logit = float(model(inputs, training=False).numpy()[0])
    head_weights = None
    if _has_heads(model):
        per_head = model.attention_weights(inputs, per_head=True).numpy()[0]  # [heads, L]
        position_weights = per_head.mean(axis=0)
    else:
        per_head = None
        position_weights = np.asarray(model.attention_weights(inputs).numpy()[0])
    history_index = features[schema.HISTORY_ITEM_IDS][0]
    real = history_index > 0
    if per_head is not None:
        head_weights = per_head[:, real]
    return {
        "model": _model_name(model),
        "user": _python(raw_user),
        "item": _python(raw_item),
        "item_index": item_index,
        "probability": float(1.0 / (1.0 + np.exp(-logit))),
        "logit": logit,
        "history": [_python(v) for v in item_vocabulary.raw_ids(history_index[real])],
        "history_index": history_index[real],
        "weights": position_weights[real],
        "head_weights": head_weights,
        "position_weights": position_weights,
        "features": features,
        "sequence_length": int(len(sequence)),
        "candidate_in_history": bool(np.any(sequence == item_index)),
        "candidate_recency": _recency(history_index[real], item_index),
        "is_test_item": bool(split.test_target[row] == item_index),
        "weight_kind": _weight_kind(model),
    }


def explain_history(
    model: Any,
    vocabulary: Vocabulary,
    split: SequenceSplit,
    user: Any,
    item: Any = None,
) -> dict[str, Any]:
    """A retrieval model's recommendation for a user and the query's attention over the history.

    The history is the user's state at test time (`history_at_test_time`), of which the
    model reads the most recent `model.max_length` items; the query is the state of the most
    recent position. Candidates are the items the user has not interacted with before the
    test item (the held-out test item is one), as in evaluation.

    Args:
        model: a `SequentialRetrievalModel` with an attention encoder (`sasrec`,
            `lstm_attention`, `attention_pooling`).
        vocabulary: the run's item `Vocabulary`.
        split: the run's leave-one-out split (with `vocabulary`).
        user: raw user id, as in the dataset files (a digit string is accepted).
        item: raw item id to explain; None takes the model's top-1 unseen recommendation.

    Returns:
        dict with "model" (zoo name), "task" ("retrieval"), "user", "item" (raw ids),
        "item_index", "score" (`model.score` of the item), "rank" (1 = best, among the
        unseen items plus the item itself; ties count against it, as in evaluation),
        "num_candidates" (the items ranked), "recommended" (True when `item` was None),
        "history" (raw ids of the shown history, oldest first, length n <= L),
        "history_index" (int32 [n]), "weights" (float [n]; the mean over heads for
        SASRec), "head_weights" (float [heads, n] for SASRec, else None), "block_weights"
        (float [blocks, heads, n]: every Transformer block's, for SASRec; else None),
        "position_weights" (float [L], over every slot, 0 at padding), "features"
        ({"history": int32 [1, L]}, the model input), "sequence_length" (items before the
        test item, before truncation to L), "candidate_in_history" (the user interacted
        with the item before the test item), "candidate_recency" (1 = most recent slot of
        the shown history, or None), "is_test_item" and "weight_kind" (what a weight means).

    Raises:
        ValueError: the model has no history attention, the split has another vocabulary,
            or the user has interacted with every item.
        LookupError: unknown user or item.

    Example:
        ```python
        explanation = explain_history(model, vocabulary, split, user=1)
        explanation["item"], explanation["rank"], explanation["weights"].argmax()
        ```
    """
    check_explainable(model)
    if not _is_retrieval(model):
        raise ValueError(
            f"the {_model_name(model)} model is a ranking model: explain the score of one candidate "
            "with explain_example, not explain_history (a retrieval model's recommendation)."
        )
    if split.vocabulary != vocabulary:
        raise ValueError(
            "the split does not use the run's item vocabulary; build it with "
            "leave_one_out_split(interactions, vocabulary=vocabulary) (see split_for)."
        )
    row, sequence = history_at_test_time(split, user)
    raw_user = split.users[row]
    padded = model_input(sequence, int(model.max_length))
    history = tf.constant(padded[None, :])
    scores = np.asarray(model.score(history).numpy()[0], np.float64)
    candidates = np.arange(len(scores)) >= FIRST_ID
    candidates[sequence[sequence < len(scores)]] = False  # seen before the test item
    if item is None:
        if not candidates.any():
            raise ValueError(f"user {user!r} has interacted with every item; there is nothing to recommend.")
        allowed = np.flatnonzero(candidates)
        item_index = int(allowed[np.argmax(scores[allowed])])
        raw_item = vocabulary.raw_ids([item_index])[0]
    else:
        raw_item, item_index = _lookup_item(vocabulary, item)
    score = float(scores[item_index])
    others = candidates.copy()
    others[item_index] = False
    rank = 1 + int(np.sum(others & (scores >= score)))
    # NAIS weighs the history for the candidate: the weights of the explained item.
    candidate = {"candidates": [item_index]} if _weights_need_candidate(model) else {}
    per_head = np.asarray(model.attention_weights(history, per_head=True, **candidate).numpy()[0],
                          np.float64)  # [heads, L]
    position_weights = per_head.mean(axis=0)
    real = padded > 0
    multi_head = getattr(_attention_owner(model), "num_heads", None) is not None
    blocks = getattr(getattr(model, "encoder", None), "block_attention_weights", None)
    block_weights = np.asarray(blocks(history).numpy()[0], np.float64)[:, :, real] if callable(blocks) else None
    return {
        "model": _model_name(model),
        "task": "retrieval",
        "user": _python(raw_user),
        "item": _python(raw_item),
        "item_index": item_index,
        "score": score,
        "rank": rank,
        "num_candidates": int(others.sum()) + 1,
        "recommended": item is None,
        "history": [_python(v) for v in vocabulary.raw_ids(padded[real])],
        "history_index": padded[real],
        "weights": position_weights[real],
        "head_weights": per_head[:, real] if multi_head else None,
        "block_weights": block_weights,
        "position_weights": position_weights,
        "features": {"history": padded[None, :]},
        "sequence_length": int(len(sequence)),
        "candidate_in_history": bool(np.any(sequence == item_index)),
        "candidate_recency": _recency(padded[real], item_index),
        "is_test_item": bool(split.test_target[row] == item_index),
        "weight_kind": _weight_kind(model),
    }


def _recency(history: np.ndarray, item_index: int) -> Optional[int]:
    """1 = most recent: the candidate's latest position in the shown history, else None."""
    positions = np.flatnonzero(np.asarray(history) == item_index)
    return int(len(history) - positions[-1]) if len(positions) else None


def _has_heads(model: Any) -> bool:
    try:
        return "per_head" in inspect.signature(model.attention_weights).parameters
    except (TypeError, ValueError):
        return False


def _weight_kind(model: Any) -> str:
    if _is_retrieval(model):
        owner = _attention_owner(model)
        return getattr(owner, "attention_description", None) or "query (last position) attention over the history"
    if _has_heads(model):
        return "candidate-token softmax attention, last block"
    if getattr(model, "use_softmax", False):
        return "target attention, softmax over the history"
    return "target attention, unnormalised activation-unit score"


# ---------------------------------------------------------------------------------- text
def _is_retrieval_explanation(explanation: Mapping[str, Any]) -> bool:
    """`explain_history` output (score and rank) rather than `explain_example`'s (probability)."""
    return "probability" not in explanation and "score" in explanation


def _headline(explanation: Mapping[str, Any]) -> str:
    """"score = ..., rank r of n" (retrieval) or "P(click) = ..." (ranking), for the plot."""
    if _is_retrieval_explanation(explanation):
        return (f"score = {explanation['score']:.3f}, rank {explanation['rank']:,} of "
                f"{explanation['num_candidates']:,} unseen items")
    return f"P(click) = {explanation['probability']:.3f}"


def item_label(raw_id: Any, titles: Optional[Mapping[Any, Any]] = None, width: int = _TITLE_WIDTH) -> str:
    """"Title (year)" of an item from `items.json`-style records, else "item <id>".

    Args:
        raw_id: raw item id.
        titles: `{str(raw id): {"title": ..., "year": ...}}` (`cli.read_items`) or
            `{raw id: "title"}`.
        width: longer labels are cut with an ellipsis.
    """
    titles = titles or {}
    record = titles.get(str(raw_id), titles.get(raw_id))
    if isinstance(record, Mapping):
        title, year = record.get("title"), record.get("year")
    else:
        title, year = record, None
    label = str(title) if title else f"item {raw_id}"
    if year is not None and f"({year})" not in label:
        label = f"{label} ({year})"
    return label if len(label) <= width else label[: width - 1] + "…"


def top_items(explanation: Mapping[str, Any], n: int = 10) -> list[dict[str, Any]]:
    """The `n` history items of highest weight: rank, recency (1 = most recent), id, weight."""
    weights = np.asarray(explanation["weights"])
    order = np.argsort(-weights, kind="stable")[: max(int(n), 0)]
    count = len(weights)
    heads = explanation.get("head_weights")
    return [
        {
            "rank": rank,
            "recency": int(count - position),
            "item_id": explanation["history"][position],
            "weight": float(weights[position]),
            "head_weights": None if heads is None else [float(w) for w in np.asarray(heads)[:, position]],
        }
        for rank, position in enumerate(order, start=1)
    ]


def format_explanation(
    explanation: Mapping[str, Any], titles: Optional[Mapping[Any, Any]] = None, top: int = 10
) -> str:
    """The score (retrieval) or probability (ranking) and the top history items by weight.

    Args:
        explanation: the dict of `explain_example` (ranking) or `explain_history` (retrieval).
        titles: item records (`cli.read_items`) or `{raw id: title}` for the labels.
        top: how many history items to list.

    Returns:
        The text (lines joined by newlines).

    Example:
        ```python
        print(format_explanation(explanation, read_items(run_dir), top=10))
        ```
    """
    e = explanation
    n = len(e["history"])
    retrieval = _is_retrieval_explanation(e)
    what = "recommendation" if retrieval and e.get("recommended") else ("item" if retrieval else "candidate")
    lines = [f"{e['model']}: user {e['user']}, {what} {e['item']} {item_label(e['item'], titles, 80)}"]
    if retrieval:
        top_note = " (the model's top recommendation)" if e.get("recommended") else ""
        lines.append(
            f"  score {e['score']:.4f}, rank {e['rank']:,} of {e['num_candidates']:,} unseen items{top_note}"
        )
    else:
        lines.append(f"  click probability {e['probability']:.4f} (logit {e['logit']:+.3f})")
    lines.append(
        f"  history: the {n} most recent of the user's {e['sequence_length']} items before the test "
        f"item; weight = {e['weight_kind']}"
    )
    noun = "item" if retrieval else "candidate"
    if e.get("is_test_item"):
        lines.append(
            "  the item is the user's held-out test item (the next item the user rated)." if retrieval
            else "  the candidate is the user's held-out test item (the positive of the test example)."
        )
    if e.get("candidate_recency"):
        lines.append(f"  note: the user already rated the {noun}; it is history item t-{e['candidate_recency']}.")
    elif e["candidate_in_history"]:
        lines.append(f"  note: the user already rated the {noun}, earlier than the history shown.")
    rows = top_items(e, top)
    heads = e.get("head_weights")
    head_titles = "".join(f"{'head ' + str(h + 1):>9}" for h in range(len(heads))) if heads is not None else ""
    lines.append(f"Top {len(rows)} history items by weight (recency 1 = most recent):")
    lines.append(f"  {'rank':>4}  {'recency':>7}  {'item_id':>8}  {'weight':>8}{head_titles}  title")
    for row in rows:
        cells = "".join(f"{w:>9.4f}" for w in row["head_weights"]) if row["head_weights"] else ""
        lines.append(
            f"  {row['rank']:>4}  {row['recency']:>7}  {row['item_id']!s:>8}  {row['weight']:>8.4f}{cells}  "
            f"{item_label(row['item_id'], titles, 80)}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- plot
def require_matplotlib() -> None:
    """Raises ImportError with the install command when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise ImportError(f"the attention heatmap needs matplotlib: {PLOT_INSTALL_HINT}") from error


def plot_attention(
    explanation: Mapping[str, Any],
    path: PathLike,
    titles: Optional[Mapping[Any, Any]] = None,
    top: Optional[int] = None,
    highlight: int = 10,
    dpi: int = 150,
) -> pathlib.Path:
    """Writes a heatmap (PNG) of the history items' attention weights for one example.

    One row per history item, the most recent at the top (labelled "t-1"), each labelled
    "title (year)"; one column for DIN, lstm_attention and attention_pooling, one per head
    plus their mean for BST, and one per block and head plus the last block's mean for SASRec. The colour is the weight (a diverging map centred at
    0 when some weight is negative); the title names the user, the candidate and the click
    probability (ranking) or the item's score and rank (retrieval). Height grows with the
    rows, so a 50-item history stays readable.

    Args:
        explanation: the dict of `explain_example` or `explain_history`.
        path: output file (PNG; parent folders are created).
        titles: item records (`cli.read_items`) or `{raw id: title}` for the labels.
        top: draw only the `top` highest-weighted items (still in recency order); None
            draws the whole history.
        highlight: the labels of the `highlight` highest-weighted items are bold.
        dpi: resolution.

    Returns:
        The written path.

    Raises:
        ImportError: matplotlib is not installed (`pip install "tf-attnrec[plot]"`).
        ValueError: the explanation has an empty history.

    Example:
        ```python
        plot_attention(explanation, "din_user1_item50.png", titles=read_items(run_dir))
        ```
    """
    require_matplotlib()
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    weights = np.asarray(explanation["weights"], dtype=np.float64)
    count = len(weights)
    if not count:
        raise ValueError("the explanation has an empty history; nothing to plot.")
    heads = explanation.get("head_weights")
    blocks = explanation.get("block_weights")
    if blocks is not None and len(blocks) > 1:  # every block's heads, then the last block's mean
        blocks = np.asarray(blocks, np.float64)
        matrix = np.concatenate([blocks.reshape(-1, count), weights[None, :]], axis=0).T
        columns = [f"block {b + 1}\nhead {h + 1}" for b in range(blocks.shape[0]) for h in range(blocks.shape[1])]
        columns.append(f"mean\n(block {blocks.shape[0]})")
        kind = explanation["weight_kind"].replace(", last block", "")
    elif heads is not None:
        matrix = np.concatenate([np.asarray(heads, np.float64), weights[None, :]], axis=0).T  # [n, heads+1]
        columns = [f"head {h + 1}" for h in range(len(heads))] + ["mean"]
        kind = explanation["weight_kind"]
    else:
        matrix, columns = weights[:, None], ["weight"]
        kind = explanation["weight_kind"]
    order = np.arange(count)[::-1]  # most recent first (top row)
    if top is not None:
        keep = set(np.argsort(-weights, kind="stable")[: max(int(top), 1)].tolist())
        order = np.array([p for p in order if p in keep])
    bold = set(np.argsort(-weights, kind="stable")[: max(int(highlight), 0)].tolist())
    matrix = matrix[order]
    labels = [
        f"t-{count - p}  {item_label(explanation['history'][p], titles)}" for p in order
    ]

    rows = len(order)
    figure = Figure(figsize=(4.8 + 0.75 * len(columns), 1.9 + 0.24 * rows))
    axes = figure.add_subplot(1, 1, 1)
    low, high = float(matrix.min()), float(matrix.max())
    if low < 0 < high:
        norm, cmap = TwoSlopeNorm(vcenter=0.0, vmin=low, vmax=high), "RdBu_r"
    else:
        norm, cmap = None, "viridis"
    image = axes.imshow(matrix, aspect="auto", cmap=cmap, norm=norm, interpolation="nearest")
    axes.set_yticks(np.arange(rows))
    axes.set_yticklabels(labels, fontsize=7)
    for tick, position in zip(axes.get_yticklabels(), order):
        if position in bold:
            tick.set_fontweight("bold")
    axes.set_xticks(np.arange(len(columns)))
    axes.set_xticklabels(columns, fontsize=8)
    axes.xaxis.tick_top()
    if rows * len(columns) <= 400:  # the numbers, while they fit
        span = (high - low) or 1.0
        for r in range(rows):
            for c in range(len(columns)):
                value = matrix[r, c]
                light = norm is None and (value - low) / span > 0.6
                axes.text(c, r, f"{value:.3f}", ha="center", va="center", fontsize=6,
                          color="black" if light or norm is not None else "white")
    colorbar = figure.colorbar(image, ax=axes, fraction=0.08, pad=0.03)
    colorbar.set_label(f"weight ({kind})", fontsize=7)
    axes.set_ylabel("history item (t-1 = most recent)", fontsize=8)
    colorbar.ax.tick_params(labelsize=7)
    shown = f"top {rows} of {count}" if rows < count else f"{count}"
    figure.suptitle(
        f"{explanation['model'].upper()} attention | user {explanation['user']}, "
        f"{'item' if _is_retrieval_explanation(explanation) else 'candidate'}: "
        f"{item_label(explanation['item'], titles, 60)}\n"
        f"{_headline(explanation)};  {shown} most recent history items, "
        "most recent at the top",
        fontsize=9,
    )
    figure.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, format="png", bbox_inches="tight")
    return path



def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_explanation_json(explanation: Mapping[str, Any], path: PathLike) -> pathlib.Path:
    """Writes an explanation (any `explain*` dict) as JSON: the weights as nested lists, for notebooks
    and dashboards; the model input ("features") is left out.

    Example:
        ```python
        write_explanation_json(explain_history(model, vocabulary, split, user=1), "user1.json")
        ```
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {key: value for key, value in explanation.items() if key != "features"}
    path.write_text(json.dumps(_jsonable(content), indent=1), encoding="utf-8")
    return path

__all__ = [
    "check_explainable",
    "example_features",
    "explain_example",
    "explain_history",
    "explainable_models",
    "format_explanation",
    "item_label",
    "plot_attention",
    "require_matplotlib",
    "split_for",
    "supports_explain",
    "history_at_test_time",
    "top_items",
    "write_explanation_json",
]
