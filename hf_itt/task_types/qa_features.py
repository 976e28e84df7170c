"""Extractive QA features, the HF ``run_qa`` way: question first, context second, long contexts split
into overlapping windows (``doc_stride`` tokens of overlap), character offsets mapped to token spans.

Train features carry ``start_positions``/``end_positions`` (the CLS index when the answer is not
inside the window or the question has no answer); eval features carry ``example_id`` and an
``offset_mapping`` with ``None`` outside the context, which ``hf_itt.task_types.qa_decoding`` decodes.
"""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right
from typing import NamedTuple

from hf_itt.errors import ConfigError

logger = logging.getLogger(__name__)

MAX_QUESTION_TOKENS = 64  # XTREME's max_query_length: longer questions are cut so the context keeps room
DEFAULT_DOC_STRIDE = 128  # XTREME / run_qa default


def qa_window_settings(
    tokenizer, task: str, max_length: int, doc_stride: int | None, spec_doc_stride: int | None = None
) -> dict:
    """Question budget and stride for ``max_length``. The tokenizer panics unless the stride is shorter
    than the context room: an explicit ``doc_stride`` that is too long is a ConfigError; the spec's
    default (tuned for 384 tokens) is shrunk to half the room with a warning."""
    room = max_length - tokenizer.num_special_tokens_to_add(pair=True)
    max_question_tokens = min(MAX_QUESTION_TOKENS, room // 2)
    context_room = room - max_question_tokens
    if doc_stride is None:
        doc_stride = DEFAULT_DOC_STRIDE if spec_doc_stride is None else spec_doc_stride
        if doc_stride >= context_room > 1:
            logger.warning(
                "task %r: doc_stride %d does not fit max_length %d; using %d",
                task,
                doc_stride,
                max_length,
                context_room // 2,
            )
            doc_stride = context_room // 2
    if max_question_tokens < 1 or not 0 <= doc_stride < context_room:
        raise ConfigError(
            f"task {task!r}: doc_stride {doc_stride} must be below {max(context_room, 0)} tokens "
            f"(the context room left by max_length {max_length} after a question of up to "
            f"{max_question_tokens} tokens); lower doc_stride or raise max_length"
        )
    return {"doc_stride": int(doc_stride), "max_question_tokens": max_question_tokens}


def tokenize_qa(batch, *, tokenizer, train, max_length, doc_stride, max_question_tokens, **_):
    windows = encode_windows(
        tokenizer,
        [question.lstrip() for question in batch["question"]],
        batch["context"],
        max_length=max_length,
        doc_stride=doc_stride,
        max_question_tokens=max_question_tokens,
    )
    features = {"input_ids": [w.input_ids for w in windows], "attention_mask": [w.attention_mask for w in windows]}
    if train:
        spans = [
            gold_token_span(w, batch["context"][w.row], batch["answers"][w.row], tokenizer.cls_token_id)
            for w in windows
        ]
        features["start_positions"] = [start for start, _ in spans]
        features["end_positions"] = [end for _, end in spans]
    else:
        features["example_id"] = [batch["id"][w.row] for w in windows]
        features["offset_mapping"] = [
            [offset if sequence == 1 else None for offset, sequence in zip(w.offsets, w.sequence_ids)] for w in windows
        ]
    return features


class Window(NamedTuple):
    """One feature: a (question, context-window) pair of example ``row``."""

    row: int
    input_ids: list[int]
    attention_mask: list[int]
    offsets: list[tuple[int, int]]
    sequence_ids: list[int | None]


def encode_windows(
    tokenizer, questions: list[str], contexts: list[str], *, max_length: int, doc_stride: int, max_question_tokens: int
) -> list[Window]:
    """The windows of every (question, context) pair, in row order, questions cut to ``max_question_tokens``.

    With a real vocabulary almost every question fits, so the pairs are encoded as they are and only
    the rows whose question came out too long are cut (``clip_questions``) and encoded again: one
    tokenizer pass instead of a question pass and a pair pass. When a sample of the batch shows many
    long questions (a small vocabulary, a short ``max_question_tokens``), all are cut first instead.
    A question long enough to leave the context no room for the stride makes the Rust tokenizer panic,
    so questions of more than ``safe_chars`` characters are always cut first (SentencePiece and
    WordPiece make at most two tokens of a character: a piece and a word-initial "▁"); should a
    tokenizer still fail, the batch is redone with every question cut first. Every path gives the
    same windows.
    """
    if not questions:  # the tokenizer fails on an empty batch
        return []
    rows = list(range(len(questions)))
    settings = {"max_length": max_length, "doc_stride": doc_stride}
    if mostly_short(questions, tokenizer, max_question_tokens):
        try:
            return _encode_then_cut(tokenizer, questions, contexts, max_question_tokens, **settings)
        except BaseException as err:  # a truncation error, or a panic (pyo3's PanicException is a BaseException)
            if not isinstance(err, Exception) and type(err).__name__ != "PanicException":
                raise
    return _encode_pairs(
        tokenizer, clip_questions(questions, tokenizer, max_question_tokens), contexts, rows, **settings
    )


def _encode_then_cut(
    tokenizer, questions: list[str], contexts: list[str], max_question_tokens: int, *, max_length: int, doc_stride: int
) -> list[Window]:
    room = max_length - tokenizer.num_special_tokens_to_add(pair=True) - doc_stride
    safe_chars = (room - 1) // 2
    questions = list(questions)
    risky = [row for row, question in enumerate(questions) if len(question) > safe_chars]
    for row, question in zip(risky, clip_questions([questions[row] for row in risky], tokenizer, max_question_tokens)):
        questions[row] = question
    windows = _encode_pairs(
        tokenizer, questions, contexts, list(range(len(questions))), max_length=max_length, doc_stride=doc_stride
    )
    long_rows = {w.row for w in windows if w.sequence_ids.count(0) > max_question_tokens}
    if not long_rows:
        return windows
    rows = sorted(long_rows)
    clipped = clip_questions([questions[row] for row in rows], tokenizer, max_question_tokens)
    redone = _encode_pairs(tokenizer, clipped, contexts, rows, max_length=max_length, doc_stride=doc_stride)
    # sorted() is stable: the windows of one row keep their order
    return sorted([w for w in windows if w.row not in long_rows] + redone, key=lambda w: w.row)


def _encode_pairs(
    tokenizer, questions: list[str], contexts: list[str], rows: list[int], *, max_length: int, doc_stride: int
) -> list[Window]:
    """Windows of (questions[k], contexts[rows[k]]), labelled with ``rows[k]``."""
    encoded = tokenizer(
        questions,
        [contexts[row] for row in rows],
        truncation="only_second",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    return [
        Window(rows[sample], ids, mask, offsets, encoded.sequence_ids(i))
        for i, (sample, ids, mask, offsets) in enumerate(
            zip(
                encoded["overflow_to_sample_mapping"],
                encoded["input_ids"],
                encoded["attention_mask"],
                encoded["offset_mapping"],
            )
        )
    ]


def mostly_short(questions: list[str], tokenizer, max_tokens: int, sample: int = 32) -> bool:
    """Whether at most a tenth of ``sample`` questions spread over the batch exceed ``max_tokens`` tokens."""
    spread = questions[:: max(1, len(questions) // sample)]
    lengths = [len(ids) for ids in tokenizer(spread, add_special_tokens=False)["input_ids"]]
    return sum(length > max_tokens for length in lengths) * 10 <= len(lengths)


def clip_questions(questions: list[str], tokenizer, max_tokens: int) -> list[str]:
    """Cut each question to at most ``max_tokens`` tokens, at a token boundary of its text."""
    clipped = list(questions)
    pending = list(range(len(clipped)))
    while pending:
        encoded = tokenizer([clipped[i] for i in pending], add_special_tokens=False, return_offsets_mapping=True)
        still_long = []
        for i, offsets in zip(pending, encoded["offset_mapping"]):
            if len(offsets) > max_tokens:
                # re-tokenizing a cut text may yield a different count: re-check until it fits
                cut = min(offsets[max_tokens - 1][1], len(clipped[i]) - 1)
                clipped[i] = clipped[i][:cut]
                still_long.append(i)
        pending = still_long
    return clipped


def answer_char_span(context: str, answers: dict) -> tuple[int, int] | None:
    """(start, end) characters of the first gold answer without surrounding whitespace; None if none."""
    if not answers["text"]:
        return None
    start = answers["answer_start"][0]
    end = start + len(answers["text"][0])
    while start < end and context[start].isspace():
        start += 1
    while end > start and context[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def gold_token_span(window: Window, context: str, answers: dict, cls_token_id: int) -> tuple[int, int]:
    """Token (start, end) of the gold answer in one window; (cls, cls) when it is absent or not fully inside."""
    ids = window.input_ids
    cls_index = ids.index(cls_token_id) if cls_token_id in ids else 0
    span = answer_char_span(context, answers)
    if span is None or 1 not in window.sequence_ids:
        return cls_index, cls_index
    first = window.sequence_ids.index(1)
    last = len(window.sequence_ids) - 1 - window.sequence_ids[::-1].index(1)  # the context is one contiguous run
    return char_span_to_token_span(window.offsets, first, last, *span) or (cls_index, cls_index)


def char_span_to_token_span(offsets, first: int, last: int, start_char: int, end_char: int):
    """Smallest token span in tokens ``first..last`` covering characters [start_char, end_char), or None
    if the window misses part of it.

    XLM-R emits a bare "▁" token whose offsets repeat those of the next token, so the start is the
    *last* token covering ``start_char`` and the end the first token from there covering the last
    character; a character no token covers (dropped by normalisation) falls to the nearest token inside.
    Token offsets never decrease along a sequence, so binary searches find these tokens.
    """
    if offsets[first][0] > start_char or offsets[last][1] < end_char:
        return None
    hi = last + 1
    starts_at_or_before = bisect_right(offsets, start_char, first, hi, key=_start)
    if starts_at_or_before > first and offsets[starts_at_or_before - 1][1] > start_char:
        start = starts_at_or_before - 1  # the last token covering start_char
    else:
        start = bisect_left(offsets, start_char, first, hi, key=_start)  # the first token after it
        if start == hi:
            return None
    end = bisect_left(offsets, end_char, start, hi, key=_end)  # the first token ending at or after end_char
    if end < hi and offsets[end][0] < end_char:
        return start, end  # it covers the last character
    end = bisect_right(offsets, end_char, start, hi, key=_end) - 1  # else the last token ending before
    return (start, end) if end >= start else None


def _start(offset: tuple[int, int]) -> int:
    return offset[0]


def _end(offset: tuple[int, int]) -> int:
    return offset[1]
