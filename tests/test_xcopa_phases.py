"""XTREME-R's XCOPA recipe: one target job trained in phases (SIQA, then COPA on the same model and head),
handed over through disk, resumable phase by phase, then scored zero-shot; through the real CLI."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hf_itt.config.loading import load_experiment
from hf_itt.pipeline.jobs import build_jobs

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = Path(__file__).parent / "fixtures" / "experiments" / "xcopa_phases.yaml"


def xcopa_job(tmp_path, *overrides):
    config = load_experiment(
        EXPERIMENT, ["model.name_or_path=xlm-roberta-base", f"output_dir={tmp_path}/run", *overrides]
    )
    [job] = build_jobs(config)
    return job


def test_the_xcopa_target_trains_siqa_then_copa_and_its_hash_covers_the_order(tmp_path):
    job = xcopa_job(tmp_path)
    assert [phase.name for phase in job.phases()] == ["phase1-siqa", "phase2-copa"]
    assert [phase.folder for phase in job.phases()] == [
        job.trainer_dir / "phase1-siqa",
        job.trainer_dir / "phase2-copa",
    ]
    assert [
        (task["name"], task["options"]["trained_on"], task["options"]["phase"]) for task in job.identity["tasks"]
    ] == [("xcopa", "siqa", 1), ("xcopa", "copa", 2)]

    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    (spec_dir / "xcopa.yaml").write_text("xcopa: {extends: xcopa, override: true, extra_train_tasks: []}\n")
    copa_only = xcopa_job(tmp_path, f"task_dirs=[{spec_dir}]")
    assert not copa_only.phased and copa_only.stage_hash != job.stage_hash
    assert [task["options"]["trained_on"] for task in copa_only.identity["tasks"]] == ["copa"]


def run_cli(tmp_path, checkpoint, *extra):
    command = [
        sys.executable,
        str(REPO / "run_itt.py"),
        "--config",
        str(EXPERIMENT),
        "--no-report",
        f"model.name_or_path={checkpoint}",
        f"output_dir={tmp_path}/run",
        *extra,
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=900,
        env={**__import__("os").environ, "HF_ITT_TRACE_TASKS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def record(phase_dir: Path) -> dict:
    return json.loads((phase_dir / "trainer" / "phase.json").read_text())


@pytest.mark.slow
def test_xcopa_runs_siqa_then_copa_on_one_model_and_resumes_by_phase(tiny_checkpoint, tmp_path):
    plan = run_cli(tmp_path, tiny_checkpoint, "--dry-run")
    assert "phases: phase1-siqa -> phase2-copa" in plan

    log = run_cli(tmp_path, tiny_checkpoint)
    target = tmp_path / "run" / "targets" / "xcopa"
    first, second = target / "trainer" / "phase1-siqa", target / "trainer" / "phase2-copa"
    assert log.index("phase1-siqa (1/2, on siqa) training") < log.index("phase2-copa (2/2, on copa) training")
    siqa, copa = record(first), record(second)
    assert (siqa["trained_on"], copa["trained_on"]) == (["siqa"], ["copa"])
    # the second phase starts from exactly the weights the first ended with (encoder and xcopa head)
    assert copa["started_from"] == str(first / "full")
    assert siqa["weights"]["start"] != siqa["weights"]["end"] == copa["weights"]["start"] != copa["weights"]["end"]
    for phase in (first, second):  # each phase is its own Trainer run, on the one xcopa head
        trace = json.loads((phase / "trainer" / "task_trace.rank0.json").read_text())
        assert trace["task_names"] == ["xcopa"] and len(trace["tasks"]) == 2
    manifest = json.loads((target / "checkpoint" / "stage_manifest.json").read_text())
    assert [phase["trained_on"] for phase in manifest["config"]["phases"]] == [["siqa"], ["copa"]]
    result = json.loads((tmp_path / "run" / "results" / "xcopa.validation.json").read_text())
    assert result["stage_hash"] == manifest["stage_hash"] and 0 <= result["languages"]["et"]["accuracy"] <= 100

    # interrupted in the second phase: the first is skipped, the second resumes from its Trainer checkpoint
    shutil.rmtree(target / "checkpoint")
    shutil.rmtree(second / "full")
    (second / "trainer" / "phase.json").unlink()
    shutil.rmtree(second / "trainer" / "checkpoint-2")
    assert "resume  [phase2-copa/checkpoint-1]" in run_cli(tmp_path, tiny_checkpoint, "--dry-run")
    rerun = run_cli(tmp_path, tiny_checkpoint)
    assert "phase1-siqa already finished" in rerun and "phase1-siqa (1/2" not in rerun
    assert f"phase2-copa (2/2, on copa) resuming from {second / 'trainer' / 'checkpoint-1'}" in rerun
    assert record(first) == siqa and record(second)["weights"]["start"] == siqa["weights"]["end"]
    assert (target / "checkpoint" / "stage_manifest.json").is_file()
