"""Tasks: one `Task` subclass per kind of model, chosen by the model's spec (`ModelSpec.task`)."""

from __future__ import annotations

from tf_attnrec.tasks.base import Run, Task, TrainingResult, UnsupportedCommand
from tf_attnrec.tasks.collaborative import CollaborativeTask, evaluate_collaborative, train_collaborative
from tf_attnrec.tasks.multitask import MultiTaskTask, evaluate_multitask, train_multitask
from tf_attnrec.tasks.ranking import RankingTask, evaluate_ranker, predict_ranker, train_ranker
from tf_attnrec.tasks.retrieval import RetrievalTask, evaluate_sequential, train_sequential

_TASKS: dict[str, Task] = {task.name: task for task in (RetrievalTask(), RankingTask(), CollaborativeTask(),
                                                         MultiTaskTask())}


def get_task(name: str) -> Task:
    """The `Task` for a `ModelSpec.task` name ("retrieval", "ranking", "collaborative", "multitask").

    Example:
        >>> get_task("ranking").monitor
        'val_auc'
    """
    if name not in _TASKS:
        raise KeyError(f"Unknown task {name!r}; tasks: {sorted(_TASKS)}.")
    return _TASKS[name]


def task_of(model_name: str) -> Task:
    """The `Task` of a registered zoo model, e.g. `task_of("din")` -> the ranking task."""
    from tf_attnrec.models.registry import get_model_spec

    return get_task(get_model_spec(model_name).task)


__all__ = [
    "CollaborativeTask",
    "MultiTaskTask",
    "RankingTask",
    "RetrievalTask",
    "Run",
    "Task",
    "TrainingResult",
    "UnsupportedCommand",
    "evaluate_collaborative",
    "evaluate_multitask",
    "evaluate_ranker",
    "evaluate_sequential",
    "get_task",
    "predict_ranker",
    "task_of",
    "train_collaborative",
    "train_multitask",
    "train_ranker",
    "train_sequential",
]
