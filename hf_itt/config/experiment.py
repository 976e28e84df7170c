"""Experiment configuration: one YAML file per experiment, deltas over these defaults.

The dataclasses below ARE the schema: ``docs/reference.md`` is generated from them
(``python scripts/docgen.py``), and ``load_experiment`` rejects any key they do not declare with
the nearest valid names. Everything is validated before a model is built.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hf_itt.config.yaml_loader import safe_load

from hf_itt.config.overrides import apply_overrides
from hf_itt.errors import ConfigError
from hf_itt.config.health import HealthConfig

SAMPLING_STRATEGIES = ("uniform", "proportional", "temperature", "capped", "annealed", "weights")
PUBLISHERS = ("local", "hub", "none")
REFERENCE_PATTERN = re.compile(r"^[^@\s]+(@[^@\s]+)?$")


@dataclass
class ModelConfig:
    """The pretrained encoder every experiment starts from."""

    name_or_path: str = field(default="xlm-roberta-large",
                              metadata={"help": "Hub id or local folder of the base encoder."})
    revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit)."})
    tokenizer: str | None = field(default=None, metadata={"help": "Tokenizer id/folder if not the model's."})
    freeze: list[str] = field(default_factory=list, metadata={
        "help": "Encoder parameter-name prefixes kept frozen in every stage and target (no gradient, no optimizer "
                "state), e.g. [embeddings., encoder.layer.0.]; part of every stage hash. Each must match a parameter."})


@dataclass
class TaskEntry:
    """One task of a stage: a registered task name plus optional per-experiment changes."""

    name: str = field(default="", metadata={"help": "Registered task name (see docs/tasks.md)."})
    lang: str | None = field(default=None, metadata={
        "help": "Language tag of the training data, e.g. 'de' for machine-translated MNLI."})
    data_files: dict[str, str] | str | None = field(default=None, metadata={
        "help": "Local files replacing the Hub source: a path, or {train: path, validation: path}."})
    max_train_examples: int | None = field(default=None, metadata={"help": "Keep the first N training rows."})
    max_eval_examples: int | None = field(default=None, metadata={"help": "Keep the first N dev rows."})
    weight: float | None = field(default=None, metadata={"help": "Sampling weight (strategy 'weights')."})


@dataclass
class SamplingConfig:
    """How a joint stage picks the task of each step (see docs/concepts.md for the formulas)."""

    strategy: str = field(default="proportional", metadata={"help": f"One of {', '.join(SAMPLING_STRATEGIES)}."})
    temperature: float = field(default=2.0, metadata={"help": "T of 'temperature': p ~ n^(1/T)."})
    cap: int | None = field(default=None, metadata={"help": "Examples cap of 'capped': p ~ min(n, cap)."})
    anneal_alpha_end: float = field(default=0.2, metadata={
        "help": "'annealed': exponent alpha of p ~ n^alpha moves from 1 to this value over training."})


@dataclass
class StageConfig:
    """One intermediate-task stage: one Trainer run over one task or a joint mixture."""

    name: str = field(default="", metadata={"help": "Stage name (folder and repo name part)."})
    tasks: list[TaskEntry] = field(default_factory=list, metadata={
        "help": "Task names, or mappings with name/lang/data_files/max_train_examples/weight."})
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    training: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "TrainingArguments fields for this stage, over defaults.training and the preset."})
    preset: str | None = field(default=None, metadata={"help": "Named hyper-parameter preset."})
    deepspeed: str | None = field(default=None, metadata={
        "help": "DeepSpeed config for this stage, e.g. ds_configs/zero2.json."})
    from_: str | None = field(default=None, metadata={
        "yaml": "from", "help": "Use a published checkpoint (repo@revision or folder) instead of training."})
    max_length: int | None = field(default=None, metadata={"help": "Max tokens; default per task spec."})


@dataclass
class TargetsConfig:
    """Target tasks: fine-tune on each task's English training set, then evaluate zero-shot."""

    tasks: list[str] = field(default_factory=list, metadata={"help": "Target task names (xnli, tatoeba, ...)."})
    languages: dict[str, list[str]] = field(default_factory=dict, metadata={
        "help": "Per-task language subset (default: every language of the task)."})
    data_files: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "Local files per task name, {task: path or {role: path}}; paths may hold {lang}. Key the "
                "English training task (e.g. mnli) for fine-tuning data and the target (e.g. xnli) for "
                "evaluation data."})
    training: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "TrainingArguments for target fine-tuning, over defaults.training and the preset."})
    per_task_training: dict[str, dict[str, Any]] = field(default_factory=dict, metadata={
        "help": "Per-task TrainingArguments over `training` (e.g. epochs for udpos)."})
    preset: str | None = field(default=None, metadata={"help": "Named preset for target fine-tuning."})
    max_train_examples: int | None = field(default=None, metadata={"help": "Cap English training rows."})
    deepspeed: str | None = field(default=None, metadata={"help": "DeepSpeed config for target fine-tuning."})


