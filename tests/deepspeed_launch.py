"""The real ``deepspeed`` command with CPU ranks, as every multi-rank test runs it.

Each launch gets a free port (other runs on the machine may hold DeepSpeed's default 29500), fails
fast on a stale op-build lock instead of hanging, and fails if it leaves DeepSpeed's shared-memory
all-reduce buffers behind (66 MB per rank; see docs/deepspeed.md, "CPU runs").
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hf_itt.config.deepspeed import SHM_BUFFER_PREFIX, SHM_DIR

REPO_ROOT = Path(__file__).resolve().parents[1]
CPU_ENV = {
    "DS_ACCELERATOR": "cpu",
    "HF_HUB_OFFLINE": "1",
    "OMP_NUM_THREADS": "1",  # one thread per rank: the ranks share the machine's cores
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONUNBUFFERED": "1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fail_on_stale_build_lock(max_age_s: float = 1200) -> None:
    """A killed op build leaves ``<extension dir>/<op>/lock`` behind and every later run waits on it forever."""
    from torch.utils.cpp_extension import get_default_build_root

    for lock in Path(get_default_build_root()).glob("*/*/lock"):
        if time.time() - lock.stat().st_mtime > max_age_s:
            pytest.fail(f"stale DeepSpeed op build lock {lock} (a build was killed); delete it and rerun")


def launch(
    script: Path, *args: str, ranks: int = 2, env: dict | None = None, timeout: int = 900
) -> subprocess.CompletedProcess:
    """``deepspeed --num_gpus <ranks> script args`` on CPU; fails the test with the log tail on error."""
    fail_on_stale_build_lock()
    port = free_port()
    # the launcher of this interpreter's environment: no activated venv or PATH entry needed
    launcher = str(Path(sys.executable).with_name("deepspeed"))
    command = [launcher, "--num_gpus", str(ranks), "--master_port", str(port), str(script), *args]
    env = {**os.environ, **CPU_ENV, **(env or {})}
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(f"deepspeed launch failed ({result.returncode}):\n{(result.stdout + result.stderr)[-6000:]}")
    leaked = list(SHM_DIR.glob(f"{SHM_BUFFER_PREFIX}_*_{port}_*"))
    assert not leaked, f"the launch left DeepSpeed's shared-memory buffers behind: {leaked}"
    return result
