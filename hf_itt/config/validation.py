"""Checks an ExperimentConfig before any model is built: every problem found is one ConfigError
that names the field, the bad value and the nearest valid names."""

from __future__ import annotations

import re
import string
from pathlib import Path

from hf_itt.config.deepspeed import resolve_deepspeed_config
from hf_itt.config.experiment import (
    PUBLISHERS,
    REFERENCE_PATTERN,
    SAMPLING_STRATEGIES,
    ExperimentConfig,
    StageConfig,
)
from hf_itt.config.model_limits import check_max_lengths
from hf_itt.config.model_selection import check_model_selection
from hf_itt.config.presets import get_preset
from hf_itt.config.runtime_checks import check_runtime
from hf_itt.config.training_args import (
    check_training_keys,
    merged_training,
    validate_training_arguments,
)
from hf_itt.errors import ConfigError, TaskError, did_you_mean
from hf_itt.metrics.retrieval_search import BUCC_DUPLICATE_MODES
from hf_itt.task_types.base import MIN_MAX_LENGTH
from hf_itt.tasks.formats import ROLE_ALIASES
from hf_itt.tasks.registry import encoder_targets, get_task, register_task_dir
from hf_itt.tasks.schema import BENCHMARKS, ROLES
from hf_itt.tasks.spec import EXTRA_DATA_KEYS

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
EVAL_SPLITS = ("validation", "test")
TEMPLATE_FIELDS = {"namespace", "experiment", "stage", "hash"}


def validate_experiment(config: ExperimentConfig) -> None:
    check_name(config.experiment, "experiment")
    if config.prepare is not None and not re.match(r"^[\w.]+:\w+$", config.prepare):
        raise ConfigError(f"prepare {config.prepare!r} must be 'package.module:function'")
    check_paths(config)
    check_numbers(config)
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
    check_training_arguments(config)
    check_runtime(config)
    check_model_selection(config)
    if model_is_ready(config):
        check_max_lengths(config)


def model_is_ready(config: ExperimentConfig) -> bool:
    """A `prepare:` hook may build the base model; it is checked again once the hook ran."""

    return not config.prepare or Path(config.model.name_or_path).is_dir()


def check_training_arguments(config: ExperimentConfig) -> None:
    """Build every stage's and target's TrainingArguments (defaults < preset < own) once, for real."""

    def layers(preset: str | None, *own: dict | None) -> dict:
        return merged_training(config.defaults.training, get_preset(preset).get("training") if preset else None, *own)

    for index, stage in enumerate(config.stages):
        if not stage.from_:
            validate_training_arguments(
                layers(stage.preset, stage.training), config.seed, f"stages[{index}] ({stage.name})"
            )
    targets = config.targets
    for name in targets.tasks:
        validate_training_arguments(
            layers(targets.preset, targets.training, targets.per_task_training.get(name)),
            config.seed,
            f"targets {name}",
        )


RUN_DIR_FIELDS = ("experiment", "seed")
DATA_PATH_FIELDS = ("lang", "code")  # filled per language by hf_itt.tasks.formats


def check_paths(config: ExperimentConfig) -> None:
    """Placeholders in every path: only the ones that path gets filled with, so none reaches a KeyError."""
    check_template(config.output_dir, RUN_DIR_FIELDS, "output_dir")
    fill_template(config.output_dir, config, "output_dir")
    if config.report_dir is not None:
        check_template(config.report_dir, RUN_DIR_FIELDS, "report_dir")
        fill_template(config.report_dir, config, "report_dir")
    check_template(config.hub.local_root, (), "hub.local_root")
    for i, folder in enumerate(config.task_dirs):
        check_template(folder, (), f"task_dirs[{i}]")
    for i, stage in enumerate(config.stages):
        for j, task in enumerate(stage.tasks):
            check_data_files(task.data_files, f"stages[{i}].tasks[{j}].data_files")
    for task, files in config.targets.data_files.items():
        check_data_files(files, f"targets.data_files.{task}")


