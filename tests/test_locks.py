"""Runs cannot clobber each other: run-folder and stage locks, exercised with real processes.

Process A takes the lock of its run folder, then waits inside its `prepare:` hook
(tests/fixtures/hooks/lock_gate.py) until the test opens the gate, so the race is deterministic:
  * B, started on the same folder with other settings, fails at once naming A, and moves nothing;
  * B with --wait-for-lock waits for A, then reuses the stage A trained;
  * C, in another run folder sharing the hub, waits for the lock of a stage being trained and reuses it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hf_itt.hub.manifest import read_manifest, verify_checkpoint
from hf_itt.pipeline.locks import RUN_LOCK_NAME, read_holder, run_lock, stage_lock
from tests.one_stage_config import one_stage_config
from tests.one_stage_config import write_config as write_yaml

REPO = Path(__file__).resolve().parents[1]
HOOKS = Path(__file__).parent / "fixtures" / "hooks"
pytestmark = pytest.mark.slow


def write_config(folder: Path, gated: bool = True) -> Path:
    config = one_stage_config("locks", 3)
    if gated:
        config["prepare"] = "lock_gate:wait_for_gate"
    return write_yaml(folder / ("gated.yaml" if gated else "plain.yaml"), config)


class Run:
    """`python run_itt.py` in its own process, output captured in files."""

    def __init__(self, tmp_path: Path, name: str, config: Path, checkpoint: Path, run_dir: Path, *extra: str):
        self.out, self.err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        self.gate = tmp_path / "gate"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), str(HOOKS)]),
            "HF_HUB_OFFLINE": "1",
            "HF_ITT_TEST_GATE": str(self.gate),
        }
        command = [
            sys.executable,
            str(REPO / "run_itt.py"),
            "--config",
            str(config),
            "--no-report",
            f"model.name_or_path={checkpoint}",
            f"output_dir={run_dir}",
            f"hub.local_root={tmp_path / 'hub'}",
            *extra,
        ]
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=err)

    @property
    def pid(self) -> int:
        return self.process.pid

    def holding(self) -> bool:
        return Path(f"{self.gate}.{self.pid}.holding").exists()

    def finish(self, timeout: float = 300) -> tuple[int, str, str]:
        code = self.process.wait(timeout=timeout)
        return code, self.out.read_text(), self.err.read_text()


def wait_until(condition, what: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_a_second_run_on_a_busy_folder_fails_at_once_naming_the_first(tiny_checkpoint, tmp_path):
    run_dir = tmp_path / "run"
    first = Run(tmp_path, "first", write_config(tmp_path), tiny_checkpoint, run_dir)
    try:
        wait_until(first.holding, "the first run to hold its lock")
        holder = read_holder(run_dir / RUN_LOCK_NAME)
        assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()
        second = Run(
            tmp_path, "second", write_config(tmp_path), tiny_checkpoint, run_dir, "defaults.training.learning_rate=2e-3"
        )
        code, out, err = second.finish(timeout=180)
        assert not first.process.poll(), "the first run must still be running"
        assert code == 2 and "Traceback" not in err
        assert err.strip().splitlines() == [
            f"hf_itt error: run folder {run_dir.resolve()} is in use by another hf_itt run (pid {first.pid} on host "
            f"{holder['host']}, started {holder['started']}: {holder['command']}); wait for it to finish, or rerun "
            f"with --wait-for-lock to start when it does"
        ]
    finally:
        first.gate.touch()
    code, out, err = first.finish()
    assert code == 0, err[-3000:]
    stage = run_dir / "stages" / "nli"
    manifest = verify_checkpoint(stage / "checkpoint")
    assert manifest.identity["training_args"]["learning_rate"] == 1e-3
    assert [p.name for p in stage.iterdir() if p.name.startswith("trainer.")] == []  # nothing moved aside
    assert read_holder(run_dir / RUN_LOCK_NAME) is None  # released


def test_wait_for_lock_queues_behind_the_first_run_then_reuses_its_stage(tiny_checkpoint, tmp_path):
    run_dir = tmp_path / "run"
    first = Run(tmp_path, "first", write_config(tmp_path), tiny_checkpoint, run_dir)
    try:
        wait_until(first.holding, "the first run to hold its lock")
        second = Run(tmp_path, "second", write_config(tmp_path), tiny_checkpoint, run_dir, "--wait-for-lock")
        wait_until(
            lambda: f"waiting for run folder {run_dir.resolve()}" in second.err.read_text(),
            "the second run to report that it waits",
        )
        assert f"(pid {first.pid} on host" in second.err.read_text()
        assert second.process.poll() is None and not second.holding()
    finally:
        first.gate.touch()
    assert first.finish()[0] == 0
    code, out, err = second.finish()
    assert code == 0, err[-3000:]
    assert "[itt] nli: reused" in out


def test_a_run_waits_for_a_stage_another_run_is_training_then_reuses_it(tiny_checkpoint, tmp_path):
    """The stage lock is held by this test process (as a run training the stage would hold it); the
    stage appears in the shared hub index meanwhile; the run in another folder waits, then reuses it."""
    from hf_itt.cli import main
    from hf_itt.config.loading import load_experiment
    from hf_itt.pipeline.index import record
    from hf_itt.pipeline.jobs import build_jobs

    plain = write_config(tmp_path, gated=False)
    overrides = [f"model.name_or_path={tiny_checkpoint}", f"hub.local_root={tmp_path / 'elsewhere'}"]
    assert main(["run", "--config", str(plain), "--no-report", f"output_dir={tmp_path / 'trained'}", *overrides]) == 0
    finished = tmp_path / "trained" / "stages" / "nli" / "checkpoint"
    stage_hash = build_jobs(load_experiment(plain, overrides))[0].stage_hash
    assert read_manifest(finished).stage_hash == stage_hash
    with stage_lock(tmp_path / "hub", stage_hash, wait=False, stage="nli"):
        waiting = Run(tmp_path, "waiting", plain, tiny_checkpoint, tmp_path / "waiting")
        wait_until(
            lambda: f"waiting for stage nli (hash {stage_hash})" in waiting.err.read_text(),
            "the run to wait for the stage lock",
        )
        assert f"(pid {os.getpid()} on host" in waiting.err.read_text()
        record(tmp_path / "hub" / "by-hash", stage_hash, finished)  # what the training run does when done
    code, out, err = waiting.finish()
    assert code == 0, err[-3000:]
    assert "[itt] nli: reused" in out and str(finished) in out
    assert not (tmp_path / "waiting" / "stages" / "nli" / "trainer").exists()


def test_locks_say_who_holds_them_and_are_released(tmp_path):
    with run_lock(tmp_path / "run") as waited:
        assert waited is False
        holder = read_holder(tmp_path / "run" / RUN_LOCK_NAME)
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        assert json.loads((tmp_path / "run" / f"{RUN_LOCK_NAME}.holder.json").read_text()) == holder
    assert read_holder(tmp_path / "run" / RUN_LOCK_NAME) is None
    with run_lock(tmp_path / "run"):  # free again
        pass
