"""MultiTaskTrainingArguments: ``TrainingArguments`` plus the task-sampling settings of a joint run.

The ``Seq2SeqTrainingArguments`` pattern: a dataclass subclass whose extra fields ``HfArgumentParser``
turns into command-line flags (``--task_sampling temperature --sampling_temperature 2``), saved with
every checkpoint in ``training_args.bin`` like the parent's. Plain ``TrainingArguments`` keep working:
``MultiTaskTrainer`` then reads the same settings from its own keyword arguments (or the defaults below).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from transformers import TrainingArguments

from hf_itt.errors import ConfigError, did_you_mean
from hf_itt.task_samplers import SAMPLERS

# The names a sampler option has in MultiTaskTrainingArguments -> in hf_itt.training.sampling.make_sampler.
SAMPLER_OPTION_FIELDS = {
    "sampling_temperature": "temperature",
    "sampling_cap": "cap",
    "sampling_alpha_end": "alpha_end",
    "sampling_weights": "weights",
}


@dataclass
class MultiTaskTrainingArguments(TrainingArguments):
    """``TrainingArguments`` with the settings that decide which task each optimizer step trains."""

    task_sampling: str = field(
        default="proportional",
        metadata={
            "help": "How each step picks its task: uniform, proportional, temperature, capped, annealed or weights "
            "(formulas in hf_itt.training.sampling)."
        },
    )
    sampling_temperature: float = field(default=2.0, metadata={"help": "T of 'temperature': p ~ n^(1/T)."})
    sampling_cap: int | None = field(default=None, metadata={"help": "Examples cap of 'capped': p ~ min(n, cap)."})
    sampling_alpha_end: float = field(
        default=0.2,
        metadata={"help": "'annealed': the exponent of p ~ n^alpha moves from 1 to this value over the epochs."},
    )
    sampling_weights: dict | str | None = field(
        default=None, metadata={"help": "'weights': task -> weight > 0, a dict or its JSON text."}
    )
    steps_per_epoch: int | None = field(
        default=None,
        metadata={"help": "Optimizer updates per epoch (default: about one pass over all training examples)."},
    )
    same_task_per_update: bool = field(
        default=True,
        metadata={"help": "All gradient-accumulation micro-steps of one update train the same task (jiant's way)."},
    )

    def __post_init__(self):
        super().__post_init__()
        if self.task_sampling not in SAMPLERS:
            raise ConfigError(
                f"task_sampling {self.task_sampling!r} is unknown{did_you_mean(self.task_sampling, SAMPLERS)}"
                f" (valid: {', '.join(SAMPLERS)})"
            )
        if isinstance(self.sampling_weights, str):
            try:
                self.sampling_weights = json.loads(self.sampling_weights)
            except ValueError as err:
                raise ConfigError(
                    f"sampling_weights must be a dict or its JSON text ({err}); "
                    'e.g. --sampling_weights \'{"mnli": 2, "squad": 1}\''
                ) from None
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ConfigError(f"steps_per_epoch must be >= 1, got {self.steps_per_epoch}")

    def sampler_options(self) -> dict:
        """The options of ``task_sampling`` under the names ``make_sampler`` takes."""
        return {
            option: getattr(self, name)
            for name, option in SAMPLER_OPTION_FIELDS.items()
            if getattr(self, name) is not None
        }


@dataclass(frozen=True)
class SamplingSettings:
    """What ``MultiTaskTrainer`` samples with, resolved from its keywords over its arguments."""

    strategy: object  # a strategy name or a TaskSampler
    options: dict
    steps_per_epoch: int | None
    same_task_per_update: bool


def sampling_settings(
    args, sampler=None, sampler_kwargs=None, steps_per_epoch=None, same_task_per_update=None
) -> SamplingSettings:
    """Keywords given to the trainer win; then ``MultiTaskTrainingArguments`` fields; then the defaults
    (proportional sampling, about one pass over the data per epoch, one task per update)."""
    own = args if isinstance(args, MultiTaskTrainingArguments) else None
    strategy = sampler if sampler is not None else (own.task_sampling if own else "proportional")
    options = {**(own.sampler_options() if own else {}), **dict(sampler_kwargs or {})}
    if steps_per_epoch is None and own:
        steps_per_epoch = own.steps_per_epoch
    if same_task_per_update is None:
        same_task_per_update = own.same_task_per_update if own else True
    return SamplingSettings(strategy, options, steps_per_epoch, bool(same_task_per_update))


__all__ = ["MultiTaskTrainingArguments", "SAMPLER_OPTION_FIELDS", "SamplingSettings", "sampling_settings"]
