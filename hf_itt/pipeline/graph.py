"""A grid of experiments x seeds as a graph of unique stages, keyed by the stage hash a run uses.

Every run (one experiment YAML at one seed) is turned into its jobs by ``build_jobs``, the function
``StageRunner`` itself calls, with the same world size, so a node's hash is the hash the run computes.
Jobs with the same hash (and the same reuse scope: the local hash index they share, or the run folder
when ``hub.reuse`` is off) become one node, trained once by the first run that needs it (its *owner*);
the other runs reuse it through the index, as a sequential run of the grid would. Kinds of node:

- ``itt``: an ITT stage; its parent is the ITT stage it starts from (none: the base model).
- ``target``: a target fine-tuning, then its zero-shot evaluation in the owner's run folder.
- ``eval``: an evaluation into one run's results folder: a retrieval target (embedded straight from the
  last ITT encoder, or from the model of a fine-tuned target of the run: XTREME-R's Tatoeba, whose parent
  is that target), or a fine-tuned target whose model another run trains (it reuses the model).

Naive count: every (run, job) pair, which a grid of independent runs would each execute.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from hf_itt.config.experiment import ExperimentConfig
from hf_itt.config.loading import load_experiments
from hf_itt.errors import ConfigError
from hf_itt.pipeline.jobs import StageJob, build_jobs, job_ref


@dataclass(eq=False)
class GridRun:
    """One experiment of a config file at one seed, and the arguments that run one of its jobs."""

    config_file: str
    seed: int
    overrides: tuple[str, ...]
    experiment: str
    multi: bool  # the file holds several experiments: select this one by name
    config: ExperimentConfig

    @property
    def label(self) -> str:
        return f"{self.experiment}/seed{self.seed}"

    def stage_args(self, ref: str, stage_hash: str) -> list[str]:
        """``run_itt.py`` arguments that run job ``ref`` of this run and nothing else."""
        args = ["--config", self.config_file, "--no-report", "--stage", ref, "--expect-hash", stage_hash]
        if self.multi:
            args += ["--experiments", self.experiment]
        return [*args, *self.overrides, f"seed={self.seed}"]


@dataclass(eq=False)
class StageNode:
    key: str
    kind: str  # itt | target | eval
    job: StageJob
    run: GridRun  # the run whose process executes the node
    parent: str | None  # key of the node it starts from
    users: list[str] = field(default_factory=list)  # "<run label> <job ref>" of every job it stands for
    status: str = "todo"  # todo | evaluate | finished | published | done (see grid_status)

    @property
    def ref(self) -> str:
        return job_ref(self.job)

    @property
    def stage_hash(self) -> str:
        return self.job.stage_hash

    @property
    def provisional(self) -> list[str]:
        """Why the hash is not final (a local data file could not be read); empty when it is final."""
        return self.job.unresolved

    @property
    def done(self) -> bool:
        return self.status in ("finished", "published", "done")

    def stage_args(self) -> list[str]:
        return self.run.stage_args(self.ref, self.stage_hash)


@dataclass
class StageGraph:
    runs: list[GridRun]
    nodes: dict[str, StageNode]  # insertion order is a topological order (parents first)
    naive: dict[str, int]  # per kind: jobs a grid of independent runs would execute
    world_size: int = 1

    def of_kind(self, *kinds: str) -> list[StageNode]:
        return [node for node in self.nodes.values() if node.kind in kinds]

    def children(self, key: str) -> list[StageNode]:
        return [node for node in self.nodes.values() if node.parent == key]

    def provisional(self) -> list[StageNode]:
        return [node for node in self.nodes.values() if node.provisional]

    def require_final(self) -> None:
        """Executing needs final hashes: a provisional one would be refused by the run (--expect-hash)."""
        nodes = self.provisional()
        if nodes:
            reasons = sorted({reason for node in nodes for reason in node.provisional})
            raise ConfigError(
                f"{len(nodes)} stage(s) of the grid cannot be hashed yet: {'; '.join(reasons)}. "
                f"Provide the data (or remove those experiments from the grid), then run it"
            )


def load_runs(paths: list[str], seeds: list[int] | None = None, overrides: tuple[str, ...] = ()) -> list[GridRun]:
    """Every (experiment, seed) of grid files (``.txt``: one YAML per line, relative to the file) and YAMLs."""

    runs: list[GridRun] = []
    for config_file in expand_grid_files(paths):
        for seed in seeds or [None]:
            extra = () if seed is None else (f"seed={seed}",)
            configs = load_experiments(config_file, [*overrides, *extra])
            runs += [
                GridRun(config_file, config.seed, tuple(overrides), config.experiment, len(configs) > 1, config)
                for config in configs
            ]
    check_distinct_run_dirs(runs)
    return runs


def expand_grid_files(paths: list[str]) -> list[str]:
    files: list[str] = []
    for path in map(Path, paths):
        if path.suffix == ".txt":
            if not path.is_file():
                raise ConfigError(f"grid file not found: {path}")
            lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
            files += [str((path.parent / line).resolve()) for line in lines if line]
        else:
            files.append(str(path.resolve()))
    if not files:
        raise ConfigError(f"no experiment files in {', '.join(map(str, paths))}; list YAML files or a grid .txt")
    return files


def check_distinct_run_dirs(runs: list[GridRun]) -> None:
    seen: dict[Path, GridRun] = {}
    for run in runs:
        folder = run.config.run_dir.resolve()
        if folder in seen:
            raise ConfigError(
                f"{seen[folder].label} and {run.label} would both write to {folder}; keep "
                f"{{experiment}} and {{seed}} in output_dir (or drop the duplicate from the grid)"
            )
        seen[folder] = run


def build_graph(runs: list[GridRun], world_size: int = 1) -> StageGraph:
    """The unique stages of ``runs`` (hashes as a run with ``world_size`` processes computes them)."""
    graph = StageGraph(runs, {}, {"itt": 0, "target": 0, "eval": 0}, world_size)
    scopes: list[str] = []
    for run in runs:
        parent, target_keys = None, {}
        for job in build_jobs(run.config, world_size, allow_missing_data=True):
            if job.kind == "from":  # a download inside each dependant's job, not a stage to schedule
                parent = None
                continue
            kind = "eval" if job.is_retrieval else job.kind
            graph.naive[kind] += 1
            key = scoped_key(job.stage_hash, reuse_scope(run.config), scopes)
            if kind == "target":
                target_keys[job.name] = key
            if kind == "eval":  # embedded with the last ITT encoder, or with a fine-tuned target's model
                node = add_node(
                    graph,
                    f"eval:{run.label}/{job.name}",
                    "eval",
                    job,
                    run,
                    target_keys[job.encoder_target] if job.encoder_target else parent,
                )
            elif key in graph.nodes and kind == "target":  # another run trains it: evaluate here
                node = add_node(graph, f"eval:{run.label}/{job.name}", "eval", job, run, key)
            else:
                node = graph.nodes.get(key) or add_node(graph, key, kind, job, run, parent)
            node.users.append(f"{run.label} {job_ref(job)}")
            if kind == "itt":
                parent = key
    return graph


def add_node(graph: StageGraph, key: str, kind: str, job: StageJob, run: GridRun, parent: str | None) -> StageNode:
    graph.nodes[key] = StageNode(key, kind, job, run, parent)
    return graph.nodes[key]


def reuse_scope(config: ExperimentConfig) -> str:
    """Where a run finds stages of other runs: the local hash index, or only its own folder (hub.reuse off)."""
    if not config.hub.reuse:
        return f"run:{config.run_dir.resolve()}"
    return f"index:{Path(config.resolve_path(config.hub.local_root) or config.hub.local_root).resolve()}"


def scoped_key(stage_hash: str, scope: str, scopes: list[str]) -> str:
    """The stage hash in the grid's first scope (the usual case), ``hash@<scope digest>`` in any other."""
    if not scopes:
        scopes.append(scope)
    if scope == scopes[0]:
        return stage_hash
    return f"{stage_hash}@{hashlib.sha256(scope.encode()).hexdigest()[:6]}"
