"""Disk-full failures of torch and safetensors, recognised as what they are.

Python's own writes raise ``OSError(ENOSPC)`` on a full disk, which the CLI reports in one line. The
two libraries that write checkpoints do not: safetensors raises ``SafetensorError("... No space left
on device (os error 28)")`` and torch's zip writer a bare ``RuntimeError("[enforce fail at
inline_container.cc:...] . unexpected pos 576 vs 534")`` that names neither the file nor the cause.
``as_disk_full`` turns both into the ``OSError`` they stand for; torch's message says nothing of the
cause, so it counts as a full disk only when one of the run's folders is (nearly) full.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterable
from pathlib import Path

SAFETENSORS_NO_SPACE = re.compile(r"No space left on device|os error 28|Disk quota exceeded|os error 122")
TORCH_WRITE_FAILED = re.compile(r"unexpected pos \d+ vs \d+|PytorchStreamWriter failed writing|file write failed")
NEARLY_FULL_BYTES = 256 * 2**20  # free space below this, or below NEARLY_FULL_SHARE of the disk, is "full"
NEARLY_FULL_SHARE = 0.01


def as_disk_full(err: BaseException, folders: Iterable[str | Path]) -> OSError | None:
    """``OSError(ENOSPC, ..., folder)`` if ``err`` is a torch/safetensors write that failed on a full disk."""
    text = str(err)
    full = next((str(folder) for folder in folders if nearly_full(folder)), None)
    if type(err).__name__ == "SafetensorError" and SAFETENSORS_NO_SPACE.search(text):
        code = errno.EDQUOT if "122" in text or "quota" in text.lower() else errno.ENOSPC
        return OSError(code, os.strerror(code), full)
    if isinstance(err, RuntimeError) and TORCH_WRITE_FAILED.search(text) and full is not None:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), full)
    return None


def nearly_full(folder: str | Path) -> bool:
    """Whether the disk holding ``folder`` (or its nearest existing parent) has next to no room left."""
    path = Path(folder)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        stats = os.statvfs(path)
    except OSError:
        return False
    free, total = stats.f_bavail * stats.f_frsize, stats.f_blocks * stats.f_frsize
    return free < NEARLY_FULL_BYTES or (total > 0 and free < NEARLY_FULL_SHARE * total)


def is_torch_write_failure(err: BaseException) -> bool:
    return isinstance(err, RuntimeError) and bool(TORCH_WRITE_FAILED.search(str(err)))


__all__ = ["as_disk_full", "nearly_full", "is_torch_write_failure"]
