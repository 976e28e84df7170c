"""``TaskSpec``: everything hf_itt knows about one task, declared in YAML (``specs/*.yaml``).

A spec says where the data lives (Hub sources, or local file patterns), how source columns map onto the
canonical row schema of its type (``hf_itt.task_types``), the label names in *our* order (source labels are
mapped onto them by name), the languages, the metric and the English training task of a target task.

Column values in ``columns`` (and in a source's ``columns``) are one of:
  * a source column name, optionally dotted into a nested dict (``choices.text``);
  * a template with ``{field}`` placeholders, formatted with the row (``"{ctx_b} {endings[0]}"``);
  * a list of the above (multiple-choice ``choices``); ``null`` for an absent optional column.
"""

from __future__ import annotations

import dataclasses
import string
from dataclasses import dataclass, field
from typing import Any

from hf_itt.errors import TaskError, did_you_mean
from hf_itt.metrics.scoring import metric_names
from hf_itt.task_types import get_type, type_names
from hf_itt.tasks import schema
from hf_itt.tasks.converters import CONVERTERS

TEMPLATE_FIELDS = {"lang", "code"}  # placeholders allowed in Hub config names and file patterns
EXTRA_DATA_KEYS = ("candidates", "labels")  # data_files keys besides the roles


def _check_keys(where: str, given: dict, allowed) -> None:
    for key in given:
        if key not in allowed:
            raise TaskError(
                f"{where}: unknown key {key!r}{did_you_mean(key, allowed)}; valid keys: {', '.join(allowed)}"
            )


def template_fields(text: str) -> set[str]:
    """Top-level names used by ``{...}`` placeholders in ``text`` (``{endings[0]}`` -> ``endings``)."""
    names = set()
    for _, name, _, _ in string.Formatter().parse(text):
        if name is not None:
            names.add(name.split("[")[0].split(".")[0])
    return names


def _check_template(where: str, text: str | None) -> None:
    if text is None:
        return
    try:
        unknown = template_fields(text) - TEMPLATE_FIELDS
    except ValueError as err:
        raise TaskError(f"{where}: malformed template {text!r} ({err})") from None
    if unknown:
        raise TaskError(f"{where}: template {text!r} uses {sorted(unknown)}; only {{lang}} and {{code}} exist")


