"""Collapse alarm: at each evaluation, are a task's dev predictions all one class?

XLM-R Large at a learning rate or batch size a little off its stable range can end up predicting
one class for every input (the loss then sits at chance level and never recovers). The alarm runs
its own prediction pass over a fixed random subset of each dev set (``collapse_max_examples``, 256
by default: a fraction of a second next to the evaluation itself) at every evaluation *during
training*, and compares:

- classification / multiple choice: the share of the majority predicted class (choice) with the
  share of the majority gold class;
- tagging: the same over labelled tokens (labels != -100);
- extractive QA (per example when features carry ``example_id``): the share of empty answers (CLS
  scores above the best span) and of the most frequent start position and answer text, each with
  its gold counterpart when features carry ``start_positions``.

A task has collapsed when a share is >= ``collapse_threshold`` AND exceeds the gold share by
``collapse_margin``. Its own pass (not the evaluation's predictions) keeps it independent of
``compute_metrics`` and of how evaluation gathers outputs; every rank runs the same pass on the same
rows, and the decision is agreed across ranks (``any_rank``) so all of them stop together.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import torch

from hf_itt.task_types.collators import MultiTaskCollator
from hf_itt.health.callbacks import DOCS_HINT, HealthCallback, HealthConfig, HealthEvent, any_rank
from hf_itt.task_types.qa_decoding import best_span
from hf_itt.evaluation.predict import OUTPUT_KEYS, feature_length
from hf_itt.tasks.schema import CLASSIFICATION, EXTRACTIVE_QA, MULTIPLE_CHOICE, TAGGING

logger = logging.getLogger("hf_itt.health.callbacks")

CHECKED_TYPES = (CLASSIFICATION, MULTIPLE_CHOICE, TAGGING, EXTRACTIVE_QA)
MAX_ANSWER_TOKENS = 30


class Finding(NamedTuple):
    """One collapsed share: ``what`` completes "97% of dev predictions ..."."""

    what: str
    share: float
    gold_share: float | None
    gold_what: str  # e.g. "gold majority 34%", "" when the gold labels are unknown
    count: int  # predictions judged (tagging: labelled tokens; QA: examples)
    value: Any  # the collapsed class / position / answer (JSON-safe)


# ---- pure statistics ----------------------------------------------------------------------------
def majority(values: Sequence) -> tuple[Any, float]:
    """(most frequent value, its share of ``values``); (None, 0.0) for an empty sequence."""
    if len(values) == 0:
        return None, 0.0
    value, count = Counter(values).most_common(1)[0]
    return value, count / len(values)


def is_collapsed(share: float, gold_share: float | None, config: HealthConfig) -> bool:
    gold = 0.0 if gold_share is None else gold_share
    return share >= config.collapse_threshold and share >= gold + config.collapse_margin


def class_finding(predicted: Sequence[int], gold: Sequence[int] | None, name_of, what: str,
                  config: HealthConfig) -> Finding | None:
    """Collapse of a class distribution: ``what`` is formatted with the class's name."""
    if len(predicted) < max(1, config.collapse_min_examples):
        return None
    value, share = majority(list(predicted))
    gold_share = majority(list(gold))[1] if gold is not None and len(gold) else None
    if not is_collapsed(share, gold_share, config):
        return None
    return Finding(what.format(name_of(value)), share, gold_share, _gold_what(gold_share, "majority {}"),
                   len(predicted), int(value))


def classification_finding(task_type: str, logits: Sequence[np.ndarray], rows: Sequence[dict],
                           labels: Sequence[str] | None, config: HealthConfig) -> Finding | None:
    if task_type == MULTIPLE_CHOICE:
        predicted, gold = [int(np.argmax(x)) for x in logits], _gold(rows)
        return class_finding(predicted, gold, str, "pick choice {}", config)
    if task_type == CLASSIFICATION:
        predicted, gold = [int(np.argmax(x)) for x in logits], _gold(rows)
        return class_finding(predicted, gold, _namer(labels), "are {}", config)
    predicted, gold = [], []  # tagging: labelled tokens only
    for row, row_logits in zip(rows, logits):
        tags = np.asarray(row["labels"])
        keep = tags != -100
        predicted.extend(np.argmax(row_logits[:len(tags)], -1)[keep].tolist())
        gold.extend(tags[keep].tolist())
    return class_finding(predicted, gold, _namer(labels), "are tagged {} (labelled tokens)", config)


