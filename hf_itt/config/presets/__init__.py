"""Named hyper-parameter presets (see presets.yaml for every value and its source)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from hf_itt.errors import ConfigError, did_you_mean

PRESETS_FILE = Path(__file__).with_name("presets.yaml")
PRESET_KEYS = ("description", "training", "early_stopping_patience")  # lengths: each task's own


@lru_cache(maxsize=1)
def all_presets() -> dict[str, dict]:
    return yaml.safe_load(PRESETS_FILE.read_text(encoding="utf-8"))


def get_preset(name: str) -> dict:
    presets = all_presets()
    if name not in presets:
        raise ConfigError(
            f"unknown preset {name!r}{did_you_mean(name, presets)} (available: {', '.join(sorted(presets))})"
        )
    unknown = sorted(set(presets[name]) - set(PRESET_KEYS))
    if unknown:  # a typo in the shipped file would otherwise be ignored silently
        raise ConfigError(
            f"preset {name!r} in {PRESETS_FILE} has the unknown key {unknown[0]!r}; "
            f"a preset holds {', '.join(PRESET_KEYS)}"
        )
    return presets[name]
