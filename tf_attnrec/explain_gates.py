"""Which experts each task attends to in a multi-task model (`mmoe`, `ple`): table and PNG.

Each task's gate is a softmax over the experts it may use: all shared experts in MMoE; in
PLE's last level its own experts and the shared ones. `explain_gates` returns, for one user,
the weight each task gives each expert, beside the same weights averaged over every known
user; experts a task's gate does not cover are NaN. `format_gates` prints both and
`plot_gates` draws them as two heatmaps (tasks x experts).
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Mapping, Union

import numpy as np
import tensorflow as tf

from tf_attnrec.data.vocabulary import FIRST_ID, Vocabulary
from tf_attnrec.explain import require_matplotlib
from tf_attnrec.models.multitask import TASKS, MultiTaskModel

PathLike = Union[str, os.PathLike]
KIND = "multitask gates"


def expert_layout(model: MultiTaskModel) -> tuple[list[str], list[list[int]]]:
    """`(labels of the last level's experts, for each task the columns its gate covers, in gate order)`.

    Columns: each task's own experts (PLE), task by task, then the shared experts; a task's
    gate lists its own experts first, then the shared ones (`tf_attnrec.layers.ExtractionLevel`).
    """
    level = model.experts
    own, shared = level.num_task_experts, level.num_shared_experts
    labels = [f"{task} {i + 1}" for task in TASKS for i in range(own)] + [f"shared {i + 1}" for i in range(shared)]
    shared_columns = list(range(len(TASKS) * own, len(TASKS) * own + shared))
    columns = [list(range(t * own, (t + 1) * own)) + shared_columns for t in range(len(TASKS))]
    return labels, columns


def gate_matrix(model: MultiTaskModel, task_gates: np.ndarray) -> np.ndarray:
    """`task_gates [B, tasks, n]` spread over the expert columns: `[B, tasks, experts]`, NaN where not covered."""
    labels, columns = expert_layout(model)
    matrix = np.full(task_gates.shape[:2] + (len(labels),), np.nan)
    for task, task_columns in enumerate(columns):
        matrix[:, task, task_columns] = task_gates[:, task, :]
    return matrix


def explain_gates(model: MultiTaskModel, users: Vocabulary, user: Any, batch_size: int = 4096) -> dict:
    """One user's gate weights per task and expert, and their mean over all known users.

    Args:
        model: a multi-task model.
        users: the run's user vocabulary.
        user: raw user id.
        batch_size: users per call for the mean.

    Returns:
        `{"kind", "user", "tasks", "experts", "gates": [tasks, experts], "mean_gates": [tasks, experts],
        "users": known users averaged}` (NaN where a task's gate does not cover an expert).

    Raises:
        ValueError: `user` is not a user of the run.
    """
    row = int(users.lookup(user))
    if row < FIRST_ID:
        examples = ", ".join(map(str, users.raw_ids(np.arange(FIRST_ID, min(FIRST_ID + 3, users.size)))))
        raise ValueError(f"user {user!r} is not a user of this run (raw ids look like {examples}).")
    ids = np.arange(FIRST_ID, users.size, dtype=np.int32)
    gates = np.concatenate([model.user_vectors(tf.constant(ids[i:i + batch_size]))["task_gates"].numpy()
                            for i in range(0, len(ids), batch_size)])
    matrix = gate_matrix(model, gates.astype(np.float64))
    labels, _ = expert_layout(model)
    return {"kind": KIND, "user": user, "tasks": list(TASKS), "experts": labels,
            "gates": matrix[row - FIRST_ID], "mean_gates": matrix.mean(axis=0), "users": int(len(ids))}


def format_gates(explanation: Mapping[str, Any]) -> str:
    """Both matrices as text tables (`-` where a task's gate does not cover the expert)."""
    experts = explanation["experts"]
    width = max(10, *(len(e) + 2 for e in experts))
    lines = []
    for title, key in ((f"gate weights of user {explanation['user']}", "gates"),
                       (f"mean over {explanation['users']:,} users", "mean_gates")):
        lines += [title, f"  {'task':<10}" + "".join(f"{e:>{width}}" for e in experts)]
        for task, row in zip(explanation["tasks"], explanation[key]):
            lines.append(f"  {task:<10}" + "".join(f"{'-':>{width}}" if np.isnan(v) else f"{v:>{width}.3f}" for v in row))
    return "\n".join(lines)


def plot_gates(explanation: Mapping[str, Any], path: PathLike) -> pathlib.Path:
    """Two heatmaps (this user, all users): tasks x experts, weights printed in the cells."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    experts, tasks = explanation["experts"], explanation["tasks"]
    figure, axes = plt.subplots(1, 2, figsize=(3.0 + 2.0 * len(experts), 3.6), squeeze=False,
                                constrained_layout=True)
    for column, (axis, (title, key)) in enumerate(zip(axes[0], ((f"user {explanation['user']}", "gates"),
                                                                (f"mean over {explanation['users']:,} users",
                                                                 "mean_gates")))):
        values = np.asarray(explanation[key], np.float64)
        image = axis.imshow(np.ma.masked_invalid(values), vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        axis.set_xticks(range(len(experts)), experts, rotation=30, ha="right")
        axis.set_yticks(range(len(tasks)), tasks if column == 0 else [])
        for (r, c), v in np.ndenumerate(values):
            if not np.isnan(v):
                axis.text(c, r, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black")
        axis.set_title(title)
    figure.colorbar(image, ax=axes[0].tolist(), label="gate weight")
    figure.suptitle("Which experts each task attends to")
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path


__all__ = ["KIND", "expert_layout", "explain_gates", "format_gates", "gate_matrix", "plot_gates"]
