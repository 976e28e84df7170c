"""Multiple choice: HellaSwag, CosmosQA, CommonsenseQA, SIQA, COPA / XCOPA.

rows       {"prompt": str, "choices": list[str], "label": int}
features   input_ids [n_choices][len], attention_mask [n_choices][len], labels
head       the classification head with one output, applied to each (prompt, choice) sequence;
           the batch [B, n, L] is flattened to [B*n, L] for the encoder -> scores [B, n]
score      accuracy of the best-scoring choice
"""

from __future__ import annotations

import numpy as np

from hf_itt.errors import DataError, TaskError
from hf_itt.metrics import collapse
from hf_itt.metrics.scoring import score as metric_score
from hf_itt.predictions import ScoredSplit, label_predictions
from hf_itt.task_types.base import ScoringTools, TaskType
from hf_itt.task_types.classification import accuracy_over_labelled, check_labels


class MultipleChoice(TaskType):
    name = "multiple_choice"
    hub_task = "multiple-choice"
    columns = ("prompt", "choices", "label")
    required_columns = ("prompt", "choices", "label")
    default_metric = "accuracy"
    label_column = "label"
    takes_indices = True

    def check_spec(self, spec, where):
        if not isinstance(spec.num_choices, int) or spec.num_choices < 2:
            raise TaskError(f"{where}: a multiple_choice task needs `num_choices` >= 2")
        if spec.labels is not None and len(spec.labels) != spec.num_choices:
            raise TaskError(f"{where}: {len(spec.labels)} labels for {spec.num_choices} choices")

    def head_size(self, spec) -> int | None:
        return spec.num_choices

    def row_features(self, spec) -> dict:
        from datasets import List, Value

        return {"prompt": Value("string"), "choices": List(Value("string")), "label": Value("int64")}

    def convert_row(self, reader, row, number):
        label = reader.column(row, "label", number)
        if reader.labels.drops(label):
            return None
        choices = reader.choices(row, number)
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            reader.fail(number, f"choices must be a list of texts, got {choices!r}")
        if len(choices) != reader.spec.num_choices:
            reader.fail(number, f"{len(choices)} choices, the task has {reader.spec.num_choices}")
        return {"prompt": reader.text(row, "prompt", number), "choices": choices, "label": reader.labels(label, number)}

    def training_spec(self, source_spec, target_spec):
        """The head scores each (prompt, choice) on its own, so a task with another number of choices can
        train it (XTREME-R trains XCOPA's 2-choice head on SIQA's 3): its rows keep their own count."""
        return target_spec.with_overrides(
            num_choices=source_spec.num_choices, labels=source_spec.labels if target_spec.labels else None
        )

    def feature_columns(self, train: bool) -> dict:
        from datasets import List, Value

        return {
            "input_ids": List(List(Value("int32"))),
            "attention_mask": List(List(Value("int8"))),
            "labels": Value("int64"),
        }

    def tokenize(self, batch, indices, *, tokenizer, task, max_length, num_choices, **_):
        for choices, row in zip(batch["choices"], indices):
            if not choices or (num_choices and len(choices) != num_choices):
                raise DataError(
                    f"task {task!r}, row {row}: {len(choices or [])} choices, expected "
                    f"{num_choices or 'at least one'}; fix the row or the task's num_choices"
                )
        check_labels(batch["label"], indices, task, num_choices)
        prompts = [prompt for prompt, choices in zip(batch["prompt"], batch["choices"]) for _ in choices]
        flat_choices = [choice for choices in batch["choices"] for choice in choices]
        encoded = tokenizer(prompts, flat_choices, truncation="longest_first", max_length=max_length)
        features = {"input_ids": [], "attention_mask": [], "labels": batch["label"]}
        start = 0
        for choices in batch["choices"]:
            end = start + len(choices)
            features["input_ids"].append(encoded["input_ids"][start:end])
            features["attention_mask"].append(encoded["attention_mask"][start:end])
            start = end
        return features

    def collator(self, tokenizer, *, pad_to_multiple_of=None, **options):
        from transformers import DataCollatorForMultipleChoice

        return DataCollatorForMultipleChoice(tokenizer, pad_to_multiple_of=pad_to_multiple_of)

    def prepare_features(self, features):
        # transformers' multiple-choice collator needs a label on every feature; prediction batches carry
        # none, and the loss they would feed is ignored there
        return [{"labels": 0, **item} for item in super().prepare_features(features)]

    def normalize_head(self, name, labels, num_labels):
        return (None if num_labels is None else int(num_labels)), labels

    def build_head(self, num_labels, encoder_config):
        from hf_itt.task_types.heads import (  # defers torch
            MultipleChoiceHead,
            head_dropout,
        )

        return MultipleChoiceHead(encoder_config.hidden_size, head_dropout(encoder_config))

    def forward(self, encode, head, inputs, targets):
        reference = inputs.get("input_ids", inputs.get("inputs_embeds"))
        num_choices = reference.shape[1]
        flat = {
            key: value.reshape(-1, *value.shape[2:]) if key in FLATTENED else value for key, value in inputs.items()
        }
        return head(encode(**flat), num_choices=num_choices, **targets)

    def score(self, spec, data, ctx: ScoringTools, lang: str) -> dict[str, float]:
        _, outputs = ctx.predict(spec, data)
        predictions = np.argmax(np.stack(outputs["logits"]), axis=-1).tolist()
        scores = metric_score(spec.metric, predictions, list(data["label"]))
        return ScoredSplit(scores, label_predictions([str(i) for i in predictions]))

    dev_metric_names = ("accuracy",)
    main_dev_metric = "accuracy"

    def dev_metrics(self, spec, dev_features, dev_rows, tokenizer, max_length):
        return accuracy_over_labelled

    def collapse_finding(self, outputs, rows, labels, tokenizer, limits):
        predicted = [int(np.argmax(x)) for x in outputs["logits"]]
        return collapse.class_finding(predicted, collapse.gold_labels(rows), str, "pick choice {}", limits)


FLATTENED = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds")
