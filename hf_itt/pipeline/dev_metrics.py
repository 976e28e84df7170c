"""The ``compute_metrics`` of each task a stage evaluates on its dev set while it trains.

Classification, multiple choice and tagging: accuracy (``hf_itt.metrics.dev``). Extractive QA: the
dev set the Trainer evaluates holds training features (start/end positions: the loss); the same rows
preprocessed as evaluation features (identical windows, plus ``example_id`` and ``offset_mapping``)
let ``QADevMetrics`` decode the predicted spans and score SQuAD exact match and F1, as run_qa does.
"""

from __future__ import annotations

import logging

from hf_itt.metrics.dev import DEV_METRICS, MAIN_DEV_METRIC, dev_accuracy
from hf_itt.metrics.scoring import score
from hf_itt.pipeline.stage_data import load_rows
from hf_itt.task_types.features import preprocess
from hf_itt.task_types.qa_decoding import decode_qa
from hf_itt.tasks.schema import EXTRACTIVE_QA

logger = logging.getLogger(__name__)


class QADevMetrics:
    """EM / F1 of a QA dev set from the start and end logits of its features (in order)."""

    def __init__(self, rows, eval_features, metric: str = "squad"):
        self.rows, self.features, self.metric = rows, eval_features, metric
        self.references = {row_id: answers["text"] for row_id, answers in zip(rows["id"], rows["answers"])}

    def __call__(self, eval_prediction) -> dict[str, float]:
        start_logits, end_logits = eval_prediction.predictions[:2]
        decoded = decode_qa(self.rows, self.features, start_logits, end_logits, version_2=self.metric == "squad_v2")
        if self.metric == "squad_v2":
            return score("squad_v2", decoded.predictions, self.references, na_probs=decoded.null_score_diffs)
        if self.metric == "mlqa":  # English dev rows: MLQA's English normalisation
            return score("mlqa", decoded.predictions, self.references, "en")
        return score("squad", decoded.predictions, self.references)


def qa_dev_metrics(plan, dev_features, tokenizer, max_length: int | None) -> QADevMetrics | None:
    """EM/F1 for a QA task's dev set, or None (with a warning) if its windows cannot be matched."""
    rows = load_rows(plan.source_spec, "validation", plan.data_files, None, plan.max_dev)
    features = preprocess(rows, plan.spec, tokenizer, split_role="eval", max_length=max_length)
    if len(features) != len(dev_features):
        logger.warning("task %s: dev EM/F1 skipped (%d evaluation windows for %d training windows)", plan.head,
                       len(features), len(dev_features))
        return None
    return QADevMetrics(rows, features.select_columns(["example_id", "offset_mapping"]), plan.spec.metric)


def dev_metric_functions(job, dev_sets: dict, tokenizer) -> dict:
    """task -> compute_metrics for every task of ``job`` with a dev set (``dev_sets``: head -> features)."""
    functions = {}
    for plan in job.tasks:
        if dev_sets.get(plan.head) is None or not DEV_METRICS.get(plan.spec.type):
            continue
        if plan.spec.type == EXTRACTIVE_QA:
            function = qa_dev_metrics(plan, dev_sets[plan.head], tokenizer, job.max_length)
            if function is not None:
                functions[plan.head] = function
        else:
            functions[plan.head] = dev_accuracy
    return functions


def main_dev_metrics(job, functions: dict) -> dict[str, str]:
    """task -> the metric its dev evaluation contributes to ``eval_average`` (tasks with metrics only)."""
    return {plan.head: MAIN_DEV_METRIC[plan.spec.type] for plan in job.tasks if plan.head in functions}


__all__ = ["QADevMetrics", "dev_metric_functions", "main_dev_metrics", "qa_dev_metrics"]