@dataclass
class EvaluationConfig:
    """Zero-shot evaluation settings."""

    splits: list[str] = field(default_factory=lambda: ["validation"], metadata={
        "help": "Splits to score in every language: validation and/or test."})
    batch_size: int = field(default=64, metadata={"help": "Sentences per forward pass (sorted by length)."})
    retrieval_layer: int | None = field(default=None, metadata={
        "help": "hidden_states index for BUCC/Tatoeba; default = 14/24 of the depth (14 for XLM-R Large)."})
    retrieval_max_length: int = field(default=512, metadata={"help": "Max tokens per retrieval sentence."})
    max_eval_examples: int | None = field(default=None, metadata={"help": "Cap rows per language (smoke runs)."})


@dataclass
class HubConfig:
    """Where finished stages are published and looked up for reuse."""

    publisher: str = field(default="local", metadata={"help": f"One of {', '.join(PUBLISHERS)}."})
    local_root: str = field(default="hub_local", metadata={
        "help": "Root folder of the local publisher; a relative path is resolved like data paths (next to the YAML)."})
    namespace: str = field(default="local", metadata={"help": "Hub user or organisation."})
    repo_template: str = field(default="{namespace}/{experiment}-{stage}", metadata={
        "help": "Repo id template; fields: namespace, experiment, stage, hash."})
    private: bool = field(default=True, metadata={"help": "Create Hub repos as private."})
    reuse: bool = field(default=True, metadata={
        "help": "Reuse stages with the same hash found in the local index or published; false: only this run's own."})


@dataclass
class DefaultsConfig:
    """Values every stage and target inherits."""

    training: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "TrainingArguments fields shared by every stage and target."})
    deepspeed: str | None = field(default=None, metadata={"help": "DeepSpeed config for every stage."})


@dataclass
class ExperimentConfig:
    """A whole experiment: ITT stages in order, then target fine-tuning and zero-shot evaluation."""

    experiment: str = field(default="", metadata={"help": "Experiment name (output folder, repo names)."})
    seed: int = field(default=42, metadata={"help": "Seed of every stage (each stage hash includes it)."})
    model: ModelConfig = field(default_factory=ModelConfig)
    output_dir: str = field(default="runs/{experiment}/seed{seed}", metadata={
        "help": "Run folder, relative to the working directory as the Trainer's output_dir is (data paths are "
                "relative to the YAML); fields: experiment, seed."})
    report_dir: str | None = field(default=None, metadata={
        "help": "Where run_itt.py writes the report over all experiments of the file (default: `<run folder>/report`)."})
    task_dirs: list[str] = field(default_factory=list, metadata={"help": "Folders of extra task spec YAMLs."})
    prepare: str | None = field(default=None, metadata={
        "help": "'module:function' called with the config before anything is planned, to build data or a "
                "base model (the offline demo builds its synthetic world and tiny encoder this way)."})
    defaults: DefaultsConfig = field(default_factory=DefaultsConfig)
    stages: list[StageConfig] = field(default_factory=list)
    targets: TargetsConfig = field(default_factory=TargetsConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    source_file: str | None = field(default=None, metadata={"internal": True})

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir.format(experiment=self.experiment, seed=self.seed))

    def resolve_path(self, path: str | None) -> str | None:
        """Relative data/config paths are relative to the YAML file that names them."""
        if path is None or Path(path).is_absolute() or self.source_file is None:
            return path
        if Path(path).exists() and not (Path(self.source_file).parent / path).exists():
            return path  # an existing path relative to the working directory
        return str(Path(self.source_file).parent / path)


