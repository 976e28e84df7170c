"""TrainingArguments per stage: defaults.training < preset < the stage's own `training:`.

Users write the TrainingArguments fields they know; hf_itt owns only ``output_dir`` (one folder per
stage) and ``deepspeed`` (set with the stage's `deepspeed:` key). Fields removed in transformers 5
get a message with their replacement instead of a bare TypeError.
"""

from __future__ import annotations

import dataclasses
import difflib
from functools import lru_cache
from typing import Any

from hf_itt.errors import ConfigError

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
    valid = training_argument_fields()
    for key in training:
        if key in REMOVED_IN_V5:
            raise ConfigError(f"{where}.{key}: removed in transformers 5; {REMOVED_IN_V5[key]}")
        if key in OWNED_BY_HF_ITT:
            raise ConfigError(f"{where}.{key}: {OWNED_BY_HF_ITT[key]}")
        if key not in valid:
            hint = difflib.get_close_matches(key, valid, n=3)
            raise ConfigError(f"{where}.{key}: not a TrainingArguments field"
                              + (f"; did you mean {', '.join(hint)}?" if hint else ""))


def merged_training(*layers: dict[str, Any] | None) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer or {})
    return merged


def build_training_arguments(training: dict[str, Any], output_dir: str, seed: int,
                             deepspeed: str | dict | None = None, where: str = "training"):
    """Instantiate TrainingArguments, turning its ValueErrors into a ConfigError naming the stage."""
    from transformers import TrainingArguments

    check_training_keys(training, where)
    kwargs = {"seed": seed, "data_seed": seed, "report_to": "none", **training}
    try:
        return TrainingArguments(output_dir=output_dir, deepspeed=deepspeed, **kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: invalid TrainingArguments: {err}") from None
