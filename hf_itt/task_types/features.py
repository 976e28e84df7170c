"""Tokenize canonical task rows (``hf_itt.tasks.schema``) into model features, one recipe per task type.

``preprocess`` is the single entry point: it checks the rows, picks the recipe for ``spec.type`` and
runs it with ``Dataset.map(batched=True)`` under a fingerprint derived only from what determines the
output (input fingerprint, task settings, tokenizer vocabulary, this code), so the datasets cache is
reused across runs. No padding happens here: collators pad each batch dynamically.
QA lives in ``preprocess_qa``, tagging in ``preprocess_tagging``; the short recipes live here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from datasets import Dataset, Features, List, Value
from datasets.fingerprint import Hasher

from hf_itt.errors import ConfigError, DataError, TaskError
from hf_itt.task_types.qa_features import qa_window_settings, tokenize_qa
from hf_itt.task_types.tagging_features import special_token_wrappers, tokenize_tagging
from hf_itt.tasks import schema

# Protocol defaults of the reference study (jiant's XTREME pipeline), used when the spec sets none.
DEFAULT_MAX_LENGTH = {schema.EXTRACTIVE_QA: 384, schema.RETRIEVAL: 512, schema.ANSWER_RETRIEVAL: 512}
FALLBACK_MAX_LENGTH = 256
MIN_MAX_LENGTH = 8  # room for special tokens plus a few real ones
CANDIDATE_COLUMNS = ("candidate_id", "text", "context")  # the second dataset of answer_retrieval
SPLIT_ROLES = ("train", "eval")
_CODE_FILES = ("features.py", "qa_features.py", "tagging_features.py")


def preprocess(dataset: Dataset, spec, tokenizer, *, split_role: str = "train", max_length: int | None = None,
               doc_stride: int | None = None, num_proc: int | None = None,
               load_from_cache_file: bool = True) -> Dataset:
    """Tokenize ``dataset`` (canonical rows of ``spec.type``) into the feature contract of ``schema``."""
    _check_rows(dataset, spec)
    if split_role not in SPLIT_ROLES:
        raise ConfigError(f"split_role must be one of {SPLIT_ROLES}, got {split_role!r}")
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"task {spec.name!r}: preprocessing needs a fast tokenizer (offsets, word ids); "
                          f"load it with AutoTokenizer.from_pretrained(..., use_fast=True)")
    check_vocabulary(tokenizer)
    settings = _settings(spec, tokenizer, split_role, max_length, doc_stride)
    function, with_indices, columns = _recipe(spec.type, dataset.column_names, settings["train"])
    fingerprint = preprocess_fingerprint(dataset, spec, tokenizer, settings)
    return dataset.map(
        function, batched=True, with_indices=with_indices, remove_columns=dataset.column_names,
        fn_kwargs={"tokenizer": tokenizer, **settings}, num_proc=num_proc, features=Features(columns),
        load_from_cache_file=load_from_cache_file, new_fingerprint=fingerprint,
        desc=f"Tokenizing {spec.name} ({split_role})",
    )


def check_vocabulary(tokenizer) -> None:
    """transformers builds an EMPTY tokenizer (special tokens only) from a folder without tokenizer files:
    every word would become <unk>, and training would run on nothing."""
    if len(tokenizer) <= len(set(tokenizer.all_special_tokens)):
        from hf_itt.errors import CheckpointError

        source = getattr(tokenizer, "name_or_path", "") or "the tokenizer folder"
        raise CheckpointError(f"the tokenizer loaded from {source} has no vocabulary (only "
                              f"{len(tokenizer)} special tokens): that folder lacks its tokenizer files "
                              f"(tokenizer.json / sentencepiece.bpe.model); copy them from the base model, "
                              f"or set model.tokenizer to the base model's tokenizer")


def _check_rows(dataset: Dataset, spec) -> None:
    if spec.type not in schema.TASK_TYPES:
        raise TaskError(f"task {spec.name!r}: unknown type {spec.type!r}; expected one of {schema.TASK_TYPES}")
    if len(dataset) == 0:
        raise DataError(f"task {spec.name!r}: the dataset to preprocess is empty; check the split name "
                        f"and the data files of this task")
    columns = set(dataset.column_names)
    expected = schema.CANONICAL_COLUMNS[spec.type]
    if spec.type == schema.ANSWER_RETRIEVAL and columns.issuperset(CANDIDATE_COLUMNS):
        expected = CANDIDATE_COLUMNS
    missing = [name for name in expected if name not in columns]
    if missing:
        raise DataError(f"task {spec.name!r} ({spec.type}): rows lack the canonical column(s) {missing} "
                        f"(found {sorted(columns)}); load the data with hf_itt.tasks so rows have {list(expected)}")


def _settings(spec, tokenizer, split_role: str, max_length: int | None, doc_stride: int | None) -> dict:
    length = max_length or getattr(spec, "max_length", None) or DEFAULT_MAX_LENGTH.get(spec.type, FALLBACK_MAX_LENGTH)
    if int(length) < MIN_MAX_LENGTH:
        raise ConfigError(f"task {spec.name!r}: max_length {length} is too short; use at least {MIN_MAX_LENGTH}")
    settings = {"task": spec.name, "train": split_role == "train", "max_length": int(length),
                "num_labels": getattr(spec, "num_labels", None), "num_choices": getattr(spec, "num_choices", None)}
    if spec.type == schema.EXTRACTIVE_QA:
        settings.update(qa_window_settings(tokenizer, spec.name, int(length), doc_stride,
                                           getattr(spec, "doc_stride", None)))
    return settings


def _recipe(task_type: str, columns: list[str], train: bool):
    """(batch function, whether it takes row indices, output columns) for one task type.

    Declaring the output types keeps the schema identical across batches and spares datasets the slow
    per-value type inference of nested lists with None (QA offset mappings).
    """
    ids, mask, integer, text = List(Value("int32")), List(Value("int8")), Value("int64"), Value("string")
    tokens = {"input_ids": ids, "attention_mask": mask}
    if task_type == schema.CLASSIFICATION:
        return _tokenize_classification, True, {**tokens, "labels": integer}
    if task_type == schema.MULTIPLE_CHOICE:
        choice_tokens = {"input_ids": List(ids), "attention_mask": List(mask)}
        return _tokenize_multiple_choice, True, {**choice_tokens, "labels": integer}
    if task_type == schema.EXTRACTIVE_QA:
        extra = ({"start_positions": integer, "end_positions": integer} if train
                 else {"example_id": text, "offset_mapping": List(List(integer))})
        return tokenize_qa, False, {**tokens, **extra}
    if task_type == schema.TAGGING:
        extra = {} if train else {"example_id": integer, "word_ids": List(integer)}
        return tokenize_tagging, True, {**tokens, "labels": List(integer), **extra}
    if task_type == schema.MLM:
        return _tokenize_mlm, False, {**tokens, "special_tokens_mask": mask}
    if task_type == schema.RETRIEVAL:
        return _tokenize_retrieval, False, {**tokens, "side": text, "example_id": text}
    function = _tokenize_candidates if "candidate_id" in columns else _tokenize_queries
    return function, False, {**tokens, "example_id": text}


# ----------------------------------------------------------------------------------------- fingerprints

def preprocess_fingerprint(dataset: Dataset, spec, tokenizer, settings: dict) -> str:
    """Deterministic cache key: same input rows + settings + vocabulary + code -> same key."""
    spec_fields = {name: getattr(spec, name, None)
                   for name in ("name", "type", "labels", "num_labels", "num_choices", "version")}
    return Hasher.hash(["hf_itt.task_types.features", dataset._fingerprint, spec_fields, sorted(settings.items()),
                        tokenizer_fingerprint(tokenizer), _code_fingerprint()])


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of the tokenizer's pipeline and vocabulary, ignoring the truncation/padding state that every
    call mutates (hashing the Python object would change after its first use)."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    state.pop("truncation", None)
    state.pop("padding", None)
    payload = json.dumps([type(tokenizer).__name__, state], sort_keys=True).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()


def _code_fingerprint() -> str:
    digest = hashlib.sha256()
    for name in _CODE_FILES:
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------- short recipes

def _check_labels(labels, indices, task: str, num_labels: int | None, allowed=(-1,)) -> None:
    if not num_labels:
        return
    for label, row in zip(labels, indices):
        if not (0 <= label < num_labels or label in allowed):
            raise DataError(f"task {task!r}, row {row}: label {label} is outside 0..{num_labels - 1} "
                            f"(or -1 for unlabelled); fix the label mapping of this task")


def _tokenize_classification(batch, indices, *, tokenizer, task, max_length, num_labels, **_):
    text_b = batch["text_b"]
    has_pair = [text is not None for text in text_b]
    if any(has_pair) and not all(has_pair):
        row = indices[has_pair.index(False)]
        raise DataError(f"task {task!r}, row {row}: text_b is missing while other rows are sentence pairs; "
                        f"use an empty string or drop the row")
    _check_labels(batch["label"], indices, task, num_labels)
    if all(has_pair):
        encoded = tokenizer(batch["text_a"], text_b, truncation="longest_first", max_length=max_length)
    else:
        encoded = tokenizer(batch["text_a"], truncation=True, max_length=max_length)
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
            "labels": batch["label"]}


def _tokenize_multiple_choice(batch, indices, *, tokenizer, task, max_length, num_choices, **_):
    for choices, row in zip(batch["choices"], indices):
        if not choices or (num_choices and len(choices) != num_choices):
            raise DataError(f"task {task!r}, row {row}: {len(choices or [])} choices, expected "
                            f"{num_choices or 'at least one'}; fix the row or the task's num_choices")
    _check_labels(batch["label"], indices, task, num_choices)
    prompts = [prompt for prompt, choices in zip(batch["prompt"], batch["choices"]) for _ in choices]
    flat_choices = [choice for choices in batch["choices"] for choice in choices]
    encoded = tokenizer(prompts, flat_choices, truncation="longest_first", max_length=max_length)
    features = {"input_ids": [], "attention_mask": [], "labels": batch["label"]}
    start = 0
    for choices in batch["choices"]:
        end = start + len(choices)
        features["input_ids"].append(encoded["input_ids"][start:end])
        features["attention_mask"].append(encoded["attention_mask"][start:end])
        start = end
    return features


def _tokenize_mlm(batch, *, tokenizer, max_length, **_):
    """Concatenate the batch's texts and cut them into chunks of ``max_length`` (run_mlm's group_texts);
    the last, shorter chunk is kept (dynamic padding handles it)."""
    prefix, suffix = special_token_wrappers(tokenizer)
    body_length = max_length - len(prefix) - len(suffix)
    encoded = tokenizer(batch["text"], add_special_tokens=False, verbose=False)
    stream = [token for ids in encoded["input_ids"] for token in ids]
    features = {"input_ids": [], "attention_mask": [], "special_tokens_mask": []}
    for start in range(0, len(stream), body_length):
        body = stream[start:start + body_length]
        features["input_ids"].append(prefix + body + suffix)
        features["attention_mask"].append([1] * (len(prefix) + len(body) + len(suffix)))
        features["special_tokens_mask"].append([1] * len(prefix) + [0] * len(body) + [1] * len(suffix))
    return features


def _tokenize_retrieval(batch, *, tokenizer, max_length, **_):
    """One feature per sentence, tagged with its side and id; an empty id marks an absent sentence."""
    sides, ids, sentences = [], [], []
    rows = zip(batch["source_id"], batch["source_sentence"], batch["target_id"], batch["target_sentence"])
    for source_id, source, target_id, target in rows:
        for side, sentence_id, sentence in (("source", source_id, source), ("target", target_id, target)):
            if sentence_id:
                sides.append(side)
                ids.append(sentence_id)
                sentences.append(sentence)
    encoded = tokenizer(sentences, truncation=True, max_length=max_length)
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
            "side": sides, "example_id": ids}


def _tokenize_queries(batch, *, tokenizer, max_length, **_):
    encoded = tokenizer(batch["query"], truncation=True, max_length=max_length)
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
            "example_id": batch["query_id"]}


def _tokenize_candidates(batch, *, tokenizer, max_length, **_):
    """An answer candidate is encoded as (answer sentence, its context), as in XTREME-R's LAReQA."""
    encoded = tokenizer(batch["text"], batch["context"], truncation="longest_first", max_length=max_length)
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
            "example_id": batch["candidate_id"]}
