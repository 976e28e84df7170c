"""Tokenize canonical task rows into model features: the one entry point, for every task type.

``preprocess`` checks the rows, asks the task's type (``hf_itt.task_types``) for its tokenization and
output columns and runs it with ``Dataset.map(batched=True)`` under a fingerprint derived only from
what determines the output (input fingerprint, task settings, tokenizer vocabulary, the type's code),
so the datasets cache is reused across runs. No padding happens here: collators pad each batch.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys

from datasets import Dataset, Features
from datasets.fingerprint import Hasher

from hf_itt.errors import CheckpointError, ConfigError, DataError
from hf_itt.task_types import qa_features, tagging_features
from hf_itt.task_types.base import FALLBACK_MAX_LENGTH, MIN_MAX_LENGTH
from hf_itt.task_types.registry import get_type

SPLIT_ROLES = ("train", "eval")


def preprocess(
    dataset: Dataset,
    spec,
    tokenizer,
    *,
    split_role: str = "train",
    max_length: int | None = None,
    doc_stride: int | None = None,
    num_proc: int | None = None,
    load_from_cache_file: bool = True,
) -> Dataset:
    """Tokenize ``dataset`` (canonical rows of ``spec.type``) into the features of that type."""
    task_type = _task_type(spec)
    _check_rows(dataset, spec, task_type)
    if split_role not in SPLIT_ROLES:
        raise ConfigError(f"split_role must be one of {SPLIT_ROLES}, got {split_role!r}")
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            f"task {spec.name!r}: preprocessing needs a fast tokenizer (offsets, word ids); "
            f"load it with AutoTokenizer.from_pretrained(..., use_fast=True)"
        )
    check_vocabulary(tokenizer)
    settings = _settings(spec, task_type, tokenizer, split_role, max_length, doc_stride)
    fingerprint = preprocess_fingerprint(dataset, spec, tokenizer, settings, task_type)
    return dataset.map(
        task_type.tokenize,
        batched=True,
        with_indices=task_type.takes_indices,
        remove_columns=dataset.column_names,
        fn_kwargs={"tokenizer": tokenizer, **settings},
        num_proc=num_proc,
        features=Features(task_type.feature_columns(settings["train"])),
        load_from_cache_file=load_from_cache_file,
        new_fingerprint=fingerprint,
        desc=f"Tokenizing {spec.name} ({split_role})",
    )


def _task_type(spec):
    return get_type(spec.type)


def check_vocabulary(tokenizer) -> None:
    """transformers builds an EMPTY tokenizer (special tokens only) from a folder without tokenizer files:
    every word would become <unk>, and training would run on nothing."""
    if len(tokenizer) <= len(set(tokenizer.all_special_tokens)):
        source = getattr(tokenizer, "name_or_path", "") or "the tokenizer folder"
        raise CheckpointError(
            f"the tokenizer loaded from {source} has no vocabulary (only "
            f"{len(tokenizer)} special tokens): that folder lacks its tokenizer files "
            f"(tokenizer.json / sentencepiece.bpe.model); copy them from the base model, "
            f"or set model.tokenizer to the base model's tokenizer"
        )


def _check_rows(dataset: Dataset, spec, task_type) -> None:
    if len(dataset) == 0:
        raise DataError(
            f"task {spec.name!r}: the dataset to preprocess is empty; check the split name "
            f"and the data files of this task"
        )
    columns = set(dataset.column_names)
    expected = task_type.expected_columns(columns)
    missing = [name for name in expected if name not in columns]
    if missing:
        raise DataError(
            f"task {spec.name!r} ({spec.type}): rows lack the canonical column(s) {missing} "
            f"(found {sorted(columns)}); load the data with hf_itt.tasks so rows have {list(expected)}"
        )


def _settings(spec, task_type, tokenizer, split_role: str, max_length: int | None, doc_stride: int | None) -> dict:
    length = max_length or getattr(spec, "max_length", None) or task_type.default_max_length or FALLBACK_MAX_LENGTH
    if int(length) < MIN_MAX_LENGTH:
        raise ConfigError(f"task {spec.name!r}: max_length {length} is too short; use at least {MIN_MAX_LENGTH}")
    settings = {
        "task": spec.name,
        "train": split_role == "train",
        "max_length": int(length),
        "num_labels": getattr(spec, "num_labels", None),
        "num_choices": getattr(spec, "num_choices", None),
    }
    settings.update(task_type.feature_settings(spec, tokenizer, int(length), doc_stride))
    return settings


# ----------------------------------------------------------------------------------------- fingerprints


def preprocess_fingerprint(dataset: Dataset, spec, tokenizer, settings: dict, task_type=None) -> str:
    """Deterministic cache key: same input rows + settings + vocabulary + code -> same key."""
    task_type = task_type or _task_type(spec)
    spec_fields = {
        name: getattr(spec, name, None) for name in ("name", "type", "labels", "num_labels", "num_choices", "version")
    }
    return Hasher.hash(
        [
            "hf_itt.task_types.features",
            dataset._fingerprint,
            spec_fields,
            sorted(settings.items()),
            tokenizer_fingerprint(tokenizer),
            code_fingerprint(task_type),
        ]
    )


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of the tokenizer's pipeline and vocabulary, ignoring the truncation/padding state that every
    call mutates (hashing the Python object would change after its first use)."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    state.pop("truncation", None)
    state.pop("padding", None)
    payload = json.dumps([type(tokenizer).__name__, state], sort_keys=True).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()


def code_fingerprint(task_type) -> str:
    """The source of the modules that decide a type's features (its own module and what it imports from
    hf_itt.task_types), so a change of the tokenization invalidates cached features."""
    digest = hashlib.sha256(inspect.getsource(inspect.getmodule(type(task_type))).encode("utf-8"))
    for module in (sys.modules[__name__], qa_features, tagging_features):
        digest.update(inspect.getsource(module).encode("utf-8"))
    return digest.hexdigest()
