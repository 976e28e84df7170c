"""Rank helpers that work before, during and after a Trainer run, under any launcher.

deepspeed, torchrun and accelerate all export RANK / WORLD_SIZE; a process group exists only once a
Trainer (or DeepSpeed) created it, so ``barrier`` is a no-op before that and in single-process runs.
"""

from __future__ import annotations

import os


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
