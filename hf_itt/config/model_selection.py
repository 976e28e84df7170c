"""Model selection as jiant does it: evaluate on the English dev subset every N updates, stop after
``early_stopping_patience`` evaluations without a new best, export the best evaluation's weights.

The TrainingArguments do most of it (``eval_strategy``/``eval_steps``, ``save_strategy``/``save_steps``,
``load_best_model_at_end``, ``metric_for_best_model``); this module resolves the one setting they lack,
``early_stopping_patience`` (the stage's or target's own value, else its preset's, else 0 = off), and
checks at load what would otherwise fail after the data is read:

- early stopping needs ``load_best_model_at_end`` (jiant always restores the best evaluation; without
  it the run would stop early and export the last weights);
- a stage that picks its weights on dev needs dev data for its tasks: a ``data_files`` mapping without a
  ``validation`` entry fails here, not after the training data is tokenized; a task without a dev split
  at all is left out of the selection (a warning names it), and a stage where no task has one is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from hf_itt.config.experiment import ExperimentConfig
from hf_itt.config.presets import get_preset
from hf_itt.config.training_args import merged_training
from hf_itt.errors import ConfigError
from hf_itt.tasks.formats import ROLE_ALIASES
from hf_itt.tasks.registry import get_task

logger = logging.getLogger(__name__)


def resolved_patience(preset: str | None, own: int | None) -> int:
    """``own`` when set, else the preset's ``early_stopping_patience``, else 0 (no early stopping)."""
    if own is not None:
        return own
    return int((get_preset(preset).get("early_stopping_patience") or 0) if preset else 0)


def job_patience(config: ExperimentConfig, kind: str, name: str) -> int:
    """The early-stopping patience of the job ``kind``/``name`` (an ITT stage or a target); 0 for a `from:` stage."""
    if kind == "target":
        return resolved_patience(config.targets.preset, config.targets.early_stopping_patience)
    stage = next((stage for stage in config.stages if stage.name == name), None)
    if kind != "itt" or stage is None:
        return 0
    return resolved_patience(stage.preset, stage.early_stopping_patience)


@dataclass
class SelectionPlan:
    """What one trained stage or target selects on, as resolved at load."""

    where: str
    training: dict
    patience: int
    tasks: list[tuple[str, object, object]]  # (head, TaskSpec read for dev rows, its data_files)


def selection_plans(config: ExperimentConfig) -> Iterator[SelectionPlan]:
    def preset_training(name: str | None) -> dict:
        return (get_preset(name).get("training") or {}) if name else {}

    for index, stage in enumerate(config.stages):
        if stage.from_ is not None:
            continue
        tasks = [
            (
                entry.name,
                get_task(entry.name).with_overrides(lang=entry.lang) if entry.lang else get_task(entry.name),
                entry.data_files,
            )
            for entry in stage.tasks
        ]
        yield SelectionPlan(
            f"stages[{index}] ({stage.name})",
            merged_training(config.defaults.training, preset_training(stage.preset), stage.training),
            resolved_patience(stage.preset, stage.early_stopping_patience),
            tasks,
        )
    targets = config.targets
    for task in targets.tasks:
        spec = get_task(task)
        if spec.train_task is None:
            continue
        training = merged_training(
            config.defaults.training,
            preset_training(targets.preset),
            targets.training,
            targets.per_task_training.get(task),
        )
        yield SelectionPlan(
            f"targets ({task})",
            training,
            resolved_patience(targets.preset, targets.early_stopping_patience),
            [(task, get_task(spec.train_task), targets.data_files.get(spec.train_task))],
        )


def check_model_selection(config: ExperimentConfig) -> None:
    check_patience_values(config)
    for plan in selection_plans(config):
        if plan.patience and not plan.training.get("load_best_model_at_end"):
            raise ConfigError(
                f"{plan.where}: early_stopping_patience {plan.patience} needs load_best_model_at_end: "
                f"true (the best evaluation's weights are exported, as jiant does); set it in "
                f"`training:` with eval_strategy and save_strategy 'steps', or set "
                f"early_stopping_patience: 0"
            )
        if plan.training.get("load_best_model_at_end"):
            check_dev_data(plan)


def check_patience_values(config: ExperimentConfig) -> None:
    values = [
        (f"stages[{i}].early_stopping_patience", stage.early_stopping_patience) for i, stage in enumerate(config.stages)
    ]
    values.append(("targets.early_stopping_patience", config.targets.early_stopping_patience))
    for where, value in values:
        if value is not None and value < 0:
            raise ConfigError(f"{where} is {value}; use a number of evaluations >= 1, or 0 for no early stopping")


def check_dev_data(plan: SelectionPlan) -> None:
    """Every task of a stage that picks its weights on dev has dev rows to be scored on."""
    without = []
    for head, spec, data_files in plan.tasks:
        if isinstance(data_files, dict) and not has_validation_entry(data_files):
            raise ConfigError(
                f"{plan.where}: load_best_model_at_end picks the weights on the dev set, but "
                f"data_files of {spec.name} has no validation entry (it has {sorted(data_files)}); "
                f"add `validation: path/to/dev file`, or turn selection off for it "
                f"(training: {{load_best_model_at_end: false, eval_strategy: 'no'}} and "
                f"early_stopping_patience: 0)"
            )
        if not spec.has_split("validation"):
            without.append(head)
    if without and len(without) == len(plan.tasks):
        raise ConfigError(
            f"{plan.where}: load_best_model_at_end picks the weights on the dev set, but "
            f"{', '.join(without)} has no validation split; turn selection off for it (training: "
            f"{{load_best_model_at_end: false, eval_strategy: 'no'}} and early_stopping_patience: 0)"
        )
    if without:
        logger.warning(
            "%s: %s has no validation split, so the dev evaluation that picks the weights leaves it out",
            plan.where,
            ", ".join(without),
        )


def has_validation_entry(data_files: dict) -> bool:
    return any(ROLE_ALIASES.get(key, key) == "validation" for key in data_files)


__all__ = ["check_model_selection", "job_patience", "resolved_patience"]
