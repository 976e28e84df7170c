"""Stage identity: a short hash of exactly what determines a stage's weights.

Two stages with the same hash would train the same weights, so a later run may reuse a finished or
published stage instead of training it again (experiments that share a prefix train it once).

What goes in (``stage_identity``): the base model and its revision, the previous stage's hash (so
the hash covers the whole chain), every task (name, type, Hub source + config + data revision,
language, the sha256 of the *content* of local data files, options such as max_length or
max_train_examples), the sampler config, the TrainingArguments that change the weights, the seed
and, when given, the world size (it sets the global batch size).

A local base model folder enters by the content of its weights, config and tokenizer files
(``base_model_identity``), like local data: a model rebuilt at the same path is a new base, a moved one
is not. A Hub id enters as written, with its revision.

What stays out: the hf_itt version (a release that trains the same way must keep reusing stages;
``IDENTITY_VERSION`` is bumped by hand when the meaning of the payload changes), file paths of data
(moving a file must not retrain), and the TrainingArguments in ``IGNORED_TRAINING_ARGS``.

TrainingArguments policy: a documented deny-list. Every field not ignored is hashed, so a field
that a future transformers adds counts until someone classifies it: the failure mode is a needless
retrain, never the silent reuse of weights trained differently (an allow-list would fail the other
way). ``tests/test_manifest.py`` fails when transformers has a field that is in neither
``WEIGHT_TRAINING_ARGS`` nor ``IGNORED_TRAINING_ARGS``, so the decision is made consciously.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hf_itt.errors import ConfigError, DataError
from hf_itt.fileio import sha256_file
from hf_itt.hub.stage_hash import hash_identity, plain

IDENTITY_VERSION = 1

# Fields that decide which updates are applied to the weights (documentation + the drift test).
WEIGHT_TRAINING_ARGS = frozenset(
    {
        # optimisation
        "learning_rate",
        "lr_scheduler_type",
        "lr_scheduler_kwargs",
        "warmup_steps",
        "optim",
        "optim_args",
        "optim_target_modules",
        "weight_decay",
        "adam_beta1",
        "adam_beta2",
        "adam_epsilon",
        "max_grad_norm",
        "label_smoothing_factor",
        "neftune_noise_alpha",
        # how much data, in which batches and order
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "num_train_epochs",
        "max_steps",
        "auto_find_batch_size",
        "average_tokens_across_devices",
        "dataloader_drop_last",
        "train_sampling_strategy",
        "length_column_name",
        "remove_unused_columns",
        "label_names",
        "seed",
        "data_seed",
        "accelerator_config",
        # numerics that change the result materially (mixed precision changes the trained weights)
        "bf16",
        "fp16",
        # only with load_best_model_at_end (see CONDITIONAL_TRAINING_ARGS)
        "load_best_model_at_end",
    }
)

# Fields that only matter when the best checkpoint (chosen by evaluations) becomes the stage's weights.
CONDITIONAL_TRAINING_ARGS = frozenset(
    {
        "eval_strategy",
        "eval_steps",
        "eval_delay",
        "eval_on_start",
        "metric_for_best_model",
        "greater_is_better",
        "save_strategy",
        "save_steps",
    }
)

IGNORED_TRAINING_ARGS = frozenset(
    {
        # where outputs go, what is logged and where it is reported
        "output_dir",
        "logging_strategy",
        "logging_steps",
        "logging_first_step",
        "log_on_each_node",
        "logging_nan_inf_filter",
        "include_num_input_tokens_seen",
        "log_level",
        "log_level_replica",
        "disable_tqdm",
        "report_to",
        "run_name",
        "project",
        "trackio_space_id",
        "trackio_bucket_id",
        "trackio_static_space_id",
        "skip_memory_metrics",
        "debug",
        # evaluation never changes the weights (except via load_best_model_at_end, handled above)
        "per_device_eval_batch_size",
        "prediction_loss_only",
        "eval_do_concat_batches",
        "eval_use_gather_object",
        "eval_accumulation_steps",
        "include_for_metrics",
        "batch_eval_metrics",
        "bf16_full_eval",
        "fp16_full_eval",
        "do_train",
        "do_eval",
        "do_predict",
        # saving and publishing cadence (and secrets: hub_token must never reach a manifest)
        "save_only_model",
        "save_on_each_node",
        "save_total_limit",
        "enable_jit_checkpoint",
        "restore_callback_states_from_checkpoint",
        "push_to_hub",
        "hub_token",
        "hub_private_repo",
        "hub_model_id",
        "hub_strategy",
        "hub_always_push",
        "hub_revision",
        # how the same computation is executed: hardware, kernels, memory savers, parallelism back-ends
        "use_cpu",
        "tf32",
        "torch_compile",
        "torch_compile_backend",
        "torch_compile_mode",
        "use_liger_kernel",
        "liger_kernel_config",
        "use_cache",
        "gradient_checkpointing",
        "gradient_checkpointing_kwargs",
        "activation_checkpointing",
        "activation_checkpointing_kwargs",
        "torch_empty_cache_steps",
        "full_determinism",
        "deepspeed",
        "fsdp",
        "fsdp_config",
        "parallelism_config",
        "local_rank",
        "ddp_find_unused_parameters",
        "ddp_bucket_cap_mb",
        "ddp_broadcast_buffers",
        "ddp_static_graph",
        "ddp_backend",
        "ddp_timeout",
        # resuming is how a run is executed (a correct resume reproduces the planned stage); the path varies
        "resume_from_checkpoint",
        "ignore_data_skip",
        # data loading workers change speed, not the batches
        "dataloader_num_workers",
        "dataloader_pin_memory",
        "dataloader_persistent_workers",
        "dataloader_prefetch_factor",
        "dataloader_multiprocessing_context",
        "dataloader_in_order",
    }
)


def stage_identity(
    *,
    base_model: str,
    base_revision: str | None,
    previous_stage_hash: str | None,
    tasks: Sequence[Mapping[str, Any]],
    sampler: Mapping[str, Any] | Any | None,
    training_args: Mapping[str, Any] | Any,
    seed: int,
    world_size: int | None = None,
    tokenizer: str | None = None,
    health: Mapping[str, Any] | None = None,
    early_stopping_patience: int | None = None,
    frozen: Sequence[str] = (),
) -> dict:
    """The canonical payload a stage hash is computed from (stored in the manifest to explain a hash).

    ``tasks`` are ``task_identity`` dicts (order kept: it is the order of the mixture);
    ``training_args`` is a ``TrainingArguments`` or a mapping of its fields (missing fields take the
    dataclass defaults, so ``{"learning_rate": 1e-5}`` hashes like ``TrainingArguments(learning_rate=1e-5)``).
    ``tokenizer`` (``tokenizer_identity``), ``health`` (``health_identity``) and
    ``early_stopping_patience`` (when > 0: it ends training early) enter only when set: None (or 0)
    means the base model's own tokenizer, health settings that cannot change the weights and no early
    stopping, so the hashes of stages trained before these keys existed stay the same.
    ``frozen`` (model.freeze) enters the payload only when set, so stages without it keep their hashes.
    """
    identity = {
        "identity_version": IDENTITY_VERSION,
        "base_model": base_model,
        "base_revision": base_revision,
        "previous_stage_hash": previous_stage_hash,
        "tasks": [dict(task) for task in tasks],
        "sampler": plain(sampler),
        "training_args": relevant_training_args(training_args),
        "seed": seed,
        "world_size": world_size,
    }
    if tokenizer is not None:
        identity["tokenizer"] = tokenizer
    if health is not None:
        identity["health"] = plain(health)
    if early_stopping_patience:
        identity["early_stopping_patience"] = int(early_stopping_patience)
    if frozen:
        identity["frozen"] = sorted(set(frozen))
    return identity


# The files of a local model folder that decide what it computes (model cards and logs stay out).
MODEL_FILE_PATTERNS = (
    "config.json",
    "*.safetensors",
    "*.bin",
    "*.model",
    "tokenizer*.json",
    "special_tokens_map.json",
    "vocab*",
    "merges.txt",
    "added_tokens.json",
)
_FOLDER_HASHES: dict[tuple, str] = {}


TOKENIZER_FILE_PATTERNS = (
    "*.model",
    "tokenizer*.json",
    "special_tokens_map.json",
    "vocab*",
    "merges.txt",
    "added_tokens.json",
)


def base_model_identity(name_or_path: str, revision: str | None) -> tuple[str, str | None]:
    """``(base_model, base_revision)`` for ``stage_identity``: a Hub id as written; a local folder as
    ``local:<sha256 of its model files>`` (a folder has no revision to pin it, its content does)."""
    folder = Path(name_or_path)
    if not folder.is_dir():
        return name_or_path, revision
    return f"local:{model_folder_hash(folder)}", None


def tokenizer_identity(name_or_path: str | None) -> str | None:
    """``model.tokenizer`` for ``stage_identity``: None (the model's own, already in the base model's
    identity), a Hub id as written, or ``local:<sha256 of its tokenizer files>`` like a base model."""
    if name_or_path is None:
        return None
    folder = Path(name_or_path)
    if not folder.is_dir():
        return name_or_path
    return f"local:{model_folder_hash(folder, TOKENIZER_FILE_PATTERNS, 'model.tokenizer')}"


def model_folder_hash(
    folder: Path, patterns: tuple[str, ...] = MODEL_FILE_PATTERNS, key_name: str = "model.name_or_path"
) -> str:
    """sha256 over the names and contents of ``patterns`` in ``folder``, memoised per process
    by (path, size, mtime) so that a grid of experiments on one large base reads it once."""

    files = sorted({path for pattern in patterns for path in folder.glob(pattern) if path.is_file()})
    if not files:
        raise ConfigError(
            f"{key_name} {folder}: the folder holds no model files ({', '.join(patterns[:2])}); "
            f"point it at a saved model or a Hub id"
        )
    stats = [(path.name, path.stat()) for path in files]
    key = (str(folder.resolve()), patterns, tuple((name, stat.st_size, stat.st_mtime_ns) for name, stat in stats))
    if key not in _FOLDER_HASHES:
        digest = hashlib.sha256()
        for path in files:
            digest.update(f"{path.name}\0{sha256_file(path)}\0".encode())
        _FOLDER_HASHES[key] = digest.hexdigest()
    return _FOLDER_HASHES[key]


def stage_hash(**kwargs: Any) -> str:
    """``hash_identity(stage_identity(**kwargs))``: the hash from the same keyword arguments."""
    return hash_identity(stage_identity(**kwargs))


def task_identity(
    name: str,
    *,
    task_type: str | None = None,
    source: str | None = None,
    config: str | None = None,
    revision: str | None = None,
    lang: str | Sequence[str] = "en",
    data_files: str | Sequence[str] | Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict:
    """What identifies one task's training data. ``revision`` is the dataset's Hub revision: leave it
    None only for pinned local files, otherwise the hash cannot notice the dataset changing upstream."""
    return {
        "name": name,
        "type": task_type,
        "source": source,
        "config": config,
        "revision": revision,
        "lang": lang if isinstance(lang, str) else list(lang),
        "data_files": data_file_hashes(data_files, task=name),
        "options": plain(dict(options or {})),
    }


def data_file_hashes(data_files: str | Sequence[str] | Mapping[str, Any] | None, task: str = "?") -> dict | None:
    """``{split: [sha256, ...]}`` of the files' contents (paths left out: moving a file keeps the hash)."""
    if data_files is None:
        return None
    if isinstance(data_files, (str, Path)) or not isinstance(data_files, Mapping):
        data_files = {"train": data_files}
    return {
        split: [_content_hash(path, task, split) for path in _as_list(paths)]
        for split, paths in sorted(data_files.items())
    }


