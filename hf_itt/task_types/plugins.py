"""Task types (and their metrics) defined in a user's Python file, loaded from a task folder.

A ``task_dirs:`` folder may hold ``*.py`` files next to its task YAMLs; each is imported once (before
the YAMLs, so their specs can use the new types) and registers what it defines:

    # my_tasks/regression.py
    from hf_itt.task_types import TaskType, register
    class Regression(TaskType): ...
    register(Regression())

A type loaded from a file is identified by the file's content in the stage hash (``code_identity``),
so editing the plug-in retrains the stages that use it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

from hf_itt.errors import TaskError

_LOADED: dict[str, str] = {}  # resolved path -> module name


def load_plugin_file(path: str | Path) -> str:
    """Import the plug-in at ``path`` once; returns its module name."""
    path = Path(path).resolve()
    if str(path) in _LOADED:
        return _LOADED[str(path)]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    name = f"hf_itt_plugins.{path.stem}_{digest[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    module.__hf_itt_code_identity__ = digest
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # a user's file: say which one broke, whatever it raised
        sys.modules.pop(name, None)
        raise TaskError(
            f"task type plug-in {path} failed to import ({type(err).__name__}: {err}); fix the file "
            f"or remove it from the task folder"
        ) from err
    _LOADED[str(path)] = name
    return name


def load_plugin_dir(folder: str | Path) -> list[str]:
    return [load_plugin_file(path) for path in sorted(Path(folder).glob("*.py"))]


def code_identity(task_type) -> str | None:
    """sha256 of the plug-in file that defines ``task_type``; None for a type shipped with hf_itt."""
    module = sys.modules.get(type(task_type).__module__)
    return getattr(module, "__hf_itt_code_identity__", None)
