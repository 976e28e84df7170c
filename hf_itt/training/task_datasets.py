"""Which head each dataset a user hands to ``MultiTaskTrainer`` belongs to.

The Trainer's own arguments (``train_dataset=``, ``eval_dataset=``, ``predict(ds)``) accept, as an HF
user would pass them:

- a dict (or ``DatasetDict``) of task name -> dataset;
- one ``datasets.Dataset`` with a ``task`` column (head names) or a ``task_ids`` column (head indices,
  the order of ``model.config.task_names``): its rows are split by task, the column dropped;
- one dataset of any kind when the model has a single head.

Anything else is refused with a message that names the call that works.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hf_itt.errors import ConfigError

TASK_COLUMNS = ("task", "task_ids")  # a task name per row, or a head index per row


def task_column(dataset) -> str | None:
    """The column of ``dataset`` that names each row's task, if it has one."""
    columns = getattr(dataset, "column_names", None) or ()
    return next((column for column in TASK_COLUMNS if column in columns), None)


def split_by_task(dataset, task_names: Sequence[str], what: str) -> dict[str, object]:
    """Rows of ``dataset`` grouped by its task column (first-appearance order), the column removed."""
    column = task_column(dataset)
    groups: dict[str, list[int]] = {}
    for index, value in enumerate(dataset[column]):
        groups.setdefault(_task_name(value, task_names, what, column), []).append(index)
    return {task: dataset.select(indices).remove_columns(column) for task, indices in groups.items()}


def _task_name(value, task_names: Sequence[str], what: str, column: str) -> str:
    if column == "task_ids":
        if isinstance(value, (int, float)) and value == int(value) and 0 <= value < len(task_names):
            return task_names[int(value)]
        raise ConfigError(
            f"{what}: task_ids value {value!r} is not a head index 0..{len(task_names) - 1} "
            f"(heads in order: {', '.join(task_names)})"
        )
    if value not in task_names:
        raise ConfigError(
            f"{what}: a row's task {value!r} has no head in this model (heads: "
            f"{', '.join(task_names)}); add it with model.add_task(...) or fix the 'task' column"
        )
    return value


def as_task_datasets(value, task_names: Sequence[str], what: str, hint: str) -> dict[str, object]:
    """``{task: dataset}`` from whatever was passed as ``what``; ``hint`` is the call to suggest."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    if task_column(value) is not None:
        return split_by_task(value, task_names, what)
    if len(task_names) == 1:
        return {task_names[0]: value}
    raise ConfigError(
        f"{what} is one dataset without a 'task' column, but the model has {len(task_names)} heads "
        f"({', '.join(task_names)}): {hint}"
    )


def one_task(value, task_names: Sequence[str], task: str | None, what: str, hint: str) -> tuple[str, object]:
    """``(task, dataset)`` for a call that works on one head (``predict``)."""
    if task is not None:
        if task not in task_names:
            raise ConfigError(f"task {task!r} has no head in this model (heads: {', '.join(task_names)})")
        column = task_column(value)
        if column is None:
            return task, value
        datasets = split_by_task(value, task_names, what)
        if set(datasets) != {task}:
            raise ConfigError(
                f"{what} holds rows of {', '.join(datasets)} but task={task!r} was asked for; "
                f"filter the rows or drop the {column!r} column"
            )
        return task, datasets[task]
    datasets = as_task_datasets(value, task_names, what, hint)
    if len(datasets) != 1:
        raise ConfigError(
            f"{what} holds rows of {len(datasets)} tasks ({', '.join(datasets)}); each head predicts "
            f"its own shape: {hint}"
        )
    return next(iter(datasets.items()))


__all__ = ["TASK_COLUMNS", "as_task_datasets", "one_task", "split_by_task", "task_column"]
