"""Kill-anywhere, CI size (the full campaign: `python scripts/kill_anywhere.py --runs 20`).

- Two fresh runs of the tiny 3-stage chain in separate folders give identical weights and results.
- The chain SIGKILLed at three points (mid-training, mid-export, between two target evaluations) and
  rerun recovers exactly: same weights and results, nothing finished retrained, every checkpoint/
  folder verifies after every attempt, publishing and the hash index as in the uninterrupted run.
- The weak spots the campaign found, simulated deterministically in process (they failed before the
  stage runner handled them).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from hf_itt.cli import main
from hf_itt.hub.manifest import read_manifest
from tests.one_stage_config import one_stage_config, write_config

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def load_script():
    spec = importlib.util.spec_from_file_location("kill_anywhere", REPO / "scripts" / "kill_anywhere.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


ka = load_script()


@pytest.fixture(scope="module")
def reference(tiny_checkpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("kill-anywhere") / "reference"
    command_for = lambda folder: ka.chain_command(tiny_checkpoint, folder)  # noqa: E731
    ka.reference_run(command_for, root)
    return root, command_for


def test_fresh_runs_give_identical_weights_and_results(reference, tmp_path):
    root, command_for = reference
    attempt = ka.run_attempt(command_for(tmp_path), tmp_path, None, tmp_path / "run.log")
    assert attempt.returncode == 0, ka.tail(attempt.output, 20)
    assert len(ka.weight_files(tmp_path)) == 7 and set(ka.result_numbers(tmp_path)) == {
        "xnli.validation.json",
        "tatoeba.validation.json",
    }
    assert ka.compare_with_reference(root, tmp_path) == []


def test_killed_three_times_recovers_exactly(reference, tmp_path):
    root, command_for = reference
    kills = [
        ka.KillPoint("run/stages/joint/trainer", delay=0.2),  # training, before any checkpoint
        ka.KillPoint("run/stages/squad/checkpoint.partial"),  # exporting stage 2
        ka.KillPoint("run/results/xnli.validation.json"),
    ]  # between two target evaluations
    trial = ka.run_trial(ka.Trial(0, kills), command_for, root, tmp_path)
    assert trial.kills_done == 3 and len(trial.attempts) == 4, trial.line()
    assert trial.ok, trial.line()


def test_the_checks_catch_a_difference(reference, tmp_path):
    """The comparison is not vacuous: one changed number in a result file is reported."""
    root, _ = reference
    shutil.copytree(root, tmp_path / "copy")
    result = tmp_path / "copy" / "run" / "results" / "xnli.validation.json"
    data = json.loads(result.read_text())
    data["summary"]["mean_all"] += 1e-9
    result.write_text(json.dumps(data))
    assert ka.compare_with_reference(root, tmp_path / "copy") == [
        "results/xnli.validation.json: numbers differ at ['.summary.mean_all']"
    ]


# ------------------------------------------------------------- weak spots, simulated in process
def one_stage(folder: Path, **training) -> Path:
    return write_config(folder / "experiment.yaml", one_stage_config("ka-one", 11, **training))


def run_one(config: Path, checkpoint: Path, root: Path, *overrides: str) -> Path:
    code = main(
        [
            "run",
            "--config",
            str(config),
            "--no-report",
            f"model.name_or_path={checkpoint}",
            f"output_dir={root}/run",
            f"hub.local_root={root}/hub",
            *overrides,
        ]
    )
    assert code == 0
    return root / "run" / "stages" / "nli"


def same_weights(a: Path, b: Path) -> bool:
    return (a / "checkpoint" / "model.safetensors").read_bytes() == (
        b / "checkpoint" / "model.safetensors"
    ).read_bytes()


def killed_during_training(config, tiny_checkpoint, tmp_path) -> tuple[Path, Path]:
    """An uninterrupted run, and a copy of it as it was before the stage finished (trainer/ only)."""
    whole = run_one(config, tiny_checkpoint, tmp_path / "whole")
    shutil.copytree(tmp_path / "whole" / "run", tmp_path / "killed" / "run")
    killed = tmp_path / "killed" / "run" / "stages" / "nli"
    for name in ("checkpoint", "full"):
        shutil.rmtree(killed / name)
    return whole, killed


def test_a_half_written_trainer_checkpoint_is_not_resumed(tiny_checkpoint, tmp_path):
    config = one_stage(tmp_path)
    whole, killed = killed_during_training(config, tiny_checkpoint, tmp_path)
    # what SIGKILL during the save of checkpoint-2 leaves: the folder, half the weights, no trainer state
    saving = killed / "trainer" / "checkpoint-2"
    for name in ("trainer_state.json", "sampler_state.json", "optimizer.pt", "scheduler.pt", "rng_state.pth"):
        (saving / name).unlink()
    os.truncate(saving / "model.safetensors", (saving / "model.safetensors").stat().st_size // 2)
    rerun = run_one(config, tiny_checkpoint, tmp_path / "killed")
    assert same_weights(whole, rerun)


def test_a_truncated_sampler_state_is_not_resumed(tiny_checkpoint, tmp_path):
    config = one_stage(tmp_path)
    whole, killed = killed_during_training(config, tiny_checkpoint, tmp_path)
    sampler_state = killed / "trainer" / "checkpoint-2" / "sampler_state.json"
    sampler_state.write_text(sampler_state.read_text()[:20])  # SIGKILL during its write_text
    rerun = run_one(config, tiny_checkpoint, tmp_path / "killed")
    assert same_weights(whole, rerun)


def test_a_stage_killed_before_publishing_is_published_on_rerun(tiny_checkpoint, tmp_path, monkeypatch):
    config = one_stage(tmp_path)
    with monkeypatch.context() as killed:  # the export finished, then the process died
        killed.setattr("hf_itt.pipeline.index.record", lambda *args, **kwargs: None)
        killed.setattr("hf_itt.hub.publishers.AsyncPublisher.submit", lambda *args, **kwargs: None)
        stage = run_one(config, tiny_checkpoint, tmp_path)
    assert read_manifest(stage / "checkpoint").status == "finished"
    run_one(config, tiny_checkpoint, tmp_path)
    manifest = read_manifest(stage / "checkpoint")
    assert manifest.status == "published"
    assert (tmp_path / "hub" / "by-hash" / f"{manifest.stage_hash}.json").is_file()


def test_a_changed_configuration_does_not_resume_old_checkpoints(tiny_checkpoint, tmp_path):
    config = one_stage(tmp_path, max_steps=1)
    run_one(config, tiny_checkpoint, tmp_path / "same")
    changed = run_one(config, tiny_checkpoint, tmp_path / "same", "defaults.training.learning_rate=0.5")
    fresh = run_one(config, tiny_checkpoint, tmp_path / "fresh", "defaults.training.learning_rate=0.5")
    assert same_weights(changed, fresh)


def test_a_kill_between_health_restart_steps_keeps_the_attempt_count(tmp_path):
    """start_next_attempt moves trainer/ aside, then writes attempt.json: a kill in between must not
    make the rerun count that attempt again (and collide with the folder already set aside)."""
    from types import SimpleNamespace

    from hf_itt.pipeline.train import read_attempt

    job = SimpleNamespace(folder=tmp_path)  # a phase: the stage folder of a one-phase job
    assert read_attempt(job) == 0
    (tmp_path / "attempt.json").write_text(json.dumps({"attempt": 1}))
    (tmp_path / "trainer.attempt0").mkdir()
    assert read_attempt(job) == 1
    (tmp_path / "trainer.attempt1").mkdir()  # killed before attempt.json said 2
    assert read_attempt(job) == 2
