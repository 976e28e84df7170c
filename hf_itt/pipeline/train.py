"""Train one job (an ITT stage or a target fine-tuning) and hand it over through disk.

Order of writes, so that a killed run never leaves a folder that looks finished: Trainer checkpoints
(resume points) -> ``full/`` (the whole multi-task model) -> ``checkpoint.partial/`` (exported
encoder, tokenizer, heads, card) -> manifest written last -> renamed to ``checkpoint/``.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from hf_itt.config.experiment import ExperimentConfig
from hf_itt.training import task_trace
from hf_itt.training.distributed import barrier, is_main_process, rank
from hf_itt.health.callbacks import health_callbacks, health_report
from hf_itt.pipeline.jobs import StageJob
from hf_itt.training.task_trace import TaskTrace

logger = logging.getLogger(__name__)
HEADS_FILE = "heads.safetensors"
BOOKKEEPING = ("runtime", "samples_per_second", "steps_per_second", "epoch")


@dataclass
class TrainedStage:
    job: StageJob
    checkpoint: Path | None
    status: str                      # trained | reused | downloaded | evaluated
    metrics: dict = field(default_factory=dict)

    @classmethod
    def from_reference(cls, job: StageJob) -> "TrainedStage":
        from hf_itt.hub.publishers import resolve_reference

        return cls(job, resolve_reference(job.source), "downloaded")

    @classmethod
    def reused(cls, job: StageJob, folder: Path) -> "TrainedStage":
        from hf_itt.hub.manifest import read_manifest

        return cls(job, Path(folder), "reused", read_manifest(folder).metrics)

    def summary_line(self, seconds: float) -> str:
        shown = ", ".join(f"{k}={v:.3g}" for k, v in list(flat_metrics(self.metrics).items())[:4])
        return (f"[{self.job.kind}] {self.job.name}: {self.status} (hash {self.job.stage_hash[:10]}, {seconds:.0f}s)"
                + (f" {shown}" if shown else "") + (f" -> {self.checkpoint}" if self.checkpoint else ""))


def flat_metrics(metrics: dict) -> dict:
    return {f"{task}.{key}": value for task, values in metrics.items() for key, value in values.items()
            if isinstance(value, (int, float))}


def encoder_source(source, config: ExperimentConfig) -> tuple[str, str | None]:
    if source is None:
        return config.model.name_or_path, config.model.revision
    return str(source.checkpoint), None


def train_stage(job: StageJob, source, config: ExperimentConfig) -> TrainedStage:
    """Train ``job`` from ``source`` (the previous stage, or None for the base model).

    The health checks may end an attempt: "restart" reruns the stage from its source with the next
    seed (the failed attempt's Trainer folder is kept as ``trainer.attempt<k>``), "stopped" raises
    TrainingHealthError and nothing is exported.
    """
    from hf_itt.pipeline.target_eval import evaluate_target

    started, reports = time.time(), []
    attempt = read_attempt(job)
    while True:
        trainer, tokenizer = build_trainer(job, source, config, seed=config.seed + attempt)
        callbacks = health_callbacks(config.health, trainer, attempt=attempt)
        trace = TaskTrace(trainer.model) if task_trace.enabled() else None
        trainer.train(resume_from_checkpoint=last_checkpoint(job.trainer_dir))
        if trace is not None:
            trace.save(job.trainer_dir, rank())
        report = health_report(callbacks)
        reports.append(report.to_dict())
        if report.outcome == "ok":
            break
        if report.outcome == "stopped":
            raise stopped_error(job, report)
        attempt = start_next_attempt(job, attempt)
    metrics = dev_metrics(trainer, job)
    full_dir = job.stage_dir / "full"
    trainer.save_model(str(full_dir))  # every rank: ZeRO-3 gathers the weights here
    barrier()
    if is_main_process():
        tokenizer.save_pretrained(full_dir)
        health = {"outcome": "ok", "attempts": reports, "seed": config.seed + attempt}
        export_checkpoint(job, full_dir, tokenizer, metrics, source, config, time.time() - started, health)
        if job.kind == "target":
            evaluate_target(job, job.checkpoint_dir, config)
    barrier()
    return TrainedStage(job, job.checkpoint_dir, "trained", metrics)


ATTEMPT_FILE = "attempt.json"


def read_attempt(job: StageJob) -> int:
    """Which health restart of the stage is running (survives a killed run)."""
    import json

    import re

    path = job.stage_dir / ATTEMPT_FILE
    recorded = json.loads(path.read_text())["attempt"] if path.is_file() else 0
    # A kill between moving trainer/ aside and writing attempt.json leaves only the folder as a record.
    set_aside = [int(m.group(1)) + 1 for p in job.stage_dir.glob("trainer.attempt*")
                 if (m := re.fullmatch(r"trainer\.attempt(\d+)", p.name))]
    return max([recorded, *set_aside])


def start_next_attempt(job: StageJob, attempt: int) -> int:
    import json

    from hf_itt.fileio import atomic_write_text

    barrier()
    if is_main_process():
        job.trainer_dir.rename(job.stage_dir / f"trainer.attempt{attempt}")
        atomic_write_text(job.stage_dir / ATTEMPT_FILE, json.dumps({"attempt": attempt + 1}))
    barrier()
    return attempt + 1


def stopped_error(job: StageJob, report):
    from hf_itt.errors import TrainingHealthError

    events = "; ".join(event["message"] for event in report.to_dict()["events"]) or "no details"
    return TrainingHealthError(f"{job.kind} stage {job.name!r} was stopped by the health checks: {events}. Nothing "
                               f"was exported; earlier stages are kept. Change the settings named above and rerun "
                               f"(its Trainer checkpoints are in {job.trainer_dir}; delete them to start afresh).")


def last_checkpoint(trainer_dir: Path) -> str | None:
    """The newest COMPLETE Trainer checkpoint: a kill can leave the newest one half-written.

    The Trainer writes trainer_state.json after the weights, optimizer and RNG states, so a checkpoint
    whose trainer_state.json parses is complete, unless its sampler_state.json (MultiTaskTrainer
    writes it after the Trainer's files) is torn.
    """
    import json
    import re

    if not trainer_dir.is_dir():
        return None
    numbered = [(int(m.group(1)), p) for p in trainer_dir.iterdir() if (m := re.fullmatch(r"checkpoint-(\d+)", p.name))]
    for _, folder in sorted(numbered, reverse=True):
        try:
            json.loads((folder / "trainer_state.json").read_text())
            if (folder / "sampler_state.json").exists():
                json.loads((folder / "sampler_state.json").read_text())
        except (OSError, ValueError):
            logger.warning("%s is incomplete (killed while saving?); resuming from an earlier checkpoint", folder)
            continue
        return str(folder)
    return None


def build_trainer(job: StageJob, source, config: ExperimentConfig, seed: int):
    """TrainingArguments first (ZeRO-3 needs them before the model), then data, model, trainer."""
    from transformers import AutoTokenizer, set_seed

    from hf_itt.training.model_loading import check_vocabulary, loading_errors
    from hf_itt.training.freezing import freeze_encoder
    from hf_itt.training.modeling import MultiTaskModel
    from hf_itt.pipeline.stage_data import TaskData, tokenize_task
    from hf_itt.training.trainer import MultiTaskTrainer
    from hf_itt.config.training_args import build_training_arguments

    training, deepspeed = deepspeed_setup(job)
    args = build_training_arguments(training, str(job.trainer_dir), seed, deepspeed=deepspeed,
                                    where=f"{job.kind} {job.name} training")
    encoder, revision = encoder_source(source, config)
    tokenizer_source = config.model.tokenizer or encoder
    with loading_errors(tokenizer_source, "tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, revision=revision)
    with_dev = args.eval_strategy != "no" or args.load_best_model_at_end
    data = [tokenize_task(TaskData(plan.head, plan.spec), plan.source_spec, tokenizer, data_files=plan.data_files,
                          lang=None, max_length=job.max_length, max_train=plan.max_train, max_dev=plan.max_dev or 500,
                          with_dev=with_dev, training_args=args) for plan in job.tasks]
    set_seed(seed)  # heads are initialised here, before the Trainer seeds anything
    with loading_errors(encoder, "encoder"):
        model = MultiTaskModel.from_encoder(encoder, {plan.head: plan.spec for plan in job.tasks}, revision=revision)
    check_vocabulary(tokenizer, model, str(tokenizer_source), str(encoder))
    freeze_encoder(model, config.model.freeze)
    trainer = MultiTaskTrainer(
        model, args, train_datasets={d.name: d.train for d in data},
        eval_datasets={d.name: d.dev for d in data if d.dev is not None} or None,
        sampler=job.sampling.get("strategy", "proportional"), sampler_kwargs=sampler_options(job),
        processing_class=tokenizer, compute_metrics_per_task=dev_metric_functions(job))
    return trainer, tokenizer


def deepspeed_setup(job: StageJob) -> tuple[dict, dict | None]:
    """The stage's DeepSpeed config, validated against its training arguments before any model exists."""
    if not job.deepspeed:
        return job.training, None
    from hf_itt.config.deepspeed import prepare_deepspeed_launch, resolve_deepspeed_config

    training = {**job.training, **prepare_deepspeed_launch()}
    return training, resolve_deepspeed_config(job.deepspeed, training)


def sampler_options(job: StageJob) -> dict:
    options = {k: v for k, v in job.sampling.items() if k != "strategy"}
    if job.sampling.get("strategy") == "weights":
        options["weights"] = {plan.head: plan.weight for plan in job.tasks}
    return options


def dev_metrics(trainer, job: StageJob) -> dict:
    """Final dev metrics per task ({task: {metric: value}}) for the manifest and model card."""
    if not trainer.eval_datasets:
        return {}
    flat = trainer.evaluate()
    metrics: dict = {}
    for plan in job.tasks:
        prefix = f"eval_{plan.head}_"
        metrics[plan.head] = {k[len(prefix):]: v for k, v in flat.items()
                              if k.startswith(prefix) and k[len(prefix):] not in BOOKKEEPING}
    return metrics


def dev_accuracy(eval_prediction) -> dict[str, float]:
    """Accuracy in percent over labelled positions (classification, multiple choice, tagging)."""
    import numpy as np

    logits = eval_prediction.predictions[0] if isinstance(eval_prediction.predictions, tuple) else eval_prediction.predictions
    labels = eval_prediction.label_ids
    predicted = np.argmax(logits, axis=-1)
    mask = labels != -100
    return {"accuracy": float(100 * (predicted[mask] == labels[mask]).mean()) if mask.any() else 0.0}


def dev_metric_functions(job: StageJob) -> dict:
    from hf_itt.tasks.schema import CLASSIFICATION, MULTIPLE_CHOICE, TAGGING

    return {plan.head: dev_accuracy for plan in job.tasks
            if plan.spec.type in (CLASSIFICATION, MULTIPLE_CHOICE, TAGGING)}


def export_checkpoint(job: StageJob, full_dir: Path, tokenizer, metrics: dict, source, config, seconds: float,
                      health: dict | None = None) -> Path:
    """Write the stage checkpoint into a partial folder, manifest last, then rename it into place."""
    from hf_itt.hub.manifest import StageManifest, finish_manifest, next_lineage, read_manifest
    from hf_itt.hub.model_card import write_model_card
    from hf_itt.training.modeling import MultiTaskModel

    partial = job.stage_dir / "checkpoint.partial"
    shutil.rmtree(partial, ignore_errors=True)
    model = MultiTaskModel.from_pretrained(full_dir)
    if job.kind == "target":
        model.save_pretrained(partial)       # evaluation needs the head
        tokenizer.save_pretrained(partial)
    else:
        model.export_encoder(partial, tokenizer)
        save_heads(model, partial)
    parent = read_parent_manifest(source)
    base = config.model.name_or_path
    manifest = StageManifest(
        experiment=config.experiment, stage=job.name, stage_hash=job.stage_hash,
        config={"training": job.training, "sampling": job.sampling, "deepspeed": job.deepspeed,
                "max_length": job.max_length, "seed": config.seed},
        identity=job.identity, tasks=job.identity.get("tasks", []),
        source=str(source.checkpoint) if source else f"{base}@{config.model.revision or 'main'}",
        lineage=next_lineage(parent, base_model=base, base_revision=config.model.revision, stage=job.name,
                             stage_hash=job.stage_hash, tasks=[plan.head for plan in job.tasks]),
        metrics=metrics, timings={"train_seconds": round(seconds, 1)}, health=health or {})
    write_model_card(partial, manifest, job.repo_id)
    finish_manifest(partial, manifest)
    if job.checkpoint_dir.exists():
        shutil.rmtree(job.checkpoint_dir)
    partial.rename(job.checkpoint_dir)
    read_manifest(job.checkpoint_dir)  # fail now, not in the next stage, if anything went wrong
    return job.checkpoint_dir


def read_parent_manifest(source):
    from hf_itt.errors import CheckpointError
    from hf_itt.hub.manifest import read_manifest

    if source is None or source.checkpoint is None:
        return None
    try:
        return read_manifest(source.checkpoint)
    except CheckpointError:  # a `from:` checkpoint published by another tool has no manifest
        return None


def save_heads(model, folder: Path) -> Path:
    """The task heads of a finished stage (not carried into the next stage, kept for reuse)."""
    from safetensors.torch import save_file

    state = {name: tensor.contiguous() for name, tensor in model.heads.state_dict().items()
             if not name.endswith("decoder.weight")}  # MLM decoders are tied to the embeddings
    path = folder / HEADS_FILE
    save_file(state, str(path), metadata={"tasks": ",".join(model.config.task_names)})
    return path