def check_data_files(data_files, where: str) -> None:

    if data_files is None:
        return
    if isinstance(data_files, str):
        return check_template(data_files, DATA_PATH_FIELDS, where)
    if not isinstance(data_files, dict):
        raise ConfigError(f"{where}: expected a path or a mapping {{role: path}}, got {data_files!r}")
    keys = (*ROLES, *ROLE_ALIASES, *EXTRA_DATA_KEYS)
    for role, paths in data_files.items():
        if role not in keys:
            raise ConfigError(
                f"{where}: unknown role {role!r}{did_you_mean(role, keys, n=1)} (roles: {', '.join(keys)})"
            )
        items = paths if isinstance(paths, list) else [paths]
        for item in items:
            if not isinstance(item, str):
                raise ConfigError(f"{where}.{role}: expected a path or a list of paths, got {paths!r}")
            check_template(item, DATA_PATH_FIELDS, f"{where}.{role}")


def check_template(value: str, allowed: tuple[str, ...], where: str) -> None:
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
    except ValueError as err:
        raise ConfigError(
            f"{where} {value!r} is not a valid template ({err}); write a placeholder as "
            "{name} and a literal brace as {{ or }}"
        ) from None
    unknown = [name for name in names if name not in allowed]
    if not unknown:
        return
    shown = "{" + unknown[0] + "}"
    if allowed:
        raise ConfigError(
            f"{where} {value!r} uses the unknown placeholder {shown}; it may use "
            + ", ".join("{" + name + "}" for name in allowed)
        )
    raise ConfigError(f"{where} {value!r} uses the placeholder {shown}, but it takes none; write the path itself")


def fill_template(value: str, config: ExperimentConfig, where: str) -> None:
    try:
        value.format(experiment=config.experiment, seed=config.seed)
    except (ValueError, IndexError, KeyError) as err:
        raise ConfigError(
            f"{where} {value!r} cannot be filled in ({err}); use plain {{experiment}} and {{seed}}"
        ) from None


def check_numbers(config: ExperimentConfig) -> None:
    """Ranges the schema's types do not say (types and finiteness are checked when the config is built)."""
    checks = [
        (config.seed, 0, "seed", "an integer in [0, 2**32)"),
        (config.evaluation.retrieval_max_length, 1, "evaluation.retrieval_max_length", "a positive number"),
        (config.evaluation.max_eval_examples, 1, "evaluation.max_eval_examples", "a positive number"),
        (config.targets.max_train_examples, 1, "targets.max_train_examples", "a positive number"),
    ]
    for i, stage in enumerate(config.stages):
        checks.append((stage.max_length, MIN_MAX_LENGTH, f"stages[{i}].max_length", f"at least {MIN_MAX_LENGTH}"))
        checks.append((stage.sampling.anneal_alpha_end, 0, f"stages[{i}].sampling.anneal_alpha_end", ">= 0"))
        for j, task in enumerate(stage.tasks):
            where = f"stages[{i}].tasks[{j}]"
            checks += [
                (task.max_length, MIN_MAX_LENGTH, f"{where}.max_length", f"at least {MIN_MAX_LENGTH}"),
                (task.max_train_examples, 1, f"{where}.max_train_examples", "a positive number"),
                (task.max_eval_examples, 1, f"{where}.max_eval_examples", "a positive number"),
            ]
            if task.weight is not None and not task.weight > 0:
                raise ConfigError(
                    f"{where}.weight is {task.weight}; use a weight > 0 (drop a task instead of weighting it 0)"
                )
    for value, lowest, where, wanted in checks:
        if value is not None and value < lowest:
            raise ConfigError(f"{where} is {value}; use {wanted}")
    if config.seed >= 2**32:
        raise ConfigError(f"seed is {config.seed}; use an integer in [0, 2**32)")


def check_name(value: str, where: str) -> None:
    if not value:
        raise ConfigError(f"{where} is missing; give it a short name such as 'squad-then-mnli'")
    if not SAFE_NAME.match(value):
        raise ConfigError(
            f"{where} {value!r} may only hold letters, digits, '.', '_' and '-' (it becomes a folder and repo name)"
        )


