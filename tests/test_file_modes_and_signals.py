"""Files and folders get the user's umask (a team can read a shared hub folder); SIGTERM ends a run
like Ctrl-C: the "rerun to resume" line, no traceback, its lock released."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from hf_itt.cli import RESUME_HINT
from hf_itt.fileio import atomic_publish_dir, atomic_write_text
from hf_itt.hub.local import LocalPublisher
from hf_itt.hub.manifest import StageManifest, finish_manifest
from hf_itt.hub.publishers import publish_stage
from hf_itt.pipeline.locks import RUN_LOCK_NAME, read_holder


@pytest.fixture(params=[0o022, 0o002, 0o077], ids=["umask-022", "umask-002", "umask-077"])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def modes(root: Path) -> dict[str, int]:
    return {str(path.relative_to(root)) or ".": stat.S_IMODE(path.stat().st_mode) for path in [root, *root.rglob("*")]}


def test_atomic_writes_follow_the_umask(tmp_path, umask):
    path = atomic_write_text(tmp_path / "a" / "file.json", "{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "sub" / "f.txt").write_text("x")
    dest = atomic_publish_dir(tmp_path / "src", tmp_path / "published")
    assert stat.S_IMODE(dest.stat().st_mode) == 0o777 & ~umask
    atomic_publish_dir(tmp_path / "src", tmp_path / "published")  # republish over an existing folder
    assert stat.S_IMODE(dest.stat().st_mode) == 0o777 & ~umask


def test_a_published_stage_follows_the_umask(tmp_path, umask):
    stage = tmp_path / "stage"
    stage.mkdir()
    save_file({"w": np.ones(8, dtype=np.float32)}, str(stage / "model.safetensors"))
    finish_manifest(stage, StageManifest(experiment="e", stage="s", stage_hash="h"))
    publish_stage(stage, LocalPublisher(tmp_path / "hub"), "team/e-s")
    published = LocalPublisher(tmp_path / "hub").path_for("team/e-s")
    assert_umask_modes(published, umask)


def assert_umask_modes(root: Path, umask: int) -> None:
    found = modes(root)
    wrong = {
        name: oct(mode) for name, mode in found.items() if mode != (0o777 if (root / name).is_dir() else 0o666) & ~umask
    }
    assert found and not wrong, wrong


def test_a_run_exports_and_publishes_with_the_umask(tiny_checkpoint, tmp_path):
    """safetensors writes its files 0600; the exported stage and its published copy must not keep that."""
    import yaml

    from hf_itt.cli import main

    data = Path(__file__).parent / "fixtures" / "data" / "mnli" / "train.jsonl"
    config = tmp_path / "experiment.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "experiment": "modes",
                "hub": {"publisher": "local"},
                "defaults": {
                    "training": {
                        "per_device_train_batch_size": 2,
                        "max_steps": 1,
                        "use_cpu": True,
                        "disable_tqdm": True,
                    }
                },
                "stages": [{"name": "nli", "tasks": [{"name": "mnli", "data_files": {"train": str(data)}}]}],
            }
        )
    )
    previous = os.umask(0o002)  # a team's shared folder
    try:
        assert (
            main(
                [
                    "run",
                    "--config",
                    str(config),
                    "--no-report",
                    f"model.name_or_path={tiny_checkpoint}",
                    f"output_dir={tmp_path}/run",
                    f"hub.local_root={tmp_path}/hub",
                ]
            )
            == 0
        )
    finally:
        os.umask(previous)
    assert_umask_modes(tmp_path / "run" / "stages" / "nli" / "checkpoint", 0o002)
    assert_umask_modes(LocalPublisher(tmp_path / "hub").path_for("local/modes-nli"), 0o002)


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_the_run_with_the_resume_line_and_frees_its_lock(tiny_checkpoint, tmp_path, signum, code):
    from tests.test_locks import Run, wait_until, write_config

    run_dir = tmp_path / "run"
    held = Run(tmp_path, "held", write_config(tmp_path), tiny_checkpoint, run_dir)
    wait_until(held.holding, "the run to hold its lock")
    assert read_holder(run_dir / RUN_LOCK_NAME)["pid"] == held.pid
    held.process.send_signal(signum)
    returncode, out, err = held.finish(timeout=120)
    assert returncode == code
    assert err.strip().splitlines()[-1] == f"interrupted; {RESUME_HINT}" and "Traceback" not in err
    assert read_holder(run_dir / RUN_LOCK_NAME) is None
