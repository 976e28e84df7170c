"""Strict YAML loading for experiment files and overrides.

Two traps of plain PyYAML are closed here: YAML 1.1 reads `1e-5` as a string (a classic for
learning rates), and a key written twice in one mapping silently keeps the last value (`seed: 3`
... `seed: 4`; a second `stages:` block drops the first one's stages). Duplicates raise
``DuplicateKeyError`` naming both lines; merge keys (`<<: *base`) may still be overridden.
"""

from __future__ import annotations

import re

import yaml


class DuplicateKeyError(yaml.YAMLError):
    """A mapping holds the same key twice; ``first_line`` and ``second_line`` are 1-based."""

    def __init__(self, key, first_line: int, second_line: int):
        where = f"lines {first_line} and {second_line}" if first_line != second_line else f"line {first_line}"
        super().__init__(f"key {key!r} appears twice in one mapping ({where})")
        self.key, self.first_line, self.second_line = key, first_line, second_line


class Loader(yaml.SafeLoader):
    """SafeLoader that resolves `1e-5` / `2E5` (no dot) as floats and refuses duplicate keys."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            check_unique_keys(self, node)
        return super().construct_mapping(node, deep=deep)


def check_unique_keys(loader: yaml.SafeLoader, node: yaml.MappingNode) -> None:
    seen: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key, line = loader.construct_object(key_node, deep=True), key_node.start_mark.line + 1
        try:
            if key in seen:
                raise DuplicateKeyError(key, seen[key], line)
            seen[key] = line
        except TypeError:  # an unhashable key: PyYAML reports it itself
            continue


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def safe_load(text: str):
    return yaml.load(text, Loader=Loader)
