"""Which Trainer checkpoint a stage resumes from: the newest one whose files are all complete.

A kill or a full disk while the Trainer saves leaves the newest ``checkpoint-N`` torn: a missing
``trainer_state.json``, or a truncated ``optimizer.pt`` that torch would only report as a zip error
naming no file. ``last_checkpoint`` checks each file's structure, cheaply and without loading it
(a torch zip archive's central directory, a safetensors header against the file's size, JSON that
parses), and falls back to the previous checkpoint with a warning naming the damaged file.
"""

from __future__ import annotations

import json
import logging
import re
import struct
import zipfile
from pathlib import Path

logger = logging.getLogger(__name__)

HASH_FILE = "stage_hash.txt"  # in a stage's trainer/ folder: the hash its checkpoints were trained for
TORCH_SUFFIXES = (".pt", ".pth", ".bin")  # torch.save archives: optimizer, scheduler, RNG, training args
REQUIRED = ("trainer_state.json",)  # the Trainer writes it after the weights, optimizer and RNG states


def last_checkpoint(trainer_dir: Path) -> str | None:
    """The newest complete ``checkpoint-N`` of ``trainer_dir`` (None: none, the stage starts afresh)."""
    numbered = checkpoints(trainer_dir)
    for index, (_, folder) in enumerate(numbered):
        problem = damaged_file(folder)
        if problem is None:
            return str(folder)
        fallback = numbered[index + 1][1].name if index + 1 < len(numbered) else "the start of the stage"
        logger.warning("%s; resuming from %s instead", problem, fallback)
    return None


def checkpoints(trainer_dir: Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every ``checkpoint-N`` in ``trainer_dir``, newest first."""
    if not trainer_dir.is_dir():
        return []
    numbered = [
        (int(m.group(1)), p)
        for p in trainer_dir.iterdir()
        if p.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", p.name))
    ]
    return sorted(numbered, reverse=True)


def damaged_file(folder: Path) -> str | None:
    """None if every file of the checkpoint is complete, else what is wrong with the first one that is not."""
    for name in REQUIRED:
        if not (folder / name).is_file():
            return f"{folder / name} is missing (the save was interrupted)"
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        problem = file_problem(path)
        if problem:
            return f"{path} is damaged ({problem})"
    return None


def file_problem(path: Path) -> str | None:
    try:
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".safetensors":
            return safetensors_problem(path)
        elif path.suffix in TORCH_SUFFIXES:
            return torch_archive_problem(path)
    except (OSError, ValueError) as err:
        return f"unreadable: {err}"
    return None


def torch_archive_problem(path: Path) -> str | None:
    """torch.save writes a zip archive; a torn one lacks its central directory or member data."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            ends = [info.header_offset + info.compress_size for info in archive.infolist()]
    except zipfile.BadZipFile as err:
        return f"not a complete torch archive: {err}; truncated?"
    if ends and max(ends) > size:
        return f"its archive needs {max(ends)} bytes but the file has {size}; truncated?"
    return None


def safetensors_problem(path: Path) -> str | None:
    """The header (8-byte length, then JSON) must parse and its tensors must end where the file ends."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            return f"{size} bytes, shorter than a safetensors header"
        (header_size,) = struct.unpack("<Q", prefix)
        if 8 + header_size > size:
            return f"its header needs {8 + header_size} bytes but the file has {size}; truncated?"
        header = json.loads(handle.read(header_size))
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    expected = 8 + header_size + max(ends, default=0)
    if expected != size:
        return f"its tensors need {expected} bytes but the file has {size}; truncated?"
    return None


def resume_point(trainer_dir: Path, stage_hash: str) -> str | None:
    """The checkpoint a run of ``stage_hash`` would resume from: only checkpoints of that very hash count
    (others are set aside when the stage starts)."""
    marker = trainer_dir / HASH_FILE
    if not marker.is_file() or marker.read_text().strip() != stage_hash:
        return None
    return last_checkpoint(trainer_dir)


__all__ = ["last_checkpoint", "damaged_file", "resume_point", "HASH_FILE"]
