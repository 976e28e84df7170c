"""Turn an ExperimentConfig into an ordered list of jobs, each with its chained stage hash.

A job is an ITT stage (``itt``), a published checkpoint used as a stage (``from``), or a target task
(``target``: fine-tuning on its English training task(s), one phase each, then zero-shot evaluation;
retrieval targets are evaluated straight from the last ITT encoder, or, with a ``retrieval_encoder``,
from the model of a fine-tuned target of the run, planned after it). Hashes chain: each job's hash covers
the previous ITT stage's hash, so a changed early stage changes everything after it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hf_itt.config.experiment import ExperimentConfig, StageConfig, TaskEntry
from hf_itt.config.model_selection import job_patience
from hf_itt.config.presets import get_preset
from hf_itt.config.training_args import merged_training
from hf_itt.config.validation import missing_encoder_target
from hf_itt.errors import ConfigError, DataError
from hf_itt.pipeline.config_identity import health_identity, spec_digest
from hf_itt.pipeline.identity import (
    base_model_identity,
    hash_identity,
    model_folder_hash,
    stage_identity,
    task_identity,
    tokenizer_identity,
)
from hf_itt.pipeline.phases import Phase, split_phases
from hf_itt.pipeline.stage_data import resolve_data_files
from hf_itt.task_types.plugins import code_identity
from hf_itt.tasks.formats import resolve_paths
from hf_itt.tasks.registry import encoder_targets, get_task


@dataclass
class TaskPlan:
    """One head of a job: its name/spec, and the task whose rows train it (a target trains on its train_task)."""

    head: str
    spec: Any  # TaskSpec sizing the head
    source_spec: Any  # TaskSpec whose training rows are read
    data_files: Any = None
    max_train: int | None = None
    max_dev: int | None = None
    weight: float | None = None
    max_length: int | None = None  # set by the user for this task or stage; None: the task's own (its spec)
    phase: int = 0  # a phased target trains its phases one after another (XCOPA: siqa, then copa)


@dataclass
class StageJob:
    name: str
    kind: str  # "itt" | "from" | "target"
    stage_dir: Path
    stage_hash: str = ""
    identity: dict = field(default_factory=dict)
    tasks: list[TaskPlan] = field(default_factory=list)
    training: dict = field(default_factory=dict)
    sampling: dict = field(default_factory=dict)
    deepspeed: str | None = None
    max_length: int | None = None
    source: str | None = None  # `from:` reference
    repo_id: str | None = None
    target: str | None = None  # target task name
    languages: list[str] | None = None
    is_retrieval: bool = False
    itt_stages: list[list[str]] = field(default_factory=list)  # task names of each ITT stage so far
    encoder: str = ""  # retrieval: what it embeds with ("itt-stage squad", "base model", ...)
    encoder_target: str | None = None  # retrieval: the fine-tuned target whose model it embeds with
    unresolved: list[str] = field(default_factory=list)  # why the hash is provisional (planning only)
    early_stopping_patience: int = 0  # evaluations without a new best before training stops (0: off)

    @property
    def trainer_dir(self) -> Path:
        return self.stage_dir / "trainer"

    @property
    def checkpoint_dir(self) -> Path:
        return self.stage_dir / "checkpoint"

    def phases(self) -> list[Phase]:
        """The Trainer runs of this job in order: one, unless it is a phased target."""
        return split_phases(self.tasks, self.stage_dir)

    @property
    def phased(self) -> bool:
        return len({plan.phase for plan in self.tasks}) > 1


def build_jobs(config: ExperimentConfig, world_size: int = 1, allow_missing_data: bool = False) -> list[StageJob]:
    """The experiment's jobs in run order. ``allow_missing_data`` (planning only): a local data file that
    cannot be read enters the hash by its path and the job lists why in ``unresolved`` (so do the jobs
    after it), instead of raising DataError; such a hash is provisional and never used to run."""
    from hf_itt.hub.publishers import repo_id_for  # defers huggingface_hub

    jobs, previous, itt_stages = [], None, []
    for stage in config.stages:
        job = (
            from_job(config, stage) if stage.from_ else itt_job(config, stage, previous, world_size, allow_missing_data)
        )
        itt_stages.append([task.name for task in stage.tasks] or [f"from:{stage.from_}"])
        job.itt_stages = [list(names) for names in itt_stages]
        if job.kind == "itt" and config.hub.publisher != "none":
            job.repo_id = repo_id_for(
                config.hub.repo_template,
                namespace=config.hub.namespace,
                experiment=config.experiment,
                stage=stage.name,
                stage_hash=job.stage_hash,
            )
        jobs.append(job)
        previous = job
    targets: list[StageJob] = []
    for task in sorted(config.targets.tasks, key=lambda name: get_task(name).retrieval_encoder is not None):
        job = target_job(config, task, previous, world_size, allow_missing_data)  # encoder users after the rest
        if get_task(task).retrieval_encoder:
            embed_with_target(job, targets)
        job.itt_stages = [list(names) for names in itt_stages]
        targets.append(job)
    return jobs + targets


def encoder_label(previous: StageJob | None) -> str:
    """What a retrieval target embeds with when it embeds with the chain's encoder."""
    if previous is None:
        return "base model"
    return f"itt-stage {previous.name}" if previous.kind == "itt" else f"stage {previous.name} (from {previous.source})"


