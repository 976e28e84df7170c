"""The task registry: built-in specs from ``specs/*.yaml`` plus user YAML files.

Importing this module is cheap (no ``datasets``/``torch``): the config validator uses it before any model
exists. A YAML file is a mapping ``task_name -> fields`` (see ``TaskSpec``), with two extra keys per entry:
``extends: other_task`` (start from another task's fields, then replace the ones given) and
``override: true`` (replace an already registered task of the same name instead of failing).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from hf_itt.errors import TaskError, did_you_mean
from hf_itt.task_types.plugins import load_plugin_dir
from hf_itt.tasks.spec import TaskSpec

BUILTIN_DIR = Path(__file__).parent / "specs"
ENTRY_KEYS = ("extends", "override")


class TaskRegistry:
    def __init__(self):
        self._tasks: dict[str, TaskSpec] = {}
        self._aliases: dict[str, str] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._tasks or name in self._aliases

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def get(self, name: str) -> TaskSpec:
        if isinstance(name, TaskSpec):
            return name
        key = self._aliases.get(name, name)
        if key not in self._tasks:
            hint = did_you_mean(name, list(self._tasks) + list(self._aliases), cutoff=0.4)
            raise TaskError(
                f"unknown task {name!r}{hint}. Known tasks: {', '.join(self.names())}. "
                "Add your own with hf_itt.tasks.registry.register_task_file(path) or register_task_dir(path)."
            )
        return self._tasks[key]

    def register_file(self, path: str | Path) -> list[str]:
        """Register every entry of one YAML file; returns the names added, in file order."""
        path = Path(path)
        entries = _read_yaml(path)
        resolved = {}
        for name, entry in entries.items():
            resolved[name] = self._resolve(name, entry, entries, path, seen=())
        for name, (fields, override) in resolved.items():
            if name in self and not override:
                raise TaskError(
                    f"{path}: task {name!r} is already registered; rename it or add `override: true` to replace it"
                )
        specs = [TaskSpec.from_dict(name, fields) for name, (fields, _) in resolved.items()]
        for spec in specs:
            self._add(spec)
        self._check_references(specs, path)
        return [spec.name for spec in specs]

    def register_dir(self, path: str | Path) -> list[str]:
        path = Path(path)
        if not path.is_dir():
            raise TaskError(f"task directory {path} does not exist")
        load_plugin_dir(path)  # task types defined next to the specs that use them
        names = []
        for file in sorted(list(path.glob("*.yaml")) + list(path.glob("*.yml"))):
            names += self.register_file(file)
        return names

    def _add(self, spec: TaskSpec) -> None:
        old = self._tasks.get(spec.name)
        if old is not None:
            for alias in old.aliases:
                self._aliases.pop(alias, None)
        self._tasks[spec.name] = spec
        for alias in spec.aliases:
            if alias in self._tasks:
                raise TaskError(f"task {spec.name!r}: alias {alias!r} is already a task name")
            self._aliases[alias] = spec.name

    def _resolve(self, name, entry, entries, path, seen) -> tuple[dict, bool]:
        if not isinstance(entry, dict):
            raise TaskError(f"{path}: task {name!r} must be a mapping of fields, got {type(entry).__name__}")
        fields = {k: v for k, v in entry.items() if k not in ENTRY_KEYS}
        parent = entry.get("extends")
        if parent is None:
            return fields, bool(entry.get("override", False))
        if parent in seen:
            raise TaskError(f"{path}: task {name!r} extends itself through {' -> '.join(seen + (name, parent))}")
        if parent in entries and parent != name:  # `mnli: {extends: mnli, override: true}` edits the registered one
            base, _ = self._resolve(parent, entries[parent], entries, path, seen + (name,))
        elif parent in self:
            base = self.get(parent).to_dict()
            base.pop("name")
        else:
            raise TaskError(f"{path}: task {name!r} extends unknown task {parent!r}")
        return {**base, "aliases": [], **fields}, bool(entry.get("override", False))

    def _check_references(self, specs: list[TaskSpec], path: Path) -> None:
        for spec in specs:
            for ref in [spec.train_task, *spec.extra_train_tasks, spec.retrieval_encoder]:
                if ref is not None and ref not in self:
                    raise TaskError(f"{path}: task {spec.name!r} names training task {ref!r}, which is not registered")


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskError(f"task file {path} does not exist") from None
    except UnicodeDecodeError as err:
        raise TaskError(f"task file {path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise TaskError(f"task file {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict) or not data:
        raise TaskError(f"task file {path} must be a non-empty mapping of task name -> fields")
    return data


_default: TaskRegistry | None = None


def default_registry() -> TaskRegistry:
    """The process-wide registry, filled with the built-in specs on first use."""
    global _default
    if _default is None:
        registry = TaskRegistry()
        # Order matters only for cross-file `extends`/train_task references: intermediate tasks first.
        for name in ("intermediate.yaml", "xtreme.yaml", "xtreme_r.yaml"):
            registry.register_file(BUILTIN_DIR / name)
        _default = registry
    return _default


def get_task(name: str | TaskSpec) -> TaskSpec:
    """The spec registered under ``name`` (or an alias); a ``TaskSpec`` is returned unchanged."""
    return default_registry().get(name)


def list_tasks() -> list[str]:
    return default_registry().names()


def all_tasks() -> list[TaskSpec]:
    registry = default_registry()
    return [registry.get(name) for name in registry.names()]


def encoder_targets(task: str) -> list[str]:
    """The targets whose fine-tuned model is "the model fine-tuned on ``task``": trained on ``task`` alone, with
    its type (``squad_v1``: xquad and mlqa; a LAReQA dual encoder trained on SQuAD pairs is not one)."""
    wanted = get_task(task)
    return [
        spec.name
        for spec in all_tasks()
        if spec.train_task == wanted.name and not spec.extra_train_tasks and spec.type == wanted.type
    ]


def register_task_file(path: str | Path) -> list[str]:
    return default_registry().register_file(path)


def register_task_dir(path: str | Path) -> list[str]:
    return default_registry().register_dir(path)
