"""Which modality made each recommended item what it is, in a model with `item_features`.

A fused item tower (`FusedItemEmbedding`) builds each item's vector as an attention-weighted
mix of its modalities: its trained id, genres, title words, release year. `explain_modalities`
returns, for one user's top-k unseen recommendations, each item's modality weights (the id
weighs 0 for an item without training interactions: a cold item is placed by its content
alone), beside the mean weights over warm and over cold catalogue items. `plot_modalities`
draws them as a heatmap (items x modalities).
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Mapping, Optional, Union

import numpy as np
import tensorflow as tf

from tf_attnrec.data.splits import SequenceSplit
from tf_attnrec.data.vocabulary import FIRST_ID, Vocabulary
from tf_attnrec.explain import history_at_test_time, item_label, model_input, require_matplotlib

PathLike = Union[str, os.PathLike]
KIND = "item modalities"


def item_tower(model: Any) -> Any:
    """The model's `FusedItemEmbedding`, or None (id-only models)."""
    return getattr(getattr(model, "encoder", None), "item_tower", None)


def catalogue_modality_weights(model: Any) -> np.ndarray:
    """`[vocab_size, M]` modality weights of every catalogue item (inference mode)."""
    tower = item_tower(model)
    if tower is None:
        raise ValueError(f"the {model.name} model reads item ids only; it has no modalities to explain.")
    _, weights = tower(model.encoder.embedding.item_embeddings.embeddings, training=False, return_weights=True)
    return weights.numpy()


def explain_modalities(model: Any, vocabulary: Vocabulary, split: SequenceSplit, user: Any, k: int = 10) -> dict:
    """The user's top-k unseen recommendations and each one's modality weights.

    Args:
        model: a retrieval model with `item_features`.
        vocabulary: the run's item vocabulary.
        split: the run's split (the user's history at test time is read from it).
        user: raw user id.
        k: recommendations explained.

    Returns:
        `{"kind", "model", "user", "items" (raw ids, best first), "scores", "modalities" (names,
        "id" first), "weights" [k, M], "cold" (bool [k]: no trained id), "mean_warm" [M],
        "mean_cold" [M] (NaN when the catalogue has no cold item)}`.
    """
    tower = item_tower(model)
    weights = catalogue_modality_weights(model)
    row, sequence = history_at_test_time(split, user)
    scores = model.score(tf.constant(model_input(sequence, int(model.max_length))[None, :])).numpy()[0]
    scores[:FIRST_ID] = -np.inf
    scores[sequence] = -np.inf  # seen before the test item
    top = np.argsort(-scores, kind="stable")[:k]
    cold = tower.id_present.numpy() == 0
    items = np.arange(len(cold))
    warm_rows, cold_rows = (items >= FIRST_ID) & ~cold, (items >= FIRST_ID) & cold
    return {
        "kind": KIND,
        "model": model.name,
        "user": split.users[row].item() if hasattr(split.users[row], "item") else split.users[row],
        "items": [v.item() if hasattr(v, "item") else v for v in vocabulary.raw_ids(top)],
        "scores": scores[top].astype(float),
        "modalities": list(tower.modality_names),
        "weights": weights[top],
        "cold": cold[top],
        "mean_warm": weights[warm_rows].mean(axis=0),
        "mean_cold": weights[cold_rows].mean(axis=0) if cold_rows.any() else np.full(weights.shape[1], np.nan),
    }


def format_modalities(explanation: Mapping[str, Any], titles: Optional[Mapping[Any, Any]] = None) -> str:
    """A text table: one row per recommended item, one column per modality."""
    names = explanation["modalities"]
    lines = [f"{explanation['model']}: modality weights of user {explanation['user']}'s top "
             f"{len(explanation['items'])} (id 0 = a cold item, placed by its content)",
             f"  {'item':<44}" + "".join(f"{n:>9}" for n in names)]
    for item, cold, row in zip(explanation["items"], explanation["cold"], explanation["weights"]):
        label = item_label(item, titles, 40) + (" *" if cold else "")
        lines.append(f"  {label:<44}" + "".join(f"{w:>9.3f}" for w in row))
    for key, label in (("mean_warm", "mean over warm items"), ("mean_cold", "mean over cold items")):
        lines.append(f"  {label:<44}" + "".join(f"{w:>9.3f}" for w in explanation[key]))
    return "\n".join(lines)


def plot_modalities(explanation: Mapping[str, Any], path: PathLike, titles: Optional[Mapping[Any, Any]] = None,
                    dpi: int = 150) -> pathlib.Path:
    """Writes the heatmap (PNG): recommended items (best at the top) x modalities, plus the means."""
    require_matplotlib()
    from matplotlib.figure import Figure

    names = explanation["modalities"]
    matrix = np.vstack([explanation["weights"], explanation["mean_warm"][None], explanation["mean_cold"][None]])
    labels = [f"{i + 1}. {item_label(item, titles, 40)}{' (cold)' if cold else ''}"
              for i, (item, cold) in enumerate(zip(explanation["items"], explanation["cold"]))]
    labels += ["mean, warm catalogue items", "mean, cold catalogue items"]
    figure = Figure(figsize=(3.6 + 0.8 * len(names), 1.6 + 0.28 * len(labels)))
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(np.nan_to_num(matrix), aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0)
    axes.set_yticks(np.arange(len(labels)))
    axes.set_yticklabels(labels, fontsize=7)
    axes.set_xticks(np.arange(len(names)))
    axes.set_xticklabels(names, fontsize=8)
    axes.set_xlabel("modality of the item vector")
    axes.xaxis.set_label_position("top")
    axes.xaxis.tick_top()
    axes.axhline(len(explanation["items"]) - 0.5, color="white", linewidth=2)
    for r in range(matrix.shape[0]):
        for c in range(matrix.shape[1]):
            value = matrix[r, c]
            axes.text(c, r, "-" if np.isnan(value) else f"{value:.2f}", ha="center", va="center", fontsize=6,
                      color="black" if value > 0.6 else "white")
    colorbar = figure.colorbar(image, ax=axes, fraction=0.08, pad=0.03)
    colorbar.set_label("attention weight (each item's row sums to 1)", fontsize=7)
    figure.suptitle(f"{explanation['model'].upper()} item tower | user {explanation['user']}: which modality "
                    "made each recommended item", fontsize=9)
    figure.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, format="png", bbox_inches="tight")
    return path
