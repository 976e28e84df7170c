"""Task types as plug-ins: one module per type, one registry.

    from hf_itt.task_types import get_type
    get_type(spec.type).build_head(num_labels, encoder_config)

Built-in types: classification, multiple_choice, extractive_qa, tagging, mlm, retrieval (bitext:
Tatoeba, BUCC) and answer_retrieval (LAReQA, Mewsli-X). A new type is one module with a ``TaskType``
subclass and one call, ``register(MyType())``; nothing else in hf_itt needs to change (see
docs/concepts.md, "Task types").
"""

from __future__ import annotations

from hf_itt.errors import TaskError, did_you_mean
from hf_itt.task_types.answer_retrieval import AnswerRetrieval
from hf_itt.task_types.base import ScoringTools, TaskType
from hf_itt.task_types.classification import Classification
from hf_itt.task_types.extractive_qa import ExtractiveQA
from hf_itt.task_types.mlm import MaskedLM
from hf_itt.task_types.multiple_choice import MultipleChoice
from hf_itt.task_types.retrieval import BitextRetrieval
from hf_itt.task_types.tagging import Tagging

BUILTIN_TYPES = (Classification, MultipleChoice, ExtractiveQA, Tagging, MaskedLM, BitextRetrieval, AnswerRetrieval)

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
        raise TaskError(f"unknown task type {name!r}{did_you_mean(name, _REGISTRY)}; "
                        f"registered types: {', '.join(_REGISTRY)}") from None


def type_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def trainable_type_names() -> tuple[str, ...]:
    return tuple(name for name, task_type in _REGISTRY.items() if task_type.trainable)


for _builtin in BUILTIN_TYPES:
    register(_builtin())

__all__ = ["TaskType", "ScoringTools", "register", "unregister", "get_type", "type_names",
           "trainable_type_names"]
