"""Turn an ExperimentConfig into an ordered list of jobs, each with its chained stage hash.

A job is an ITT stage (``itt``), a published checkpoint used as a stage (``from``), or a target task
(``target``: fine-tuning on its English training task, then zero-shot evaluation; retrieval targets,
LAReQA and Mewsli-X included, are evaluated straight from the last ITT encoder). Hashes chain: each job's hash covers the previous
ITT stage's hash, so a changed early stage changes everything after it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hf_itt.config.experiment import ExperimentConfig, StageConfig, TaskEntry
from hf_itt.pipeline.identity import base_model_identity, hash_identity, stage_identity, task_identity
from hf_itt.tasks.schema import ANSWER_RETRIEVAL, RETRIEVAL
from hf_itt.config.training_args import merged_training


@dataclass
class TaskPlan:
    """One head of a job: its name/spec, and the task whose rows train it (a target trains on its train_task)."""

    head: str
    spec: Any                 # TaskSpec sizing the head
    source_spec: Any          # TaskSpec whose training rows are read
    data_files: Any = None
    max_train: int | None = None
    max_dev: int | None = None
    weight: float | None = None


@dataclass
class StageJob:
    name: str
    kind: str                          # "itt" | "from" | "target"
    stage_dir: Path
    stage_hash: str = ""
    identity: dict = field(default_factory=dict)
    tasks: list[TaskPlan] = field(default_factory=list)
    training: dict = field(default_factory=dict)
    sampling: dict = field(default_factory=dict)
    deepspeed: str | None = None
    max_length: int | None = None
    source: str | None = None          # `from:` reference
    repo_id: str | None = None
    target: str | None = None          # target task name
    languages: list[str] | None = None
    is_retrieval: bool = False
    itt_stages: list[list[str]] = field(default_factory=list)  # task names of each ITT stage so far

    @property
    def trainer_dir(self) -> Path:
        return self.stage_dir / "trainer"

    @property
    def checkpoint_dir(self) -> Path:
        return self.stage_dir / "checkpoint"

    def has_checkpoint(self) -> bool:
        return any(self.trainer_dir.glob("checkpoint-*"))


def build_jobs(config: ExperimentConfig, world_size: int = 1) -> list[StageJob]:
    from hf_itt.hub.publishers import repo_id_for

    jobs, previous, itt_stages = [], None, []
    for stage in config.stages:
        job = from_job(config, stage) if stage.from_ else itt_job(config, stage, previous, world_size)
        itt_stages.append([task.name for task in stage.tasks] or [f"from:{stage.from_}"])
        job.itt_stages = [list(names) for names in itt_stages]
        if job.kind == "itt" and config.hub.publisher != "none":
            job.repo_id = repo_id_for(config.hub.repo_template, namespace=config.hub.namespace,
                                      experiment=config.experiment, stage=stage.name, stage_hash=job.stage_hash)
        jobs.append(job)
        previous = job
    for task in config.targets.tasks:
        job = target_job(config, task, previous, world_size)
        job.itt_stages = [list(names) for names in itt_stages]
        jobs.append(job)
    return jobs


def from_job(config: ExperimentConfig, stage: StageConfig) -> StageJob:
    candidate = config.resolve_path(stage.from_)
    reference = candidate if Path(candidate).is_dir() else stage.from_  # a folder, else a Hub reference
    return StageJob(name=stage.name, kind="from", stage_dir=config.run_dir / "stages" / stage.name,
                    stage_hash=hash_identity({"from": stage.from_}), source=reference)


def stage_training(config: ExperimentConfig, preset: str | None, own: dict) -> tuple[dict, int | None]:
    from hf_itt.config.presets import get_preset

    preset_values = get_preset(preset) if preset else {}
    return (merged_training(config.defaults.training, preset_values.get("training"), own),
            preset_values.get("max_length"))


def itt_job(config: ExperimentConfig, stage: StageConfig, previous: StageJob | None, world_size: int) -> StageJob:
    training, preset_length = stage_training(config, stage.preset, stage.training)
    plans = [itt_task_plan(config, entry) for entry in stage.tasks]
    job = StageJob(name=stage.name, kind="itt", stage_dir=config.run_dir / "stages" / stage.name,
                   tasks=plans, training=training, sampling=asdict(stage.sampling),
                   deepspeed=config.resolve_path(stage.deepspeed or config.defaults.deepspeed),
                   max_length=stage.max_length or preset_length)
    return with_hash(config, job, previous, world_size)


def itt_task_plan(config: ExperimentConfig, entry: TaskEntry) -> TaskPlan:
    from hf_itt.pipeline.stage_data import resolve_data_files
    from hf_itt.tasks.registry import get_task

    spec = get_task(entry.name)
    if entry.lang:
        spec = spec.with_overrides(lang=entry.lang)
    data_files = resolve_data_files(config, entry.data_files)
    return TaskPlan(head=entry.name, spec=spec, source_spec=spec, data_files=data_files,
                    max_train=entry.max_train_examples, max_dev=entry.max_eval_examples, weight=entry.weight)


def target_job(config: ExperimentConfig, task: str, previous: StageJob | None, world_size: int) -> StageJob:
    from hf_itt.pipeline.stage_data import resolve_data_files
    from hf_itt.tasks.registry import get_task

    targets = config.targets
    spec = get_task(task)
    job = StageJob(name=task, kind="target", stage_dir=config.run_dir / "targets" / task, target=task,
                   languages=targets.languages.get(task), is_retrieval=spec.type in (RETRIEVAL, ANSWER_RETRIEVAL))
    if job.is_retrieval:  # no training: identified by the encoder it embeds with
        base, revision = base_model_identity(config.model.name_or_path, config.model.revision)
        job.stage_hash = previous.stage_hash if previous else hash_identity({"base": base, "revision": revision})
        return job
    training, preset_length = stage_training(config, targets.preset,
                                             merged_training(targets.training, targets.per_task_training.get(task)))
    train_spec = get_task(spec.train_task)
    data_files = resolve_data_files(config, targets.data_files.get(spec.train_task))
    job.tasks = [TaskPlan(head=task, spec=spec, source_spec=train_spec, data_files=data_files,
                          max_train=targets.max_train_examples)]
    job.training, job.max_length = training, preset_length
    job.deepspeed = config.resolve_path(targets.deepspeed or config.defaults.deepspeed)
    return with_hash(config, job, previous, world_size)


def with_hash(config: ExperimentConfig, job: StageJob, previous: StageJob | None, world_size: int) -> StageJob:
    tasks = [task_identity(plan.head, task_type=plan.spec.type, source=source_name(plan.source_spec),
                           config=None, lang=plan.source_spec.lang, data_files=training_files(plan),
                           options={"trained_on": plan.source_spec.name, "version": plan.source_spec.version,
                                    "max_train": plan.max_train, "max_length": job.max_length,
                                    "weight": plan.weight})
             for plan in job.tasks]
    base, revision = base_model_identity(config.model.name_or_path, config.model.revision)
    job.identity = stage_identity(
        base_model=base, base_revision=revision,
        previous_stage_hash=previous.stage_hash if previous else None, tasks=tasks,
        sampler=job.sampling or None, training_args=job.training, seed=config.seed, world_size=world_size,
        frozen=config.model.freeze)
    job.stage_hash = hash_identity(job.identity)
    return job


def source_name(spec) -> str | None:
    sources = getattr(spec, "sources", None) or []
    return ",".join(f"{s.path}/{s.name}" if s.name else s.path for s in sources) or None


def training_files(plan: TaskPlan) -> dict | None:
    """The concrete files that train ``plan`` (their contents enter the hash; paths do not)."""
    from hf_itt.tasks.formats import resolve_paths

    if plan.data_files is None:
        return None
    spec = plan.source_spec
    files = {"train": [str(path) for path in resolve_paths(spec, "train", spec.lang, plan.data_files)]}
    if isinstance(plan.data_files, dict) and "labels" in plan.data_files:
        files["labels"] = plan.data_files["labels"]
    return files
