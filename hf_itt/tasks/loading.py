"""Load a task split from the Hub or from local files into the canonical row schema of its type.

    load_split(spec, "validation", lang="de")                          # Hub
    load_split(spec, "train", data_files={"train": "mnli.jsonl"})       # local files (see formats.py)
    queries, candidates = load_answer_retrieval(spec, "test", lang="ar", data_files="mewsli_x/")

Labels are mapped by *name*: a source integer id becomes ``source_labels[id]`` (or the Hub ClassLabel name)
and then the index of that name in ``spec.labels``; string labels are looked up directly. Rows whose label
is in ``spec.drop_labels`` are dropped (SNLI/PAWS-X -1). Row order is the file / split order.
"""

from __future__ import annotations

from pathlib import Path

from hf_itt.errors import DataError
from hf_itt.tasks import formats, schema
from hf_itt.tasks.converters import get_converter
from hf_itt.tasks.hub_source import load_hub_split
from hf_itt.tasks.registry import get_task
from hf_itt.tasks.rows import RowConverter
from hf_itt.tasks.spec import TaskSpec, template_fields


def load_split(spec: TaskSpec | str, split: str, lang: str | None = None, data_files=None):
    """One split (role: train / validation / test) of a task as a ``datasets.Dataset`` in canonical schema."""
    spec = _as_spec(spec)
    if spec.task_type.candidate_pool:
        return load_answer_retrieval(spec, split, lang, data_files)[0]
    role = _role(spec, split)
    lang = _language(spec, lang)
    spec = resolve_labels(spec, data_files)
    if spec.converter:
        rows = get_converter(spec.converter)(spec, role, lang, data_files)
        parts = [_convert_rows(spec, rows, None, lang, f"converter {spec.converter}", canonical=True)]
    elif data_files is None:
        parts = _load_hub(spec, role, lang)
    else:
        parts = [_load_local(spec, path, lang) for path in formats.resolve_paths(spec, role, lang, data_files)]
    return _finish(spec, parts, role, lang)


def load_answer_retrieval(spec: TaskSpec | str, split: str, lang: str | None = None, data_files=None):
    """(queries, candidates) of an answer-retrieval task (LAReQA, Mewsli-X); queries are in ``lang``."""
    spec = _as_spec(spec)
    if not spec.task_type.candidate_pool:
        raise DataError(f"task {spec.name} is a {spec.type} task, not one with a candidate pool; use load_split")
    role, lang = _role(spec, split), _language(spec, lang)
    queries, candidates = get_converter(spec.converter)(spec, role, lang, data_files)
    features = canonical_features(spec)
    query_set = rows_to_dataset(queries, features)
    candidate_set = rows_to_dataset(candidates, candidate_features())
    for name, data in (("queries", query_set), ("candidates", candidate_set)):
        if len(data) == 0:
            raise DataError(f"task {spec.name}: the {role} split has no {name} for {lang!r}")
    known = set(candidate_set["candidate_id"])
    for index, gold in enumerate(query_set["gold_ids"]):
        if not gold or not set(gold) <= known:
            raise DataError(
                f"task {spec.name}: query {query_set[index]['query_id']!r} ({role}, {lang}) has gold "
                f"ids {gold} missing from the candidates; check the candidates file"
            )
    return query_set, candidate_set


def resolve_labels(spec: TaskSpec, data_files=None) -> TaskSpec:
    """``spec`` with ``labels`` filled from its ``labels_file`` (JSON {label: id}, e.g. CCG's tags_to_id)."""
    if spec.labels or not spec.labels_file:
        return spec
    path = _labels_path(spec, data_files)
    mapping = formats.read_json(spec, path)
    ids = sorted(mapping.values()) if isinstance(mapping, dict) else None
    if not mapping or ids != list(range(len(mapping))):
        raise DataError(f"task {spec.name}: {path} must map each label to a distinct id 0..n-1 (tags_to_id JSON)")
    return spec.with_overrides(labels=sorted(mapping, key=mapping.get))


def canonical_features(spec: TaskSpec):
    from datasets import Features

    if spec.task_type.labelled and spec.labels is None:
        spec = resolve_labels(spec)
    return Features(spec.task_type.row_features(spec))


def load_task_data(spec: TaskSpec | str, split: str, lang: str | None = None, data_files=None):
    """All the data of one split: its rows, or (queries, candidates) for a task whose type ranks a
    candidate pool (``TaskType.candidate_pool``). What a split is scored on, or trained from."""
    spec = _as_spec(spec)
    if spec.task_type.candidate_pool:
        return load_answer_retrieval(spec, split, lang, data_files)
    return load_split(spec, split, lang=lang, data_files=data_files)


def rows_to_dataset(rows: list[dict], features):
    """A Dataset with exactly ``features`` (column-wise, so an empty list still gives the right schema)."""
    import datasets

    return datasets.Dataset.from_dict({name: [row[name] for row in rows] for name in features}, features=features)


def candidate_features():
    from datasets import Features, Value

    return Features({"candidate_id": Value("string"), "text": Value("string"), "context": Value("string")})


# ------------------------------------------------------------------------------------------------ helpers


def _as_spec(spec) -> TaskSpec:
    if isinstance(spec, TaskSpec):
        return spec
    return get_task(spec)


def _role(spec: TaskSpec, split: str) -> str:
    role = formats.ROLE_ALIASES.get(split, split)
    if role not in schema.ROLES:
        raise DataError(f"task {spec.name}: unknown split {split!r}; use one of {', '.join(schema.ROLES)}")
    return role


