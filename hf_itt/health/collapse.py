"""Collapse alarm: at each evaluation, are a task's dev predictions all one class?

XLM-R Large at a learning rate or batch size a little off its stable range can end up predicting
one class for every input (the loss then sits at chance level and never recovers). The alarm runs
its own prediction pass over a fixed random subset of each dev set (``collapse_max_examples``, 256
by default: a fraction of a second next to the evaluation itself) at every evaluation *during
training*, and compares:

what each task type checks (``TaskType.collapse_finding``): classification and multiple choice
compare the share of the majority predicted class (choice) with the majority gold class, tagging does
the same over labelled tokens, extractive QA looks at empty answers, the most frequent start position
and the most frequent answer text (see ``hf_itt.task_types.extractive_qa``).

A task has collapsed when a share is >= ``collapse_threshold`` AND exceeds the gold share by
``collapse_margin``. Its own pass (not the evaluation's predictions) keeps it independent of
``compute_metrics`` and of how evaluation gathers outputs; every rank runs the same pass on the same
rows, and the decision is agreed across ranks (``any_rank``) so all of them stop together.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Mapping, Sequence

import numpy as np

from hf_itt.config.health import HealthConfig
from hf_itt.evaluation.predict import predict_features
from hf_itt.health.base import DOCS_HINT, HealthCallback, HealthEvent, any_rank
from hf_itt.metrics.collapse import Finding
from hf_itt.task_types import get_type

logger = logging.getLogger("hf_itt.health")


# ---- the prediction pass ------------------------------------------------------------------------
def capped_rows(dataset, max_examples: int, seed: int = 0) -> list[dict]:
    """A fixed random subset of ``dataset`` as row dicts; QA eval features keep all windows of the
    examples drawn (``max_examples`` counts examples then)."""
    rng = np.random.default_rng(seed)
    columns = getattr(dataset, "column_names", None) or (list(dataset[0]) if len(dataset) else [])
    if "example_id" in columns:
        example_ids = (
            list(dataset["example_id"]) if hasattr(dataset, "column_names") else [row["example_id"] for row in dataset]
        )
        unique = list(dict.fromkeys(example_ids))  # first-seen order
        drawn = set(_draw(rng, unique, max_examples))
        indices = [i for i, example_id in enumerate(example_ids) if example_id in drawn]
    else:
        indices = sorted(_draw(rng, list(range(len(dataset))), max_examples))
    return [dict(dataset[int(i)]) for i in indices]


def _draw(rng, items: list, count: int) -> list:
    if len(items) <= count:
        return items
    return [items[i] for i in sorted(rng.choice(len(items), size=count, replace=False))]


def find_collapse(
    model, tokenizer, task: str, rows: Sequence[dict], batch_size: int, config: HealthConfig
) -> Finding | None:
    """The task type's collapse check on the head's predictions for ``rows`` (training-format dev features)."""
    spec = model.config.tasks[task]
    if not rows:
        return None
    outputs = predict_features(model, tokenizer, rows, task, batch_size)
    return get_type(spec["type"]).collapse_finding(outputs, rows, spec.get("labels"), tokenizer, config)


def collapse_message(task: str, finding: Finding, step: int, args) -> str:
    gold = f" ({finding.gold_what})" if finding.gold_what else ""
    batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * max(1, args.world_size)
    share = f"{finding.share:.0%} of " if finding.count else ""  # count 0: only another rank has the numbers
    return (
        f"task {task}: {share}dev predictions {finding.what}{gold} at step {step}; "
        f"lower the learning rate (now {args.learning_rate:g}, try {args.learning_rate / 2:g}) or raise the "
        f"effective batch size (now {batch}); {DOCS_HINT}"
    )


class CollapseAlarm(HealthCallback):
    """Warn / stop / restart when a task's dev predictions collapse to one class (module docstring)."""

    def __init__(self, config: HealthConfig | None, eval_datasets: Mapping[str, Any], tokenizer, attempt: int = 0):
        super().__init__(config, attempt)
        self.tokenizer = tokenizer
        self.rows = {
            task: capped_rows(dataset, self.config.collapse_max_examples)
            for task, dataset in eval_datasets.items()
            if dataset is not None
        }
        self.streaks: dict[str, int] = defaultdict(int)
        self.reported: set[str] = set()  # tasks collapsed and already warned about
        self.training, self.checked_step = False, None

    def on_train_begin(self, args, state, control, **kwargs):
        super().on_train_begin(args, state, control, **kwargs)
        self.training, self.checked_step = True, None

    def on_train_end(self, args, state, control, **kwargs):
        self.training = False  # evaluations outside training (e.g. of a random init) are not judged

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        # MultiTaskTrainer fires on_evaluate once per task and once for the summary: judge once per step.
        if not self.training or model is None or self.checked_step == state.global_step:
            return
        self.checked_step = state.global_step
        for task, rows in self.rows.items():
            finding = find_collapse(model, self.tokenizer, task, rows, args.per_device_eval_batch_size, self.config)
            if any_rank(finding is not None, args.device):
                self._collapsed(task, finding, args, state, control)
                continue
            self.streaks[task] = 0
            if task in self.reported:
                self.reported.discard(task)
                if self.is_main_process:
                    logger.info("task %s: dev predictions no longer collapsed at step %d", task, state.global_step)

    def _collapsed(self, task: str, finding: Finding | None, args, state, control) -> None:
        if finding is None:  # another rank saw a collapse this rank did not (numerical noise near the threshold)
            finding = Finding("are collapsed on another process", 0.0, None, "", 0, None)
        self.streaks[task] += 1
        if self.streaks[task] < self.config.collapse_patience or task in self.reported:
            return
        self.reported.add(task)
        details = {
            "share": finding.share,
            "gold_share": finding.gold_share,
            "value": finding.value,
            "what": finding.what,
            "count": finding.count,
            "evaluations": self.streaks[task],
            "learning_rate": args.learning_rate,
        }
        event = HealthEvent(
            "collapse", state.global_step, task, details, collapse_message(task, finding, state.global_step, args)
        )
        self.act(self.config.on_collapse, control, event)


__all__ = ["CollapseAlarm", "Finding", "find_collapse", "capped_rows", "collapse_message"]
