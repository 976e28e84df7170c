"""The local grid executor on CPU: 2 workers, a 3-experiment grid whose experiments share a first stage.
The shared stage is trained once (asserted from the manifests and the logs), dependants start after
their parents, a rerun executes nothing, and a SLURM re-submission skips what is finished."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_grid_slurm import GRID, cluster, recorded_graph, submissions  # noqa: F401 (cluster: a fixture)

from hf_itt.hub.manifest import read_manifest

pytestmark = pytest.mark.slow


def plan_command(tiny_checkpoint, root: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "hf_itt",
        "plan",
        str(GRID),
        f"model.name_or_path={tiny_checkpoint}",
        f"output_dir={root}/runs/{{experiment}}/seed{{seed}}",
        f"hub.local_root={root}/hub",
        *extra,
    ]


def run_plan(tiny_checkpoint, root: Path, *extra: str) -> str:
    done = subprocess.run(
        plan_command(tiny_checkpoint, root, *extra),
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])},
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def executed(tiny_checkpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    out = run_plan(
        tiny_checkpoint,
        root,
        "--execute",
        "local",
        "--workers",
        "2",
        "--logs",
        str(root / "logs"),
        "--report",
        str(root / "report"),
    )
    return root, out, json.loads((root / "logs" / "executed.json").read_text())


def manifests(root: Path) -> list:
    return [
        read_manifest(path.parent)
        for path in (root / "runs").rglob("stage_manifest.json")
        if path.parent.name == "checkpoint"
    ]


def test_the_shared_prefix_is_trained_once(executed):
    root, _, record = executed
    assert len(record) == 5 and all(entry["returncode"] == 0 for entry in record.values())
    shared_hash = next(entry["hash"] for entry in record.values() if entry["stage"] == "itt:shared")
    assert sum(entry["hash"] == shared_hash for entry in record.values() if entry["stage"].startswith("itt:")) == 1
    # manifests: one checkpoint of the shared stage in all three run folders; both second stages start from it
    trained = [m for m in manifests(root) if m.stage_hash == shared_hash]
    assert len(trained) == 1 and trained[0].experiment == "grid-a"
    owner = root / "runs" / "grid-a" / "seed7" / "stages" / "shared" / "checkpoint"
    for experiment, stage in (("grid-a", "a"), ("grid-b", "b")):
        manifest = read_manifest(root / "runs" / experiment / "seed7" / "stages" / stage / "checkpoint")
        assert manifest.identity["previous_stage_hash"] == shared_hash
        assert Path(manifest.source).resolve() == owner.resolve()
    assert not (root / "runs" / "grid-b" / "seed7" / "stages" / "first").exists()
    assert not (root / "runs" / "grid-c" / "seed7" / "stages").exists()
    # logs: "trained" once for the shared stage, over every node's log
    logs = [path.read_text() for path in (root / "logs").glob("*.log")]
    assert sum(text.count("[itt] shared: trained") + text.count("[itt] first: trained") for text in logs) == 1
    xnli = read_manifest(root / "runs" / "grid-c" / "seed7" / "targets" / "xnli" / "checkpoint")
    assert xnli.identity["previous_stage_hash"] == shared_hash


def test_two_workers_run_dependants_after_their_parents_in_parallel(executed):
    root, out, record = executed
    lines = out.splitlines()

    def position(state: str, stage: str, run: str) -> int:
        return next(
            i
            for i, line in enumerate(lines)
            if line.startswith(f"[{state}]")
            and f" {stage} " in line
            and line.rstrip().split(" of ")[-1].split()[0] == run
        )

    shared_done = position("done", "itt:shared", "grid-a/seed7")
    for stage, run in (("itt:a", "grid-a/seed7"), ("itt:b", "grid-b/seed7"), ("target:xnli", "grid-c/seed7")):
        assert position("start", stage, run) > shared_done
    assert position("start", "target:tatoeba", "grid-b/seed7") > position("done", "itt:b", "grid-b/seed7")
    first_done_after = min(i for i, line in enumerate(lines) if line.startswith("[done]") and i > shared_done)
    started_together = [line for line in lines[shared_done:first_done_after] if line.startswith("[start]")]
    assert len(started_together) == 2 and {"worker 0", "worker 1"} == {
        line.rsplit(" on ", 1)[1] for line in started_together
    }
    assert (root / "runs" / "grid-c" / "seed7" / "results" / "xnli.validation.json").is_file()
    assert (root / "runs" / "grid-b" / "seed7" / "results" / "tatoeba.validation.json").is_file()
    assert (root / "report" / "report.md").is_file()


def test_a_rerun_executes_nothing(executed, tiny_checkpoint):
    root, _, _ = executed
    out = run_plan(
        tiny_checkpoint, root, "--execute", "local", "--workers", "2", "--logs", str(root / "logs2"), "--report", ""
    )
    assert "running 0 of 5 nodes" in out and "status: 2 done, 3 published" in out
    assert json.loads((root / "logs2" / "executed.json").read_text()) == {}


def test_slurm_resubmission_skips_finished_stages(executed, tiny_checkpoint, cluster, monkeypatch):  # noqa: F811
    root, _, _ = executed
    record, _ = cluster
    (root / "runs" / "grid-c" / "seed7" / "results" / "xnli.validation.json").unlink()  # results lost
    monkeypatch.chdir(root)
    from hf_itt.pipeline.plan import main as plan_main

    assert plan_main(plan_command(tiny_checkpoint, root, "--execute", "slurm", "--logs", str(root / "slurm"))[4:]) == 0
    stages, reports = recorded_graph(submissions(record))
    ((key, job),) = stages.items()  # only the target whose results are missing: its model is reused
    assert key[2] == "target:xnli" and key[0].endswith("grid_c.yaml") and job["after"] is None
    assert len(reports) == 1
