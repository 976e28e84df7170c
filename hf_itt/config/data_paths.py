"""Local data files named in an experiment exist, checked at load (validate, --dry-run, a run) rather than
when a stage reaches them, possibly hours later. A path with ``{lang}`` / ``{code}`` is checked up to
its first placeholder (that folder must exist). Experiments with a ``prepare:`` hook are checked after
the hook ran (it writes their data)."""

from __future__ import annotations

from pathlib import Path

from hf_itt.config.experiment import ExperimentConfig
from hf_itt.errors import ConfigError


def check_data_paths(config: ExperimentConfig) -> None:
    for i, stage in enumerate(config.stages):
        for j, task in enumerate(stage.tasks):
            check_value(config, task.data_files, f"stages[{i}].tasks[{j}].data_files")
    for task, files in config.targets.data_files.items():
        check_value(config, files, f"targets.data_files.{task}")


def check_value(config: ExperimentConfig, value, where: str) -> None:
    if value is None:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            check_value(config, item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_value(config, item, f"{where}[{index}]")
    else:
        check_path(config, str(value), where)


def check_path(config: ExperimentConfig, value: str, where: str) -> None:
    resolved = Path(config.resolve_path(value))
    fixed = Path(str(resolved).split("{", 1)[0]) if "{" in str(resolved) else resolved
    target = fixed if "{" not in str(resolved) else (fixed if str(fixed).endswith(("/", "\\")) else fixed.parent)
    if any(char in str(target) for char in "*?["):  # a glob: its folder must exist
        target = Path(str(target).split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]).parent
    if not target.exists():
        raise ConfigError(
            f"{where}: {value!r} does not exist (looked at {target}); fix the path (relative paths are "
            f"relative to the experiment YAML) or create the data first"
        )
