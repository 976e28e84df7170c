"""Decoding: QA span choice against a brute-force search, window merging, SQuAD v2 null answers, tagging merge."""

from __future__ import annotations

import numpy as np
import pytest

from hf_itt.task_types.qa_decoding import (
    argmax_predictions,
    decode_qa,
    decode_qa_predictions,
    decode_tagging_predictions,
    gold_answers_from_features,
)

CONTEXT = "The river bank is near the capital city of France."
WORD_OFFSETS = [(0, 3), (4, 9), (10, 14), (15, 17), (18, 22), (23, 26), (27, 34), (35, 39), (40, 42), (43, 50)]
QUESTION_TOKENS = 4  # <s> + 2 question tokens + </s> -> offsets None


def window(example_id="q", words=WORD_OFFSETS):
    return {"example_id": example_id, "offset_mapping": [None] * QUESTION_TOKENS + [list(o) for o in words] + [None]}


def logits_with(length, peaks, base=0.0):
    row = np.full(length, base)
    for position, value in peaks.items():
        row[position] = value
    return row


def text_of(start_word, end_word):
    return CONTEXT[WORD_OFFSETS[start_word][0] : WORD_OFFSETS[end_word][1]]


def test_best_valid_span_skips_question_reversed_and_too_long_spans():
    n = QUESTION_TOKENS + len(WORD_OFFSETS) + 1
    c = QUESTION_TOKENS  # first context token
    start = logits_with(n, {1: 50.0, c + 6: 9.0, c + 1: 8.0, c + 4: 4.0}, base=-10.0)  # 1 is a question token
    end = logits_with(n, {c + 3: 20.0, c + 9: 10.0, c + 5: 7.0}, base=-10.0)  # c+3 ends before most starts
    examples = [{"id": "q", "context": CONTEXT}]
    # (c+6, c+9) scores 19 and is 4 tokens long; (c+1, c+3) scores 28 but spans only 3; (c+1, c+5) 15
    assert decode_qa_predictions(examples, [window()], [start], [end], max_answer_length=4) == {"q": text_of(1, 3)}
    start[c + 1] = -10.0  # without the start at word 1 the best is the 4-token span at word 6
    assert decode_qa_predictions(examples, [window()], [start], [end], max_answer_length=4) == {"q": text_of(6, 9)}
    assert decode_qa_predictions(examples, [window()], [start], [end], max_answer_length=3) == {"q": text_of(4, 5)}


def brute_force(start, end, offsets, max_answer_length):
    best = None
    for s in range(len(offsets)):
        for e in range(s, min(len(offsets), s + max_answer_length)):
            if offsets[s] is not None and offsets[e] is not None:
                score = start[s] + end[e]
                if best is None or score > best[0]:
                    best = (score, s, e)
    return best


@pytest.mark.parametrize("seed", range(20))
def test_decoding_matches_brute_force_and_stays_inside_the_context(seed):
    rng = np.random.default_rng(seed)
    question = int(rng.integers(1, 6))
    offsets = [None] * question + [list(o) for o in WORD_OFFSETS] + [None]
    start, end = rng.normal(size=len(offsets)), rng.normal(size=len(offsets))
    start[:question] += 5.0  # tempt the decoder with question tokens
    max_answer_length = int(rng.integers(1, 6))
    examples, features = [{"id": "q", "context": CONTEXT}], [{"example_id": "q", "offset_mapping": offsets}]
    _, s, e = brute_force(start, end, offsets, max_answer_length)
    expected = CONTEXT[offsets[s][0] : offsets[e][1]]
    full = decode_qa_predictions(
        examples, features, [start], [end], n_best=len(offsets), max_answer_length=max_answer_length
    )
    assert full == {"q": expected}
    valid = {
        CONTEXT[offsets[a][0] : offsets[b][1]]
        for a in range(question, question + len(WORD_OFFSETS))
        for b in range(a, min(a + max_answer_length, question + len(WORD_OFFSETS)))
    }
    few = decode_qa_predictions(examples, features, [start], [end], n_best=3, max_answer_length=max_answer_length)
    assert few["q"] in valid | {""}