def relevant_training_args(training_args: Mapping[str, Any] | Any) -> dict:
    """The weight-relevant TrainingArguments fields with their effective values."""
    values = _training_values(training_args)
    keep_conditional = bool(values.get("load_best_model_at_end"))
    return {
        key: value
        for key, value in sorted(values.items())
        if key not in IGNORED_TRAINING_ARGS and (keep_conditional or key not in CONDITIONAL_TRAINING_ARGS)
    }


def _training_values(training_args: Mapping[str, Any] | Any) -> dict:
    from transformers import TrainingArguments

    fields = [f for f in dataclasses.fields(TrainingArguments) if f.init]
    if isinstance(training_args, TrainingArguments):
        given = {f.name: getattr(training_args, f.name) for f in fields}
    else:
        given = dict(training_args or {})
        unknown = sorted(set(given) - {f.name for f in fields})
        if unknown:
            raise ConfigError(
                f"training arguments {', '.join(unknown)}: not TrainingArguments fields; "
                f"fix or remove them in the stage's `training:`"
            )
    values = {f.name: given[f.name] if f.name in given else _default(f) for f in fields}
    return {key: _normalise_training_value(key, value) for key, value in values.items()}


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _normalise_training_value(key: str, value: Any) -> Any:
    """Make a dataclass default and the value ``TrainingArguments.__post_init__`` produced compare equal."""
    if key == "accelerator_config":
        from transformers.trainer_pt_utils import AcceleratorConfig

        # only the keys that change which examples form a batch; the rest is execution detail
        value = AcceleratorConfig(**value) if isinstance(value, Mapping) else value or AcceleratorConfig()
        return {name: plain(getattr(value, name)) for name in ("split_batches", "even_batches", "use_seedable_sampler")}
    if key in ("lr_scheduler_kwargs", "optim_args") and value in (None, {}, ""):
        return None
    if key == "label_names" and value is not None:
        return list(value)
    return plain(value)


def _as_list(paths: Any) -> list:
    return [paths] if isinstance(paths, (str, Path)) else list(paths)


def _content_hash(path: str | Path, task: str, split: str) -> str:

    try:
        return sha256_file(path)
    except OSError as err:
        raise DataError(
            f"task {task!r}: data file for split {split!r} cannot be read ({err}); fix the path in data_files"
        ) from None