def embed_with_target(job: StageJob, targets: list[StageJob]) -> StageJob:
    """Point a retrieval target at the model of the chain's target fine-tuned on its ``retrieval_encoder``
    task (XTREME-R's Tatoeba: the SQuAD v1.1 model of xquad or mlqa); its hash is that model's."""
    encoder_task = get_task(job.target).retrieval_encoder
    providers = encoder_targets(encoder_task)
    found = next((other for other in targets if other.name in providers and not other.is_retrieval), None)
    if found is None:
        raise ConfigError(missing_encoder_target(job.target, encoder_task))
    job.encoder_target, job.stage_hash, job.unresolved = found.name, found.stage_hash, list(found.unresolved)
    job.encoder = f"target {found.name} (fine-tuned on {encoder_task})"
    return job


def from_job(config: ExperimentConfig, stage: StageConfig) -> StageJob:
    candidate = config.resolve_path(stage.from_)
    if Path(candidate).is_dir():  # a folder enters by its content: retrained in place, it is another stage
        reference, identity = candidate, f"local:{model_folder_hash(Path(candidate))}"
    else:
        reference, identity = stage.from_, stage.from_
    return StageJob(
        name=stage.name,
        kind="from",
        stage_dir=config.run_dir / "stages" / stage.name,
        stage_hash=hash_identity({"from": identity}),
        source=reference,
    )


def stage_training(config: ExperimentConfig, preset: str | None, own: dict) -> dict:
    """TrainingArguments of a stage or target: defaults < preset < its own."""

    preset_values = get_preset(preset) if preset else {}
    preset_training = dict(preset_values.get("training") or {})
    if not config.defaults.group_by_length:  # the switch: presets without length-grouped batches
        preset_training.pop("train_sampling_strategy", None)
    return merged_training(config.defaults.training, preset_training, own)


def itt_job(
    config: ExperimentConfig,
    stage: StageConfig,
    previous: StageJob | None,
    world_size: int,
    allow_missing_data: bool = False,
) -> StageJob:
    training = stage_training(config, stage.preset, stage.training)
    plans = [itt_task_plan(config, entry, stage.max_length) for entry in stage.tasks]
    job = StageJob(
        name=stage.name,
        kind="itt",
        stage_dir=config.run_dir / "stages" / stage.name,
        tasks=plans,
        training=training,
        sampling=asdict(stage.sampling),
        deepspeed=config.resolve_path(stage.deepspeed or config.defaults.deepspeed),
        max_length=stage.max_length,
    )
    return with_hash(config, job, previous, world_size, allow_missing_data)


def itt_task_plan(config: ExperimentConfig, entry: TaskEntry, stage_length: int | None = None) -> TaskPlan:

    spec = get_task(entry.name)
    if entry.lang:
        spec = spec.with_overrides(lang=entry.lang)
    data_files = resolve_data_files(config, entry.data_files)
    return TaskPlan(
        head=entry.name,
        spec=spec,
        source_spec=spec,
        data_files=data_files,
        max_train=entry.max_train_examples,
        max_dev=entry.max_eval_examples,
        weight=entry.weight,
        max_length=entry.max_length or stage_length,
    )


def target_job(
    config: ExperimentConfig, task: str, previous: StageJob | None, world_size: int, allow_missing_data: bool = False
) -> StageJob:

    targets = config.targets
    spec = get_task(task)
    job = StageJob(
        name=task,
        kind="target",
        stage_dir=config.run_dir / "targets" / task,
        target=task,
        languages=targets.languages.get(task) or spec.languages_in(config.benchmarks),
        is_retrieval=not spec.task_type.trainable,
    )
    if job.is_retrieval:  # no training: identified by the encoder it embeds with
        base, revision = base_model_identity(config.model.name_or_path, config.model.revision)
        job.stage_hash = previous.stage_hash if previous else hash_identity({"base": base, "revision": revision})
        job.unresolved = list(previous.unresolved) if previous else []
        job.encoder = encoder_label(previous)
        return job
    training = stage_training(
        config, targets.preset, merged_training(targets.training, targets.per_task_training.get(task))
    )
    job.tasks = [
        TaskPlan(
            head=task,
            spec=spec,
            source_spec=get_task(name),
            data_files=resolve_data_files(config, targets.data_files.get(name)),
            max_train=targets.max_train_examples,
            max_dev=targets.max_eval_examples,
            max_length=targets.max_length.get(task),
            phase=number,
        )
        for number, name in enumerate(training_tasks(spec), start=1)
    ]
    job.training = training
    job.deepspeed = config.resolve_path(targets.deepspeed or config.defaults.deepspeed)
    return with_hash(config, job, previous, world_size, allow_missing_data)


