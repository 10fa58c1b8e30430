"""Which neighbours carried a graph-attention recommendation (`gat_cf`): table and PNG.

A `gat_cf` score is `user_vector . item_vector`, and each vector is built by attention over
the node's graph neighbours: the user over the items they trained on, the item over its
users (each also over itself, its self loop). `explain_graph_recommendation` returns, for one
user and one item (default: the user's top unseen recommendation), the attention weight of
every neighbour of both, per layer (heads averaged), sorted by the mean over layers.
`format_graph_explanation` prints it and `plot_graph_attention` draws the two heatmaps.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Mapping, Optional, Union

import numpy as np

from tf_attnrec.data.vocabulary import FIRST_ID, Vocabulary
from tf_attnrec.explain import item_label, require_matplotlib

PathLike = Union[str, os.PathLike]
KIND = "graph attention"


def _neighbours(indices: np.ndarray, weights: list, node: int, exclude_self: bool = True) -> tuple:
    """(neighbour nodes, [layers, n] weights) of `node`'s incoming edges, heaviest first."""
    rows = np.flatnonzero(indices[:, 0] == node)
    per_layer = np.stack([w[rows] for w in weights])  # [layers, n]
    nodes = indices[rows, 1]
    self_weight = per_layer[:, nodes == node].sum(axis=1)
    if exclude_self:
        keep = nodes != node
        nodes, per_layer = nodes[keep], per_layer[:, keep]
    order = np.argsort(-per_layer.mean(axis=0), kind="stable")
    return nodes[order], per_layer[:, order], self_weight


def explain_graph_recommendation(model: Any, vocabulary: Vocabulary, users: Vocabulary, user: Any,
                                 item: Optional[Any], scores: np.ndarray) -> dict:
    """The attention over the neighbours of one user and one recommended item.

    Args:
        model: a `gat_cf` model (`edge_attention()`), its graph set.
        vocabulary: the run's item vocabulary.
        users: the run's user vocabulary.
        user: raw user id.
        item: raw item id, or None for the user's top unseen item.
        scores: the user's `[V]` scores with seen items already at -inf.

    Returns:
        `{"kind", "user", "item", "score", "rank", "user_neighbours": raw item ids,
        "user_weights": [layers, n], "user_self": [layers], "item_neighbours": raw user ids,
        "item_weights": [layers, m], "item_self": [layers]}`.
    """
    row = int(users.lookup(user)) - FIRST_ID
    if row < 0:
        raise ValueError(f"user {user!r} is not a user of this run (raw ids look like "
                         f"{', '.join(map(str, users.raw_ids(np.arange(FIRST_ID, min(FIRST_ID + 3, users.size)))))}).")
    if item is None:
        item_id = int(np.argmax(scores))
    else:
        item_id = int(vocabulary.lookup(item))
        if item_id < FIRST_ID:
            raise ValueError(f"item {item!r} is not an item of this run.")
    adjacency, layer_weights = model.edge_attention()
    indices = adjacency.indices.numpy()
    weights = [np.asarray(w).mean(axis=1) for w in layer_weights]  # heads averaged
    item_node = model.num_users + item_id - FIRST_ID
    user_items, user_weights, user_self = _neighbours(indices, weights, row)
    item_users, item_weights, item_self = _neighbours(indices, weights, item_node)
    score = float(scores[item_id])
    return {
        "kind": KIND, "user": user, "item": vocabulary.raw_ids([item_id])[0], "score": score,
        "rank": int(np.sum(scores > score)) + 1 if np.isfinite(score) else None,
        "user_neighbours": vocabulary.raw_ids(user_items - model.num_users + FIRST_ID).tolist(),
        "user_weights": user_weights, "user_self": user_self,
        "item_neighbours": users.raw_ids(item_users + FIRST_ID).tolist(),
        "item_weights": item_weights, "item_self": item_self,
    }


def format_graph_explanation(explanation: Mapping[str, Any], titles: Optional[Mapping[Any, Any]] = None,
                             top: int = 10) -> str:
    """The recommendation and its `top` heaviest neighbours on each side, per layer."""
    layers = len(explanation["user_self"])
    header = "".join(f"{'layer ' + str(k + 1):>9}" for k in range(layers))
    rank = f", rank {explanation['rank']}" if explanation.get("rank") else ""
    lines = [f"User {explanation['user']} -> {item_label(explanation['item'], titles)}: score "
             f"{explanation['score']:.3f}{rank} (gat_cf attention, heads averaged)",
             f"\nItems the user's vector attends to ({len(explanation['user_neighbours'])} neighbours; "
             f"self loop {', '.join(f'{w:.3f}' for w in explanation['user_self'])}):",
             f"  {'item':<44}{header}"]
    for raw, column in list(zip(explanation["user_neighbours"], explanation["user_weights"].T))[:top]:
        lines.append(f"  {item_label(raw, titles):<44}" + "".join(f"{w:>9.4f}" for w in column))
    lines += [f"\nUsers the item's vector attends to ({len(explanation['item_neighbours'])} neighbours; "
              f"self loop {', '.join(f'{w:.3f}' for w in explanation['item_self'])}):",
              f"  {'user':<44}{header}"]
    for raw, column in list(zip(explanation["item_neighbours"], explanation["item_weights"].T))[:top]:
        lines.append(f"  {'user ' + str(raw):<44}" + "".join(f"{w:>9.4f}" for w in column))
    return "\n".join(lines)


def plot_graph_attention(explanation: Mapping[str, Any], path: PathLike, titles: Optional[Mapping[Any, Any]] = None,
                         top: int = 15, dpi: int = 150) -> pathlib.Path:
    """Two heatmaps (PNG): the user's heaviest item neighbours and the item's heaviest users."""
    require_matplotlib()
    from matplotlib.figure import Figure

    user_rows = min(top, len(explanation["user_neighbours"]))
    item_rows = min(top, len(explanation["item_neighbours"]))
    layers = len(explanation["user_self"])
    figure = Figure(figsize=(6.0 + 0.6 * layers, 2.2 + 0.24 * (user_rows + item_rows)))
    panels = ((explanation["user_weights"][:, :user_rows], [item_label(r, titles) for r in
              explanation["user_neighbours"][:user_rows]], f"items user {explanation['user']} attends to"),
              (explanation["item_weights"][:, :item_rows], [f"user {r}" for r in
              explanation["item_neighbours"][:item_rows]], f"users {item_label(explanation['item'], titles)} attends to"))
    heights = [max(user_rows, 1), max(item_rows, 1)]
    grid = figure.add_gridspec(2, 1, height_ratios=heights)
    for k, (matrix, labels, title) in enumerate(panels):
        axes = figure.add_subplot(grid[k])
        image = axes.imshow(np.asarray(matrix, np.float64).T if len(labels) else np.zeros((1, layers)),
                            aspect="auto", cmap="viridis")
        axes.set_yticks(range(len(labels)), labels, fontsize=7)
        axes.set_xticks(range(layers), [f"layer {j + 1}" for j in range(layers)], fontsize=7)
        axes.set_title(title, fontsize=8)
        figure.colorbar(image, ax=axes, label="attention weight")
    figure.suptitle(f"gat_cf: user {explanation['user']} -> {item_label(explanation['item'], titles)} "
                    f"(score {explanation['score']:.3f})", fontsize=9)
    figure.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    return path


__all__ = ["KIND", "explain_graph_recommendation", "format_graph_explanation", "plot_graph_attention"]
