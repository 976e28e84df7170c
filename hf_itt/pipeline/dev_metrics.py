"""The ``compute_metrics`` of each task a stage evaluates on its dev set while it trains, from its type
(``TaskType.dev_metrics``: accuracy for classification, multiple choice and tagging; SQuAD EM / F1 for
extractive QA; the loss only for the others)."""

from __future__ import annotations

from hf_itt.pipeline.stage_data import load_rows


def dev_metric_functions(job, dev_sets: dict, tokenizer) -> dict:
    """task -> compute_metrics for every task of ``job`` with a dev set (``dev_sets``: head -> features)."""
    functions = {}
    for plan in job.tasks:
        if dev_sets.get(plan.head) is None:
            continue
        rows = lambda plan=plan: load_rows(plan.source_spec, "validation", plan.data_files, None, plan.max_dev)  # noqa: E731
        function = plan.spec.task_type.dev_metrics(plan.spec, dev_sets[plan.head], rows, tokenizer, plan.max_length)
        if function is not None:
            functions[plan.head] = function
    return functions


def main_dev_metrics(job, functions: dict) -> dict[str, str]:
    """task -> the metric its dev evaluation contributes to ``eval_average`` (tasks with metrics only)."""
    return {plan.head: plan.spec.task_type.main_dev_metric for plan in job.tasks if plan.head in functions}


__all__ = ["dev_metric_functions", "main_dev_metrics"]
