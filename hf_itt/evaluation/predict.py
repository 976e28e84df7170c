"""The one prediction loop: a task head over tokenized features, for evaluation and the health checks.

Features are batched by length (longest first, so memory peaks early; zero-shot evaluation runs over
dozens of languages) and padded per batch; outputs come back per feature, in the features' order,
token-level outputs cut to each feature's length. Targets (labels, answer positions) are dropped
before collation: predictions never need them, and unlabelled rows (-1) must not reach a loss.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from hf_itt.task_types import get_type
from hf_itt.task_types.collators import MultiTaskCollator

OUTPUT_KEYS = ("logits", "start_logits", "end_logits")
TARGET_KEYS = ("labels", "label", "start_positions", "end_positions")


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first, so memory peaks early)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]


def feature_length(feature: dict) -> int:
    ids = feature["input_ids"]
    return max(len(row) for row in ids) if ids and isinstance(ids[0], list) else len(ids)


@torch.no_grad()  # not inference_mode: ZeRO-3 gathers parameters in place during the forward
def predict_features(
    model, tokenizer, features, task: str, batch_size: int = 64, desc: str | None = None
) -> dict[str, list[np.ndarray]]:
    """Run ``model``'s ``task`` head over tokenized ``features`` (a Dataset or row dicts); per-feature
    unpadded outputs. ``desc`` shows a progress bar. The model's train/eval mode is restored."""
    rows = [dict(row) for row in features]
    task_id = model.task_id(task)
    token_level = get_type(model.config.tasks[task]["type"]).token_level_outputs
    collator = MultiTaskCollator(tokenizer, [spec["type"] for spec in model.config.tasks.values()])
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outputs: dict[str, list] = {}
    try:
        batches = length_sorted_batches([feature_length(row) for row in rows], batch_size)
        for batch_indices in tqdm(batches, desc=desc or task, leave=False, disable=not desc):
            batch = collator([{**without_targets(rows[i]), "task_ids": task_id} for i in batch_indices])
            result = model(**{k: v.to(device) for k, v in batch.items()})
            for key in OUTPUT_KEYS:
                value = getattr(result, key, None)
                if value is not None:
                    store_batch(
                        outputs.setdefault(key, [None] * len(rows)),
                        value,
                        batch_indices,
                        rows,
                        token_level or key != "logits",
                    )
    finally:
        model.train(was_training)
    return outputs


def without_targets(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in TARGET_KEYS}


def store_batch(
    target: list, value: torch.Tensor, batch_indices: list[int], rows: list[dict], token_level: bool
) -> None:
    array = value.float().cpu().numpy()
    for position, index in enumerate(batch_indices):
        item = array[position]
        target[index] = item[: len(rows[index]["input_ids"])] if token_level else item  # drop padding