def check_model(config: ExperimentConfig) -> None:
    """A base model or tokenizer given as a path must be a saved model folder (a Hub id is checked when loaded)."""

    for index, prefix in enumerate(config.model.freeze):
        if not prefix.strip() or prefix != prefix.strip():
            raise ConfigError(
                f"model.freeze[{index}] {prefix!r} must be a parameter-name prefix such as "
                "'embeddings.' or 'encoder.layer.0.' (no spaces)"
            )
    if config.prepare:  # the prepare hook builds the model folder
        return
    for key, value in (("model.name_or_path", config.model.name_or_path), ("model.tokenizer", config.model.tokenizer)):
        if not value or not looks_like_path(value):
            continue
        folder = Path(value).expanduser()
        if not folder.is_dir():
            raise ConfigError(
                f"{key} {value!r} is not a folder (looked at {folder.absolute()}); fix the path, "
                "or give a Hub id such as 'xlm-roberta-large'"
            )
        if key == "model.name_or_path" and not (folder / "config.json").is_file():
            raise ConfigError(
                f"{key} {value!r} has no config.json, so it is not a saved model; point it at a "
                "save_pretrained() folder (or a stage's checkpoint/ folder)"
            )


def looks_like_path(value: str) -> bool:
    """Hub ids are 'name' or 'namespace/name'; anything else with a slash, or an existing folder, is a path."""

    return (
        value.startswith(("/", "./", "../", "~"))
        or value.count("/") > 1
        or "\\" in value
        or Path(value).expanduser().is_dir()
    )


REGISTERED_DIRS: set[str] = set()  # several experiments of one file share their task_dirs


def register_task_dirs(config: ExperimentConfig) -> None:

    for folder in config.task_dirs:
        path = config.resolve_path(folder)
        if not Path(path).is_dir():
            raise ConfigError(f"task_dirs: folder {folder!r} not found (looked at {path})")
        if str(Path(path).resolve()) not in REGISTERED_DIRS:
            register_task_dir(path)
            REGISTERED_DIRS.add(str(Path(path).resolve()))


def lookup_task(name: str, where: str):

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

    if stage.from_ is not None:
        if not REFERENCE_PATTERN.match(stage.from_):
            raise ConfigError(
                f"{where}.from {stage.from_!r} must be 'namespace/repo@revision', 'namespace/repo' or a local folder"
            )
    elif not stage.tasks:
        raise ConfigError(f"{where} ({stage.name}) has no tasks; list at least one, or set `from:`")
    names = [task.name for task in stage.tasks]
    for i, task in enumerate(stage.tasks):
        spec = lookup_task(task.name, f"{where}.tasks[{i}]")
        if not spec.task_type.trainable:
            raise ConfigError(
                f"{where}.tasks[{i}]: {task.name} is a {spec.type} task with no training data; "
                "use it under targets.tasks"
            )
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
        raise ConfigError(
            f"{where}.sampling.strategy {sampling.strategy!r} is unknown"
            f"{did_you_mean(sampling.strategy, SAMPLING_STRATEGIES)} (valid: {', '.join(SAMPLING_STRATEGIES)})"
        )
    if sampling.temperature <= 0:
        raise ConfigError(f"{where}.sampling.temperature must be > 0, got {sampling.temperature}")
    if sampling.strategy == "capped" and (sampling.cap is None or sampling.cap <= 0):
        raise ConfigError(f"{where}.sampling: strategy 'capped' needs cap: <positive number of examples>")
    if sampling.strategy == "weights":
        weights = [task.weight for task in stage.tasks]
        if any(w is None or not w > 0 for w in weights):
            raise ConfigError(
                f"{where}.sampling: strategy 'weights' needs a weight > 0 on every task "
                f"(drop a task instead of weighting it 0); got "
                f"{dict(zip([t.name for t in stage.tasks], weights))}"
            )


