"""Checks an ExperimentConfig before any model is built: every problem found is one ConfigError
that names the field, the bad value and the nearest valid names."""

from __future__ import annotations

import difflib
import re
import string

from hf_itt.config.experiment import (PUBLISHERS, REFERENCE_PATTERN, SAMPLING_STRATEGIES, ExperimentConfig,
                           StageConfig)
from hf_itt.errors import ConfigError, TaskError
from hf_itt.config.training_args import check_training_keys

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
EVAL_SPLITS = ("validation", "test")
TEMPLATE_FIELDS = {"namespace", "experiment", "stage", "hash"}


def validate_experiment(config: ExperimentConfig) -> None:
    check_name(config.experiment, "experiment")
    if config.prepare is not None and not re.match(r"^[\w.]+:\w+$", config.prepare):
        raise ConfigError(f"prepare {config.prepare!r} must be 'package.module:function'")
    check_model(config)
    register_task_dirs(config)
    check_training_keys(config.defaults.training, "defaults.training")
    check_deepspeed(config.defaults.deepspeed, config.defaults.training, "defaults.deepspeed")
    check_stages(config)
    check_targets(config)
    check_evaluation(config)
    check_hub(config)
    if not config.stages and not config.targets.tasks:
        raise ConfigError("the experiment has no stages and no targets.tasks: nothing to run")


def check_name(value: str, where: str) -> None:
    if not value:
        raise ConfigError(f"{where} is missing; give it a short name such as 'squad-then-mnli'")
    if not SAFE_NAME.match(value):
        raise ConfigError(f"{where} {value!r} may only hold letters, digits, '.', '_' and '-' "
                          "(it becomes a folder and repo name)")


def check_model(config: ExperimentConfig) -> None:
    """A base model or tokenizer given as a path must be a saved model folder (a Hub id is checked when loaded)."""
    from pathlib import Path

    for index, prefix in enumerate(config.model.freeze):
        if not prefix.strip() or prefix != prefix.strip():
            raise ConfigError(f"model.freeze[{index}] {prefix!r} must be a parameter-name prefix such as "
                              "'embeddings.' or 'encoder.layer.0.' (no spaces)")
    if config.prepare:  # the prepare hook builds the model folder
        return
    for key, value in (("model.name_or_path", config.model.name_or_path), ("model.tokenizer", config.model.tokenizer)):
        if not value or not looks_like_path(value):
            continue
        folder = Path(value).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"{key} {value!r} is not a folder (looked at {folder.absolute()}); fix the path, "
                              "or give a Hub id such as 'xlm-roberta-large'")
        if key == "model.name_or_path" and not (folder / "config.json").is_file():
            raise ConfigError(f"{key} {value!r} has no config.json, so it is not a saved model; point it at a "
                              "save_pretrained() folder (or a stage's checkpoint/ folder)")


def looks_like_path(value: str) -> bool:
    """Hub ids are 'name' or 'namespace/name'; anything else with a slash, or an existing folder, is a path."""
    from pathlib import Path

    return (value.startswith(("/", "./", "../", "~")) or value.count("/") > 1 or "\\" in value
            or Path(value).expanduser().is_dir())


REGISTERED_DIRS: set[str] = set()  # several experiments of one file share their task_dirs


def register_task_dirs(config: ExperimentConfig) -> None:
    from pathlib import Path

    from hf_itt.tasks.registry import register_task_dir

    for folder in config.task_dirs:
        path = config.resolve_path(folder)
        if not Path(path).is_dir():
            raise ConfigError(f"task_dirs: folder {folder!r} not found (looked at {path})")
        if str(Path(path).resolve()) not in REGISTERED_DIRS:
            register_task_dir(path)
            REGISTERED_DIRS.add(str(Path(path).resolve()))


def lookup_task(name: str, where: str):
    from hf_itt.tasks.registry import get_task

    try:
        return get_task(name)
    except TaskError as err:
        raise ConfigError(f"{where}: {err}") from None


def check_stages(config: ExperimentConfig) -> None:
    seen: set[str] = set()
    for index, stage in enumerate(config.stages):
        where = f"stages[{index}]"
        check_name(stage.name, f"{where}.name")
        if stage.name in seen:
            raise ConfigError(f"{where}.name {stage.name!r} is used twice; stage names must be unique")
        seen.add(stage.name)
        check_stage(stage, where)