def test_best_window_wins_and_padding_is_ignored():
    first, second = window(words=WORD_OFFSETS[:6]), window(words=WORD_OFFSETS[4:])
    length = 20  # padded like the Trainer's concatenated predictions
    start = np.full((2, length), -100.0)
    end = np.full((2, length), -100.0)
    start[0, :11], end[0, :11] = 0.0, 0.0
    start[1, :11], end[1, :11] = 0.0, 0.0
    start[0, QUESTION_TOKENS + 1], end[0, QUESTION_TOKENS + 2] = 3.0, 3.0  # "river bank" scores 6
    start[1, QUESTION_TOKENS + 2], end[1, QUESTION_TOKENS + 3] = 4.0, 4.0  # "capital city" scores 8
    start[1, 15] = end[1, 15] = 1000.0  # padding beyond the window's tokens
    examples = [{"id": "q", "context": CONTEXT}, {"id": "unseen", "context": "no features"}]
    assert decode_qa_predictions(examples, [first, second], start, end) == {"q": "capital city", "unseen": ""}
    ragged = [start[0, :11], start[1, :11]], [end[0, :11], end[1, :11]]
    assert decode_qa_predictions(examples, [first, second], *ragged) == {"q": "capital city", "unseen": ""}


def test_squad_v2_null_answer_and_threshold():
    n = QUESTION_TOKENS + len(WORD_OFFSETS) + 1
    start = logits_with(n, {0: 5.0, QUESTION_TOKENS + 1: 2.0})
    end = logits_with(n, {0: 5.0, QUESTION_TOKENS + 2: 2.0})
    examples = [{"id": "q", "context": CONTEXT}]
    decoded = decode_qa(examples, [window()], [start], [end], version_2=True)
    assert decoded.predictions == {"q": ""} and decoded.null_score_diffs["q"] == pytest.approx(6.0)
    assert decode_qa_predictions(
        examples, [window()], [start], [end], version_2=True, null_score_diff_threshold=6.5
    ) == {"q": "river bank"}
    assert decode_qa_predictions(examples, [window()], [start], [end]) == {"q": "river bank"}  # v1 always answers


def test_gold_answers_from_features_rejects_spans_outside_the_context():
    examples = [{"id": "q", "context": CONTEXT}]
    gold = gold_answers_from_features(examples, [window()], [QUESTION_TOKENS + 1], [QUESTION_TOKENS + 2])
    assert gold == {"q": ["river bank"]}
    assert gold_answers_from_features(examples, [window()], [0], [0]) == {"q": []}
    with pytest.raises(ValueError, match="not inside the context"):
        gold_answers_from_features(examples, [window()], [1], [QUESTION_TOKENS])


def test_tagging_windows_merge_to_one_tag_per_word():
    # example 0: words 0..3 over two windows, word 1 has two sub-words; example 1: one word; example 2: none
    features = [
        {"example_id": 0, "word_ids": [None, 0, 1, 1, None]},
        {"example_id": 0, "word_ids": [None, 2, 3, None]},
        {"example_id": 1, "word_ids": [None, 0, None]},
    ]
    ids = [np.array([9, 4, 5, 6, 9, -100]), np.array([9, 7, 8, 9, -100, -100]), np.array([9, 2, 9, -100, -100, -100])]
    assert decode_tagging_predictions(features, ids, num_examples=3) == [[4, 5, 7, 8], [2], []]
    logits = [np.eye(10)[np.maximum(row, 0)] for row in ids]
    assert decode_tagging_predictions(features, logits, num_examples=3) == [[4, 5, 7, 8], [2], []]
    with pytest.raises(ValueError, match=r"word\(s\) \[1\]"):
        decode_tagging_predictions([{"example_id": 0, "word_ids": [None, 0, 2, None]}], [np.zeros(4, int)], 1)


def test_argmax_predictions_for_classes_and_choices():
    assert argmax_predictions([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]]).tolist() == [1, 0]
    assert argmax_predictions(np.array([[0.0, 0.0, 1.0, 0.5]])).tolist() == [2]
