"""Rank helpers that work before, during and after a Trainer run, under any launcher.

deepspeed, torchrun and accelerate all export RANK / WORLD_SIZE; a process group exists only once a
Trainer (or DeepSpeed) created it, so ``barrier`` is a no-op before that and in single-process runs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Only rank 0 writes manifests, publishes and reports."""
    return rank() == 0


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def wait_for_file(path, timeout: float = 7200.0, poll: float = 1.0) -> None:
    """Block until rank 0 has written ``path`` (before any process group exists, no barrier is possible)."""

    deadline = time.time() + timeout
    while not Path(path).exists():
        if time.time() > deadline:
            raise TimeoutError(f"rank {rank()} waited {timeout:.0f}s for {path} from rank 0")
        time.sleep(poll)
