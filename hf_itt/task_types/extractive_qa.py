"""Extractive QA: SQuAD v1.1 / v2, XQuAD, MLQA, TyDiQA-GoldP.

rows       {"id": str, "context": str, "question": str,
            "answers": {"text": list[str], "answer_start": list[int]}}   (empty lists = no answer)
features   train: input_ids, attention_mask, start_positions, end_positions
           eval:  input_ids, attention_mask, example_id, offset_mapping (None outside the context)
windows    long contexts become overlapping windows (``qa_features``), 384 tokens, stride 128
head       linear -> start / end logits over tokens (XLMRobertaForQuestionAnswering's layout)
score      the spec's metric (squad, squad_v2, mlqa) of the best span over all windows (``qa_decoding``)
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Sequence

import numpy as np

from hf_itt.errors import TaskError
from hf_itt.metrics import collapse
from hf_itt.metrics.scoring import score as metric_score
from hf_itt.predictions import ScoredSplit, answer_predictions
from hf_itt.task_types.base import ENCODER_INPUTS, ScoringTools, TaskType, as_int
from hf_itt.task_types.qa_decoding import best_span, decode_qa
from hf_itt.task_types.qa_features import qa_window_settings, tokenize_qa

logger = logging.getLogger(__name__)
MAX_ANSWER_TOKENS = 30


def normalise_answers(answers):
    """SQuAD's answers as {"text": [...], "answer_start": [...]}, from either layout; None if malformed."""
    if isinstance(answers, list) and all(isinstance(a, dict) for a in answers):  # SQuAD list of objects
        answers = {"text": [a.get("text") for a in answers], "answer_start": [a.get("answer_start") for a in answers]}
    if not isinstance(answers, dict) or not {"text", "answer_start"} <= set(answers):
        return None
    texts, starts = list(answers["text"]), [as_int(s) for s in answers["answer_start"]]
    if len(texts) != len(starts) or not all(isinstance(t, str) for t in texts):
        return None
    return {"text": texts, "answer_start": starts}


class ExtractiveQA(TaskType):
    name = "extractive_qa"
    hub_task = "question-answering"
    columns = ("id", "context", "question", "answers")
    required_columns = ("context", "question", "answers")
    default_metric = "squad"
    default_max_length = 384
    model_inputs = ENCODER_INPUTS + ("start_positions", "end_positions")
    label_names = ("start_positions", "end_positions")

    def check_spec(self, spec, where):
        if spec.doc_stride >= spec.max_length:
            raise TaskError(f"{where}: doc_stride ({spec.doc_stride}) must be below max_length ({spec.max_length})")

    def row_features(self, spec) -> dict:
        from datasets import List, Value

        text = Value("string")
        return {
            "id": text,
            "context": text,
            "question": text,
            "answers": {"text": List(text), "answer_start": List(Value("int32"))},
        }

    def convert_row(self, reader, row, number):
        context = reader.text(row, "context", number)
        answers = normalise_answers(reader.column(row, "answers", number))
        if answers is None:
            reader.fail(
                number,
                "answers must be {'text': [...], 'answer_start': [...]} or a list of {'text', 'answer_start'} objects",
            )
        for text, start in zip(answers["text"], answers["answer_start"]):
            if not isinstance(start, int) or start < 0 or start + len(text) > len(context):
                reader.fail(
                    number, f"answer {text!r} at answer_start {start} runs past the context ({len(context)} characters)"
                )
            if context[start : start + len(text)] != text:
                found = context[start : start + len(text)]
                reader.fail(
                    number,
                    f"answer {text!r} does not match the context at answer_start {start} (context has {found!r} there)",
                )
        return {
            "id": reader.row_id(row, "id", number),
            "context": context,
            "question": reader.text(row, "question", number),
            "answers": answers,
        }

    def feature_columns(self, train: bool) -> dict:
        from datasets import List, Value

        integer = Value("int64")
        extra = (
            {"start_positions": integer, "end_positions": integer}
            if train
            else {"example_id": Value("string"), "offset_mapping": List(List(integer))}
        )
        return {**super().feature_columns(train), **extra}

    def describe_length(self, spec, max_length):
        return f"{max_length} (stride {spec.doc_stride})"

    def feature_settings(self, spec, tokenizer, max_length, doc_stride):
        return qa_window_settings(tokenizer, spec.name, max_length, doc_stride, getattr(spec, "doc_stride", None))

    def tokenize(self, batch, *, tokenizer, **settings):
        return tokenize_qa(batch, tokenizer=tokenizer, **settings)

    dev_metric_names = ("exact_match", "f1")
    main_dev_metric = "f1"

    def dev_metrics(self, spec, dev_features, dev_rows, tokenizer, max_length):
        """SQuAD EM / F1 on the dev set as run_qa computes them: the Trainer evaluates training features
        (start/end positions: the loss); the same rows as evaluation features (the same windows, plus
        example_id and offset_mapping) decode the predicted spans."""
        from hf_itt.task_types.features import preprocess  # defers datasets

        rows = dev_rows()
        features = preprocess(rows, spec, tokenizer, split_role="eval", max_length=max_length)
        if len(features) != len(dev_features):
            logger.warning(
                "task %s: dev EM/F1 skipped (%d evaluation windows for %d training windows)",
                spec.name,
                len(features),
                len(dev_features),
            )
            return None
        return QADevMetrics(rows, features.select_columns(["example_id", "offset_mapping"]), spec.metric)

    def build_head(self, num_labels, encoder_config):
        from hf_itt.task_types.heads import ExtractiveQAHead  # defers torch

        return ExtractiveQAHead(encoder_config.hidden_size)

    def score(self, spec, data, ctx: ScoringTools, lang: str) -> dict[str, float]:
        features, outputs = ctx.predict(spec, data)
        decoded = decode_qa(
            data, features, outputs["start_logits"], outputs["end_logits"], version_2=spec.metric == "squad_v2"
        )
        references = {row_id: answers["text"] for row_id, answers in zip(data["id"], data["answers"])}
        if spec.metric == "mlqa":
            scores = metric_score("mlqa", decoded.predictions, references, lang)
        elif spec.metric == "squad_v2":
            scores = metric_score("squad_v2", decoded.predictions, references, na_probs=decoded.null_score_diffs)
        else:
            scores = metric_score(spec.metric, decoded.predictions, references)
        return ScoredSplit(scores, answer_predictions(decoded.predictions))

    def collapse_finding(self, outputs, rows, labels, tokenizer, limits):
        return qa_finding(outputs["start_logits"], outputs["end_logits"], rows, tokenizer, limits)


