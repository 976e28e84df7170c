"""Batched inference for evaluation: length-sorted batches, dynamic padding, one task head.

Sorting features by length before batching keeps padding small (zero-shot evaluation runs over
dozens of languages); outputs come back in the features' original order.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from hf_itt.task_types.collators import MultiTaskCollator
from hf_itt.tasks.schema import MULTIPLE_CHOICE, TAGGING

OUTPUT_KEYS = ("logits", "start_logits", "end_logits")


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first, so memory peaks early)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]


def feature_length(feature: dict) -> int:
    ids = feature["input_ids"]
    return max(len(row) for row in ids) if ids and isinstance(ids[0], list) else len(ids)


@torch.inference_mode()
def predict_features(model, tokenizer, features, task: str, batch_size: int = 64,
                     desc: str | None = None) -> dict[str, list[np.ndarray]]:
    """Run ``model``'s ``task`` head over tokenized ``features``; per-feature unpadded outputs."""
    rows = [dict(row) for row in features]
    task_id = model.task_id(task)
    token_level_logits = model.config.tasks[task]["type"] == TAGGING
    # transformers' multiple-choice collator requires a label; the loss it feeds is ignored here
    dummy_label = {"labels": 0} if model.config.tasks[task]["type"] == MULTIPLE_CHOICE else {}
    collator = MultiTaskCollator(tokenizer, [spec["type"] for spec in model.config.tasks.values()])
    device = next(model.parameters()).device
    model.eval()
    outputs: dict[str, list] = {}
    batches = length_sorted_batches([feature_length(row) for row in rows], batch_size)
    for batch_indices in tqdm(batches, desc=desc or task, leave=False, disable=not desc):
        batch = collator([{**strip_labels(rows[i]), **dummy_label, "task_ids": task_id} for i in batch_indices])
        result = model(**{k: v.to(device) for k, v in batch.items()})
        for key in OUTPUT_KEYS:
            value = getattr(result, key, None)
            if value is not None:
                token_level = key != "logits" or token_level_logits
                store_batch(outputs.setdefault(key, [None] * len(rows)), value, batch_indices, rows, token_level)
    return outputs


def strip_labels(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("labels", "label", "start_positions", "end_positions")}


def store_batch(target: list, value: torch.Tensor, batch_indices: list[int], rows: list[dict],
                token_level: bool) -> None:
    array = value.float().cpu().numpy()
    for position, index in enumerate(batch_indices):
        item = array[position]
        target[index] = item[:len(rows[index]["input_ids"])] if token_level else item  # drop padding
