"""Locks that keep concurrent runs from clobbering each other (``filelock``: an OS lock on a file,
released by the kernel when its process dies, so a killed run never leaves a stale lock behind).

``run_lock(run_dir, wait)``: one run per run folder. Two runs on one folder with different settings
would move each other's live Trainer folder aside and resume each other's checkpoints; the second
one fails at once, naming the holder (pid, host, start time, command: written next to the lock), or
queues behind it with ``wait=True`` (``--wait-for-lock``).

``stage_lock(hub_root, stage_hash, wait)``: one trainer per stage hash among every run that shares a
hub folder (``hub.local_root``). A run about to train a stage takes its lock; another run that needs
the same stage waits for it (``wait=True``), then finds it finished and reuses it instead of training
the same weights twice. The context manager yields whether it had to wait, i.e. whether the caller
should look for a finished stage again.

The locks need a filesystem with working ``flock`` (local disks, most cluster filesystems; not
every NFS setup).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from hf_itt.errors import LockError
from hf_itt.fileio import atomic_write_text

logger = logging.getLogger(__name__)

RUN_LOCK_NAME = ".hf_itt.lock"
STAGE_LOCK_DIR = ".locks"
HOLDER_SUFFIX = ".holder.json"


WAIT_HINT = "wait for it to finish, or rerun with --wait-for-lock to start when it does"


@contextmanager
def run_lock(run_dir: str | Path, wait: bool = False, fix: str = WAIT_HINT) -> Iterator[bool]:
    """Hold the lock of ``run_dir`` (created if needed) for the body; yields whether it waited. ``fix``
    ends the message when another process holds it and ``wait`` is False."""
    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)

    def busy(holder: str) -> str:
        return f"run folder {folder} is in use by another hf_itt run ({holder}); {fix}"

    with held(folder / RUN_LOCK_NAME, wait, busy, waiting=f"waiting for run folder {folder}") as waited:
        yield waited


@contextmanager
def stage_lock(hub_root: str | Path, stage_hash: str, wait: bool = True, stage: str = "") -> Iterator[bool]:
    """Hold the lock of ``stage_hash`` under ``hub_root``; yields True when another process held it first
    (it may have finished the stage meanwhile: look for it again before training)."""
    folder = Path(hub_root) / STAGE_LOCK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    name = f"stage {stage} (hash {stage_hash})" if stage else f"stage hash {stage_hash}"

    def busy(holder: str) -> str:
        return (
            f"{name} is being trained by another run sharing {hub_root} ({holder}); rerun when it has "
            f"finished and the stage will be reused"
        )

    with held(
        folder / f"{stage_hash}.lock",
        wait,
        busy,
        waiting=f"waiting for {name}: another run is training it; it will be reused when done",
    ) as waited:
        yield waited


@contextmanager
def held(path: Path, wait: bool, busy: Callable[[str], str], waiting: str) -> Iterator[bool]:
    lock = FileLock(str(path))
    waited = False
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise LockError(busy(describe_holder(path))) from None
        print(f"{waiting} ({describe_holder(path)})", file=sys.stderr, flush=True)
        lock.acquire()
        waited = True
    holder_file = path.with_name(path.name + HOLDER_SUFFIX)
    try:
        write_holder(holder_file)
        yield waited
    finally:
        holder_file.unlink(missing_ok=True)
        lock.release()


def write_holder(path: Path) -> None:

    atomic_write_text(
        path,
        json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python",
            }
        ),
    )


def read_holder(lock_path: str | Path) -> dict | None:
    """What the process holding ``lock_path`` wrote about itself (None if it has not written it yet)."""
    try:
        data = json.loads(Path(str(lock_path) + HOLDER_SUFFIX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe_holder(lock_path: str | Path) -> str:
    holder = read_holder(lock_path)
    if holder is None:
        return "a process that has not recorded itself yet"
    return (
        f"pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')}: "
        f"{holder.get('command')}"
    )


__all__ = ["run_lock", "stage_lock", "read_holder", "describe_holder", "RUN_LOCK_NAME"]