@dataclass(frozen=True)
class SourceSpec:
    """One Hub dataset a task reads; a task with several sources concatenates them (e.g. anli_plus)."""

    path: str
    name: str | None = None  # config; may be a template ("PAN-X.{lang}", "udpos.{code}")
    splits: dict[str, list[str]] = field(default_factory=dict)  # role -> source split name(s), concatenated
    revision: str | None = None
    languages: list[str] | None = None  # languages this source serves (None: all of the task's)
    columns: dict[str, Any] | None = None  # overrides the task's columns for this source
    source_labels: list[str] | None = None  # overrides the task's source_labels for this source

    def __post_init__(self):
        where = f"source {self.path!r}"
        if not isinstance(self.path, str) or not self.path:
            raise TaskError(f"{where}: `path` must be a Hub dataset id such as 'nyu-mll/glue'")
        splits = {role: [names] if isinstance(names, str) else list(names) for role, names in self.splits.items()}
        for role in splits:
            if role not in schema.ROLES:
                raise TaskError(f"{where}: unknown split role {role!r}{did_you_mean(role, schema.ROLES)}")
        object.__setattr__(self, "splits", splits)
        _check_template(where, self.name)

    @classmethod
    def from_dict(cls, data: dict, where: str) -> "SourceSpec":
        if not isinstance(data, dict):
            raise TaskError(f"{where}: each source must be a mapping with at least `path`, got {data!r}")
        _check_keys(where, data, [f.name for f in dataclasses.fields(cls)])
        return cls(**data)

    def serves(self, lang: str) -> bool:
        return self.languages is None or lang in self.languages

    def config_for(self, lang: str, code: str) -> str | None:
        return None if self.name is None else self.name.format(lang=lang, code=code)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    type: str
    description: str = ""
    sources: list[SourceSpec] = field(default_factory=list)
    columns: dict[str, Any] = field(default_factory=dict)  # canonical column -> source column / template
    labels: list[str] | None = None  # label names in our order (classification, tagging, multiple choice)
    source_labels: list[str] | None = None  # names of the source's integer ids (mapped by name onto labels)
    labels_file: str | None = None  # JSON {label: id} read at load time (CCG's tags_to_id), relative to data
    drop_labels: list[Any] = field(default_factory=list)  # source label values whose rows are dropped (-1)
    filter: dict[str, str] | None = None  # {"column": c, "startswith": template}: keep matching rows only
    languages: list[str] = field(default_factory=lambda: ["en"])
    languages_xtreme_r: list[str] | None = None  # where XTREME-R's list differs from XTREME's
    lang_codes: dict[str, str] = field(default_factory=dict)  # lang -> {code} in configs/paths (tatoeba: ara)
    missing_splits: dict[str, list[str]] = field(default_factory=dict)  # role -> languages lacking it
    file_patterns: dict[str, str] = field(default_factory=dict)  # role -> file (glob) inside a data directory
    metric: str | None = None
    train_task: str | None = None  # English training task of a target task
    extra_train_tasks: list[str] = field(default_factory=list)  # trained before train_task, in the same target job
    # an evaluation-only task embedded with the model of this chain's target fine-tuned on this task
    # (XTREME-R's Tatoeba: squad_v1) instead of the ITT encoder
    retrieval_encoder: str | None = None
    benchmarks: list[str] = field(default_factory=list)
    max_length: int | None = None
    query_max_length: int | None = None  # answer retrieval: tokens of a query (max_length: of a candidate)
    doc_stride: int = 128
    num_choices: int | None = None
    lang: str = "en"  # language of the data this spec loads by default (machine-translated ITT: "de", ...)
    version: int = 1  # bump when data or processing changes (part of stage cache keys)
    converter: str | None = None  # name of a function in hf_itt.tasks.converters for odd tasks
    aliases: list[str] = field(default_factory=list)

    def __post_init__(self):
        sources = [
            s if isinstance(s, SourceSpec) else SourceSpec.from_dict(s, f"task {self.name!r} source {i}")
            for i, s in enumerate(self.sources or [])
        ]
        object.__setattr__(self, "sources", sources)
        if self.type not in type_names():
            raise TaskError(
                f"task {self.name!r}: unknown type {self.type!r}{did_you_mean(self.type, type_names())}; "
                f"valid types: {', '.join(type_names())}"
            )
        task_type = get_type(self.type)
        if self.metric is None:
            object.__setattr__(self, "metric", task_type.default_metric)
        if self.max_length is None:
            object.__setattr__(self, "max_length", task_type.default_max_length)
        _validate(self)

    @classmethod
    def from_dict(cls, name: str, data: dict) -> "TaskSpec":
        if not isinstance(data, dict):
            raise TaskError(f"task {name!r}: its spec must be a mapping of fields, got {type(data).__name__}")
        _check_keys(f"task {name!r}", data, [f.name for f in dataclasses.fields(cls) if f.name != "name"])
        return cls(name=name, **data)

    def with_overrides(self, **overrides) -> "TaskSpec":
        """A validated copy with some fields replaced (``spec.with_overrides(lang="de", languages=["de"])``)."""
        _check_keys(f"task {self.name!r} overrides", overrides, [f.name for f in dataclasses.fields(self)])
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def task_type(self):
        """The ``hf_itt.task_types.TaskType`` of this task."""
        return get_type(self.type)

    @property
    def num_labels(self) -> int | None:
        """Size of the output layer: label count (classification, tagging), choice count (multiple
        choice), None for heads without one."""
        if self.task_type.labelled and self.labels is None:
            raise TaskError(
                f"task {self.name!r} reads its labels from labels_file {self.labels_file!r} next to its data; "
                "call hf_itt.tasks.loading.resolve_labels(spec, data_files) first"
            )
        return self.task_type.head_size(self)

    def all_languages(self) -> list[str]:
        """XTREME's languages followed by XTREME-R's additions."""
        extra = [lang for lang in self.languages_xtreme_r or [] if lang not in self.languages]
        return list(self.languages) + extra

    def languages_for(self, benchmark: str | None = None) -> list[str]:
        """The evaluation languages of this task in ``benchmark`` ("xtreme" or "xtreme_r")."""
        if benchmark is not None and benchmark not in schema.BENCHMARKS:
            raise TaskError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(schema.BENCHMARKS)}")
        if benchmark == "xtreme_r" and self.languages_xtreme_r:
            return list(self.languages_xtreme_r)
        return list(self.languages)

    def languages_in(self, benchmarks: list[str]) -> list[str]:
        """The languages a run reporting ``benchmarks`` evaluates: those of every listed benchmark the task
        belongs to (XTREME-R's additions when it reports XTREME-R), its own list when it is in none of them."""
        chosen = [benchmark for benchmark in benchmarks if benchmark in self.benchmarks]
        if not chosen:
            return list(self.languages)
        return list(dict.fromkeys(lang for benchmark in chosen for lang in self.languages_for(benchmark)))

    def code_for(self, lang: str) -> str:
        return self.lang_codes.get(lang, lang)

    @property
    def roles(self) -> list[str]:
        """Roles the task has data for (from its Hub sources or its local file patterns)."""
        found = {role for source in self.sources for role in source.splits} | set(self.file_patterns)
        return [role for role in schema.ROLES if role in found]

    def has_split(self, role: str, lang: str | None = None) -> bool:
        lang = lang or self.lang
        return role in self.roles and lang not in self.missing_splits.get(role, [])


