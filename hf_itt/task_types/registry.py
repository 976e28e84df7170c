"""The registry of task types: name -> ``TaskType`` instance (``hf_itt.task_types`` registers the built-ins)."""

from __future__ import annotations

from hf_itt.errors import TaskError, did_you_mean
from hf_itt.task_types.base import TaskType

_REGISTRY: dict[str, TaskType] = {}


def register(task_type: TaskType, *, replace: bool = False) -> TaskType:
    """Make ``task_type`` known under ``task_type.name`` (``replace=True`` to swap a registered one)."""
    if not isinstance(task_type, TaskType):
        raise TaskError(f"register() takes a TaskType instance, got {task_type!r}")
    name = getattr(task_type, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise TaskError(f"a task type needs a `name` made of letters, digits and '_', got {name!r}")
    if name in _REGISTRY and not replace:
        raise TaskError(f"task type {name!r} is already registered; pass replace=True to swap it")
    _REGISTRY[name] = task_type
    return task_type


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def get_type(name: str) -> TaskType:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise TaskError(
            f"unknown task type {name!r}{did_you_mean(name, _REGISTRY)}; registered types: {', '.join(_REGISTRY)}"
        ) from None


def type_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def trainable_type_names() -> tuple[str, ...]:
    return tuple(name for name, task_type in _REGISTRY.items() if task_type.trainable)