def qa_finding(start_logits: Sequence[np.ndarray], end_logits: Sequence[np.ndarray], rows: Sequence[dict],
               tokenizer, config: HealthConfig) -> Finding | None:
    """Empty answers, one start position or one answer text for nearly all QA examples."""
    spans = qa_predicted_spans(start_logits, end_logits, rows)
    if len(spans) < max(1, config.collapse_min_examples):
        return None
    gold = qa_gold_spans(rows)
    empty, gold_empty = _empty_share(spans), None if gold is None else _empty_share(gold)
    if is_collapsed(empty, gold_empty, config):
        return Finding("are empty (no answer)", empty, gold_empty, _gold_what(gold_empty, "{} empty"), len(spans), "")
    for what, key in (("start at token {}", lambda span: span[1]), ("are the answer {}", lambda span: span[2])):
        value, share = _answered_majority(spans, key)
        gold_share = None if gold is None else _answered_majority(gold, key)[1]
        if value is not None and is_collapsed(share, gold_share, config):
            value = value if isinstance(value, int) else _answer_text(tokenizer, value)
            return Finding(what.format(repr(value) if isinstance(value, str) else value), share, gold_share,
                           _gold_what(gold_share, "majority {}"), len(spans), value)
    return None


def _empty_share(spans: Sequence) -> float:
    return sum(span is None for span in spans) / len(spans)


def _answered_majority(spans: Sequence, key) -> tuple[Any, float]:
    """The most frequent ``key`` among answered spans, and its share of ALL spans."""
    value, share = majority([key(span) for span in spans if span is not None])
    return value, share * (1 - _empty_share(spans))


def qa_predicted_spans(start_logits, end_logits, rows) -> list[tuple | None]:
    """Per example (features grouped by ``example_id`` when present): None for an empty answer, else
    (score, start token, answer token ids) of the best span over its windows."""
    groups: dict[Any, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        groups[row.get("example_id", index)].append(index)
    spans = []
    for indices in groups.values():
        best, null = None, np.inf
        for i in indices:
            start, end, ids = np.asarray(start_logits[i]), np.asarray(end_logits[i]), rows[i]["input_ids"]
            null = min(null, float(start[0] + end[0]))
            span = best_span(start, end, _offsets(rows[i]), n_best=20, max_answer_length=MAX_ANSWER_TOKENS)
            if span is not None and (best is None or span[0] > best[0]):
                best = (span[0], span[1], tuple(ids[span[1]:span[2] + 1]))
        spans.append(None if best is None or null > best[0] else best)
    return spans


def qa_gold_spans(rows) -> list[tuple | None] | None:
    """Gold spans of training-format features (start/end positions; 0 = no answer), else None."""
    if not rows or "start_positions" not in rows[0]:
        return None
    spans = []
    for row in rows:
        start, end = int(row["start_positions"]), int(row["end_positions"])
        spans.append(None if start == 0 else (0.0, start, tuple(row["input_ids"][start:end + 1])))
    return spans


def _offsets(row: dict) -> list:
    """Candidate answer tokens: the context (offsets not None) of eval features, else all but the ends."""
    if row.get("offset_mapping") is not None:
        return row["offset_mapping"]
    length = feature_length(row)
    return [None] + [(0, 0)] * (length - 2) + [None]


def _gold(rows) -> list[int] | None:
    key = "labels" if rows and "labels" in rows[0] else "label"
    return [int(row[key]) for row in rows] if rows and key in rows[0] else None


def _gold_what(gold_share: float | None, template: str) -> str:
    return "" if gold_share is None else "gold " + template.format(f"{gold_share:.0%}")


def _namer(labels: Sequence[str] | None):
    return lambda value: repr(labels[value]) if labels and 0 <= value < len(labels) else f"class {value}"


def _answer_text(tokenizer, ids) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=True).strip() if tokenizer is not None else str(ids)


