"""A stage's hash: a short sha256 of the canonical JSON of its identity payload.

The payload is built by ``hf_itt.pipeline.identity``; publishers and manifests re-hash a published
identity with the same function to check that a stage is what its hash says.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HASH_LENGTH = 16


def hash_identity(identity: Mapping[str, Any], length: int = HASH_LENGTH) -> str:
    """Short hex sha256 of the canonical JSON of a ``stage_identity`` payload."""
    return hashlib.sha256(canonical_json(identity).encode("utf-8")).hexdigest()[:length]


def canonical_json(value: Any) -> str:
    """Key-sorted, whitespace-free JSON: the same content always gives the same bytes."""
    return json.dumps(plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def plain(value: Any) -> Any:
    """JSON-ready copy: enums to their values, dataclasses and mappings to dicts, tuples and sets to lists."""
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, (set, frozenset)):  # iteration order of a set changes between processes
        return sorted((plain(item) for item in value), key=canonical_json)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)