def check_benchmarks(config: ExperimentConfig) -> None:
    if not config.benchmarks:
        raise ConfigError(f"benchmarks is empty; list the ones the experiment reports: {', '.join(BENCHMARKS)}")
    for benchmark in config.benchmarks:
        if benchmark not in BENCHMARKS:
            raise ConfigError(
                f"benchmarks: {benchmark!r} is not one of {', '.join(BENCHMARKS)}{did_you_mean(benchmark, BENCHMARKS)}"
            )


def check_targets(config: ExperimentConfig) -> None:
    check_benchmarks(config)
    targets = config.targets
    check_training_keys(targets.training, "targets.training")
    check_deepspeed(targets.deepspeed, targets.training, "targets.deepspeed")
    for task, training in targets.per_task_training.items():
        if task not in targets.tasks:
            raise ConfigError(f"targets.per_task_training.{task}: {task} is not in targets.tasks {targets.tasks}")
        check_training_keys(training, f"targets.per_task_training.{task}")
    for i, name in enumerate(targets.tasks):
        spec = lookup_task(name, f"targets.tasks[{i}]")
        if spec.train_task is None and spec.task_type.trainable:
            raise ConfigError(
                f"targets.tasks[{i}]: {name} has no English training task; "
                "it cannot be a target (targets are XTREME/XTREME-R tasks such as xnli, tatoeba)"
            )
        if spec.retrieval_encoder and not set(encoder_targets(spec.retrieval_encoder)) & set(targets.tasks):
            raise ConfigError(f"targets.tasks[{i}]: {missing_encoder_target(name, spec.retrieval_encoder)}")
    for name, length in targets.max_length.items():
        if name not in targets.tasks:
            raise ConfigError(f"targets.max_length.{name}: {name} is not in targets.tasks {targets.tasks}")
        if not isinstance(length, int) or length < MIN_MAX_LENGTH:
            raise ConfigError(f"targets.max_length.{name} is {length!r}; use an integer of at least {MIN_MAX_LENGTH}")
    for name, languages in targets.languages.items():
        if name not in targets.tasks:
            raise ConfigError(f"targets.languages.{name}: {name} is not in targets.tasks {targets.tasks}")
        known = set(lookup_task(name, f"targets.languages.{name}").all_languages())
        unknown = [lang for lang in languages if lang not in known]
        if unknown:
            raise ConfigError(
                f"targets.languages.{name}: {name} has no language {unknown[0]!r} (it has: {' '.join(sorted(known))})"
            )
    if targets.preset:
        get_preset(targets.preset)


def missing_encoder_target(task: str, encoder_task: str) -> str:
    providers = " or ".join(encoder_targets(encoder_task)) or f"a target trained on {encoder_task}"
    return (
        f"{task} embeds with this chain's model fine-tuned on {encoder_task}, and no target of the experiment "
        f"trains one: add {providers} to targets.tasks"
    )


def check_evaluation(config: ExperimentConfig) -> None:
    for split in config.evaluation.splits:
        if split not in EVAL_SPLITS:
            raise ConfigError(f"evaluation.splits: {split!r} is not one of {', '.join(EVAL_SPLITS)}")
    if config.evaluation.batch_size <= 0:
        raise ConfigError("evaluation.batch_size must be a positive number")
    if config.evaluation.bucc_duplicates not in BUCC_DUPLICATE_MODES:
        raise ConfigError(
            f"evaluation.bucc_duplicates {config.evaluation.bucc_duplicates!r} is not one of "
            f"{', '.join(BUCC_DUPLICATE_MODES)}"
        )


def check_hub(config: ExperimentConfig) -> None:
    hub = config.hub
    if hub.publisher not in PUBLISHERS:
        raise ConfigError(f"hub.publisher {hub.publisher!r} is not one of {', '.join(PUBLISHERS)}")
    check_template(hub.repo_template, tuple(sorted(TEMPLATE_FIELDS)), "hub.repo_template")


def check_deepspeed(path: str | None, training: dict, where: str) -> None:
    """A missing file, a contradiction with TrainingArguments or ZeRO-3 without 16-bit save: fail now."""
    if not path:
        return

    try:
        resolve_deepspeed_config(path, training, check_import=False)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