def training_tasks(spec) -> list[str]:
    """The English tasks a target trains on, in order: XTREME-R's earlier ones (``extra_train_tasks``, e.g.
    SIQA before COPA for XCOPA), then its ``train_task``; each is one phase of the target job."""
    return [*spec.extra_train_tasks, spec.train_task]


def with_hash(
    config: ExperimentConfig,
    job: StageJob,
    previous: StageJob | None,
    world_size: int,
    allow_missing_data: bool = False,
) -> StageJob:

    job.unresolved = list(previous.unresolved) if previous else []
    job.early_stopping_patience = job_patience(config, job.kind, job.name)
    best_of_dev = bool(job.training.get("load_best_model_at_end"))  # dev data then picks the weights
    tasks = [plan_task_identity(job, plan, best_of_dev, allow_missing_data) for plan in job.tasks]
    base, revision = base_model_identity(config.model.name_or_path, config.model.revision)
    job.identity = stage_identity(
        base_model=base,
        base_revision=revision,
        previous_stage_hash=previous.stage_hash if previous else None,
        tasks=tasks,
        sampler=job.sampling or None,
        training_args=job.training,
        seed=config.seed,
        world_size=world_size,
        tokenizer=tokenizer_identity(config.model.tokenizer),
        health=health_identity(config.health),
        early_stopping_patience=job.early_stopping_patience,
        frozen=config.model.freeze,
    )
    job.stage_hash = hash_identity(job.identity)
    return job


def task_options(job: StageJob, plan: TaskPlan, best_of_dev: bool) -> dict:
    """What else decides a task's training examples; keys added later enter only when they are set."""

    options = {
        "trained_on": plan.source_spec.name,
        "version": plan.source_spec.version,
        "max_train": plan.max_train,
        "max_length": plan.max_length,
        "weight": plan.weight,
    }
    for key, spec in (("spec", plan.source_spec), ("head_spec", plan.spec)):
        digest = spec_digest(spec)
        if digest is not None and (key == "spec" or plan.spec is not plan.source_spec):
            options[key] = digest
    if best_of_dev:
        options["max_dev"] = plan.max_dev
    if job.phased:  # the phases' order decides the weights (the list order carries it too)
        options["phase"] = plan.phase
    plugin_code = code_identity(plan.spec.task_type)
    if plugin_code is not None:  # a type from a user's file: its code decides the weights (built-in ones: the version)
        options["type_code"] = plugin_code
    return options


def plan_task_identity(job: StageJob, plan: TaskPlan, best_of_dev: bool, allow_missing_data: bool) -> dict:
    def identity(data_files, **extra) -> dict:
        return task_identity(
            plan.head,
            task_type=plan.spec.type,
            source=source_name(plan.source_spec),
            config=None,
            lang=plan.source_spec.lang,
            data_files=data_files,
            options={**task_options(job, plan, best_of_dev), **extra},
        )

    try:
        return identity(training_files(plan, best_of_dev))
    except DataError as err:
        if not allow_missing_data:
            raise
        job.unresolved.append(str(err))
        return identity(None, unreadable_data_files=plan.data_files)


def source_name(spec) -> str | None:
    sources = getattr(spec, "sources", None) or []
    return ",".join(f"{s.path}/{s.name}" if s.name else s.path for s in sources) or None


def training_files(plan: TaskPlan, with_dev: bool = False) -> dict | None:
    """The concrete files that train ``plan`` (their contents enter the hash; paths do not); the dev
    files too when ``with_dev`` (load_best_model_at_end: the dev set picks the exported checkpoint)."""

    if plan.data_files is None:
        return None
    spec = plan.source_spec
    files = {"train": [str(path) for path in resolve_paths(spec, "train", spec.lang, plan.data_files)]}
    if with_dev and spec.has_split("validation"):
        files["validation"] = [str(path) for path in resolve_paths(spec, "validation", spec.lang, plan.data_files)]
    if isinstance(plan.data_files, dict) and "labels" in plan.data_files:
        files["labels"] = plan.data_files["labels"]
    return files


def job_ref(job: StageJob) -> str:
    """How a grid names one job of an experiment: ``itt:<stage>`` or ``target:<task>`` (a from-stage is ``from:``)."""
    return f"{job.kind}:{job.name}"


def select_job(jobs: list[StageJob], ref: str, expect_hash: str | None = None) -> int:
    """Position of the job named ``ref`` (see ``job_ref``); with ``expect_hash``, refuse a job whose hash
    differs from the one a plan computed (the run would train something other than what was planned)."""
    refs = [job_ref(job) for job in jobs]
    if ref not in refs:
        raise ConfigError(f"--stage {ref!r} is not a job of this experiment; its jobs: {', '.join(refs)}")
    position = refs.index(ref)
    actual = jobs[position].stage_hash
    if expect_hash is not None and actual != expect_hash:
        raise ConfigError(
            f"--stage {ref}: its hash here is {actual}, the plan computed {expect_hash}; this process "
            f"sees another configuration than the plan did (world size, data files, base model, "
            f"overrides): make the plan with the same settings as the run (e.g. --gpus) and submit again"
        )
    return position
