"""Train one job (an ITT stage or a target fine-tuning) and hand it over through disk.

Order of writes, so that a killed run never leaves a folder that looks finished: Trainer checkpoints
(resume points) -> ``full/`` (the whole multi-task model) -> ``checkpoint.partial/`` (exported
encoder, tokenizer, heads, card) -> manifest written last -> renamed to ``checkpoint/``.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from hf_itt.config.deepspeed import prepare_deepspeed_launch, resolve_deepspeed_config
from hf_itt.config.experiment import ExperimentConfig
from hf_itt.config.training_args import build_training_arguments
from hf_itt.errors import CheckpointError, TrainingHealthError
from hf_itt.fileio import apply_umask, atomic_write_text
from hf_itt.health.callbacks import health_callbacks, health_report
from hf_itt.hub.manifest import (
    StageManifest,
    finish_manifest,
    next_lineage,
    read_manifest,
)
from hf_itt.pipeline.checkpoints import last_checkpoint
from hf_itt.pipeline.dev_metrics import dev_metric_functions, main_dev_metrics
from hf_itt.pipeline.jobs import StageJob
from hf_itt.pipeline.phases import Phase, finished_record, weights_digest, write_record
from hf_itt.pipeline.stage_data import TaskData, tokenize_task
from hf_itt.pipeline.target_eval import evaluate_target
from hf_itt.training import task_trace
from hf_itt.training.budget import stage_budget, training_budget
from hf_itt.training.distributed import barrier, is_main_process, rank
from hf_itt.training.early_stopping import ResumableEarlyStopping
from hf_itt.training.freezing import freeze_encoder
from hf_itt.training.model_loading import check_vocabulary, loading_errors
from hf_itt.training.modeling import MultiTaskModel
from hf_itt.training.task_trace import TaskTrace
from hf_itt.training.trainer import MultiTaskTrainer

logger = logging.getLogger(__name__)
HEADS_FILE = "heads.safetensors"
BOOKKEEPING = ("runtime", "samples_per_second", "steps_per_second", "epoch")


@dataclass
class TrainedStage:
    job: StageJob
    checkpoint: Path | None
    status: str  # trained | reused | downloaded | evaluated
    metrics: dict = field(default_factory=dict)

    @classmethod
    def from_reference(cls, job: StageJob) -> "TrainedStage":
        from hf_itt.hub.publishers import resolve_reference  # defers huggingface_hub

        return cls(job, resolve_reference(job.source), "downloaded")

    @classmethod
    def reused(cls, job: StageJob, folder: Path) -> "TrainedStage":

        return cls(job, Path(folder), "reused", read_manifest(folder).metrics)

    def summary_line(self, seconds: float) -> str:
        shown = ", ".join(f"{k}={v:.3g}" for k, v in list(flat_metrics(self.metrics).items())[:4])
        return (
            f"[{self.job.kind}] {self.job.name}: {self.status} (hash {self.job.stage_hash[:10]}, {seconds:.0f}s)"
            + (f" {shown}" if shown else "")
            + (f" -> {self.checkpoint}" if self.checkpoint else "")
        )


def flat_metrics(metrics: dict) -> dict:
    return {
        f"{task}.{key}": value
        for task, values in metrics.items()
        for key, value in values.items()
        if isinstance(value, (int, float))
    }


def encoder_source(source, config: ExperimentConfig) -> tuple[str, str | None]:
    if source is None:
        return config.model.name_or_path, config.model.revision
    return str(source.checkpoint), None


def train_stage(job: StageJob, source, config: ExperimentConfig) -> TrainedStage:
    """Train ``job`` from ``source`` (the previous stage, or None for the base model), phase by phase
    (``hf_itt.pipeline.phases``: one phase unless the job is a phased target), then export it."""

    started, previous, record = time.time(), None, {}
    records = []
    for phase in job.phases():
        record = finished_record(phase, job.stage_hash)
        if record is None:
            record = train_phase(job, phase, source, previous, config)
        elif is_main_process():
            print(f"[{job.kind}] {job.name}: {phase.name} already finished (hash {job.stage_hash[:10]})", flush=True)
        records.append(record)
        previous = phase
    if is_main_process():
        export_checkpoint(
            job,
            previous.full_dir,
            load_tokenizer(previous.full_dir),
            record["metrics"],
            source,
            config,
            time.time() - started,
            stage_health(records),
            phase_summary(records),
            stage_budget([record.get("budget") for record in records]),
        )
        if job.kind == "target":
            evaluate_target(job, job.checkpoint_dir, config)
    barrier()
    return TrainedStage(job, job.checkpoint_dir, "trained", record["metrics"])


def train_phase(job: StageJob, phase: Phase, source, previous: Phase | None, config: ExperimentConfig) -> dict:
    """One Trainer run, from the job's source (the first phase) or the phase before's whole model.

    The health checks may end an attempt: "restart" reruns the phase from where it started with the next
    seed (the failed attempt's Trainer folder is kept as ``trainer.attempt<k>``), "stopped" raises
    TrainingHealthError and nothing is exported.
    """

    reports, attempt = [], read_attempt(phase)
    while True:
        trainer, tokenizer = build_trainer(job, phase, source, previous, config, seed=config.seed + attempt)
        start_weights = weights_digest(trainer.model) if task_trace.enabled() else None
        callbacks = health_callbacks(config.health, trainer, attempt=attempt)
        trace = TaskTrace(trainer.model) if task_trace.enabled() else None
        resume = last_checkpoint(phase.trainer_dir)
        if is_main_process():
            print(start_line(job, phase, resume, attempt), flush=True)
        trainer.train(resume_from_checkpoint=resume)
        if trace is not None:
            trace.save(phase.trainer_dir, rank())
        report = health_report(callbacks)
        reports.append(report.to_dict())
        if report.outcome == "ok":
            break
        if report.outcome == "stopped":
            raise stopped_error(job, report)
        attempt = start_next_attempt(phase, attempt)
    metrics = dev_metrics(trainer, phase.tasks)
    trainer.save_model(str(phase.full_dir))  # every rank: ZeRO-3 gathers the weights here
    budget = training_budget(trainer.args, trainer.state)
    barrier()
    record = {"metrics": metrics}
    if is_main_process():
        tokenizer.save_pretrained(phase.full_dir)
        weights = {"start": start_weights, "end": weights_digest(trainer.model)} if start_weights else None
        record = write_record(
            phase,
            job.stage_hash,
            str(previous.full_dir) if previous else encoder_source(source, config)[0],
            metrics,
            {"outcome": "ok", "attempts": reports, "seed": config.seed + attempt},
            weights,
            budget,
        )
    barrier()
    return record


def stage_health(records: list[dict]) -> dict:
    """The manifest's health block: the last phase's, with every phase's when there are several."""
    health = dict(records[-1].get("health") or {"outcome": "ok"})
    if len(records) > 1:
        health["phases"] = {record["name"]: record.get("health", {}) for record in records}
    return health


def phase_summary(records: list[dict]) -> list[dict] | None:
    """What the manifest says about the phases of a phased job (None for a single phase)."""
    if len(records) < 2:
        return None
    return [
        {"name": record["name"], "trained_on": record["trained_on"], "metrics": record["metrics"]} for record in records
    ]


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer  # defers transformers

    return AutoTokenizer.from_pretrained(folder)


def start_line(job: StageJob, phase: Phase, resume: str | None, attempt: int) -> str:
    """The one line a stage (or each phase of a phased target) prints when its training starts."""
    tasks = "+".join(plan.head for plan in phase.tasks)
    what = f"resuming from {resume}" if resume else "training"
    retry = f", health restart {attempt}" if attempt else ""
    step = f" {phase.name} ({phase.number}/{phase.count}, on {'+'.join(phase.trained_on)})" if phase.phased else ""
    return f"[{job.kind}] {job.name}:{step} {what} (hash {job.stage_hash[:10]}, tasks {tasks}{retry})"


ATTEMPT_FILE = "attempt.json"


def read_attempt(phase: Phase) -> int:
    """Which health restart of the phase is running (survives a killed run)."""

    path = phase.folder / ATTEMPT_FILE
    recorded = json.loads(path.read_text())["attempt"] if path.is_file() else 0
    # A kill between moving trainer/ aside and writing attempt.json leaves only the folder as a record.
    set_aside = [
        int(m.group(1)) + 1
        for p in phase.folder.glob("trainer.attempt*")
        if (m := re.fullmatch(r"trainer\.attempt(\d+)", p.name))
    ]
    return max([recorded, *set_aside])


def start_next_attempt(phase: Phase, attempt: int) -> int:

    barrier()
    if is_main_process():
        phase.trainer_dir.rename(phase.folder / f"trainer.attempt{attempt}")
        atomic_write_text(phase.folder / ATTEMPT_FILE, json.dumps({"attempt": attempt + 1}))
    barrier()
    return attempt + 1


def stopped_error(job: StageJob, report):

    events = "; ".join(event["message"] for event in report.to_dict()["events"]) or "no details"
    return TrainingHealthError(
        f"{job.kind} stage {job.name!r} was stopped by the health checks: {events}. Nothing "
        f"was exported; earlier stages are kept. Change the settings named above and rerun "
        f"(its Trainer checkpoints are in {job.trainer_dir}; delete them to start afresh)."
    )


def build_trainer(job: StageJob, phase: Phase, source, previous: Phase | None, config: ExperimentConfig, seed: int):
    """TrainingArguments first (ZeRO-3 needs them before the model), then data, model, trainer. The model is
    the source encoder with fresh heads, or (a later phase) the whole model the phase before saved."""
    from transformers import AutoTokenizer, set_seed

    view = replace(job, tasks=phase.tasks)  # the phase's tasks only: dev metrics, sampler weights
    training, deepspeed = deepspeed_setup(job)
    args = build_training_arguments(
        training, str(phase.trainer_dir), seed, deepspeed=deepspeed, where=f"{job.kind} {job.name} training"
    )
    encoder, revision = encoder_source(source, config)
    tokenizer_source = config.model.tokenizer or encoder
    with loading_errors(tokenizer_source, "tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, revision=revision)
    with_dev = args.eval_strategy != "no" or args.load_best_model_at_end
    data = [
        tokenize_task(
            TaskData(plan.head, plan.spec),
            plan.source_spec,
            tokenizer,
            data_files=plan.data_files,
            lang=None,
            max_length=plan.max_length,
            max_train=plan.max_train,
            max_dev=plan.max_dev,
            with_dev=with_dev,
            training_args=args,
        )
        for plan in phase.tasks
    ]
    set_seed(seed)  # heads are initialised here, before the Trainer seeds anything
    heads = {plan.head: plan.spec for plan in phase.tasks}
    if previous is None:
        with loading_errors(encoder, "encoder"):
            model = MultiTaskModel.from_encoder(encoder, heads, revision=revision)
    else:
        model = MultiTaskModel.from_pretrained(previous.full_dir, tasks=heads)
    check_vocabulary(tokenizer, model, str(tokenizer_source), str(encoder))
    freeze_encoder(model, config.model.freeze)
    dev_sets = {d.name: d.dev for d in data if d.dev is not None}
    metric_functions = dev_metric_functions(view, dev_sets, tokenizer)
    trainer = MultiTaskTrainer(
        model,
        args,
        train_dataset={d.name: d.train for d in data},
        eval_dataset=dev_sets or None,
        sampler=job.sampling.get("strategy", "proportional"),
        sampler_kwargs=sampler_options(view),
        processing_class=tokenizer,
        compute_metrics_per_task=metric_functions,
        main_metrics=main_dev_metrics(view, metric_functions),
    )
    if job.early_stopping_patience:  # checked at load: load_best_model_at_end is on
        trainer.add_callback(ResumableEarlyStopping(job.early_stopping_patience))
    return trainer, tokenizer


def deepspeed_setup(job: StageJob) -> tuple[dict, dict | None]:
    """The stage's DeepSpeed config, validated against its training arguments before any model exists."""
    if not job.deepspeed:
        return job.training, None

    training = {**job.training, **prepare_deepspeed_launch()}
    return training, resolve_deepspeed_config(job.deepspeed, training)


def sampler_options(job: StageJob) -> dict:
    options = {k: v for k, v in job.sampling.items() if k != "strategy"}
    if job.sampling.get("strategy") == "weights":
        options["weights"] = {plan.head: plan.weight for plan in job.tasks}
    return options


def dev_metrics(trainer, tasks: list) -> dict:
    """Final dev metrics per task ({task: {metric: value}}) for the manifest and model card."""
    if not trainer.eval_datasets:
        return {}
    flat = trainer.evaluate()
    metrics: dict = {}
    for plan in tasks:
        prefix = f"eval_{plan.head}_"
        metrics[plan.head] = {
            k[len(prefix) :]: v for k, v in flat.items() if k.startswith(prefix) and k[len(prefix) :] not in BOOKKEEPING
        }
    return metrics


def export_checkpoint(
    job: StageJob,
    full_dir: Path,
    tokenizer,
    metrics: dict,
    source,
    config,
    seconds: float,
    health: dict | None = None,
    phases: list[dict] | None = None,
    budget: dict | None = None,
) -> Path:
    """Write the stage checkpoint into a partial folder, manifest last, then rename it into place."""
    from hf_itt.hub.model_card import write_model_card  # defers huggingface_hub

    partial = job.stage_dir / "checkpoint.partial"
    shutil.rmtree(partial, ignore_errors=True)
    model = MultiTaskModel.from_pretrained(full_dir)
    name_labels(model.config)
    if job.kind == "target":
        model.save_pretrained(partial)  # evaluation needs the head
        tokenizer.save_pretrained(partial)
    else:
        model.export_encoder(partial, tokenizer)
        save_heads(model, partial)
    parent = read_parent_manifest(source)
    base = config.model.name_or_path
    manifest = StageManifest(
        experiment=config.experiment,
        stage=job.name,
        stage_hash=job.stage_hash,
        config={
            "training": job.training,
            "sampling": job.sampling,
            "deepspeed": job.deepspeed,
            "max_length": {plan.head: plan.max_length or plan.spec.max_length for plan in job.tasks},
            "seed": config.seed,
            "early_stopping_patience": job.early_stopping_patience,
            **({"phases": phases} if phases else {}),
        },
        identity=job.identity,
        tasks=job.identity.get("tasks", []),
        source=str(source.checkpoint) if source else f"{base}@{config.model.revision or 'main'}",
        lineage=next_lineage(
            parent,
            base_model=base,
            base_revision=config.model.revision,
            stage=job.name,
            stage_hash=job.stage_hash,
            tasks=list(dict.fromkeys(plan.head for plan in job.tasks)),
            budget=budget,
            kind=job.kind,
        ),
        metrics=metrics,
        timings={"train_seconds": round(seconds, 1)},
        health=health or {},
        budget=budget or {},
    )
    write_model_card(partial, manifest, job.repo_id, license=config.hub.license, kind=job.kind)
    apply_umask(partial)  # safetensors writes 0600: a team sharing the hub index must read the stage
    finish_manifest(partial, manifest)
    if job.checkpoint_dir.exists():
        shutil.rmtree(job.checkpoint_dir)
    partial.rename(job.checkpoint_dir)
    read_manifest(job.checkpoint_dir)  # fail now, not in the next stage, if anything went wrong
    return job.checkpoint_dir


def name_labels(config) -> None:
    """id2label / label2id of a single-head model from its label names (pipelines and the Hub read them)."""
    labelled = [spec for spec in config.tasks.values() if spec.get("labels")]
    if len(config.tasks) == 1 and labelled:
        config.id2label = dict(enumerate(labelled[0]["labels"]))
        config.label2id = {label: index for index, label in config.id2label.items()}


def read_parent_manifest(source):

    if source is None or source.checkpoint is None:
        return None
    try:
        return read_manifest(source.checkpoint)
    except CheckpointError:  # a `from:` checkpoint published by another tool has no manifest
        return None


def save_heads(model, folder: Path) -> Path:
    """The task heads of a finished stage (not carried into the next stage, kept for reuse)."""
    from safetensors.torch import save_file

    tied = {key.removeprefix("heads.") for key in model._tied_weights_keys}  # MLM decoders = the embeddings
    state = {name: tensor.contiguous() for name, tensor in model.heads.state_dict().items() if name not in tied}
    path = folder / HEADS_FILE
    save_file(state, str(path), metadata={"tasks": ",".join(model.config.task_names)})
    return path
