"""Resuming skips a damaged newest checkpoint (naming the file), and --dry-run says "resume" only
when the run will resume."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
from safetensors.numpy import save_file

from hf_itt.cli import main
from hf_itt.pipeline.checkpoints import damaged_file, last_checkpoint
from tests.one_stage_config import one_stage_config, write_config


# ------------------------------------------------------------------------- file checks, no training
def checkpoint_folder(root: Path, step: int) -> Path:
    import torch

    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    torch.save({"state": {0: {"exp_avg": torch.ones(4096)}}}, folder / "optimizer.pt")
    import numpy as np

    save_file({"w": np.ones(1024, dtype=np.float32)}, str(folder / "model.safetensors"))
    return folder


@pytest.mark.parametrize(
    "damage, expected",
    [
        (
            lambda f: os.truncate(f / "optimizer.pt", (f / "optimizer.pt").stat().st_size // 2),
            "optimizer.pt is damaged (not a complete torch archive: File is not a zip file; truncated?)",
        ),
        (
            lambda f: os.truncate(f / "model.safetensors", 2000),
            "model.safetensors is damaged (its tensors need 4168 bytes but the file has 2000; truncated?)",
        ),
        (
            lambda f: (f / "model.safetensors").write_bytes(b"\x01"),
            "model.safetensors is damaged (1 bytes, shorter than a safetensors header)",
        ),
        (lambda f: (f / "trainer_state.json").write_text('{"global_st'), "trainer_state.json is damaged (unreadable: "),
        (lambda f: (f / "trainer_state.json").unlink(), "trainer_state.json is missing (the save was interrupted)"),
    ],
    ids=["torn-optimizer", "torn-safetensors", "one-byte-safetensors", "torn-json", "no-trainer-state"],
)
def test_each_torn_file_is_named(tmp_path, damage, expected):
    folder = checkpoint_folder(tmp_path, 2)
    assert damaged_file(folder) is None
    damage(folder)
    assert damaged_file(folder).startswith(f"{folder}/{expected.split(' is ')[0]} is ")
    assert expected in damaged_file(folder)


def test_the_newest_complete_checkpoint_is_chosen(tmp_path, caplog):
    for step in (1, 2, 3):
        checkpoint_folder(tmp_path, step)
    os.truncate(tmp_path / "checkpoint-3" / "optimizer.pt", 100)
    (tmp_path / "checkpoint-2" / "trainer_state.json").unlink()
    with caplog.at_level(logging.WARNING):
        assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-1")
    assert f"{tmp_path}/checkpoint-3/optimizer.pt is damaged" in caplog.text
    assert "resuming from checkpoint-2 instead" in caplog.text and "resuming from checkpoint-1 instead" in caplog.text
    os.truncate(tmp_path / "checkpoint-1" / "optimizer.pt", 100)
    assert last_checkpoint(tmp_path) is None


# ------------------------------------------------------------------------------- real runs, resumed
def one_stage(folder: Path) -> Path:
    return write_config(folder / "experiment.yaml", one_stage_config("fallback", 11, max_steps=3))


def run(config: Path, checkpoint: Path, root: Path, *extra: str) -> int:
    return main(
        [
            "run",
            "--config",
            str(config),
            "--no-report",
            f"model.name_or_path={checkpoint}",
            f"output_dir={root}/run",
            f"hub.local_root={root}/hub",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def uninterrupted(tiny_checkpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("fallback")
    config = one_stage(root)
    assert run(config, tiny_checkpoint, root / "whole") == 0
    return config, root / "whole"


def killed_copy(whole: Path, tmp_path: Path) -> Path:
    """The run as a kill in the last steps leaves it: trainer/ checkpoints only, the stage not exported."""
    shutil.copytree(whole / "run", tmp_path / "run")
    stage = tmp_path / "run" / "stages" / "nli"
    for name in ("checkpoint", "full"):
        shutil.rmtree(stage / name)
    return stage


def test_a_truncated_optimizer_state_falls_back_to_the_previous_checkpoint(
    uninterrupted, tiny_checkpoint, tmp_path, caplog, capsys
):
    config, whole = uninterrupted
    stage = killed_copy(whole, tmp_path)
    for step in (3, 2):  # the newest two torn: the disk filled up while saving them
        optimizer = stage / "trainer" / f"checkpoint-{step}" / "optimizer.pt"
        os.truncate(optimizer, optimizer.stat().st_size // 3)
    capsys.readouterr()
    assert run(config, tiny_checkpoint, tmp_path, "--dry-run") == 0
    assert "resume  [checkpoint-1]" in capsys.readouterr().out
    with caplog.at_level(logging.WARNING):
        assert run(config, tiny_checkpoint, tmp_path) == 0
    assert f"{stage}/trainer/checkpoint-3/optimizer.pt is damaged" in caplog.text
    assert f"{stage}/trainer/checkpoint-2/optimizer.pt is damaged" in caplog.text
    weights = "checkpoint/model.safetensors"
    assert (stage / weights).read_bytes() == (whole / "run" / "stages" / "nli" / weights).read_bytes()


def test_dry_run_says_resume_only_when_the_run_resumes(uninterrupted, tiny_checkpoint, tmp_path, capsys):
    config, whole = uninterrupted
    killed_copy(whole, tmp_path)

    def plan(*extra: str) -> str:
        capsys.readouterr()
        assert run(config, tiny_checkpoint, tmp_path, "--dry-run", *extra) == 0
        stage_plan = capsys.readouterr().out.split("protocol:")[0]  # the stage lines, not the protocol table
        (line,) = [line for line in stage_plan.splitlines() if " nli " in line]
        return line

    assert plan().endswith("resume  [checkpoint-3]")
    assert plan("--force").endswith(" train")  # --force starts afresh
    assert plan("defaults.training.learning_rate=2e-3").endswith(" train")  # other settings: set aside
    for folder in (tmp_path / "run" / "stages" / "nli" / "trainer").glob("checkpoint-*"):
        (folder / "trainer_state.json").unlink()
    assert plan().endswith(" train")  # nothing complete to resume
