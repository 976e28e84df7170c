"""The SLURM path, offline: a stand-in `sbatch` on PATH records every submission; the recorded graph must
equal the plan (each unique stage once, `--dependency=afterok:` on its parent, a report job after all)."""

import json
import shlex
import sys
from pathlib import Path

import pytest

from hf_itt.errors import ConfigError
from hf_itt.pipeline.graph import build_graph, load_runs
from hf_itt.pipeline.plan import main as plan_main

REPO = Path(__file__).resolve().parents[1]
GRID = REPO / "tests" / "fixtures" / "experiments" / "tiny_grid" / "grid.txt"

SBATCH = """#!{python}
import json, os, sys
record = os.environ["SBATCH_RECORD"]
count = sum(1 for _ in open(record)) if os.path.exists(record) else 0
job_id = str(5000 + count)
with open(record, "a") as out:
    out.write(json.dumps({{"id": job_id, "argv": sys.argv[1:]}}) + "\\n")
print(job_id + ";cluster" if count % 2 else job_id)  # --parsable may add the cluster name
"""
SQUEUE = """#!{python}
import os, sys
requested = sys.argv[sys.argv.index("-j") + 1].split(",")
alive = open(os.environ["SQUEUE_ALIVE"]).read().split()
print("\\n".join(job for job in requested if job in alive))
"""


def install(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.write_text(text.format(python=sys.executable))
    path.chmod(0o755)


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """Stand-in sbatch and squeue on PATH; returns (records file, file listing the ids squeue reports alive)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    install(bin_dir, "sbatch", SBATCH)
    install(bin_dir, "squeue", SQUEUE)
    record, alive = tmp_path / "sbatch.jsonl", tmp_path / "alive.txt"
    alive.write_text("")
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("SBATCH_RECORD", str(record))
    monkeypatch.setenv("SQUEUE_ALIVE", str(alive))
    return record, alive


def grid_args(tiny_checkpoint, root: Path) -> list[str]:
    return [
        str(GRID),
        "--seeds",
        "7",
        "8",
        f"model.name_or_path={tiny_checkpoint}",
        f"output_dir={root}/runs/{{experiment}}/seed{{seed}}",
        f"hub.local_root={root}/hub",
    ]


def submissions(record: Path) -> list[dict]:
    return [json.loads(line) for line in record.read_text().splitlines()] if record.is_file() else []


def option(argv: list[str], name: str) -> str | None:
    values = [arg.split("=", 1)[1] for arg in argv if arg.startswith(f"--{name}=")]
    return values[0] if values else None


def stage_of(wrapped: str) -> tuple:
    """(config file, seed, job ref, expected hash) of a recorded stage job's command."""
    argv = shlex.split(wrapped)
    seed = next(arg.split("=", 1)[1] for arg in reversed(argv) if arg.startswith("seed="))
    return (
        argv[argv.index("--config") + 1],
        int(seed),
        argv[argv.index("--stage") + 1],
        argv[argv.index("--expect-hash") + 1],
    )


def recorded_graph(jobs: list[dict]) -> tuple[dict, list[dict]]:
    stages, reports = {}, []
    for job in jobs:
        argv, wrapped = job["argv"], job["argv"][job["argv"].index("--wrap") + 1]
        if option(argv, "job-name") == "hf_itt-report":
            reports.append(job)
            continue
        key = stage_of(wrapped)
        assert key not in stages, f"{key} submitted twice"
        dependency = option(argv, "dependency")
        stages[key] = {
            "id": job["id"],
            "after": dependency.removeprefix("afterok:") if dependency else None,
            "gres": option(argv, "gres"),
        }
    return stages, reports


def planned_graph(tiny_checkpoint, root: Path) -> dict:
    args = grid_args(tiny_checkpoint, root)
    runs = load_runs([args[0]], [7, 8], tuple(args[4:]))
    graph = build_graph(runs)
    ident = {key: (node.run.config_file, node.run.seed, node.ref, node.stage_hash) for key, node in graph.nodes.items()}
    return {ident[key]: (ident[node.parent] if node.parent else None) for key, node in graph.nodes.items()}


def test_one_job_per_unique_stage_after_its_parent(cluster, tiny_checkpoint, tmp_path, capsys):
    record, _ = cluster
    assert (
        plan_main(
            [
                *grid_args(tiny_checkpoint, tmp_path),
                "--execute",
                "slurm",
                "--logs",
                str(tmp_path / "logs"),
                "--sbatch-args",
                "--partition gpu --time 2:00:00",
            ]
        )
        == 0
    )
    stages, reports = recorded_graph(submissions(record))
    planned = planned_graph(tiny_checkpoint, tmp_path)
    assert set(stages) == set(planned) and len(stages) == 10  # 3 ITT + 1 target + 1 eval, two seeds
    ids = {key: job["id"] for key, job in stages.items()}
    for key, parent in planned.items():
        assert stages[key]["after"] == (ids[parent] if parent else None), key
        assert stages[key]["gres"] == "gpu:1"
    shared = [key for key, parent in planned.items() if parent is None and key[2].startswith("itt:")]
    assert len(shared) == 2  # the prefix of three experiments: one job per seed
    (report,) = reports
    assert sorted(option(report["argv"], "dependency").removeprefix("afterok:").split(":")) == sorted(ids.values())
    assert "--partition" in report["argv"] and "--time" in report["argv"]
    recorded = json.loads((tmp_path / "logs" / "slurm_jobs.json").read_text())
    assert set(recorded.values()) == {*ids.values(), report["id"]}
    assert "submitted 10 stage job(s)" in capsys.readouterr().out


def test_resubmission_keeps_queued_jobs_and_replaces_ended_ones(cluster, tiny_checkpoint, tmp_path):
    record, alive = cluster
    args = [*grid_args(tiny_checkpoint, tmp_path), "--execute", "slurm", "--logs", str(tmp_path / "logs")]
    plan_main(args)
    first = submissions(record)
    alive.write_text(" ".join(job["id"] for job in first))  # everything still queued
    plan_main(args)
    assert len(submissions(record)) == len(first)  # nothing queued twice, not even the report
    stages, _ = recorded_graph(first)
    planned = planned_graph(tiny_checkpoint, tmp_path)
    root = next(key for key, parent in planned.items() if parent is None and key[2] == "itt:shared" and key[1] == 7)
    ended = stages[root]["id"]
    alive.write_text(" ".join(job["id"] for job in first if job["id"] != ended))  # the seed-7 prefix died
    plan_main(args)
    again, _ = recorded_graph(submissions(record)[len(first) :])
    # the prefix and everything after it (queued on the dead job's id) are submitted again, nothing else
    descendants = {root}
    for key, parent in planned.items():
        if parent in descendants:
            descendants.add(key)
    assert set(again) == descendants
    assert again[root]["after"] is None


def test_slurm_refuses_without_sbatch_and_with_provisional_hashes(tiny_checkpoint, tmp_path, monkeypatch, cluster):
    args = [*grid_args(tiny_checkpoint, tmp_path), "--execute", "slurm", "--logs", str(tmp_path / "logs")]
    with pytest.raises(ConfigError, match="cannot be hashed yet"):
        plan_main([*args, "stages.0.tasks.0.data_files.train=missing.jsonl"])
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigError, match="sbatch not found"):
        plan_main(args)