# ---- the prediction pass ------------------------------------------------------------------------
def capped_rows(dataset, max_examples: int, seed: int = 0) -> list[dict]:
    """A fixed random subset of ``dataset`` as row dicts; QA eval features keep all windows of the
    examples drawn (``max_examples`` counts examples then)."""
    rng = np.random.default_rng(seed)
    columns = getattr(dataset, "column_names", None) or (list(dataset[0]) if len(dataset) else [])
    if "example_id" in columns:
        example_ids = (list(dataset["example_id"]) if hasattr(dataset, "column_names")
                       else [row["example_id"] for row in dataset])
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


@torch.no_grad()  # not inference_mode: ZeRO-3 gathers parameters in place during the forward
def predict_rows(model, tokenizer, task: str, rows: Sequence[dict], batch_size: int) -> dict[str, list[np.ndarray]]:
    """The ``task`` head's outputs per row (token-level outputs cut to the row's length).

    Labels stay in the batch (the multiple-choice collator needs them; the model's loss is ignored), which is
    why this is not ``hf_itt.evaluation.predict.predict_features``: that one strips labels first.
    """
    task_type = model.config.tasks[task]["type"]
    collator = MultiTaskCollator(tokenizer, [spec["type"] for spec in model.config.tasks.values()])
    device = next(model.parameters()).device
    task_id, was_training = model.task_id(task), model.training
    dummy_labels = {"labels": 0} if task_type == MULTIPLE_CHOICE else {}  # the collator needs labels
    outputs: dict[str, list[np.ndarray]] = defaultdict(list)
    model.eval()
    try:
        for begin in range(0, len(rows), batch_size):
            chunk = rows[begin:begin + batch_size]
            batch = collator([{**dummy_labels, **row, "task_ids": task_id} for row in chunk])
            result = model(**{key: value.to(device) for key, value in batch.items()})
            for key in OUTPUT_KEYS:
                value = getattr(result, key, None)
                if value is None:
                    continue
                token_level = key != "logits" or task_type == TAGGING
                for row, item in zip(chunk, value.float().cpu().numpy()):
                    outputs[key].append(item[:feature_length(row)] if token_level else item)
    finally:
        model.train(was_training)
    return dict(outputs)


def find_collapse(model, tokenizer, task: str, rows: Sequence[dict], batch_size: int,
                  config: HealthConfig) -> Finding | None:
    spec = model.config.tasks[task]
    if not rows or spec["type"] not in CHECKED_TYPES:
        return None
    outputs = predict_rows(model, tokenizer, task, rows, batch_size)
    if spec["type"] == EXTRACTIVE_QA:
        return qa_finding(outputs["start_logits"], outputs["end_logits"], rows, tokenizer, config)
    return classification_finding(spec["type"], outputs["logits"], rows, spec.get("labels"), config)


def collapse_message(task: str, finding: Finding, step: int, args) -> str:
    gold = f" ({finding.gold_what})" if finding.gold_what else ""
    batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * max(1, args.world_size)
    share = f"{finding.share:.0%} of " if finding.count else ""  # count 0: only another rank has the numbers
    return (f"task {task}: {share}dev predictions {finding.what}{gold} at step {step}; "
            f"lower the learning rate (now {args.learning_rate:g}, try {args.learning_rate / 2:g}) or raise the "
            f"effective batch size (now {batch}); {DOCS_HINT}")


class CollapseAlarm(HealthCallback):
    """Warn / stop / restart when a task's dev predictions collapse to one class (module docstring)."""

    def __init__(self, config: HealthConfig | None, eval_datasets: Mapping[str, Any], tokenizer, attempt: int = 0):
        super().__init__(config, attempt)
        self.tokenizer = tokenizer
        self.rows = {task: capped_rows(dataset, self.config.collapse_max_examples)
                     for task, dataset in eval_datasets.items() if dataset is not None}
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
        details = {"share": finding.share, "gold_share": finding.gold_share, "value": finding.value,
                   "what": finding.what, "count": finding.count, "evaluations": self.streaks[task],
                   "learning_rate": args.learning_rate}
        event = HealthEvent("collapse", state.global_step, task, details,
                            collapse_message(task, finding, state.global_step, args))
        self.act(self.config.on_collapse, control, event)


__all__ = ["CollapseAlarm", "Finding", "find_collapse", "classification_finding", "qa_finding", "capped_rows",
           "predict_rows", "collapse_message"]