def _language(spec: TaskSpec, lang: str | None) -> str:
    if lang is None:
        return spec.lang
    if lang not in spec.all_languages() and lang != spec.lang:
        raise DataError(
            f"task {spec.name} has no language {lang!r}; its languages are "
            f"{', '.join(spec.all_languages())} (add more with spec.with_overrides(languages=[...]))"
        )
    return lang


def _labels_path(spec: TaskSpec, data_files) -> Path:
    if isinstance(data_files, dict) and "labels" in data_files:
        return Path(data_files["labels"])
    if Path(spec.labels_file).is_absolute():
        return Path(spec.labels_file)
    entries = [v for k, v in data_files.items() if k != "labels"] if isinstance(data_files, dict) else [data_files]
    for entry in entries:
        for item in entry if isinstance(entry, (list, tuple)) else [entry]:
            if item is not None:
                base = Path(item)
                candidate = (base if base.is_dir() else base.parent) / spec.labels_file
                if candidate.is_file():
                    return candidate
    raise DataError(
        f"task {spec.name} needs its label inventory {spec.labels_file!r}: put it next to the data "
        "files or pass data_files={'labels': 'path/to/" + spec.labels_file + "', ...}"
    )


def _load_hub(spec: TaskSpec, role: str, lang: str) -> list:
    with_role = [s for s in spec.sources if role in s.splits]
    if not with_role:
        hint = f"its Hub roles are {spec.roles}" if spec.sources else "it has no Hub copy"
        raise DataError(f"task {spec.name} has no {role!r} split on the Hub ({hint}); pass `data_files:`")
    if lang not in spec.all_languages():
        raise DataError(
            f"task {spec.name} has no language {lang!r}; pass lang= one of {', '.join(spec.all_languages())}"
        )
    if lang in spec.missing_splits.get(role, []):
        raise DataError(f"task {spec.name} has no {role!r} split for {lang!r} (the source has none)")
    sources = [s for s in with_role if s.serves(lang)]
    if not sources:
        raise DataError(f"task {spec.name}: no Hub source serves {lang!r}; pass local files with `data_files:`")
    parts = []
    for source in sources:
        for split_name in source.splits[role]:
            data = load_hub_split(spec, source, lang, split_name)
            origin = f"Hub dataset {source.path} ({source.config_for(lang, spec.code_for(lang))}) split {split_name}"
            parts.append(_convert_dataset(spec, source, data, lang, origin))
    return parts


def _convert_dataset(spec, source, data, lang, origin):
    columns = {**spec.columns, **(source.columns or {})}
    _check_columns(spec, columns, set(data.column_names), origin)
    converter = RowConverter(spec, columns, _hub_label_names(spec, source, columns, data.features), lang, origin)
    return data.map(
        _BatchConverter(converter),
        batched=True,
        with_indices=True,
        remove_columns=data.column_names,
        features=canonical_features(spec),
        desc=f"{spec.name}: canonical rows",
    )


def _hub_label_names(spec, source, columns, features):
    """Names of the source's integer labels, mapped by NAME onto ``spec.labels``; None for types whose labels
    are positions (a multiple-choice label is the index of the right choice, whatever the Hub calls it:
    SuperGLUE COPA's ClassLabel says 'choice1'/'choice2')."""
    from datasets import ClassLabel

    if not spec.task_type.labelled:
        return source.source_labels or spec.source_labels
    ref = columns.get(spec.task_type.label_column)
    feature = features.get(ref) if isinstance(ref, str) else None
    feature = getattr(feature, "feature", feature)  # tags: a list of ClassLabel
    if isinstance(feature, ClassLabel):
        return feature.names
    return source.source_labels or spec.source_labels


def _load_local(spec: TaskSpec, path: Path, lang: str):
    local = formats.read_rows(spec, path)
    return _convert_rows(spec, local.rows, None, lang, f"file {path}", canonical=local.canonical)


def _convert_rows(spec, rows, columns, lang, origin, canonical=False):
    if canonical:
        columns = {name: name for name in spec.task_type.columns}
    columns = columns or spec.columns
    if rows:
        _check_columns(spec, columns, set(rows[0]), origin)
    converter = RowConverter(spec, columns, spec.source_labels, lang, origin)
    converted = [out for index, row in enumerate(rows) if (out := converter(row, index)) is not None]
    return rows_to_dataset(converted, canonical_features(spec))


def _finish(spec, parts, role, lang):
    import datasets

    data = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    if len(data) == 0:
        raise DataError(
            f"task {spec.name}: the {role} split for {lang!r} is empty (after dropping rows with "
            f"labels {spec.drop_labels} and applying the spec's filter {spec.filter}); check the data"
        )
    return data


def _referenced(spec, columns) -> set[str]:
    refs = set()
    for ref in columns.values():
        for item in ref if isinstance(ref, list) else [ref]:
            if item is not None:
                refs |= template_fields(item) if "{" in item else {item.split(".")[0]}
    if spec.filter:
        refs.add(spec.filter["column"])
    return refs


def _check_columns(spec, columns, found: set[str], origin: str) -> None:
    missing = sorted(_referenced(spec, columns) - found)
    if missing:
        raise DataError(
            f"task {spec.name}: {origin} lacks columns {missing}; expected "
            f"{sorted(_referenced(spec, columns))}, found {sorted(found)}"
        )


class _BatchConverter:
    """Adapts a row converter to ``Dataset.map(batched=True)``; dropped rows simply vanish from the batch."""

    def __init__(self, converter):
        self.converter = converter

    def __call__(self, batch, indices):
        keys = list(batch)
        rows = (dict(zip(keys, values)) for values in zip(*batch.values()))
        kept = [out for row, i in zip(rows, indices) if (out := self.converter(row, i)) is not None]
        names = self.converter.spec.task_type.columns
        return {name: [row[name] for row in kept] for name in names}
