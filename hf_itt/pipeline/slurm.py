"""Submit a stage graph to SLURM: one job per unique stage, each after the stage it starts from.

Every node that is not done becomes one ``sbatch --wrap "<run_itt.py --stage ...>"`` job with
``--dependency=afterok:<parent's job id>`` when its parent is submitted too (a finished parent needs no
dependency); one report job runs after all of them. Submitting again skips what is finished, and what
an earlier submission queued that SLURM still lists as pending or running (``<logs>/slurm_jobs.json``
records the ids; ``squeue`` says which are alive), so no stage is ever queued twice.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from hf_itt.errors import ConfigError
from hf_itt.fileio import atomic_write_text
from hf_itt.pipeline.executor import log_name, results_dirs, stage_command
from hf_itt.pipeline.graph import StageGraph, StageNode

RECORD = "slurm_jobs.json"
REPORT_KEY = "report"


def submit(graph: StageGraph, gpus: int, logs: str, report: str | None, sbatch_args: str = "") -> dict[str, str]:
    """Submit every node not done; returns {node key: job id} of the jobs this grid now depends on."""
    graph.require_final()
    if shutil.which("sbatch") is None:
        raise ConfigError(
            "sbatch not found on PATH: submit from a SLURM login node, or run the grid here with --execute local"
        )
    logs_dir = Path(logs).resolve()
    logs_dir.mkdir(parents=True, exist_ok=True)
    earlier = read_record(logs_dir)
    alive = alive_jobs(list(earlier.values()))
    ids: dict[str, str] = {}
    submitted = kept = 0
    for node in graph.nodes.values():
        if node.done:
            continue
        parent_resubmitted = node.parent in ids and ids[node.parent] != earlier.get(node.parent)
        if earlier.get(node.key) in alive and not parent_resubmitted:
            ids[node.key], kept = earlier[node.key], kept + 1
            continue
        ids[node.key] = sbatch(node_options(node, ids, gpus, logs_dir, sbatch_args), wrapped_command(node, gpus))
        submitted += 1
        atomic_write_text(logs_dir / RECORD, json.dumps({**earlier, **ids}, indent=1))  # kept if a later one fails
    print(
        f"slurm: submitted {submitted} stage job(s), {kept} still queued from an earlier submission, "
        f"{sum(node.done for node in graph.nodes.values())} done already; record in {logs_dir / RECORD}"
    )
    if report and ids:
        if submitted == 0 and earlier.get(REPORT_KEY) in alive:
            print(f"slurm: report job {earlier[REPORT_KEY]} is still queued after all of them")
            return ids
        report_id = sbatch(
            [
                "--job-name=hf_itt-report",
                f"--output={logs_dir / 'report'}.%j.log",
                f"--dependency=afterok:{':'.join(ids.values())}",
                *shlex.split(sbatch_args),
            ],
            shlex.join(report_command(graph, report)),
        )
        atomic_write_text(logs_dir / RECORD, json.dumps({**earlier, **ids, REPORT_KEY: report_id}, indent=1))
        print(f"slurm: report job {report_id} runs after all of them")
    return ids


def node_options(node: StageNode, ids: dict[str, str], gpus: int, logs_dir: Path, sbatch_args: str) -> list[str]:
    options = [
        f"--job-name=hf_itt-{node.kind}-{node.job.name}",
        f"--output={logs_dir / log_name(node.key)}.%j",
        f"--gres=gpu:{gpus}",
        *shlex.split(sbatch_args),
    ]
    if node.parent in ids:
        options.append(f"--dependency=afterok:{ids[node.parent]}")
    return options


def wrapped_command(node: StageNode, gpus: int) -> str:
    """The job's shell command; several GPUs: a master port from the job id, so jobs sharing a node differ."""
    if gpus <= 1:
        return shlex.join(stage_command(node, gpus))
    argv = stage_command(node, gpus, port="$MASTER_PORT")
    return "MASTER_PORT=$((29500 + SLURM_JOB_ID % 2000)); " + " ".join(
        arg if arg.startswith("$") else shlex.quote(arg) for arg in argv
    )


def report_command(graph: StageGraph, report: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "hf_itt",
        "report",
        *map(str, results_dirs(graph)),
        "--out",
        str(Path(report).resolve()),
    ]


def sbatch(options: list[str], command: str) -> str:
    """Submit one job (run from the current folder, as the plan was made); returns its id."""
    argv = ["sbatch", "--parsable", f"--chdir={Path.cwd()}", *options, "--wrap", command]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ConfigError(
            f"sbatch refused a job ({' '.join(done.stderr.split()) or f'exit {done.returncode}'}); "
            f"jobs submitted so far are recorded, fix the cause and submit again"
        )
    return done.stdout.strip().split(";")[0]  # --parsable: "id" or "id;cluster"


def read_record(logs_dir: Path) -> dict[str, str]:
    path = logs_dir / RECORD
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError:
        return {}


def alive_jobs(job_ids: list[str]) -> set[str]:
    """Ids SLURM still lists (pending or running); none when squeue is unavailable."""
    if not job_ids or shutil.which("squeue") is None:
        return set()
    done = subprocess.run(
        ["squeue", "-h", "-o", "%i", "-j", ",".join(job_ids)], capture_output=True, text=True, check=False
    )
    return {line.strip() for line in done.stdout.splitlines() if line.strip()} if done.returncode == 0 else set()