def _validate(spec: TaskSpec) -> None:
    where = f"task {spec.name!r}"
    if not isinstance(spec.name, str) or not spec.name.replace("_", "").replace("-", "").isalnum():
        raise TaskError(f"task name {spec.name!r} must be letters, digits, '_' or '-'")
    known = metric_names()
    if spec.metric is not None and spec.metric not in known:
        raise TaskError(
            f"{where}: unknown metric {spec.metric!r}{did_you_mean(str(spec.metric), known)}; "
            f"valid metrics: {', '.join(known)}"
        )
    _validate_labels(spec, where)
    _validate_columns(spec, where)
    for benchmark in spec.benchmarks:
        if benchmark not in schema.BENCHMARKS:
            raise TaskError(f"{where}: unknown benchmark {benchmark!r}; choose from {', '.join(schema.BENCHMARKS)}")
    if not spec.languages or not all(isinstance(lang, str) for lang in spec.languages):
        raise TaskError(f"{where}: `languages` must be a non-empty list of language codes")
    for role in list(spec.missing_splits) + list(spec.file_patterns):
        if role not in schema.ROLES + EXTRA_DATA_KEYS:
            raise TaskError(f"{where}: unknown role {role!r}{did_you_mean(role, schema.ROLES)}")
    for pattern in spec.file_patterns.values():
        _check_template(where, pattern)
    if spec.filter is not None:
        if set(spec.filter) != {"column", "startswith"}:
            raise TaskError(f"{where}: `filter` needs exactly `column` and `startswith`, got {sorted(spec.filter)}")
        _check_template(where, spec.filter["startswith"])
    if not isinstance(spec.max_length, int) or spec.max_length <= 0:
        raise TaskError(f"{where}: max_length must be a positive integer, got {spec.max_length!r}")
    if spec.query_max_length is not None and (not isinstance(spec.query_max_length, int) or spec.query_max_length <= 0):
        raise TaskError(f"{where}: query_max_length must be a positive integer, got {spec.query_max_length!r}")
    if not isinstance(spec.doc_stride, int) or spec.doc_stride <= 0:
        raise TaskError(f"{where}: doc_stride must be a positive integer, got {spec.doc_stride!r}")
    if spec.retrieval_encoder is not None and spec.task_type.trainable:
        raise TaskError(
            f"{where}: `retrieval_encoder` is for tasks evaluated without training (retrieval); a "
            f"{spec.type} task is fine-tuned itself"
        )
    spec.task_type.check_spec(spec, where)
    if spec.converter:
        if spec.converter not in CONVERTERS:
            raise TaskError(f"{where}: unknown converter {spec.converter!r}{did_you_mean(spec.converter, CONVERTERS)}")


def _validate_labels(spec: TaskSpec, where: str) -> None:
    for attr in ("labels", "source_labels"):
        names = getattr(spec, attr)
        if names is None:
            continue
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise TaskError(f"{where}: `{attr}` must be a list of label names (strings), got {names!r}")
        if len(set(names)) != len(names):
            raise TaskError(f"{where}: `{attr}` has duplicate names: {names}")
    if spec.task_type.labelled and not spec.labels and not spec.labels_file:
        raise TaskError(f"{where}: a {spec.type} task needs `labels` (the label names) or `labels_file`")
    if spec.labels and spec.source_labels and not set(spec.labels) <= set(spec.source_labels):
        missing = sorted(set(spec.labels) - set(spec.source_labels))
        raise TaskError(f"{where}: labels {missing} do not occur in source_labels {spec.source_labels}")


def _validate_columns(spec: TaskSpec, where: str) -> None:
    allowed = spec.task_type.columns
    for columns in [spec.columns] + [s.columns for s in spec.sources if s.columns]:
        _check_keys(f"{where} columns", columns, allowed)
        for canonical, source in columns.items():
            for item in source if isinstance(source, list) else [source]:
                if item is not None and not isinstance(item, str):
                    raise TaskError(
                        f"{where}: column {canonical!r} must map to a column name or template, got {item!r}"
                    )
                if item and "{" in item:
                    try:
                        template_fields(item)
                    except ValueError as err:
                        raise TaskError(f"{where}: malformed template {item!r} for {canonical!r} ({err})") from None
    if spec.converter:
        return
    missing = [c for c in spec.task_type.required_columns if c not in spec.columns]
    if missing:
        raise TaskError(f"{where}: `columns` must map {missing} (canonical columns of {spec.type}: {list(allowed)})")
