"""YAML loading with YAML 1.2 floats: PyYAML (YAML 1.1) reads `1e-5` as a string, a classic trap
for learning rates in configs."""

from __future__ import annotations

import re

import yaml

class Loader(yaml.SafeLoader):
    """SafeLoader that also resolves `1e-5` / `2E5` (no dot) as floats."""


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def safe_load(text: str):
    return yaml.load(text, Loader=Loader)
