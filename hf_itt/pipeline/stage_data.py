"""Tokenized training/dev data of one stage: load each task's rows, map labels, preprocess.

Runs once per node group: rank 0 tokenizes first (``main_process_first``) and the other ranks read
the ``datasets`` cache it wrote.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from hf_itt.tasks.loading import load_task_data


@dataclass
class TaskData:
    """One head's data: the spec that sizes the head and the tokenized splits."""

    name: str
    spec: Any
    train: Any = None
    dev: Any = None
    identity: dict = field(default_factory=dict)


def resolve_data_files(config, data_files):
    """Make relative paths in a data_files value relative to the experiment YAML."""
    if data_files is None:
        return None
    if isinstance(data_files, dict):
        return {key: resolve_data_files(config, value) for key, value in data_files.items()}
    if isinstance(data_files, (list, tuple)):
        return [resolve_data_files(config, value) for value in data_files]
    return config.resolve_path(str(data_files))


def load_rows(spec, split: str, data_files, lang: str | None, limit: int | None):
    """The split's rows (a candidate-pool task: its queries and candidates), the first ``limit`` rows
    (queries) only when a limit is given."""

    data = load_task_data(spec, split, lang=lang, data_files=data_files)
    return data if limit is None else first_rows(data, limit)


def first_rows(data, limit: int):
    """The first ``limit`` rows (of a candidate-pool task's (queries, candidates): the first queries)."""
    if isinstance(data, tuple):
        queries, candidates = data
        return queries.select(range(min(limit, len(queries)))), candidates
    return data.select(range(min(limit, len(data))))


def fit_to_target(rows, source_spec, target_spec):
    """Rows of the training task made fit for the target's head (labels re-indexed by NAME, SQuAD rows as
    dual-encoder pairs, ...): the target's type decides what that means and what it refuses."""
    return target_spec.task_type.adapt_training_rows(rows, source_spec, target_spec)


def tokenize_task(
    data: TaskData,
    source_spec,
    tokenizer,
    *,
    data_files,
    lang,
    max_length,
    max_train,
    max_dev,
    with_dev: bool,
    training_args=None,
) -> TaskData:
    """Fill ``data.train`` (and ``data.dev``) with features of ``source_spec``'s rows, labelled for ``data.spec``."""
    from hf_itt.task_types.features import preprocess  # defers datasets

    guard = (
        training_args.main_process_first(desc=f"tokenize {data.name}") if training_args else contextlib.nullcontext()
    )
    spec = data.spec.task_type.training_spec(source_spec, data.spec)
    with guard:
        rows = fit_to_target(load_rows(source_spec, "train", data_files, lang, max_train), source_spec, data.spec)
        data.train = preprocess(rows, spec, tokenizer, split_role="train", max_length=max_length)
        if with_dev and source_spec.has_split("validation"):
            dev_rows = fit_to_target(
                load_rows(source_spec, "validation", data_files, lang, max_dev), source_spec, data.spec
            )
            data.dev = preprocess(dev_rows, spec, tokenizer, split_role="train", max_length=max_length)
    return data
