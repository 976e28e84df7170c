"""TrainingArguments per stage: defaults.training < preset < the stage's own `training:`.

Users write the TrainingArguments fields they know; hf_itt owns only ``output_dir`` (one folder per
stage) and ``deepspeed`` (set with the stage's `deepspeed:` key). Fields removed in transformers 5
get a message with their replacement instead of a bare TypeError.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import types
import typing
from functools import lru_cache
from typing import Any

from hf_itt.config.field_types import check_type
from hf_itt.errors import ConfigError, did_you_mean

REMOVED_IN_V5 = {
    "warmup_ratio": "use warmup_steps with a float in (0, 1), e.g. warmup_steps: 0.1",
    "overwrite_output_dir": "drop it: hf_itt gives every stage its own folder and resumes it",
    "logging_dir": "drop it: logs go to <stage dir>/logs; pick trackers with report_to",
    "no_cuda": "use use_cpu: true",
    "evaluation_strategy": "use eval_strategy",
    "tokenizer": "not a TrainingArguments field",
}
OWNED_BY_HF_ITT = {
    "output_dir": "hf_itt sets it to <run dir>/<stage>",
    "deepspeed": "set `deepspeed:` on the stage (or defaults/targets) instead",
    # a token in a config would be pickled into every checkpoint's training_args.bin
    "hub_token": "never write a token into a config: set HF_TOKEN or run `hf auth login`, and remove this key",
}


@lru_cache(maxsize=1)
def training_argument_fields() -> frozenset[str]:
    from transformers import TrainingArguments

    return frozenset(f.name for f in dataclasses.fields(TrainingArguments) if f.init)


def check_training_keys(training: dict[str, Any], where: str) -> None:
    """Every key a TrainingArguments field hf_itt lets the user set, every value of its type and range."""
    valid = training_argument_fields()
    if not isinstance(training, dict):
        raise ConfigError(f"{where}: expected a mapping of TrainingArguments fields, got {training!r}")
    for key in training:
        if key in REMOVED_IN_V5:
            raise ConfigError(f"{where}.{key}: removed in transformers 5; {REMOVED_IN_V5[key]}")
        if key in OWNED_BY_HF_ITT:
            raise ConfigError(f"{where}.{key}: {OWNED_BY_HF_ITT[key]}")
        if key not in valid:
            raise ConfigError(f"{where}.{key}: not a TrainingArguments field{did_you_mean(key, valid, cutoff=0.6)}")
    for key, value in training.items():
        check_training_value(key, value, f"{where}.{key}")


# Ranges TrainingArguments itself does not check; outside them a run crashes or trains nonsense.
AT_LEAST_ZERO = (
    "learning_rate",
    "weight_decay",
    "adam_epsilon",
    "max_grad_norm",
    "warmup_steps",
    "num_train_epochs",
    "neftune_noise_alpha",
    "dataloader_num_workers",
)
AT_LEAST_ONE = (
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "eval_accumulation_steps",
    "save_total_limit",
)
POSITIVE = ("logging_steps", "save_steps", "eval_steps")
BELOW_ONE = ("adam_beta1", "adam_beta2", "label_smoothing_factor")  # in [0, 1)
SEEDS = ("seed", "data_seed")


def check_training_value(key: str, value: Any, where: str) -> None:

    if value is None:
        return
    check_type(value, training_argument_types()[key], where, strict=True)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    problem = None
    if key in AT_LEAST_ZERO and value < 0:
        problem = "must be >= 0"
    elif key in AT_LEAST_ONE and value < 1:
        problem = "must be >= 1"
    elif key in POSITIVE and value <= 0:
        problem = "must be > 0 (a number of steps, or a fraction of the training steps below 1)"
    elif key in BELOW_ONE and not 0 <= value < 1:
        problem = "must be in [0, 1)"
    elif key in SEEDS and not 0 <= value < 2**32:
        problem = "must be in [0, 2**32)"
    elif key == "max_steps" and value < -1:
        problem = "must be -1 (train for num_train_epochs) or a positive number of steps"
    if problem:
        raise ConfigError(f"{where} is {value!r}; it {problem}")


@lru_cache(maxsize=1)
def training_argument_types() -> dict[str, Any]:
    """The annotation of every TrainingArguments field, with enums and objects read as strings or Any."""

    from transformers import TrainingArguments

    return {name: _plain_hint(hint) for name, hint in typing.get_type_hints(TrainingArguments).items()}


def _plain_hint(hint: Any) -> Any:

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(_plain_hint(option) for option in typing.get_args(hint))]
    if origin is typing.Literal:
        return bool if all(isinstance(arg, bool) for arg in typing.get_args(hint)) else Any
    if origin is list:
        return list[_plain_hint(typing.get_args(hint)[0])] if typing.get_args(hint) else list
    if origin is dict:
        return dict
    if hint in (bool, int, float, str, type(None), dict, list, Any):
        return hint
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return str
    return Any  # AcceleratorConfig, ParallelismConfig ...: left to TrainingArguments


def merged_training(*layers: dict[str, Any] | None) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer or {})
    return merged


def build_training_arguments(
    training: dict[str, Any], output_dir: str, seed: int, deepspeed: str | dict | None = None, where: str = "training"
):
    """Instantiate TrainingArguments, turning its ValueErrors into a ConfigError naming the stage."""
    from transformers import TrainingArguments

    check_training_keys(training, where)
    kwargs = {"seed": seed, "data_seed": seed, "report_to": "none", **training}
    try:
        return TrainingArguments(output_dir=output_dir, deepspeed=deepspeed, **kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: invalid TrainingArguments: {err}") from None


def validate_training_arguments(training: dict[str, Any], seed: int, where: str) -> None:
    """Build TrainingArguments once at load, so that what they refuse (a strategy mismatch, an unknown
    optimizer) fails before any data is read; ``build_training_arguments`` builds them again per stage.

    Without a GPU here (a login node validating a GPU config) precision flags are checked as if on CPU:
    the hardware itself is checked when the stage starts, still before its data. Under a launcher the
    distributed state the build initialises is reset, so the stage's own build sets it up for real.
    """

    import torch

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    hardware = {} if torch.cuda.is_available() else {"use_cpu": True}
    saved = {name: os.environ.pop(name) for name in DISTRIBUTED_ENV if distributed and name in os.environ}
    try:
        build_training_arguments({**training, **hardware}, "hf_itt-validation", seed, where=where)
    finally:
        os.environ.update(saved)
        if distributed:
            from accelerate.state import PartialState

            PartialState._reset_state()


DISTRIBUTED_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
