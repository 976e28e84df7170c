"""Loading an experiment: YAML (strict, with `extends:`), key=value overrides, the schema's dataclasses
built field by field with their types checked, then validation (``hf_itt.config.validation``).

    configs = load_experiments("run_scripts/demo.yaml", ["seed=2"])   # one per `experiments:` entry
    config = load_experiment("run_scripts/paper/itt_mnli.yaml")
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import yaml

from hf_itt.config.experiment import (
    DefaultsConfig,
    EvaluationConfig,
    ExperimentConfig,
    HubConfig,
    ModelConfig,
    SamplingConfig,
    StageConfig,
    TargetsConfig,
    TaskEntry,
)
from hf_itt.config.field_types import check_type
from hf_itt.config.health import HealthConfig
from hf_itt.config.overrides import apply_overrides
from hf_itt.config.training_args import training_argument_fields
from hf_itt.config.validation import validate_experiment
from hf_itt.config.yaml_loader import DuplicateKeyError, safe_load
from hf_itt.errors import ConfigError, did_you_mean


def load_experiments(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> list[ExperimentConfig]:
    """All experiments of a YAML file: one, or one per item of a top-level `experiments:` list (each
    item's keys deep-merged over the rest of the file), so a small comparison runs as one command."""
    raw = read_yaml_with_extends(Path(path))
    variants = raw.pop("experiments", None)
    if variants is None:
        return [load_experiment(path, overrides)]
    if not isinstance(variants, list) or not variants or not all(isinstance(v, dict) for v in variants):
        raise ConfigError(f"{path}: `experiments:` must be a non-empty list of mappings (each an experiment's keys)")
    configs = [build_experiment({**deep_merge(raw, variant)}, path, overrides) for variant in variants]
    check_unique_outputs(configs, path)
    return configs


def check_unique_outputs(configs: list[ExperimentConfig], path: str | Path) -> None:
    """Experiments of one file must not share a run folder: the later one would overwrite the earlier."""
    names: dict[str, int] = {}
    folders: dict[Path, ExperimentConfig] = {}
    for index, config in enumerate(configs):
        if config.experiment in names:
            raise ConfigError(
                f"{path}: experiments[{index}] is named {config.experiment!r} like "
                f"experiments[{names[config.experiment]}]; experiment names must be unique (each "
                f"gets its own output folder and Hub repos)"
            )
        names[config.experiment] = index
        folder = config.run_dir.resolve()
        if folder in folders:
            raise ConfigError(
                f"output_dir {config.output_dir!r} gives experiments {folders[folder].experiment!r} and "
                f"{config.experiment!r} of {Path(path).name} the same folder {config.run_dir}; put "
                f"{{experiment}} in it (e.g. output_dir={config.output_dir.rstrip('/')}/{{experiment}})"
            )
        folders[folder] = config


def build_experiment(raw: dict, path: str | Path, overrides) -> ExperimentConfig:
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
    except DuplicateKeyError as err:
        raise ConfigError(f"{path}: {err}; keep one of them (YAML would silently use the last)") from None
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
        raise ConfigError(f"{where}: expected a mapping (key: value), got {raw!r}")
    fields = {yaml_key(f): f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    unknown = [key for key in raw if key not in fields]
    if unknown:
        key = unknown[0]
        hint = did_you_mean(key, fields)
        if "training" in fields and is_training_argument(key):
            hint = " (did you mean 'training'?)"  # `learning_rate:` written on the stage itself
        raise ConfigError(f"{where}: unknown field {key!r}{hint} (valid: {', '.join(sorted(fields))})")
    kwargs = {f.name: convert_field(f, raw[key], f"{where}.{key}", cls) for key, f in fields.items() if key in raw}
    return cls(**kwargs)


def is_training_argument(key: Any) -> bool:
    return isinstance(key, str) and key in training_argument_fields()


NESTED = {
    "model": ModelConfig,
    "health": HealthConfig,
    "sampling": SamplingConfig,
    "targets": TargetsConfig,
    "evaluation": EvaluationConfig,
    "hub": HubConfig,
    "defaults": DefaultsConfig,
}


def convert_field(f: dataclasses.Field, value: Any, where: str, cls: type):
    if f.name in NESTED:
        return build_dataclass(NESTED[f.name], {} if value is None else value, where)
    if f.name == "stages":
        return [build_dataclass(StageConfig, stage, f"{where}[{i}]") for i, stage in enumerate(as_list(value, where))]
    if f.name == "tasks" and cls is StageConfig:
        return [build_dataclass(TaskEntry, task, f"{where}[{i}]") for i, task in enumerate(as_list(value, where))]
    if value is None and f.default_factory is not dataclasses.MISSING:
        return f.default_factory()  # `training:` with nothing under it means no changes
    return check_type(value, schema_types(cls)[f.name], where)


def schema_types(cls: type) -> dict[str, Any]:

    return typing.get_type_hints(cls)


def as_list(value: Any, where: str) -> list:
    if value is None:
        return []
    if isinstance(value, (str, dict)):
        return [value]
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    return value
