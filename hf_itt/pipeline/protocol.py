"""The protocol an experiment will follow, one row per job, as ``--dry-run`` prints it.

For each ITT stage and target: what it trains on, epochs, learning rate, batch (per device x
accumulation), sequence length, how the kept checkpoint is selected, and which encoder each retrieval
task embeds with: the facts a reader checks against the reference protocol (TASKS.md; jiant's XTREME
pipeline, XTREME-R's scripts) before spending GPU hours.
"""

from __future__ import annotations

from dataclasses import dataclass

from hf_itt.config.experiment import ExperimentConfig
from hf_itt.pipeline.jobs import StageJob

COLUMNS = ("job", "trained on", "epochs", "lr", "batch", "max length", "selection", "encoder")


@dataclass
class ProtocolRow:
    job: str
    trained_on: str
    epochs: str
    lr: str
    batch: str
    max_length: str
    selection: str
    encoder: str

    def cells(self) -> tuple[str, ...]:
        return (
            self.job,
            self.trained_on,
            self.epochs,
            self.lr,
            self.batch,
            self.max_length,
            self.selection,
            self.encoder,
        )


def protocol_rows(config: ExperimentConfig, jobs: list[StageJob]) -> list[ProtocolRow]:
    rows, encoder = [], "base model"
    for job in jobs:
        if job.kind == "from":
            encoder = f"published stage {job.name}"
            continue
        if job.is_retrieval:
            rows.append(retrieval_row(config, job, encoder))
            continue
        rows.append(training_row(job, encoder))
        if job.kind == "itt":
            encoder = f"ITT stage {job.name}"
    return rows


def training_row(job: StageJob, encoder: str) -> ProtocolRow:
    training = job.training
    trained_on = " + ".join(plan.source_spec.name for plan in job.tasks)
    if job.phased:  # XTREME-R's XCOPA: SIQA, then COPA
        trained_on = " -> ".join("+".join(phase.trained_on) for phase in job.phases())
    elif job.kind == "itt":
        trained_on = ("joint: " if len(job.tasks) > 1 else "") + trained_on
    epochs = (
        f"max_steps {training['max_steps']}"
        if training.get("max_steps", -1) > 0
        else format_number(training.get("num_train_epochs", 3.0))
    )
    batch = f"{training.get('per_device_train_batch_size', 8)} x {training.get('gradient_accumulation_steps', 1)}"
    own_encoder = (
        "its dual encoder (fine-tuned)" if any(plan.spec.task_type.candidate_pool for plan in job.tasks) else "-"
    )
    return ProtocolRow(
        f"{job.kind} {job.name}",
        trained_on,
        epochs,
        format_number(training.get("learning_rate", 5e-5)),
        batch,
        lengths_of(job.tasks),
        selection(training, job),
        own_encoder if job.kind == "target" else f"from {encoder}",
    )


def retrieval_row(config: ExperimentConfig, job: StageJob, encoder: str) -> ProtocolRow:
    layer = config.evaluation.retrieval_layer
    where = f"layer {layer}" if layer is not None else "layer 14/24 of the depth"
    return ProtocolRow(
        f"{job.kind} {job.name}",
        "- (evaluated from the encoder)",
        "-",
        "-",
        "-",
        str(config.evaluation.retrieval_max_length),
        "-",
        f"{job.encoder if job.encoder_target else encoder}, {where}, mean-pooled",
    )


def lengths_of(plans) -> str:
    """One length when all tasks share it, else each task's in order."""
    lengths = [length_of(plan) for plan in plans]
    return lengths[0] if len(set(lengths)) == 1 else ", ".join(lengths)


def length_of(plan) -> str:
    return plan.spec.task_type.describe_length(plan.spec, plan.max_length or plan.spec.max_length)


def selection(training: dict, job: StageJob | None = None) -> str:
    """How the exported weights are chosen: the last checkpoint, or the best evaluation (metric, schedule,
    English dev rows per evaluation, early-stopping patience)."""
    if not training.get("load_best_model_at_end"):
        return "last checkpoint"
    metric = training.get("metric_for_best_model") or "loss"
    every = training.get("eval_steps") if training.get("eval_strategy") == "steps" else training.get("eval_strategy")
    text = f"best {metric}, evaluated every {every} steps" if isinstance(every, int) else f"best {metric} ({every})"
    dev_rows = {plan.max_dev for plan in job.tasks} if job else set()
    if len(dev_rows) == 1 and None not in dev_rows:
        text += f" on {dev_rows.pop()} dev rows"
    patience = getattr(job, "early_stopping_patience", None)
    return text + (f", patience {patience}" if patience else "")


def format_number(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def format_table(rows: list[ProtocolRow]) -> str:
    """A plain-text table (no truncation: every cell in full)."""
    cells = [COLUMNS] + [row.cells() for row in rows]
    widths = [max(len(line[column]) for line in cells) for column in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
