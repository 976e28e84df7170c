"""Run a stage graph on one machine with N worker processes: each unique stage once, parents first.

Every node is one ``run_itt.py --stage <job> --expect-hash <hash>`` process (the same command a SLURM
job runs), started when its parent has finished and a worker slot is free. A node is in the graph once,
so it is started once: experiments that share a prefix get it trained by one process and reuse it
through the hash index. A failed node's dependants are skipped; the others go on. Each node writes
``<logs>/<key>.log``; ``<logs>/executed.json`` records every command, its exit code and time.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hf_itt.errors import ConfigError, HfIttError
from hf_itt.fileio import atomic_write_text
from hf_itt.pipeline.graph import StageGraph, StageNode

RUN_SCRIPT = Path(__file__).resolve().parents[2] / "run_itt.py"
MASTER_PORT_BASE = 29600


def stage_command(
    node: StageNode, gpus: int, devices: list[int] | None = None, port: int | str | None = None
) -> list[str]:
    """The command that runs ``node``: plain python for one process, the deepspeed launcher for several."""
    if gpus <= 1:
        entry = [str(RUN_SCRIPT)] if RUN_SCRIPT.is_file() else ["-m", "hf_itt", "run"]
        return [sys.executable, *entry, *node.stage_args()]
    if not RUN_SCRIPT.is_file():
        raise ConfigError(
            f"multi-GPU stages are launched as `deepspeed run_itt.py`, which is not at {RUN_SCRIPT}; "
            f"run from a checkout of the repository"
        )
    launcher = Path(sys.executable).with_name("deepspeed")
    where = ["--include", "localhost:" + ",".join(map(str, devices))] if devices else ["--num_gpus", str(gpus)]
    ports = ["--master_port", str(port)] if port else []
    return [str(launcher if launcher.is_file() else "deepspeed"), *where, *ports, str(RUN_SCRIPT), *node.stage_args()]


def log_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key) + ".log"


@dataclass
class Running:
    node: StageNode
    process: subprocess.Popen
    slot: int
    started: float
    log: object


def run_local(graph: StageGraph, workers: int, gpus_per_worker: int | None, logs: str, report: str | None) -> int:
    graph.require_final()
    gpus = resolve_gpus(graph, gpus_per_worker)
    logs_dir = Path(logs)
    logs_dir.mkdir(parents=True, exist_ok=True)
    pending = [node for node in graph.nodes.values() if not node.done]
    finished = {key for key, node in graph.nodes.items() if node.done}
    failed: set[str] = set()
    running: dict[int, Running] = {}
    record: dict[str, dict] = {}
    print(
        f"running {len(pending)} of {len(graph.nodes)} nodes with {workers} worker(s), "
        f"{gpus or 'no'} GPU(s) each; logs in {logs_dir}",
        flush=True,
    )
    while pending or running:
        for node in list(pending):
            if node.parent in failed:
                pending.remove(node)
                failed.add(node.key)
                record[node.key] = {"skipped": f"its parent {node.parent} failed"}
                print(f"[skip] {describe(node)}: its parent failed", flush=True)
            elif (node.parent is None or node.parent in finished) and len(running) < workers:
                slot = min(set(range(workers)) - set(running))
                running[slot] = start(node, slot, gpus, logs_dir)
                pending.remove(node)
        for slot, job in list(running.items()):
            code = job.process.poll()
            if code is None:
                continue
            job.log.close()
            del running[slot]
            seconds = time.time() - job.started
            (finished if code == 0 else failed).add(job.node.key)
            record[job.node.key] = {
                "command": job.process.args,
                "returncode": code,
                "seconds": round(seconds, 1),
                "run": job.node.run.label,
                "stage": job.node.ref,
                "hash": job.node.stage_hash,
            }
            state = "done" if code == 0 else f"FAILED (exit {code}, see {logs_dir / log_name(job.node.key)})"
            print(f"[{state}] {describe(job.node)} in {seconds:.0f}s", flush=True)
            atomic_write_text(logs_dir / "executed.json", json.dumps(record, indent=1))
        time.sleep(0.2)
    atomic_write_text(logs_dir / "executed.json", json.dumps(record, indent=1))
    if report:
        write_report(graph, report)
    if failed:
        print(
            f"{len(failed)} node(s) failed or were skipped; fix the cause and rerun the same command: "
            f"finished stages are kept",
            flush=True,
        )
        return 1
    return 0


def resolve_gpus(graph: StageGraph, gpus_per_worker: int | None) -> int:
    if gpus_per_worker is None:
        import torch

        gpus_per_worker = graph.world_size if torch.cuda.is_available() else 0
    if max(1, gpus_per_worker) != graph.world_size:
        raise ConfigError(
            f"each worker would run {max(1, gpus_per_worker)} process(es) but the plan's stage hashes "
            f"are for world size {graph.world_size}; make --gpus-per-worker equal --gpus"
        )
    return gpus_per_worker


def start(node: StageNode, slot: int, gpus: int, logs_dir: Path) -> Running:
    devices = list(range(slot * gpus, (slot + 1) * gpus)) if gpus else None
    command = stage_command(node, gpus, devices if gpus > 1 else None, MASTER_PORT_BASE + slot)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if gpus == 1:
        env["CUDA_VISIBLE_DEVICES"] = str(devices[0])
    log = open(logs_dir / log_name(node.key), "w", encoding="utf-8")  # noqa: SIM115 (closed when it ends)
    log.write(f"$ {shlex.join(command)}\n")
    log.flush()
    print(f"[start] {describe(node)} on worker {slot}", flush=True)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    return Running(node, process, slot, time.time(), log)


def describe(node: StageNode) -> str:
    return f"{node.kind} {node.ref} ({node.stage_hash[:10]}) of {node.run.label}"


def results_dirs(graph: StageGraph) -> list[Path]:
    return [run.config.run_dir / "results" for run in graph.runs]


def write_report(graph: StageGraph, out: str) -> None:
    from hf_itt.report.build import build_report  # defers matplotlib

    folders = [folder for folder in results_dirs(graph) if any(folder.glob("*.json"))]
    if not folders:
        return
    try:
        print(f"report: {build_report(folders, out=Path(out))}", flush=True)
    except HfIttError as err:  # the results stay; the report can be built again with hf-itt report
        print(f"report not written: {err}", flush=True)