class QADevMetrics:
    """EM / F1 of a QA dev set from the start and end logits of its features (in order)."""

    def __init__(self, rows, eval_features, metric: str = "squad"):
        self.rows, self.features, self.metric = rows, eval_features, metric
        self.references = {row_id: answers["text"] for row_id, answers in zip(rows["id"], rows["answers"])}

    def __call__(self, eval_prediction) -> dict[str, float]:
        start_logits, end_logits = eval_prediction.predictions[:2]
        decoded = decode_qa(self.rows, self.features, start_logits, end_logits, version_2=self.metric == "squad_v2")
        if self.metric == "squad_v2":
            return metric_score("squad_v2", decoded.predictions, self.references, na_probs=decoded.null_score_diffs)
        if self.metric == "mlqa":  # English dev rows: MLQA's English normalisation
            return metric_score("mlqa", decoded.predictions, self.references, "en")
        return metric_score("squad", decoded.predictions, self.references)


# ---- collapse: empty answers, one start position or one answer text for nearly all examples ------------
def qa_finding(start_logits, end_logits, rows: Sequence[dict], tokenizer, limits) -> collapse.Finding | None:
    spans = qa_predicted_spans(start_logits, end_logits, rows)
    if not collapse.enough_examples(len(spans), limits):
        return None
    gold = qa_gold_spans(rows)
    empty, gold_empty = _empty_share(spans), None if gold is None else _empty_share(gold)
    if collapse.is_collapsed(empty, gold_empty, limits):
        return collapse.Finding(
            "are empty (no answer)", empty, gold_empty, collapse.gold_what(gold_empty, "{} empty"), len(spans), ""
        )
    for what, key in (("start at token {}", lambda span: span[1]), ("are the answer {}", lambda span: span[2])):
        value, share = _answered_majority(spans, key)
        gold_share = None if gold is None else _answered_majority(gold, key)[1]
        if value is not None and collapse.is_collapsed(share, gold_share, limits):
            value = value if isinstance(value, int) else _answer_text(tokenizer, value)
            return collapse.Finding(
                what.format(repr(value) if isinstance(value, str) else value),
                share,
                gold_share,
                collapse.gold_what(gold_share, "majority {}"),
                len(spans),
                value,
            )
    return None


def _empty_share(spans: Sequence) -> float:
    return sum(span is None for span in spans) / len(spans)


def _answered_majority(spans: Sequence, key) -> tuple[Any, float]:
    """The most frequent ``key`` among answered spans, and its share of ALL spans."""
    value, share = collapse.majority([key(span) for span in spans if span is not None])
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
            span = best_span(start, end, _candidate_offsets(rows[i]), n_best=20, max_answer_length=MAX_ANSWER_TOKENS)
            if span is not None and (best is None or span[0] > best[0]):
                best = (span[0], span[1], tuple(ids[span[1] : span[2] + 1]))
        spans.append(None if best is None or null > best[0] else best)
    return spans


def qa_gold_spans(rows) -> list[tuple | None] | None:
    """Gold spans of training-format features (start/end positions; 0 = no answer), else None."""
    if not rows or "start_positions" not in rows[0]:
        return None
    spans = []
    for row in rows:
        start, end = int(row["start_positions"]), int(row["end_positions"])
        spans.append(None if start == 0 else (0.0, start, tuple(row["input_ids"][start : end + 1])))
    return spans


def _candidate_offsets(row: dict) -> list:
    """Candidate answer tokens: the context (offsets not None) of eval features, else all but the ends."""
    if row.get("offset_mapping") is not None:
        return row["offset_mapping"]
    length = len(row["input_ids"])
    return [None] + [(0, 0)] * (length - 2) + [None]


def _answer_text(tokenizer, ids) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=True).strip() if tokenizer is not None else str(ids)
