"""Decode model outputs into task predictions (pure numpy; no torch).

QA follows HF ``run_qa``'s ``postprocess_qa_predictions``: the n-best start and end logits of every
window of an example are paired, spans outside the context, reversed or longer than
``max_answer_length`` tokens are discarded, and the best-scoring span's characters are cut from the
context through the offset mapping (SQuAD v2 also weighs the CLS "no answer" score). Tagging merges
the windows of a sentence back into one tag per word, read at each word's first sub-word.

``features`` and ``examples`` may be a ``datasets.Dataset``, a dict of columns or a list of row dicts.
Logits may be one padded 2-D array (the Trainer pads with -100) or a list of per-feature arrays.
"""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

import numpy as np


class QADecoding(NamedTuple):
    predictions: dict[str, str]  # example id -> answer text ("" = no answer)
    null_score_diffs: dict[str, float]  # example id -> null score minus best span score (SQuAD v2 "na_prob")


def decode_qa_predictions(
    examples,
    features,
    start_logits,
    end_logits,
    n_best: int = 20,
    max_answer_length: int = 30,
    version_2: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> dict[str, str]:
    """Example id -> predicted answer text."""
    return decode_qa(
        examples, features, start_logits, end_logits, n_best, max_answer_length, version_2, null_score_diff_threshold
    ).predictions


def decode_qa(
    examples,
    features,
    start_logits,
    end_logits,
    n_best: int = 20,
    max_answer_length: int = 30,
    version_2: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> QADecoding:
    """Predictions plus per-example null-score differences (for SQuAD v2 threshold search)."""
    contexts = dict(zip(_column(examples, "id"), _column(examples, "context")))
    windows = _features_by_example(features)
    predictions, null_score_diffs = {}, {}
    for example_id, context in contexts.items():
        best_score, best_text, null_score = -np.inf, "", np.inf
        for index, offsets in windows.get(example_id, []):
            start = _feature_logits(start_logits, index, len(offsets))
            end = _feature_logits(end_logits, index, len(offsets))
            null_score = min(null_score, float(start[0] + end[0]))
            span = best_span(start, end, offsets, n_best, max_answer_length)
            if span is not None and span[0] > best_score:
                best_score, best_text = span[0], context[offsets[span[1]][0] : offsets[span[2]][1]].strip()
        null_score_diffs[example_id] = null_score - best_score
        answerable = not version_2 or null_score - best_score <= null_score_diff_threshold
        predictions[example_id] = best_text if answerable else ""
    return QADecoding(predictions, null_score_diffs)


def best_span(start: np.ndarray, end: np.ndarray, offsets, n_best: int, max_answer_length: int):
    """(score, start token, end token) of the best valid span in one window, or None.

    Only context tokens (offsets not None) are candidates, so a span can never leave the context.
    """
    context = np.array([offset is not None for offset in offsets], dtype=bool)
    if not context.any():
        return None
    candidates = np.flatnonzero(context)
    starts = candidates[np.argsort(-start[candidates], kind="stable")[:n_best]]
    ends = candidates[np.argsort(-end[candidates], kind="stable")[:n_best]]
    scores = start[starts][:, None] + end[ends][None, :]
    lengths = ends[None, :] - starts[:, None] + 1
    scores = np.where((lengths >= 1) & (lengths <= max_answer_length), scores, -np.inf)
    s, e = np.unravel_index(np.argmax(scores), scores.shape)
    if not np.isfinite(scores[s, e]):
        return None
    return float(scores[s, e]), int(starts[s]), int(ends[e])


def gold_answers_from_features(examples, features, start_positions, end_positions) -> dict[str, list[str]]:
    """Example id -> the text of the gold token span in each window that holds one (test/debug helper:
    it inverts QA preprocessing). ``features`` are the eval features (example_id, offset_mapping) of
    the same rows, in the same order as the train features that gave the positions."""
    contexts = dict(zip(_column(examples, "id"), _column(examples, "context")))
    answers = {example_id: [] for example_id in contexts}
    for example_id, offsets, start, end in zip(
        _column(features, "example_id"), _column(features, "offset_mapping"), start_positions, end_positions
    ):
        if start == end == 0:
            continue
        if offsets[start] is None or offsets[end] is None or end < start:
            raise ValueError(f"gold span ({start}, {end}) of example {example_id!r} is not inside the context")
        answers[example_id].append(contexts[example_id][offsets[start][0] : offsets[end][1]])
    return answers


def decode_tagging_predictions(features, logits_or_ids, num_examples: int) -> list[list[int]]:
    """One predicted tag id per word for each of ``num_examples`` sentences, read at each word's first
    sub-word and merged across the windows of long sentences."""
    per_example: list[dict[int, int]] = [{} for _ in range(num_examples)]
    for index, (example_id, word_ids) in enumerate(zip(_column(features, "example_id"), _column(features, "word_ids"))):
        ids = np.asarray(logits_or_ids[index])
        if ids.ndim == 2:
            ids = ids.argmax(axis=-1)
        previous = None
        for position, word in enumerate(word_ids):
            if word is not None and word != previous:
                per_example[example_id][word] = int(ids[position])
            previous = word
    return [_ordered_words(tags, example_id) for example_id, tags in enumerate(per_example)]


def argmax_predictions(logits) -> np.ndarray:
    """Class (or choice) ids from logits [n, num_labels] / [n, num_choices]."""
    return np.asarray(logits).argmax(axis=-1)


def _ordered_words(tags: dict[int, int], example_id: int) -> list[int]:
    if sorted(tags) != list(range(len(tags))):
        missing = sorted(set(range(max(tags) + 1)) - set(tags))
        raise ValueError(
            f"example {example_id}: no prediction for word(s) {missing[:10]}; the features do not "
            f"cover every word (were they truncated after preprocessing?)"
        )
    return [tags[word] for word in range(len(tags))]


def _features_by_example(features) -> dict:
    windows = defaultdict(list)
    columns = zip(_column(features, "example_id"), _column(features, "offset_mapping"))
    for index, (example_id, offsets) in enumerate(columns):
        windows[example_id].append((index, offsets))
    return windows


def _feature_logits(logits, index: int, length: int) -> np.ndarray:
    row = np.asarray(logits[index], dtype=np.float64)[:length]
    if len(row) < length:
        raise ValueError(f"feature {index}: {len(row)} logits for {length} tokens")
    return row


def _column(rows, name: str) -> list:
    if isinstance(rows, list):
        return [row[name] for row in rows]
    return list(rows[name])
