"""A real full disk: a 30 MB tmpfs, filled up to a chosen number of free bytes.

Skipped, with the reason, where the test cannot mount one (it needs root or CAP_SYS_ADMIN).
torch's zip writer and safetensors each get the disk full under them, on their own and inside a
real run, and the run ends with the documented one-line "no space left" message; after space is
freed, the same command resumes and finishes.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from hf_itt.cli import RESUME_HINT, environment_message, main
from hf_itt.hub.manifest import verify_checkpoint
from hf_itt.write_errors import as_disk_full
from tests.one_stage_config import one_stage_config, write_config

pytestmark = pytest.mark.slow


@pytest.fixture
def tmpfs(tmp_path):
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", str(mount)], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as err:
        pytest.skip(f"cannot mount a tmpfs to fill up ({err}); run as root to test a real full disk")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up ({done.stderr.strip()}); run as root to test a real full disk")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def fill_leaving(mount: Path, room: int) -> Path:
    """Fill ``mount`` so that ``room`` bytes stay free."""
    stats = os.statvfs(mount)
    filler = mount / f"filler-{uuid.uuid4().hex}"
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(stats.f_bavail * stats.f_frsize - room, 0))
    return filler


def expected(folder: Path) -> str:
    return (
        f"hf_itt error: no space left on the device while writing {folder} (No space left on device): free "
        f"disk space or point output_dir (and HF_HOME for caches) at a larger disk, then {RESUME_HINT}"
    )


def test_torch_save_on_a_full_disk(tmpfs):
    import torch

    fill_leaving(tmpfs, 64 * 1024)
    with pytest.raises(RuntimeError) as raised:
        torch.save({"weights": torch.zeros(200_000)}, tmpfs / "optimizer.pt")
    assert "unexpected pos" in str(raised.value) or "write failed" in str(raised.value)
    error = as_disk_full(raised.value, [tmpfs / "run"])
    assert error.errno == errno.ENOSPC and error.filename == str(tmpfs / "run")
    assert f"hf_itt error: {environment_message(error)}" == expected(tmpfs / "run")


def test_safetensors_on_a_full_disk(tmpfs):
    import torch
    from safetensors.torch import save_file

    fill_leaving(tmpfs, 64 * 1024)
    with pytest.raises(Exception) as raised:
        save_file({"weights": torch.zeros(200_000)}, str(tmpfs / "model.safetensors"))
    assert type(raised.value).__name__ == "SafetensorError" and "os error 28" in str(raised.value)
    error = as_disk_full(raised.value, [tmpfs])
    assert error.errno == errno.ENOSPC and f"hf_itt error: {environment_message(error)}" == expected(tmpfs)


def test_a_torch_write_failure_with_room_left_is_not_called_a_full_disk(tmp_path, monkeypatch):
    """torch's message does not say why it failed: with room on every disk of the run it is reported as
    a write failure to check, not as a full disk."""
    from types import SimpleNamespace

    from hf_itt.cli import write_failures
    from hf_itt.errors import CheckpointError

    monkeypatch.setattr("hf_itt.write_errors.nearly_full", lambda folder: False)
    config = SimpleNamespace(
        run_dir=tmp_path / "run", hub=SimpleNamespace(local_root="hub"), resolve_path=lambda path: str(tmp_path / path)
    )
    failure = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    assert as_disk_full(failure, [tmp_path]) is None
    with pytest.raises(CheckpointError) as raised, write_failures([config]):
        raise failure
    assert str(raised.value) == (
        "torch could not write a checkpoint ([enforce fail at inline_container.cc:672] . "
        "unexpected pos 576 vs 534): check that the disk of output_dir is not full or over "
        f"quota, then {RESUME_HINT}"
    )


def one_stage(folder: Path) -> Path:
    return write_config(folder / "experiment.yaml", one_stage_config("disk-full", 4))


def run(config: Path, checkpoint: Path, root: Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(
        [
            "run",
            "--config",
            str(config),
            "--no-report",
            f"model.name_or_path={checkpoint}",
            f"output_dir={root}/run",
            f"hub.local_root={root}/hub",
        ]
    )
    captured = capsys.readouterr()
    return code, captured.err


@pytest.fixture(scope="module")
def sizes(tiny_checkpoint, tmp_path_factory):
    """Sizes of the first Trainer checkpoint's weights and optimizer state, from a run on a normal disk."""
    root = tmp_path_factory.mktemp("disk-full-reference")
    assert (
        main(
            [
                "run",
                "--config",
                str(one_stage(root)),
                "--no-report",
                f"model.name_or_path={tiny_checkpoint}",
                f"output_dir={root}/run",
                f"hub.local_root={root}/hub",
            ]
        )
        == 0
    )
    first = root / "run" / "stages" / "nli" / "trainer" / "checkpoint-1"
    return (first / "model.safetensors").stat().st_size, (first / "optimizer.pt").stat().st_size


SLACK = 64 * 1024  # the small files written before the first checkpoint (lock, markers), in 4 KiB pages


@pytest.mark.parametrize("writer", ["safetensors", "torch"])
def test_a_run_that_fills_the_disk_ends_with_one_line_and_resumes_once_freed(
    writer, sizes, tiny_checkpoint, tmpfs, tmp_path, capsys
):
    weights, optimizer = sizes
    assert weights // 2 > SLACK  # the weights cannot fit in the room left for the safetensors case
    room = SLACK + (weights // 2 if writer == "safetensors" else weights + optimizer // 2)
    config = one_stage(tmp_path)
    filler = fill_leaving(tmpfs, room)
    code, err = run(config, tiny_checkpoint, tmpfs, capsys)
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("hf_itt error:")] == [expected(tmpfs / "run")], err
    assert code == 2
    torn = tmpfs / "run" / "stages" / "nli" / "trainer" / "checkpoint-1"
    assert (torn / "optimizer.pt").exists() == (writer == "torch")
    filler.unlink()  # space freed: the same command resumes past the torn checkpoint and finishes
    code, err = run(config, tiny_checkpoint, tmpfs, capsys)
    assert code == 0, err[-3000:]
    verify_checkpoint(tmpfs / "run" / "stages" / "nli" / "checkpoint")
    shutil.rmtree(tmpfs / "run")
