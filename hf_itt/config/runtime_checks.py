"""Checks of what a run will need later, made when the config loads (``hf-itt validate``, ``--dry-run``).

Each would otherwise fail at the first stage, after data loading, with a long traceback:

- ``report_to``: every integration is one transformers knows and is installed here;
- ``push_to_hub``: refused with the reason (hf_itt publishes every finished stage itself, ``hub:``);
- ``metric_for_best_model``: a metric the stage's dev evaluation will report (``eval_loss``,
  ``eval_average``, ``eval_<task>_loss`` or ``eval_<task>_<metric>``, the metrics per task type being
  those its task types report: accuracy, or exact_match / f1 for extractive QA).

Each stage and target is checked with its TrainingArguments as the run resolves them:
``defaults.training`` < the preset < its own ``training:`` (< ``targets.per_task_training.<task>``).
"""

from __future__ import annotations

from collections.abc import Iterator

from hf_itt.config.experiment import ExperimentConfig
from hf_itt.config.presets import get_preset
from hf_itt.config.training_args import merged_training
from hf_itt.errors import ConfigError, did_you_mean
from hf_itt.task_types import get_type
from hf_itt.tasks.registry import get_task

# integration -> the package to install, where its name differs from the integration's
PACKAGES = {
    "comet_ml": "comet-ml",
    "azure_ml": "azureml-core",
    "flyte": "flytekit",
    "kubeflow": "kfp",
    "neptune": "neptune",
}


def check_runtime(config: ExperimentConfig) -> None:
    for where, training, heads in resolved_trainings(config):
        check_report_to(training.get("report_to"), where)
        check_push_to_hub(training, where)
        check_best_metric(training, heads, where)


def resolved_trainings(config: ExperimentConfig) -> Iterator[tuple[str, dict, dict[str, str]]]:
    """(where, merged TrainingArguments fields, {head: task type}) of every stage and trained target."""

    def preset_training(name: str | None) -> dict:
        return (get_preset(name).get("training") or {}) if name else {}

    for index, stage in enumerate(config.stages):
        if stage.from_ is None:
            training = merged_training(config.defaults.training, preset_training(stage.preset), stage.training)
            yield f"stages[{index}] ({stage.name})", training, {t.name: get_task(t.name).type for t in stage.tasks}
    targets = config.targets
    for task in targets.tasks:
        spec = get_task(task)
        if spec.train_task is None:  # retrieval: evaluated from the encoder, not trained
            continue
        training = merged_training(
            config.defaults.training,
            preset_training(targets.preset),
            targets.training,
            targets.per_task_training.get(task),
        )
        yield f"targets ({task})", training, {task: spec.type}


def check_report_to(report_to, where: str) -> None:
    from transformers.integrations.integration_utils import (
        INTEGRATION_TO_CALLBACK,
        get_available_reporting_integrations,
    )

    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    available = set(get_available_reporting_integrations())
    for name in names:
        if name in ("none", "all"):
            continue
        if name not in INTEGRATION_TO_CALLBACK:
            raise ConfigError(
                f"{where}: report_to {name!r} is not an integration transformers knows"
                f"{did_you_mean(name, INTEGRATION_TO_CALLBACK, n=1)}"
                f" (known: {', '.join(sorted(INTEGRATION_TO_CALLBACK))}, none, all)"
            )
        if name not in available:
            raise ConfigError(
                f"{where}: report_to {name!r} needs its package, which is not installed here: "
                f"pip install {PACKAGES.get(name, name)}, or drop it from report_to"
            )


def check_push_to_hub(training: dict, where: str) -> None:
    if training.get("push_to_hub"):
        raise ConfigError(
            f"{where}: push_to_hub is replaced by the `hub:` section: hf_itt publishes every finished "
            "stage itself (checkpoint, manifest and model card) and reuses published stages; set "
            "hub.publisher: hub and hub.namespace: <your user or org>, and remove push_to_hub"
        )


def dev_metric_names(heads: dict[str, str]) -> list[str]:
    """The metric names (without ``eval_``) a stage's dev evaluation reports for these heads."""
    names = ["loss"]
    if heads and all(get_type(task_type).main_dev_metric for task_type in heads.values()):
        names.append("average")
    for head, task_type in heads.items():
        names += [f"{head}_loss", *(f"{head}_{metric}" for metric in get_type(task_type).dev_metric_names)]
    return names


def check_best_metric(training: dict, heads: dict[str, str], where: str) -> None:
    metric = training.get("metric_for_best_model")
    if not metric:
        return
    names = dev_metric_names(heads)
    if str(metric).removeprefix("eval_") in names:
        return
    reason = ""
    if str(metric).removeprefix("eval_") == "average":
        no_metric = [head for head, task_type in heads.items() if not get_type(task_type).main_dev_metric]
        reason = f" ({', '.join(no_metric)} report{'s' if len(no_metric) == 1 else ''} only a loss on dev: no average)"
    raise ConfigError(
        f"{where}: metric_for_best_model {metric!r} is not a metric this stage's dev evaluation "
        f"reports{reason}; use one of {', '.join(names)}"
    )


__all__ = ["check_runtime", "dev_metric_names"]
