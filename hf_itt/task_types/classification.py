"""Sentence(-pair) classification: NLI (MNLI, XNLI, ANLI), paraphrase (QQP, PAWS-X).

rows       {"text_a": str, "text_b": str | None, "label": int}  (label indexes ``spec.labels``)
features   input_ids, attention_mask, labels
head       <s> state -> dropout, dense, tanh, dropout, out_proj (RobertaClassificationHead); one
           output = regression (MSE)
score      the spec's metric (accuracy; acc_and_f1 for QQP) of the argmax class
"""

from __future__ import annotations

import numpy as np

from hf_itt.errors import ConfigError, DataError
from hf_itt.metrics import collapse
from hf_itt.metrics.scoring import score as metric_score
from hf_itt.predictions import ScoredSplit, label_predictions
from hf_itt.task_types.base import ScoringTools, TaskType


def check_labels(labels, indices, task: str, num_labels: int | None, allowed=(-1,)) -> None:
    if not num_labels:
        return
    for label, row in zip(labels, indices):
        if not (0 <= label < num_labels or label in allowed):
            raise DataError(
                f"task {task!r}, row {row}: label {label} is outside 0..{num_labels - 1} "
                f"(or -1 for unlabelled); fix the label mapping of this task"
            )


def accuracy_over_labelled(eval_prediction) -> dict[str, float]:
    """Dev accuracy in percent over labelled positions (label != -100), from the Trainer's predictions."""
    predictions = eval_prediction.predictions
    logits = predictions[0] if isinstance(predictions, tuple) else predictions
    labels = eval_prediction.label_ids
    predicted = np.argmax(logits, axis=-1)
    mask = labels != -100
    return {"accuracy": float(100 * (predicted[mask] == labels[mask]).mean()) if mask.any() else 0.0}


def remap_by_name(rows, column: str, source_spec, target_spec, convert):
    """Re-index ``column`` from the training task's label list to the target's, by label NAME."""
    if list(source_spec.labels) == list(target_spec.labels):
        return rows
    missing = sorted(set(source_spec.labels) - set(target_spec.labels))
    if missing:
        raise DataError(
            f"labels {missing} of training task {source_spec.name} do not exist in target "
            f"{target_spec.name} ({target_spec.labels}); the tasks cannot share a head"
        )
    mapping = [target_spec.labels.index(name) for name in source_spec.labels]
    return rows.map(
        lambda row: {column: convert(mapping, row[column])}, desc=f"labels {source_spec.name}->{target_spec.name}"
    )


def sized_head(name: str, task_type: str, labels, num_labels) -> tuple:
    """(num_labels, labels) of a head sized by its label set."""
    if labels and num_labels is not None and int(num_labels) != len(labels):
        raise ConfigError(f"task {name!r}: num_labels={num_labels} but {len(labels)} label names {labels}")
    num_labels = len(labels) if labels else num_labels
    if num_labels is None or int(num_labels) < 1:
        raise ConfigError(f"task {name!r} ({task_type}) needs num_labels >= 1 or a list of label names")
    return int(num_labels), labels


class Classification(TaskType):
    name = "classification"
    hub_task = "text-classification"
    columns = ("text_a", "text_b", "label")
    required_columns = ("text_a", "label")
    default_metric = "accuracy"
    labelled = True
    label_column = "label"
    takes_indices = True

    def head_size(self, spec) -> int | None:
        return len(spec.labels) if spec.labels is not None else None

    def row_features(self, spec) -> dict:
        from datasets import ClassLabel, Value

        return {"text_a": Value("string"), "text_b": Value("string"), "label": ClassLabel(names=spec.labels)}

    def convert_row(self, reader, row, number):
        label = reader.column(row, "label", number)
        if reader.labels.drops(label):
            return None
        return {
            "text_a": reader.text(row, "text_a", number),
            "text_b": reader.text(row, "text_b", number, True),
            "label": reader.labels(label, number),
        }

    def adapt_training_rows(self, rows, source_spec, target_spec):
        rows = super().adapt_training_rows(rows, source_spec, target_spec)
        return remap_by_name(rows, "label", source_spec, target_spec, lambda mapping, value: mapping[value])

    def feature_columns(self, train: bool) -> dict:
        from datasets import Value

        return {**super().feature_columns(train), "labels": Value("int64")}

    def tokenize(self, batch, indices, *, tokenizer, task, max_length, num_labels, **_):
        text_b = batch["text_b"]
        has_pair = [text is not None for text in text_b]
        if any(has_pair) and not all(has_pair):
            row = indices[has_pair.index(False)]
            raise DataError(
                f"task {task!r}, row {row}: text_b is missing while other rows are sentence pairs; "
                f"use an empty string or drop the row"
            )
        check_labels(batch["label"], indices, task, num_labels)
        if all(has_pair):
            encoded = tokenizer(batch["text_a"], text_b, truncation="longest_first", max_length=max_length)
        else:
            encoded = tokenizer(batch["text_a"], truncation=True, max_length=max_length)
        return {
            "input_ids": encoded["input_ids"],
            "attention_mask": encoded["attention_mask"],
            "labels": batch["label"],
        }

    def normalize_head(self, name, labels, num_labels):
        return sized_head(name, self.name, labels, num_labels)

    def build_head(self, num_labels, encoder_config):
        from hf_itt.task_types.heads import (  # defers torch
            ClassificationHead,
            head_dropout,
        )

        return ClassificationHead(encoder_config.hidden_size, num_labels, head_dropout(encoder_config))

    def score(self, spec, data, ctx: ScoringTools, lang: str) -> dict[str, float]:
        _, outputs = ctx.predict(spec, data)
        predictions = np.argmax(np.stack(outputs["logits"]), axis=-1).tolist()
        scores = metric_score(spec.metric, predictions, list(data["label"]))
        return ScoredSplit(scores, label_predictions([spec.labels[i] for i in predictions]))

    dev_metric_names = ("accuracy",)
    main_dev_metric = "accuracy"

    def dev_metrics(self, spec, dev_features, dev_rows, tokenizer, max_length):
        return accuracy_over_labelled

    def collapse_finding(self, outputs, rows, labels, tokenizer, limits):
        predicted = [int(np.argmax(x)) for x in outputs["logits"]]
        return collapse.class_finding(
            predicted, collapse.gold_labels(rows), collapse.label_namer(labels), "are {}", limits
        )
