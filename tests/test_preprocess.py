"""Preprocessing: the tokenized-feature contract of every task type, label/offset round-trips on synthetic
and real (XQuAD, UD) data, errors, and the datasets-cache fingerprint."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np
import pytest
from datasets import Dataset, load_from_disk

from hf_itt.errors import ConfigError, DataError, TaskError
from hf_itt.task_types import get_type
from hf_itt.task_types.features import preprocess
from hf_itt.task_types.qa_decoding import (
    decode_qa_predictions,
    decode_tagging_predictions,
    gold_answers_from_features,
)

UPOS = "ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X".split()


@dataclass
class Spec:  # stand-in for hf_itt.tasks' TaskSpec: only the attributes preprocessing reads
    name: str
    type: str
    labels: list | None = None
    num_labels: int | None = None
    max_length: int | None = 64
    doc_stride: int | None = None
    num_choices: int | None = None


def squash(text: str) -> str:
    return " ".join(text.split())


def qa_row(row_id, context, question, answer=None, start=None):
    if not answer:
        return {"id": row_id, "context": context, "question": question, "answers": {"text": [], "answer_start": []}}
    answers = {"text": [answer], "answer_start": [context.index(answer) if start is None else start]}
    return {"id": row_id, "context": context, "question": question, "answers": answers}


# ------------------------------------------------------------------------------------------ classification


def test_classification_pairs_truncate_the_longer_text_and_do_not_pad(tiny_tokenizer):
    long_text = " ".join(["The quick brown fox jumps over the lazy dog."] * 10)
    rows = [
        {"text_a": long_text, "text_b": "A man is playing.", "label": 2},
        {"text_a": "Paris is a city.", "text_b": "It is large.", "label": 0},
    ]
    spec = Spec("nli", "classification", num_labels=3, max_length=24)
    features = preprocess(Dataset.from_list(rows), spec, tiny_tokenizer)
    assert features.column_names == ["input_ids", "attention_mask", "labels"]
    assert features["labels"] == [2, 0]
    lengths = [len(ids) for ids in features["input_ids"]]
    assert lengths[0] == 24 and lengths[1] < 24  # truncated to max_length, never padded
    hypothesis = tiny_tokenizer("A man is playing.", add_special_tokens=False)["input_ids"]
    assert features[0]["input_ids"][-len(hypothesis) - 1 : -1] == hypothesis  # the short second text survives whole
    assert all(set(mask) == {1} for mask in features["attention_mask"])


def test_classification_single_sentences_and_bad_rows(tiny_tokenizer):
    spec = Spec("sst", "classification", num_labels=2)
    single = [{"text_a": "Paris is a city.", "text_b": None, "label": 1}]
    features = preprocess(Dataset.from_list(single), spec, tiny_tokenizer)
    assert features[0]["input_ids"] == tiny_tokenizer("Paris is a city.")["input_ids"]
    mixed = [{"text_a": "a", "text_b": "b", "label": 0}, {"text_a": "a", "text_b": None, "label": 0}]
    with pytest.raises(DataError, match="row 1"):
        preprocess(Dataset.from_list(mixed), spec, tiny_tokenizer)
    with pytest.raises(DataError, match="label 5"):
        preprocess(Dataset.from_list([{"text_a": "a", "text_b": None, "label": 5}]), spec, tiny_tokenizer)


def test_multiple_choice_features_have_one_row_per_choice(tiny_tokenizer):
    rows = [
        {
            "prompt": "A man sits down.",
            "label": 1,
            "choices": ["He plays a guitar.", "He runs.", "The dog barks.", "It rains."],
        },
        {
            "prompt": "The crowd is singing.",
            "label": 3,
            "choices": ["Loudly.", "Quietly.", "Never.", "Often, on the stage."],
        },
    ]
    features = preprocess(Dataset.from_list(rows), Spec("hellaswag", "multiple_choice", num_choices=4), tiny_tokenizer)
    assert features["labels"] == [1, 3]
    for row, ids, mask in zip(rows, features["input_ids"], features["attention_mask"]):
        assert len(ids) == len(mask) == 4
        prompt = tiny_tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
        for choice, choice_ids in zip(row["choices"], ids):
            tail = tiny_tokenizer(choice, add_special_tokens=False)["input_ids"]
            assert choice_ids[1 : 1 + len(prompt)] == prompt and choice_ids[-len(tail) - 1 : -1] == tail
    with pytest.raises(DataError, match="3 choices, expected 4"):
        preprocess(
            Dataset.from_list([{"prompt": "p", "choices": ["a", "b", "c"], "label": 0}]),
            Spec("hellaswag", "multiple_choice", num_choices=4),
            tiny_tokenizer,
        )


# ---------------------------------------------------------------------------------------------- extractive QA


def qa_features(rows, tokenizer, **spec_fields):
    dataset = Dataset.from_list(rows)
    spec = Spec("squad", "extractive_qa", **spec_fields)
    train, evaluation = preprocess(dataset, spec, tokenizer), preprocess(dataset, spec, tokenizer, split_role="eval")
    assert train["input_ids"] == evaluation["input_ids"]  # same windows: eval offsets decode train positions
    return dataset, train, evaluation


def check_gold_windows(rows, train, evaluation):
    """Every window that fully holds the (whitespace-trimmed) answer gets the smallest token span covering it,
    every other window the CLS index; returns {id: [span texts]} for further checks."""
    spans = {row["id"]: [] for row in rows}
    by_id = {row["id"]: row for row in rows}
    for feature, start, end in zip(evaluation, train["start_positions"], train["end_positions"]):
        row, offsets = by_id[feature["example_id"]], feature["offset_mapping"]
        context_offsets = [offset for offset in offsets if offset is not None]
        answer = row["answers"]["text"][0] if row["answers"]["text"] else ""
        begin = row["answers"]["answer_start"][0] + len(answer) - len(answer.lstrip()) if answer else 0
        finish = begin + len(answer.strip())
        inside = bool(answer) and context_offsets[0][0] <= begin and context_offsets[-1][1] >= finish
        if not inside:
            assert start == end == 0
            continue
        span_begin, span_end = offsets[start][0], offsets[end][1]
        assert span_begin <= begin and span_end >= finish  # covers the answer
        assert offsets[start][1] > begin and offsets[end][0] < finish  # and is minimal
        # XLM-R's bare "▁" token repeats the offsets' start of the token after it: not a real boundary
        pieces = [o for o, after in zip(context_offsets, context_offsets[1:] + [None]) if not after or after[0] != o[0]]
        if any(o[0] == begin for o in pieces) and any(o[1] == finish for o in pieces):
            assert row["context"][span_begin:span_end] == answer.strip()  # exact when tokens allow it
        spans[row["id"]].append(row["context"][span_begin:span_end])
    return spans


def test_qa_long_context_windows_round_trip(tiny_tokenizer):
    context = " ".join(f"Sentence {i} says that the river bank {i} is near the capital." for i in range(40))
    rows = [
        qa_row("start", context, "Which sentence comes first?", "Sentence 0 says"),
        qa_row("middle", context, "What is near?", "the river bank 17 is near"),
        qa_row("end", context, "What is last?", "bank 39 is near the capital."),
        qa_row("spaced", context, "Leading space?", " river bank 21", context.index(" river bank 21")),
        qa_row("none", context, "Unanswerable?"),
    ]
    dataset, train, evaluation = qa_features(rows, tiny_tokenizer, max_length=64, doc_stride=24)
    assert all(len(ids) <= 64 for ids in train["input_ids"])
    assert all(set(mask) == {1} for mask in train["attention_mask"])
    windows = [feature["offset_mapping"] for feature in evaluation if feature["example_id"] == "middle"]
    assert len(windows) > 3
    for previous, following in zip(windows, windows[1:]):  # consecutive windows share doc_stride context tokens
        tail = [o for o in previous if o is not None][-24:]
        assert [o for o in following if o is not None][:24] == tail
    gold = gold_answers_from_features(dataset, evaluation, train["start_positions"], train["end_positions"])
    assert gold == check_gold_windows(rows, train, evaluation)
    for row in rows[:4]:
        assert gold[row["id"]] and {squash(text) for text in gold[row["id"]]} == {squash(row["answers"]["text"][0])}
    assert gold["none"] == []
    # gold positions as one-hot logits decode back to the gold text (no-answer -> "" under SQuAD v2)
    start_logits, end_logits = one_hot(train["start_positions"], 64), one_hot(train["end_positions"], 64)
    predictions = decode_qa_predictions(
        dataset, evaluation, start_logits, end_logits, max_answer_length=64, version_2=True
    )
    assert predictions == {row["id"]: row["answers"]["text"][0].strip() for row in rows[:4]} | {"none": ""}


def one_hot(positions, length):
    logits = np.full((len(positions), length), -10.0)
    logits[np.arange(len(positions)), positions] = 10.0
    return logits


def test_qa_eval_offsets_are_none_outside_the_context(tiny_tokenizer):
    question = "Which river flows through the capital of Germany?"
    rows = [qa_row("q", "The river bank is near the capital.", question, "river bank")]
    _, _, evaluation = qa_features(rows, tiny_tokenizer)
    offsets = evaluation[0]["offset_mapping"]
    question_length = len(tiny_tokenizer(question, add_special_tokens=False)["input_ids"])
    assert offsets[: question_length + 3] == [None] * (question_length + 3)  # <s> question </s></s>
    assert offsets[-1] is None and None not in offsets[question_length + 3 : -1]


def test_qa_long_questions_are_clipped_and_bad_strides_rejected(tiny_tokenizer, caplog):
    question = " ".join(["Which river flows through the capital of Germany and why?"] * 20)
    rows = [qa_row("q", "The river bank is near the capital. " * 10, question, "river bank")]
    _, train, evaluation = qa_features(rows, tiny_tokenizer, max_length=64, doc_stride=8)
    assert all(len(ids) <= 64 for ids in train["input_ids"])
    assert all(sum(o is not None for o in offsets) > 8 for offsets in evaluation["offset_mapping"])
    with pytest.raises(ConfigError, match="doc_stride 60"):  # explicit: an error, not a tokenizer panic
        preprocess(Dataset.from_list(rows), Spec("squad", "extractive_qa"), tiny_tokenizer, doc_stride=60)
    with caplog.at_level(logging.WARNING, logger="hf_itt.task_types.qa_features"):  # the spec's default: shrunk
        shrunk = preprocess(Dataset.from_list(rows), Spec("squad", "extractive_qa", doc_stride=128), tiny_tokenizer)
    assert "doc_stride 128 does not fit max_length 64" in caplog.text and len(shrunk) > 1


@pytest.mark.parametrize("batch", ["mostly_short", "mostly_long"])
def test_qa_question_cutting_paths_give_the_windows_of_cutting_first(tiny_tokenizer, capfd, monkeypatch, batch):
    """encode_windows cuts long questions after encoding (most fit), before it (many are long, or one is
    long enough to make the tokenizer panic), or after a tokenizer failure: always the same windows."""
    import hf_itt.task_types.qa_features as qa

    context = "The river bank is near the capital. " * 6
    short, long, huge = "Why?", "Which river is near?", "Which river flows through the capital and why? " * 6
    questions = ([short] * 30 + [long, huge]) if batch == "mostly_short" else [long] * 20 + [short, huge]
    settings = {"max_length": 64, "doc_stride": 8}
    expected = qa._encode_pairs(
        tiny_tokenizer,
        qa.clip_questions(questions, tiny_tokenizer, 5),
        [context] * 32,
        list(range(len(questions))),
        **settings,
    )
    failures, encode_pairs = [], qa._encode_pairs

    def recording_failures(*args, **kwargs):
        try:
            return encode_pairs(*args, **kwargs)
        except BaseException as err:
            failures.append(err)
            raise

    monkeypatch.setattr(qa, "_encode_pairs", recording_failures)
    assert qa.mostly_short(questions, tiny_tokenizer, 5) == (batch == "mostly_short")
    assert qa.encode_windows(tiny_tokenizer, questions, [context] * 32, max_question_tokens=5, **settings) == expected
    assert max(w.sequence_ids.count(0) for w in expected) == 5
    assert failures == [] and "panicked" not in capfd.readouterr().err  # the huge question was cut beforehand
    assert qa.encode_windows(tiny_tokenizer, [], [], max_question_tokens=5, **settings) == []

    def tokenizer_fails(*args, **kwargs):
        raise Exception("Truncation error: Sequence to truncate too short to respect the provided max_length")

    monkeypatch.setattr(qa, "_encode_then_cut", tokenizer_fails)
    assert qa.encode_windows(tiny_tokenizer, questions, [context] * 32, max_question_tokens=5, **settings) == expected


def xquad_rows(path, one_per_paragraph=True):
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [
        qa_row(
            qa["id"], paragraph["context"], qa["question"], qa["answers"][0]["text"], qa["answers"][0]["answer_start"]
        )
        for article in data
        for paragraph in article["paragraphs"]
        for qa in (paragraph["qas"][:1] if one_per_paragraph else paragraph["qas"])
    ]


@pytest.mark.parametrize("language", ["th", "zh", "ar"])
def test_qa_round_trip_on_real_xquad(shared_data, tiny_tokenizer, language):
    """The first question of each of the 240 paragraphs (every context of the language); the tiny
    tokenizer turns these scripts into <unk>/character pieces, whose offsets must still line up."""
    rows = xquad_rows(shared_data / "xquad" / f"xquad.{language}.json")
    assert len(rows) == 240
    dataset, train, evaluation = qa_features(rows, tiny_tokenizer, max_length=384, doc_stride=128)
    spans = check_gold_windows(rows, train, evaluation)
    assert all(spans[row["id"]] for row in rows)  # every answer lies whole inside some window
    exact = sum(squash(row["answers"]["text"][0]) in {squash(text) for text in spans[row["id"]]} for row in rows)
    assert exact >= 0.75 * len(rows)  # the rest are the smallest token-aligned spans covering the answer
    length = max(len(ids) for ids in train["input_ids"])
    predictions = decode_qa_predictions(
        dataset,
        evaluation,
        one_hot(train["start_positions"], length),
        one_hot(train["end_positions"], length),
        max_answer_length=384,
    )
    assert all(predictions[row["id"]] in {text.strip() for text in spans[row["id"]]} for row in rows)


# ---------------------------------------------------------------------------------------------- tagging


def tagging_features(sentences, tokenizer, max_length=64, split_role="eval"):
    rows = [{"tokens": words, "tags": tags} for words, tags in sentences]
    return preprocess(
        Dataset.from_list(rows),
        Spec("pos", "tagging", labels=UPOS, num_labels=len(UPOS), max_length=max_length),
        tokenizer,
        split_role=split_role,
    )


def test_tagging_labels_sit_on_the_first_sub_word(tiny_tokenizer):
    words, tags = ["Normans", "wörld", "unbelievably", "a", "Paris"], [11, 7, 2, 5, 11]
    features = tagging_features([(words, tags)], tiny_tokenizer)
    pieces = [tiny_tokenizer([word], is_split_into_words=True, add_special_tokens=False)["input_ids"] for word in words]
    assert any(len(p) > 1 for p in pieces)
    body = [label for p, tag in zip(pieces, tags) for label in [tag] + [-100] * (len(p) - 1)]
    expected_labels = [-100] + body + [-100]
    feature = features[0]
    assert feature["input_ids"] == tiny_tokenizer(words, is_split_into_words=True)["input_ids"]
    assert feature["labels"] == expected_labels
    assert feature["word_ids"] == [None] + [i for i, p in enumerate(pieces) for _ in p] + [None]
    assert feature["example_id"] == 0
    train = tagging_features([(words, tags)], tiny_tokenizer, split_role="train")
    assert train.column_names == ["input_ids", "attention_mask", "labels"] and train[0]["labels"] == expected_labels


def test_tagging_long_sentences_split_into_whole_word_windows(tiny_tokenizer):
    words = ("The quick brown fox jumps over the lazy dog near the river bank " * 8).split()
    tags = [i % len(UPOS) for i in range(len(words))]
    sentences = [(words, tags), (["Short", "one"], [7, 8]), ([], []), (["x" * 60, "dog"], [1, 2])]
    features = tagging_features(sentences, tiny_tokenizer, max_length=16)
    assert all(len(ids) <= 16 for ids in features["input_ids"])
    windows = [f["word_ids"] for f in features if f["example_id"] == 0]
    assert len(windows) > 3
    seen = [word for window in windows for word in dict.fromkeys(w for w in window if w is not None)]
    assert seen == list(range(len(words)))  # each word in exactly one window, in order
    decoded = decode_tagging_predictions(features, features["labels"], num_examples=len(sentences))
    assert decoded == [tags for _, tags in sentences]
    logits = [np.eye(len(UPOS))[np.maximum(labels, 0)] for labels in features["labels"]]
    assert decode_tagging_predictions(features, logits, num_examples=len(sentences)) == decoded
    with pytest.raises(DataError, match="row 0: 2 tokens but 1 tags"):
        tagging_features([(["a", "b"], [1])], tiny_tokenizer)


def read_upos(path):
    sentences, words, tags = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if not line.strip():
            if words:
                sentences.append((words, tags))
            words, tags = [], []
        elif not line.startswith("#"):
            columns = line.split("\t")
            if columns[0].isdigit():  # skip multi-word ranges (1-2) and empty nodes (8.1)
                words.append(columns[1])
                tags.append(UPOS.index(columns[3]))
    return sentences


def test_tagging_round_trip_on_real_ud(shared_data, tiny_tokenizer):
    # the five sampled treebanks (the whole English EWT dev/test files beside them are for training runs)
    sentences = [s for path in sorted((shared_data / "ud").glob("*/*.first*.conllu")) for s in read_upos(path)]
    assert len(sentences) == 1100
    features = tagging_features(sentences, tiny_tokenizer, max_length=48)
    assert len(features) > len(sentences)  # some sentences needed several windows
    decoded = decode_tagging_predictions(features, features["labels"], num_examples=len(sentences))
    assert decoded == [tags for _, tags in sentences]


# ---------------------------------------------------------------------------------------------- mlm / retrieval


def test_mlm_groups_texts_into_chunks_with_special_tokens_mask(tiny_tokenizer):
    texts = ["The quick brown fox jumps over the lazy dog.", "Paris is the capital of France.", "A man plays."]
    rows = Dataset.from_list([{"text": t} for t in texts])
    features = preprocess(rows, Spec("wiki", "mlm", max_length=12), tiny_tokenizer)
    stream = [i for t in texts for i in tiny_tokenizer(t, add_special_tokens=False)["input_ids"]]
    bodies = []
    for ids, special in zip(features["input_ids"], features["special_tokens_mask"]):
        assert len(ids) <= 12
        assert special == tiny_tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True)
        assert ids[0] == tiny_tokenizer.cls_token_id and ids[-1] == tiny_tokenizer.sep_token_id
        bodies += [i for i, s in zip(ids, special) if not s]
    assert bodies == stream and len(features) == -(-len(stream) // 10)


def test_retrieval_gives_one_feature_per_present_sentence(tiny_tokenizer):
    rows = [
        {"source_id": "de-1", "source_sentence": "Der Hund.", "target_id": "en-1", "target_sentence": "The dog."},
        {"source_id": "de-2", "source_sentence": "Ein Satz " * 50, "target_id": "", "target_sentence": ""},
    ]
    features = preprocess(Dataset.from_list(rows), Spec("bucc", "retrieval", max_length=16), tiny_tokenizer)
    expected = [("source", "de-1"), ("target", "en-1"), ("source", "de-2")]
    assert list(zip(features["side"], features["example_id"])) == expected
    assert features[1]["input_ids"] == tiny_tokenizer("The dog.")["input_ids"]
    assert len(features[2]["input_ids"]) == 16


def test_answer_retrieval_queries_and_candidates(tiny_tokenizer):
    spec = Spec("lareqa", "answer_retrieval", max_length=16)
    query_rows = [{"query_id": "q1", "query": "Who is the man on the stage? " * 5, "gold_ids": ["c1"]}]
    queries = preprocess(Dataset.from_list(query_rows), spec, tiny_tokenizer, split_role="eval")
    candidates = preprocess(
        Dataset.from_list([{"candidate_id": "c1", "text": "A man.", "context": "A man. " * 20}]),
        spec,
        tiny_tokenizer,
        split_role="eval",
    )
    assert queries["example_id"] == ["q1"] and candidates["example_id"] == ["c1"]
    assert len(candidates[0]["input_ids"]) == 16 and len(queries[0]["input_ids"]) == 16  # query cap: min(96, 16)
    # a candidate is ONE segment, answer sentence directly followed by its context (XTREME-R's encoding)
    assert (
        candidates[0]["input_ids"]
        == tiny_tokenizer("A man." + "A man. " * 20, truncation=True, max_length=16)["input_ids"]
    )


def test_answer_retrieval_training_pairs(tiny_tokenizer):
    spec = Spec("lareqa", "answer_retrieval", max_length=12)
    pairs = Dataset.from_list([{"query": "Who plays?", "candidate": "A man plays.", "context": "On the stage."}])
    [feature] = preprocess(pairs, spec, tiny_tokenizer)
    assert feature["input_ids"] == tiny_tokenizer("Who plays?")["input_ids"]
    assert (
        feature["candidate_input_ids"]
        == tiny_tokenizer("A man plays.On the stage.", truncation=True, max_length=12)["input_ids"]
    )
    assert len(feature["candidate_attention_mask"]) == len(feature["candidate_input_ids"])


# ---------------------------------------------------------------------------------------------- errors and cache


def test_empty_data_missing_columns_and_unknown_types_are_named(tiny_tokenizer):
    with pytest.raises(DataError, match="'mnli'.*empty"):
        empty = Dataset.from_dict({"text_a": [], "text_b": [], "label": []})
        preprocess(empty, Spec("mnli", "classification"), tiny_tokenizer)
    with pytest.raises(DataError, match=r"'mnli'.*\['text_b', 'label'\]"):
        preprocess(Dataset.from_list([{"text_a": "a"}]), Spec("mnli", "classification"), tiny_tokenizer)
    with pytest.raises(TaskError, match="unknown task type 'ranking'"):
        preprocess(Dataset.from_list([{"text_a": "a"}]), Spec("mnli", "ranking"), tiny_tokenizer)
    with pytest.raises(ConfigError, match="split_role"):
        preprocess(Dataset.from_list([{"text": "a"}]), Spec("wiki", "mlm"), tiny_tokenizer, split_role="test")


def test_fingerprint_is_deterministic_and_settings_sensitive(tiny_tokenizer):
    rows = [{"text_a": "Paris is a city.", "text_b": "It is large.", "label": 0}]
    spec = Spec("nli", "classification", num_labels=3)
    first = preprocess(Dataset.from_list(rows), spec, tiny_tokenizer)
    tiny_tokenizer("some other call", truncation=True, max_length=5)  # mutates the backend's truncation state
    assert preprocess(Dataset.from_list(rows), spec, tiny_tokenizer)._fingerprint == first._fingerprint
    assert preprocess(Dataset.from_list(rows), spec, tiny_tokenizer, max_length=32)._fingerprint != first._fingerprint
    evaluation = preprocess(Dataset.from_list(rows), spec, tiny_tokenizer, split_role="eval")
    assert evaluation._fingerprint != first._fingerprint


def test_second_call_is_served_from_the_cache(tiny_tokenizer, tmp_path, monkeypatch):
    rows = [{"text_a": f"Sentence {i}.", "text_b": None, "label": i % 2} for i in range(20)]
    Dataset.from_list(rows).save_to_disk(tmp_path / "rows")
    dataset, spec = load_from_disk(tmp_path / "rows"), Spec("sst", "classification", num_labels=2)
    first = preprocess(dataset, spec, tiny_tokenizer)
    assert first.cache_files

    def broken(*args, **kwargs):
        raise AssertionError("tokenized again instead of reading the cache")

    monkeypatch.setattr(get_type("classification"), "tokenize", broken)
    second = preprocess(load_from_disk(tmp_path / "rows"), spec, tiny_tokenizer)
    assert second.cache_files == first.cache_files and second["input_ids"] == first["input_ids"]
    with pytest.raises(AssertionError, match="tokenized again"):
        preprocess(dataset, spec, tiny_tokenizer, load_from_cache_file=False)
