"""A local index from stage hash to the folder holding that finished stage.

Experiments write to different run folders and repo names; the index lets a second experiment find
a stage the first one trained (same hash = same weights). One small JSON file per hash, written
atomically, so parallel experiments (a SLURM array) never corrupt it.
"""

from __future__ import annotations

import json
from pathlib import Path

from hf_itt.fileio import atomic_write_text


def record(index_dir: str | Path, stage_hash: str, folder: str | Path) -> Path:
    entry = {"stage_hash": stage_hash, "path": str(Path(folder).resolve())}
    return atomic_write_text(Path(index_dir) / f"{stage_hash}.json", json.dumps(entry))


def lookup(index_dir: str | Path, stage_hash: str) -> Path | None:
    """The indexed folder for ``stage_hash`` if it still exists (the caller verifies its checksums)."""
    path = Path(index_dir) / f"{stage_hash}.json"
    try:
        folder = Path(json.loads(path.read_text(encoding="utf-8"))["path"])
    except (OSError, ValueError, KeyError, TypeError):  # a damaged entry: no entry
        return None
    return folder if folder.is_dir() else None
