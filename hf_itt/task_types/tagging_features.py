"""Token-tagging features: each word's tag on its first sub-word, -100 on the others.

A sentence longer than ``max_length`` is split into consecutive windows of whole words, so no word
(and no label) is ever truncated away; eval features keep ``example_id`` (the row index) and
``word_ids`` (word index per token, None on special tokens) so that
``hf_itt.task_types.qa_decoding.decode_tagging_predictions`` maps predictions back to exactly one tag per word.
"""

from __future__ import annotations

from hf_itt.errors import DataError

IGNORE_INDEX = -100  # label value the loss (and the metric) skips


def special_token_wrappers(tokenizer) -> tuple[list[int], list[int]]:
    """Special-token ids the tokenizer puts before and after a single sequence (<s> and </s> for XLM-R)."""
    encoded = tokenizer([["x"]], is_split_into_words=True)
    ids, word_ids = encoded["input_ids"][0], encoded.word_ids(0)
    body = [i for i, word in enumerate(word_ids) if word is not None]
    return ids[: body[0]], ids[body[-1] + 1 :]


def tokenize_tagging(batch, indices, *, tokenizer, task, train, max_length, num_labels, **_):
    prefix, suffix = special_token_wrappers(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    features = {"input_ids": [], "attention_mask": [], "labels": []}
    if not train:
        features.update(example_id=[], word_ids=[])
    for row, pieces, tags in zip(indices, word_pieces(batch["tokens"], tokenizer), batch["tags"]):
        _check_tags(tags, len(pieces), row, task, num_labels)
        for window in word_windows([len(word) for word in pieces], budget):
            ids, labels, word_ids = _window_tokens(window, pieces, tags, budget)
            features["input_ids"].append(prefix + ids + suffix)
            features["attention_mask"].append([1] * (len(prefix) + len(ids) + len(suffix)))
            features["labels"].append([IGNORE_INDEX] * len(prefix) + labels + [IGNORE_INDEX] * len(suffix))
            if not train:
                features["example_id"].append(row)
                features["word_ids"].append([None] * len(prefix) + word_ids + [None] * len(suffix))
    return features


def word_pieces(sentences: list[list[str]], tokenizer) -> list[list[list[int]]]:
    """Sub-word ids of every word; a word the tokenizer drops entirely becomes <unk> so it keeps a label."""
    encoded = tokenizer(sentences, is_split_into_words=True, add_special_tokens=False, verbose=False)
    result = []
    for i, words in enumerate(sentences):
        pieces = [[] for _ in words]
        for token_id, word in zip(encoded["input_ids"][i], encoded.word_ids(i)):
            if word is not None:
                pieces[word].append(token_id)
        result.append([word or [tokenizer.unk_token_id] for word in pieces])
    return result


def word_windows(piece_counts: list[int], budget: int) -> list[list[int]]:
    """Greedily pack consecutive words into windows of at most ``budget`` sub-words (an over-long word
    alone is cut to ``budget`` sub-words, keeping its first one)."""
    windows, current, used = [], [], 0
    for word, count in enumerate(piece_counts):
        count = min(count, budget)
        if current and used + count > budget:
            windows.append(current)
            current, used = [], 0
        current.append(word)
        used += count
    if current:
        windows.append(current)
    return windows


def _window_tokens(window: list[int], pieces, tags, budget: int):
    ids, labels, word_ids = [], [], []
    for word in window:
        word_piece_ids = pieces[word][:budget]
        ids += word_piece_ids
        labels += [tags[word]] + [IGNORE_INDEX] * (len(word_piece_ids) - 1)
        word_ids += [word] * len(word_piece_ids)
    return ids, labels, word_ids


def _check_tags(tags, num_words: int, row: int, task: str, num_labels: int | None) -> None:
    if len(tags) != num_words:
        raise DataError(
            f"task {task!r}, row {row}: {num_words} tokens but {len(tags)} tags; every token needs exactly one tag"
        )
    if num_labels:
        bad = [tag for tag in tags if not (0 <= tag < num_labels or tag == IGNORE_INDEX)]
        if bad:
            raise DataError(
                f"task {task!r}, row {row}: tag {bad[0]} is outside 0..{num_labels - 1}; "
                f"fix the tag mapping of this task"
            )