def check_stage(stage: StageConfig, where: str) -> None:
    from hf_itt.config.presets import get_preset
    from hf_itt.tasks.schema import TRAINABLE_TYPES

    if stage.from_ is not None:
        if not REFERENCE_PATTERN.match(stage.from_):
            raise ConfigError(f"{where}.from {stage.from_!r} must be 'namespace/repo@revision', "
                              "'namespace/repo' or a local folder")
    elif not stage.tasks:
        raise ConfigError(f"{where} ({stage.name}) has no tasks; list at least one, or set `from:`")
    names = [task.name for task in stage.tasks]
    for i, task in enumerate(stage.tasks):
        spec = lookup_task(task.name, f"{where}.tasks[{i}]")
        if spec.type not in TRAINABLE_TYPES:
            raise ConfigError(f"{where}.tasks[{i}]: {task.name} is a {spec.type} task with no training data; "
                              "use it under targets.tasks")
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: a task is listed twice in {names}")
    check_sampling(stage, where)
    check_training_keys(stage.training, f"{where}.training")
    check_deepspeed(stage.deepspeed, stage.training, f"{where}.deepspeed")
    if stage.preset:
        get_preset(stage.preset)


def check_sampling(stage: StageConfig, where: str) -> None:
    sampling = stage.sampling
    if sampling.strategy not in SAMPLING_STRATEGIES:
        hint = difflib.get_close_matches(sampling.strategy, SAMPLING_STRATEGIES, n=2)
        raise ConfigError(f"{where}.sampling.strategy {sampling.strategy!r} is unknown"
                          + (f"; did you mean {', '.join(hint)}?" if hint else "")
                          + f" (valid: {', '.join(SAMPLING_STRATEGIES)})")
    if sampling.temperature <= 0:
        raise ConfigError(f"{where}.sampling.temperature must be > 0, got {sampling.temperature}")
    if sampling.strategy == "capped" and (sampling.cap is None or sampling.cap <= 0):
        raise ConfigError(f"{where}.sampling: strategy 'capped' needs cap: <positive number of examples>")
    if sampling.strategy == "weights":
        weights = [task.weight for task in stage.tasks]
        if any(w is None or not w > 0 for w in weights):
            raise ConfigError(f"{where}.sampling: strategy 'weights' needs a weight > 0 on every task "
                              f"(drop a task instead of weighting it 0); got "
                              f"{dict(zip([t.name for t in stage.tasks], weights))}")


def check_targets(config: ExperimentConfig) -> None:
    targets = config.targets
    check_training_keys(targets.training, "targets.training")
    check_deepspeed(targets.deepspeed, targets.training, "targets.deepspeed")
    for task, training in targets.per_task_training.items():
        if task not in targets.tasks:
            raise ConfigError(f"targets.per_task_training.{task}: {task} is not in targets.tasks {targets.tasks}")
        check_training_keys(training, f"targets.per_task_training.{task}")
    for i, name in enumerate(targets.tasks):
        spec = lookup_task(name, f"targets.tasks[{i}]")
        if spec.train_task is None and spec.type not in ("retrieval",):
            raise ConfigError(f"targets.tasks[{i}]: {name} has no English training task; "
                              "it cannot be a target (targets are XTREME/XTREME-R tasks such as xnli, tatoeba)")
    for name, languages in targets.languages.items():
        if name not in targets.tasks:
            raise ConfigError(f"targets.languages.{name}: {name} is not in targets.tasks {targets.tasks}")
        known = set(lookup_task(name, f"targets.languages.{name}").all_languages())
        unknown = [lang for lang in languages if lang not in known]
        if unknown:
            raise ConfigError(f"targets.languages.{name}: {name} has no language {unknown[0]!r} "
                              f"(it has: {' '.join(sorted(known))})")
    if targets.preset:
        from hf_itt.config.presets import get_preset

        get_preset(targets.preset)


def check_evaluation(config: ExperimentConfig) -> None:
    for split in config.evaluation.splits:
        if split not in EVAL_SPLITS:
            raise ConfigError(f"evaluation.splits: {split!r} is not one of {', '.join(EVAL_SPLITS)}")
    if config.evaluation.batch_size <= 0:
        raise ConfigError("evaluation.batch_size must be a positive number")


def check_hub(config: ExperimentConfig) -> None:
    hub = config.hub
    if hub.publisher not in PUBLISHERS:
        raise ConfigError(f"hub.publisher {hub.publisher!r} is not one of {', '.join(PUBLISHERS)}")
    fields = {name for _, name, _, _ in string.Formatter().parse(hub.repo_template) if name}
    unknown = fields - TEMPLATE_FIELDS
    if unknown:
        raise ConfigError(f"hub.repo_template {hub.repo_template!r} uses unknown field(s) "
                          f"{', '.join(sorted(unknown))}; available: {', '.join(sorted(TEMPLATE_FIELDS))}")


def check_deepspeed(path: str | None, training: dict, where: str) -> None:
    """A missing file, a contradiction with TrainingArguments or ZeRO-3 without 16-bit save: fail now."""
    if not path:
        return
    from hf_itt.config.deepspeed import resolve_deepspeed_config

    try:
        resolve_deepspeed_config(path, training, check_import=False)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