def load_experiments(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> list[ExperimentConfig]:
    """All experiments of a YAML file: one, or one per item of a top-level `experiments:` list (each
    item's keys deep-merged over the rest of the file), so a small comparison runs as one command."""
    raw = read_yaml_with_extends(Path(path))
    variants = raw.pop("experiments", None)
    if variants is None:
        return [load_experiment(path, overrides)]
    if not isinstance(variants, list) or not variants or not all(isinstance(v, dict) for v in variants):
        raise ConfigError(f"{path}: `experiments:` must be a non-empty list of mappings (each an experiment's keys)")
    return [build_experiment({**deep_merge(raw, variant)}, path, overrides) for variant in variants]


def build_experiment(raw: dict, path: str | Path, overrides) -> ExperimentConfig:
    from hf_itt.config.validation import validate_experiment

    if "stages" in raw and raw["stages"] is None:
        raw["stages"] = []
    config = build_dataclass(ExperimentConfig, apply_overrides(raw, overrides), where="config")
    config.source_file = str(Path(path).resolve())
    if config.model.name_or_path.startswith(("./", "../")):  # a folder next to the YAML, not a Hub id
        config.model.name_or_path = str(Path(config.resolve_path(config.model.name_or_path)).resolve())
    validate_experiment(config)
    return config


def load_experiment(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read an experiment YAML (following `extends:`), apply key=value overrides, build and validate."""

    raw = read_yaml_with_extends(Path(path))
    if "experiments" in raw:
        raise ConfigError(f"{path} holds several experiments (`experiments:`); load it with load_experiments")
    return build_experiment(raw, path, overrides)


def read_yaml_with_extends(path: Path, _seen: tuple[Path, ...] = ()) -> dict:
    """Load YAML; `extends: base.yaml` merges this file's keys over the base's (mappings deep-merged)."""
    path = path.resolve()
    if path in _seen:
        chain = " -> ".join(p.name for p in (*_seen, path))
        raise ConfigError(f"circular `extends:` chain: {chain}; remove one of the references")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML{yaml_error_position(err)}; fix the syntax there") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; save it as UTF-8") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of experiment fields, found {type(data).__name__}")
    base = data.pop("extends", None)
    if base is None:
        return data
    return deep_merge(read_yaml_with_extends(path.parent / base, (*_seen, path)), data)


def yaml_error_position(err: yaml.YAMLError) -> str:
    """' at line L, column C: <problem>' on one line (PyYAML's own text spans several lines)."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = " ".join(filter(None, (getattr(err, "context", None), getattr(err, "problem", None))))
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return where + (f": {problem}" if problem else f": {' '.join(str(err).split())}")


def deep_merge(base: dict, delta: dict) -> dict:
    merged = dict(base)
    for key, value in delta.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def yaml_key(f: dataclasses.Field) -> str:
    return f.metadata.get("yaml", f.name)


def build_dataclass(cls, raw: Any, where: str):
    """Build ``cls`` from a mapping, rejecting unknown keys with the nearest valid names."""
    if isinstance(raw, cls):
        return raw
    if cls is TaskEntry and isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {raw!r}")
    fields = {yaml_key(f): f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    unknown = [key for key in raw if key not in fields]
    if unknown:
        key = unknown[0]
        hint = difflib.get_close_matches(str(key), fields, n=3)
        raise ConfigError(f"{where}: unknown field {key!r}"
                          + (f"; did you mean {', '.join(map(repr, hint))}?" if hint else "")
                          + f" (valid: {', '.join(sorted(fields))})")
    kwargs = {f.name: convert_field(f, raw[key], f"{where}.{key}") for key, f in fields.items() if key in raw}
    return cls(**kwargs)


NESTED = {"model": ModelConfig, "health": HealthConfig, "sampling": SamplingConfig, "targets": TargetsConfig,
          "evaluation": EvaluationConfig, "hub": HubConfig, "defaults": DefaultsConfig}
SCALARS = {"seed": int, "temperature": float, "anneal_alpha_end": float, "batch_size": int,
           "retrieval_max_length": int, "cap": int, "max_length": int, "retrieval_layer": int,
           "max_train_examples": int, "max_eval_examples": int, "weight": float, "private": bool,
           "reuse": bool}


def convert_field(f: dataclasses.Field, value: Any, where: str):
    if f.name in NESTED:
        return build_dataclass(NESTED[f.name], value or {}, where)
    if f.name == "stages":
        return [build_dataclass(StageConfig, stage, f"{where}[{i}]") for i, stage in enumerate(as_list(value, where))]
    if f.name == "tasks" and where.startswith("config.stages"):
        return [build_dataclass(TaskEntry, task, f"{where}[{i}]") for i, task in enumerate(as_list(value, where))]
    if value is None:
        return None
    if f.name in SCALARS:
        return coerce_scalar(SCALARS[f.name], value, where)
    if isinstance(f.default, (bool, int, float)):  # numeric/bool fields with a default: their type
        return coerce_scalar(type(f.default), value, where)
    if f.name in ("tasks", "splits", "task_dirs", "freeze"):
        return [str(item) for item in as_list(value, where)]
    if f.name in ("training", "languages", "per_task_training") and not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    return value


def as_list(value: Any, where: str) -> list:
    if value is None:
        return []
    if isinstance(value, (str, dict)):
        return [value]
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    return value


def coerce_scalar(kind: type, value: Any, where: str):
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    try:
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}") from None
