"""Pad a single-task batch the way its task type needs, and add ``task_ids``.

Each type supplies its collator (``TaskType.collator``; mostly a transformers collator:
``DataCollatorWithPadding``, ``DataCollatorForMultipleChoice``, ``DataCollatorForTokenClassification``,
``DataCollatorForLanguageModeling``) and the keys its model inputs are made of, so evaluation-only
columns (QA ``example_id`` / ``offset_mapping``, tagging ``word_ids``) never reach the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from hf_itt.errors import ConfigError
from hf_itt.task_types.registry import get_type, trainable_type_names


class MultiTaskCollator:
    """Collate features of one task (each carries an int ``task_ids``) into model inputs.

    ``task_types`` lists each task's type in task-id order (``[spec["type"] for spec in
    model.config.tasks.values()]``) or maps names to types in that order.
    """

    def __init__(
        self,
        tokenizer,
        task_types: Sequence[str] | Mapping[str, str],
        mlm_probability: float = 0.15,
        pad_to_multiple_of: int | None = None,
        seed: int = 0,
    ):
        if tokenizer is None:
            raise ConfigError("MultiTaskCollator needs the tokenizer to pad batches: pass processing_class=tokenizer")
        names = list(task_types.values()) if isinstance(task_types, Mapping) else list(task_types)
        untrainable = sorted({name for name in names if not get_type(name).trainable})
        if untrainable:
            raise ConfigError(
                f"no collator for task type(s) {untrainable}; trainable types: {', '.join(trainable_type_names())}"
            )
        self.task_types = [get_type(name) for name in names]
        self.tokenizer, self.seed = tokenizer, seed
        self.collators = {
            task_type.name: task_type.collator(
                tokenizer, pad_to_multiple_of=pad_to_multiple_of, mlm_probability=mlm_probability, seed=seed
            )
            for task_type in self.task_types
        }

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        task_ids = {int(feature["task_ids"]) for feature in features}
        if len(task_ids) != 1:
            raise ValueError(f"a batch must hold one task, got task ids {sorted(task_ids)}")
        task_id = task_ids.pop()
        task_type = self.task_types[task_id]
        batch = dict(self.collators[task_type.name](task_type.prepare_features(features)))
        batch["task_ids"] = torch.full((len(features),), task_id, dtype=torch.long)
        return batch
