"""`key=value` command-line overrides of an experiment YAML.

Keys are dotted paths; list items are addressed by index (`stages.0.training.learning_rate=2e-5`),
values are parsed as YAML scalars/flows (`targets.tasks=[xnli,tatoeba]`, `hub.private=false`).
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from hf_itt.config.yaml_loader import DuplicateKeyError, safe_load
from hf_itt.errors import ConfigError


def parse_override(text: str) -> tuple[list[str], Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not key=value; write e.g. stages.0.training.learning_rate=2e-5")
    try:
        parsed = safe_load(value) if value.strip() else None
    except DuplicateKeyError as err:
        raise ConfigError(f"override {text!r}: {err}; keep one of them") from None
    except yaml.YAMLError:
        if value.lstrip().startswith("["):  # a list with a typo must not become a string
            raise ConfigError(
                f"override {text!r}: the value is not a valid YAML list; write it as "
                f"[item1,item2] with balanced brackets (quote the whole override for the shell)"
            ) from None
        parsed = value  # plain text such as a repo template `{namespace}/{stage}`
    return key.strip().split("."), parsed


def apply_overrides(raw: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    result = copy.deepcopy(raw)
    for text in overrides:
        path, value = parse_override(text)
        set_path(result, path, value, text)
    return result


def set_path(node: Any, path: list[str], value: Any, text: str) -> None:
    for depth, part in enumerate(path[:-1]):
        node = child(node, part, text, create=True)
    last = path[-1]
    if isinstance(node, list):
        node[list_index(node, last, text)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(
            f"override {text!r}: {'.'.join(path[:-1])} is {node!r}, not a mapping, so it has no "
            f"field {last!r}; check the dotted key"
        )


def child(node: Any, part: str, text: str, create: bool) -> Any:
    if isinstance(node, list):
        return node[list_index(node, part, text)]
    if not isinstance(node, dict):
        raise ConfigError(f"override {text!r}: {part!r} is inside a value that is not a mapping or list")
    if part not in node or node[part] is None:
        node[part] = {}
    return node[part]


def list_index(node: list, part: str, text: str) -> int:
    if not part.lstrip("-").isdigit():
        raise ConfigError(f"override {text!r}: {part!r} must be a list index (0..{len(node) - 1})")
    index = int(part)
    if not -len(node) <= index < len(node):
        raise ConfigError(f"override {text!r}: index {index} out of range (the list has {len(node)} items)")
    return index
