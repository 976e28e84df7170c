"""Token tagging: UD-POS, PAN-X / WikiANN NER, CCG supertags.

rows       {"tokens": list[str], "tags": list[int]}   (tags index ``spec.labels``)
features   train: input_ids, attention_mask, labels [len] (-100 except on each word's first sub-word)
           eval:  input_ids, attention_mask, labels [len], example_id (the row), word_ids (word per token)
windows    a sentence longer than max_length becomes windows of whole words
head       dropout, linear -> token logits; label -100 is ignored
score      one predicted tag per word (``qa_decoding.decode_tagging_predictions``), scored with the
           spec's metric (seqeval_f1 for NER, pos_f1 for UD-POS)
"""

from __future__ import annotations

import numpy as np

from hf_itt.metrics import collapse
from hf_itt.metrics.scoring import score as metric_score
from hf_itt.predictions import ScoredSplit, tag_predictions
from hf_itt.task_types.base import ScoringTools, TaskType
from hf_itt.task_types.classification import (
    accuracy_over_labelled,
    remap_by_name,
    sized_head,
)
from hf_itt.task_types.qa_decoding import decode_tagging_predictions
from hf_itt.task_types.tagging_features import IGNORE_INDEX, tokenize_tagging


class Tagging(TaskType):
    name = "tagging"
    hub_task = "token-classification"
    columns = ("tokens", "tags")
    required_columns = ("tokens", "tags")
    default_metric = "seqeval_f1"
    labelled = True
    label_column = "tags"
    takes_indices = True
    token_level_outputs = True
    text_file_format = "tagged"

    def head_size(self, spec) -> int | None:
        return len(spec.labels) if spec.labels is not None else None

    def row_features(self, spec) -> dict:
        from datasets import ClassLabel, List, Value

        return {"tokens": List(Value("string")), "tags": List(ClassLabel(names=spec.labels))}

    def convert_row(self, reader, row, number):
        tokens = reader.column(row, "tokens", number)
        tags = reader.column(row, "tags", number)
        if not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags):
            reader.fail(number, f"tokens and tags must be lists of equal length, got {tokens!r} / {tags!r}")
        return {"tokens": [str(t) for t in tokens], "tags": [reader.labels(tag, number) for tag in tags]}

    def adapt_training_rows(self, rows, source_spec, target_spec):
        rows = super().adapt_training_rows(rows, source_spec, target_spec)
        return remap_by_name(
            rows, "tags", source_spec, target_spec, lambda mapping, tags: [mapping[tag] for tag in tags]
        )

    def feature_columns(self, train: bool) -> dict:
        from datasets import List, Value

        integer = Value("int64")
        extra = {} if train else {"example_id": integer, "word_ids": List(integer)}
        return {**super().feature_columns(train), "labels": List(integer), **extra}

    def tokenize(self, batch, indices, *, tokenizer, **settings):
        return tokenize_tagging(batch, indices, tokenizer=tokenizer, **settings)

    def collator(self, tokenizer, *, pad_to_multiple_of=None, **options):
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=pad_to_multiple_of)

    def normalize_head(self, name, labels, num_labels):
        return sized_head(name, self.name, labels, num_labels)

    def build_head(self, num_labels, encoder_config):
        from hf_itt.task_types.heads import TaggingHead, head_dropout  # defers torch

        return TaggingHead(encoder_config.hidden_size, num_labels, head_dropout(encoder_config))

    def score(self, spec, data, ctx: ScoringTools, lang: str) -> dict[str, float]:
        features, outputs = ctx.predict(spec, data)
        predicted = decode_tagging_predictions(features, outputs["logits"], len(data))
        names = spec.labels
        pred_tags = [[names[i] for i in sentence] for sentence in predicted]
        gold_tags = [[names[i] for i in sentence] for sentence in data["tags"]]
        return ScoredSplit(metric_score(spec.metric, pred_tags, gold_tags), tag_predictions(pred_tags))

    dev_metric_names = ("accuracy",)
    main_dev_metric = "accuracy"

    def dev_metrics(self, spec, dev_features, dev_rows, tokenizer, max_length):
        return accuracy_over_labelled

    def collapse_finding(self, outputs, rows, labels, tokenizer, limits):
        predicted, gold = [], []  # labelled tokens only
        for row, row_logits in zip(rows, outputs["logits"]):
            tags = np.asarray(row["labels"])
            keep = tags != IGNORE_INDEX
            predicted.extend(np.argmax(row_logits[: len(tags)], -1)[keep].tolist())
            gold.extend(tags[keep].tolist())
        return collapse.class_finding(
            predicted, gold, collapse.label_namer(labels), "are tagged {} (labelled tokens)", limits
        )
