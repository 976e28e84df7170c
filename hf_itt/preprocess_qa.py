"""Extractive QA features, the HF ``run_qa`` way: question first, context second, long contexts split
into overlapping windows (``doc_stride`` tokens of overlap), character offsets mapped to token spans.

Train features carry ``start_positions``/``end_positions`` (the CLS index when the answer is not
inside the window or the question has no answer); eval features carry ``example_id`` and an
``offset_mapping`` with ``None`` outside the context, which ``hf_itt.postprocess`` decodes.
"""

from __future__ import annotations

import logging

from hf_itt.errors import ConfigError

logger = logging.getLogger(__name__)

MAX_QUESTION_TOKENS = 64  # XTREME's max_query_length: longer questions are cut so the context keeps room
DEFAULT_DOC_STRIDE = 128  # XTREME / run_qa default


def qa_window_settings(tokenizer, task: str, max_length: int, doc_stride: int | None,
                       spec_doc_stride: int | None = None) -> dict:
    """Question budget and stride for ``max_length``. The tokenizer panics unless the stride is shorter
    than the context room: an explicit ``doc_stride`` that is too long is a ConfigError; the spec's
    default (tuned for 384 tokens) is shrunk to half the room with a warning."""
    room = max_length - tokenizer.num_special_tokens_to_add(pair=True)
    max_question_tokens = min(MAX_QUESTION_TOKENS, room // 2)
    context_room = room - max_question_tokens
    if doc_stride is None:
        doc_stride = DEFAULT_DOC_STRIDE if spec_doc_stride is None else spec_doc_stride
        if doc_stride >= context_room > 1:
            logger.warning("task %r: doc_stride %d does not fit max_length %d; using %d", task, doc_stride,
                           max_length, context_room // 2)
            doc_stride = context_room // 2
    if max_question_tokens < 1 or not 0 <= doc_stride < context_room:
        raise ConfigError(f"task {task!r}: doc_stride {doc_stride} must be below {max(context_room, 0)} tokens "
                          f"(the context room left by max_length {max_length} after a question of up to "
                          f"{max_question_tokens} tokens); lower doc_stride or raise max_length")
    return {"doc_stride": int(doc_stride), "max_question_tokens": max_question_tokens}


def tokenize_qa(batch, *, tokenizer, train, max_length, doc_stride, max_question_tokens, **_):
    questions = clip_questions([question.lstrip() for question in batch["question"]], tokenizer,
                               max_question_tokens)
    encoded = tokenizer(questions, batch["context"], truncation="only_second", max_length=max_length,
                        stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True)
    rows = encoded["overflow_to_sample_mapping"]
    features = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    if train:
        spans = [gold_token_span(encoded["input_ids"][i], encoded["offset_mapping"][i], encoded.sequence_ids(i),
                                 batch["context"][row], batch["answers"][row], tokenizer.cls_token_id)
                 for i, row in enumerate(rows)]
        features["start_positions"] = [start for start, _ in spans]
        features["end_positions"] = [end for _, end in spans]
    else:
        features["example_id"] = [batch["id"][row] for row in rows]
        features["offset_mapping"] = [
            [offset if sequence == 1 else None for offset, sequence in zip(offsets, encoded.sequence_ids(i))]
            for i, offsets in enumerate(encoded["offset_mapping"])]
    return features


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


def gold_token_span(input_ids, offsets, sequence_ids, context: str, answers: dict, cls_token_id: int):
    """Token (start, end) of the gold answer in one window; (cls, cls) when it is absent or not fully inside."""
    cls_index = input_ids.index(cls_token_id) if cls_token_id in input_ids else 0
    span = answer_char_span(context, answers)
    context_tokens = [i for i, sequence in enumerate(sequence_ids) if sequence == 1]
    if span is None or not context_tokens:
        return cls_index, cls_index
    return char_span_to_token_span(offsets, context_tokens, *span) or (cls_index, cls_index)


def char_span_to_token_span(offsets, context_tokens: list[int], start_char: int, end_char: int):
    """Smallest token span covering characters [start_char, end_char), or None if the window misses part.

    XLM-R emits a bare "▁" token whose offsets repeat those of the next token, so the start is the
    *last* token covering ``start_char`` and the end the first token from there covering the last
    character; a character no token covers (dropped by normalisation) falls to the nearest token inside.
    """
    if offsets[context_tokens[0]][0] > start_char or offsets[context_tokens[-1]][1] < end_char:
        return None
    covering = [i for i in context_tokens if offsets[i][0] <= start_char < offsets[i][1]]
    start = covering[-1] if covering else next((i for i in context_tokens if offsets[i][0] >= start_char), None)
    if start is None:
        return None
    inside = [i for i in context_tokens if i >= start]
    covering = [i for i in inside if offsets[i][0] < end_char <= offsets[i][1]]
    ends_before = [i for i in inside if offsets[i][1] <= end_char]
    end = covering[0] if covering else (ends_before[-1] if ends_before else None)
    return None if end is None else (start, end)
