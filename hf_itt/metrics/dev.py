"""Dev-set metrics during training (the Trainer's ``compute_metrics`` of an ITT or target stage).

Which metric names each task type reports on its dev set, so that ``metric_for_best_model`` can be
checked before a run (``hf_itt.config.runtime_checks``), and the accuracy that classification,
multiple choice and tagging report (percent, over labelled positions). Extractive QA reports SQuAD
exact match and F1 (``hf_itt.pipeline.dev_metrics`` decodes the spans); MLM reports its loss only.
"""

from __future__ import annotations

import numpy as np

from hf_itt.tasks.schema import CLASSIFICATION, EXTRACTIVE_QA, MLM, MULTIPLE_CHOICE, TAGGING

# task type -> metrics ``eval_<task>_<metric>`` every dev evaluation reports (besides ``loss``)
DEV_METRICS = {
    CLASSIFICATION: ("accuracy",),
    MULTIPLE_CHOICE: ("accuracy",),
    TAGGING: ("accuracy",),
    EXTRACTIVE_QA: ("exact_match", "f1"),
    MLM: (),
}
# the one metric of each type that ``eval_average`` averages over tasks
MAIN_DEV_METRIC = {CLASSIFICATION: "accuracy", MULTIPLE_CHOICE: "accuracy", TAGGING: "accuracy", EXTRACTIVE_QA: "f1"}


def dev_accuracy(eval_prediction) -> dict[str, float]:
    """Accuracy in percent over labelled positions (classification, multiple choice, tagging)."""
    predictions = eval_prediction.predictions
    logits = predictions[0] if isinstance(predictions, tuple) else predictions
    labels = eval_prediction.label_ids
    predicted = np.argmax(logits, axis=-1)
    mask = labels != -100
    return {"accuracy": float(100 * (predicted[mask] == labels[mask]).mean()) if mask.any() else 0.0}


__all__ = ["DEV_METRICS", "MAIN_DEV_METRIC", "dev_accuracy"]
