"""Task types as plug-ins: one module per type, one registry.

    from hf_itt.task_types import get_type
    get_type(spec.type).build_head(num_labels, encoder_config)

Built-in types: classification, multiple_choice, extractive_qa, tagging, mlm, retrieval (bitext:
Tatoeba, BUCC) and answer_retrieval (LAReQA, Mewsli-X). A new type is one module with a ``TaskType``
subclass and one call, ``register(MyType())``; nothing else in hf_itt needs to change (see
docs/concepts.md, "Task types").
"""

from __future__ import annotations

from hf_itt.task_types.answer_retrieval import AnswerRetrieval
from hf_itt.task_types.base import ScoringTools, TaskType
from hf_itt.task_types.classification import Classification
from hf_itt.task_types.extractive_qa import ExtractiveQA
from hf_itt.task_types.mlm import MaskedLM
from hf_itt.task_types.multiple_choice import MultipleChoice
from hf_itt.task_types.registry import (
    get_type,
    register,
    trainable_type_names,
    type_names,
    unregister,
)
from hf_itt.task_types.retrieval import BitextRetrieval
from hf_itt.task_types.tagging import Tagging

BUILTIN_TYPES = (Classification, MultipleChoice, ExtractiveQA, Tagging, MaskedLM, BitextRetrieval, AnswerRetrieval)

for _builtin in BUILTIN_TYPES:
    register(_builtin())

__all__ = ["TaskType", "ScoringTools", "register", "unregister", "get_type", "type_names", "trainable_type_names"]
