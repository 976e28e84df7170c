"""Atomic file writes: a reader never sees a half-written file, a killed writer leaves the old one.

Files and folders get the modes the user's umask gives (normally 0644 / 0755), as ``open`` and
``mkdir`` would: ``tempfile`` creates them private (0600 / 0700), and so does safetensors (0.8) for
every weights file, which would leave published stages unreadable to a team sharing a hub folder.
``apply_umask`` gives a whole folder the modes its files would have had.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (/proc), else set and restored."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def apply_umask(folder: str | Path) -> None:
    """chmod ``folder`` and everything in it to 0666 / 0777 minus the umask (executables keep x bits)."""
    mask = current_umask()
    root = Path(folder)
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        executable = path.is_dir() or path.stat().st_mode & 0o111
        path.chmod((0o777 if executable else 0o666) & ~mask)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks so multi-GB weights do not fill memory."""

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def atomic_publish_dir(source: str | Path, dest: str | Path, ignore=None) -> Path:
    """Copy the folder ``source`` to ``dest`` so that ``dest`` is either the old or the complete new copy.

    The copy is built in a hidden sibling folder and moved in with ``os.replace``. A folder cannot
    replace a non-empty folder in one rename, so an existing ``dest`` is first renamed aside and
    removed after the swap: a reader may briefly find no ``dest``, never a partial one.
    ``ignore`` is passed to ``shutil.copytree`` (e.g. ``shutil.ignore_patterns(".*")``).
    """

    source, dest = Path(source), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    try:
        shutil.copytree(source, staging, ignore=ignore, dirs_exist_ok=True)
        apply_umask(staging)
        if dest.exists():
            old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".old"))
            os.replace(dest, old / dest.name)
            os.replace(staging, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest
