"""Pad a single-task batch the way its task type needs, and add ``task_ids``.

Each type reuses a transformers collator: classification and QA -> ``DataCollatorWithPadding``;
multiple choice -> ``DataCollatorForMultipleChoice`` ([B, n_choices, L]); tagging ->
``DataCollatorForTokenClassification`` (labels padded with -100); MLM ->
``DataCollatorForLanguageModeling`` (draws the masks). Only the model's inputs are kept: QA evaluation
columns (``example_id``, ``offset_mapping``) never reach the model.

MLM masks of a training batch are seeded by (seed, the batch's example indices), which
``MultiTaskDataset`` attaches as ``example_index``: a resumed run masks exactly the tokens the
uninterrupted run masked (Trainer restores its RNG only after fetching the first batches). Batches
without indices (evaluation) draw masks from torch's global RNG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from transformers import (DataCollatorForLanguageModeling, DataCollatorForMultipleChoice,
                          DataCollatorForTokenClassification, DataCollatorWithPadding)

from hf_itt.errors import ConfigError
from hf_itt.tasks.schema import CLASSIFICATION, EXTRACTIVE_QA, MLM, MULTIPLE_CHOICE, TAGGING

ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
LABELS = ("labels", "label")  # the HF collators turn "label" into "labels"
MODEL_KEYS = {
    CLASSIFICATION: ENCODER_INPUTS + LABELS,
    MULTIPLE_CHOICE: ENCODER_INPUTS + LABELS,
    EXTRACTIVE_QA: ENCODER_INPUTS + ("start_positions", "end_positions"),
    TAGGING: ENCODER_INPUTS + LABELS,
    MLM: ENCODER_INPUTS + ("special_tokens_mask",),
}


def _type_collator(task_type: str, tokenizer, mlm_probability: float, pad_to_multiple_of: int | None):
    if task_type in (CLASSIFICATION, EXTRACTIVE_QA):
        return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
    if task_type == MULTIPLE_CHOICE:
        return DataCollatorForMultipleChoice(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
    if task_type == TAGGING:
        return DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
    return DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability,
                                           pad_to_multiple_of=pad_to_multiple_of)


class MultiTaskCollator:
    """Collate features of one task (each carries an int ``task_ids``) into model inputs.

    ``task_types`` lists each task's type in task-id order (``[spec["type"] for spec in
    model.config.tasks.values()]``) or maps names to types in that order.
    """

    def __init__(self, tokenizer, task_types: Sequence[str] | Mapping[str, str], mlm_probability: float = 0.15,
                 pad_to_multiple_of: int | None = None, seed: int = 0):
        if tokenizer is None:
            raise ConfigError("MultiTaskCollator needs the tokenizer to pad batches: pass processing_class=tokenizer")
        self.task_types = list(task_types.values()) if isinstance(task_types, Mapping) else list(task_types)
        unknown = sorted(set(self.task_types) - set(MODEL_KEYS))
        if unknown:
            raise ConfigError(f"no collator for task type(s) {unknown}; trainable types: {', '.join(MODEL_KEYS)}")
        self.tokenizer, self.seed = tokenizer, seed
        self.collators = {task_type: _type_collator(task_type, tokenizer, mlm_probability, pad_to_multiple_of)
                          for task_type in set(self.task_types)}

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        task_ids = {int(feature["task_ids"]) for feature in features}
        if len(task_ids) != 1:
            raise ValueError(f"a batch must hold one task, got task ids {sorted(task_ids)}")
        task_id = task_ids.pop()
        task_type = self.task_types[task_id]
        keys = MODEL_KEYS[task_type]
        if task_type == MLM:
            self.collators[MLM].generator = self._mask_generator([f.get("example_index") for f in features])
        batch = self.collators[task_type]([{k: f[k] for k in keys if k in f} for f in features])
        batch = dict(batch)
        batch["task_ids"] = torch.full((len(features),), task_id, dtype=torch.long)
        return batch

    def _mask_generator(self, indices: list) -> torch.Generator | None:
        if any(index is None for index in indices):
            return None
        state = np.random.SeedSequence([int(self.seed), *map(int, indices)]).generate_state(1, np.uint64)[0]
        return torch.Generator().manual_seed(int(state) >> 1)
