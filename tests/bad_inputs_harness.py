"""Shared by the bad-input catalogue (tests/test_bad_inputs*.py): a finished run to break things in,
the real CLI in process, and the exact-message assertion.

Expected messages are written out in full; the parts that depend on where the test runs are markers:
``<root>`` (this case's copy of the run folder's parent), ``<tmp>`` (the case's tmp_path), ``<bad>``
(tests/fixtures/bad_inputs), ``<data>`` (tests/fixtures/data), ``<model>`` (the tiny base model),
``<pid>`` / ``<host>`` (this process) and ``<known tasks>`` (the registry's task list).
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest
import yaml

from hf_itt.cli import main
from hf_itt.hub.manifest import verify_checkpoint

BAD = Path(__file__).parent / "fixtures" / "bad_inputs"
DATA = Path(__file__).parent / "fixtures" / "data"
TRAINING = {
    "per_device_train_batch_size": 2,
    "max_steps": 1,
    "save_steps": 1,
    "learning_rate": 1.0e-3,
    "use_cpu": True,
    "disable_tqdm": True,
}
NLI = {"name": "nli", "tasks": [{"name": "mnli", "data_files": {"train": str(DATA / "mnli" / "train.jsonl")}}]}


class YamlText(str):
    """A case given as YAML text (duplicate keys cannot be written as a dict)."""


def experiment(**fields) -> dict:
    """A valid one-stage experiment (stage `nli`), with ``fields`` replacing top-level keys."""
    config = {
        "experiment": "bad-inputs",
        "seed": 3,
        "model": {"name_or_path": "set-by-run"},
        "defaults": {"training": dict(TRAINING)},
        "stages": [NLI],
        "hub": {"publisher": "local"},
    }
    config.update(fields)
    return config


def with_training(**values) -> dict:
    return experiment(defaults={"training": {**TRAINING, **values}})


def with_stage(**fields) -> dict:
    return experiment(stages=[{**NLI, **fields}])


def then_stage(**stage) -> dict:
    """The finished stage `nli`, then a second stage ``stage`` (named `bad`)."""
    return experiment(stages=[NLI, {"name": "bad", **stage}])


def task(name: str, **data_files) -> dict:
    return {"tasks": [{"name": name, "data_files": {role: str(path) for role, path in data_files.items()}}]}


def then_target(task_name: str, **targets) -> dict:
    return experiment(targets={"tasks": [task_name], **targets})


class Runner:
    """Runs `hf-itt run` on a config (a dict written to YAML, YAML text, or a fixture file)."""

    def __init__(self, root: Path, checkpoint: Path, capsys, tmp_path: Path):
        self.root, self.checkpoint, self.capsys, self.tmp_path = root, checkpoint, capsys, tmp_path
        self.stage = root / "run" / "stages" / "nli" / "checkpoint"
        self.stamp = (self.stage / "model.safetensors").stat().st_mtime_ns

    def assert_stage_intact(self) -> None:
        """The finished stage still verifies and was not rewritten."""
        verify_checkpoint(self.stage)
        assert (self.stage / "model.safetensors").stat().st_mtime_ns == self.stamp

    def config_file(self, config) -> Path:
        path = self.tmp_path / "experiment.yaml"
        if isinstance(config, YamlText):
            path.write_text(config, encoding="utf-8")
        elif isinstance(config, (str, Path)):
            return Path(config)
        else:
            path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    def run(self, config, *overrides: str, command: str = "run") -> tuple[int, str]:
        argv = [
            command,
            "--config",
            str(self.config_file(config)),
            "--no-report",
            f"model.name_or_path={self.checkpoint}",
            f"output_dir={self.root}/run",
            f"hub.local_root={self.root}/hub",
            *(self.fill(item) for item in overrides),
        ]
        return self.call(argv)

    def call(self, argv: list[str]) -> tuple[int, str]:
        self.capsys.readouterr()
        code = main(argv)
        captured = self.capsys.readouterr()
        return code, captured.err + captured.out

    def fill(self, text: str) -> str:
        from hf_itt.tasks.registry import list_tasks

        for marker, value in (
            ("<root>", self.root),
            ("<tmp>", self.tmp_path),
            ("<bad>", BAD),
            ("<data>", DATA),
            ("<model>", self.checkpoint),
            ("<pid>", os.getpid()),
            ("<host>", socket.gethostname()),
            ("<known tasks>", ", ".join(list_tasks())),
        ):
            text = text.replace(marker, str(value))
        return text

    def assert_fails(self, code: int, output: str, expected: str) -> None:
        """Exit 2, no traceback, and exactly one line: `hf_itt error: <expected>`."""
        assert code == 2, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        errors = [line for line in output.splitlines() if line.startswith("hf_itt error:")]
        assert errors == [f"hf_itt error: {self.fill(expected)}"], output[-3000:]


@pytest.fixture(scope="module")
def finished(tiny_checkpoint, tmp_path_factory):
    """A run folder whose stage `nli` finished; every case reuses it (same stage hash) before failing."""
    root = tmp_path_factory.mktemp("bad-inputs")
    config = root / "experiment.yaml"
    config.write_text(yaml.safe_dump(experiment()), encoding="utf-8")
    code = main(
        [
            "run",
            "--config",
            str(config),
            "--no-report",
            f"model.name_or_path={tiny_checkpoint}",
            f"output_dir={root}/run",
            f"hub.local_root={root}/hub",
        ]
    )
    assert code == 0
    stage = root / "run" / "stages" / "nli" / "checkpoint"
    verify_checkpoint(stage)
    return root, stage


@pytest.fixture
def runner(finished, tiny_checkpoint, capsys, tmp_path):
    """A private copy of the finished run per case, so no case sees what another left behind."""
    root = tmp_path / "root"
    shutil.copytree(finished[0], root)
    return Runner(root, tiny_checkpoint, capsys, tmp_path)
