"""Tagging F1 as XTREME scores it: seqeval for NER (PAN-X), whole-tag chunks for UD-POS.

XTREME's ``evaluate.py`` scores both tasks with ``seqeval.metrics.f1_score`` and installs seqeval
unpinned, but its expected numbers (``evaluate_test.py``: mock UD-POS F1 70.21746048354693) are those
of seqeval 0.0.12. From 0.0.18 on, seqeval reads a bare tag's type as ``tag[1:]``: CCONJ and SCONJ
both become "CONJ", X becomes "" and the UD-POS numbers change (70.398... on the same mock). IOB2 NER
tags chunk the same under every version, so NER keeps seqeval while UD-POS uses ``tag_chunks``, a
re-statement of 0.0.12's chunking that does not depend on the installed seqeval.

seqeval 0.0.12's chunking, applied to a bare UPOS tag:

* every sentence is followed by an "O" and all sentences form one stream (chunk offsets index it);
* a tag's prefix is its first character and its type the text after its last "-", so a bare tag is
  its own type ("CCONJ" -> prefix "C", type "CCONJ"; "B-PER" -> "B", "PER");
* neighbouring tokens with the same type form one chunk ("NOUN NOUN" is one), except that the
  prefixes S and E always close a chunk (so SCONJ and SYM tokens are one chunk each) and B/S always
  open one; chunks are compared as sets of (type, start, end).

So this F1 is not token accuracy; ``pos_scores`` reports accuracy next to it.
"""

from __future__ import annotations

import warnings
from typing import Iterable, Sequence

from hf_itt.errors import DataError

__all__ = ["tag_chunks", "chunk_f1", "whole_tag_f1", "pos_scores", "seqeval_f1", "token_accuracy"]

Chunk = tuple[str, int, int]
_CLOSING, _OPENING, _OUTSIDE = ("E", "S"), ("B", "S"), ("O", ".")


def _prefix_and_type(tag: str) -> tuple[str, str]:
    return tag[0], tag.split("-")[-1]


def _closes(prev_prefix: str, prefix: str, prev_type: str, type_: str) -> bool:
    """Does the chunk running up to the previous token end there?"""
    if prev_prefix in _CLOSING:
        return True
    if prev_prefix in ("B", "I") and prefix in ("B", "S", "O"):
        return True
    return prev_prefix not in _OUTSIDE and prev_type != type_


def _opens(prev_prefix: str, prefix: str, prev_type: str, type_: str) -> bool:
    """Does a new chunk begin at this token?"""
    if prefix in _OPENING:
        return True
    if prev_prefix in ("E", "S", "O") and prefix in ("E", "I"):
        return True
    return prefix not in _OUTSIDE and prev_type != type_


def tag_chunks(tag_seqs: Iterable[Sequence[str]]) -> list[Chunk]:
    """Chunks ``(type, start, end)`` of the sentences joined with an "O" after each (seqeval 0.0.12)."""
    stream: list[str] = []
    for sentence in tag_seqs:
        if isinstance(sentence, str):
            raise TypeError("tag_chunks takes a list of sentences (lists of tags), not a list of strings")
        stream += [*sentence, "O"]
    chunks: list[Chunk] = []
    prev_prefix, prev_type, start = "O", "", 0
    for position, tag in enumerate([*stream, "O"]):  # the trailing "O" closes the last chunk
        if not isinstance(tag, str) or not tag:
            raise TypeError(f"tag {tag!r} at stream position {position}: tags must be non-empty strings")
        prefix, type_ = _prefix_and_type(tag)
        if _closes(prev_prefix, prefix, prev_type, type_):
            chunks.append((prev_type, start, position - 1))
        if _opens(prev_prefix, prefix, prev_type, type_):
            start = position
        prev_prefix, prev_type = prefix, type_
    return chunks


def chunk_f1(pred_chunks: Iterable[Chunk], gold_chunks: Iterable[Chunk]) -> dict[str, float]:
    """F1 / precision / recall in percent of two chunk sets (each 0 when its denominator is 0)."""
    pred, gold = set(pred_chunks), set(gold_chunks)
    correct = len(pred & gold)
    precision = correct / len(pred) if pred else 0.0
    recall = correct / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"f1": 100.0 * f1, "precision": 100.0 * precision, "recall": 100.0 * recall}


def whole_tag_f1(pred_tag_seqs: Sequence[Sequence[str]], gold_tag_seqs: Sequence[Sequence[str]]) -> dict[str, float]:
    """XTREME's UD-POS F1 / precision / recall (percent): chunks of whole tags, seqeval 0.0.12 rules.

    Example: a 13-token sentence whose gold tags never repeat (13 one-token chunks) with CCONJ
    predicted as SCONJ once scores 12/13 = 92.31; seqeval >= 1.0 would call both "CONJ" and give 100.
    """
    check_tag_seqs(pred_tag_seqs, gold_tag_seqs)
    return chunk_f1(tag_chunks(pred_tag_seqs), tag_chunks(gold_tag_seqs))


def token_accuracy(pred_tag_seqs: Sequence[Sequence[str]], gold_tag_seqs: Sequence[Sequence[str]]) -> float:
    flat_pred = [tag for seq in pred_tag_seqs for tag in seq]
    flat_gold = [tag for seq in gold_tag_seqs for tag in seq]
    return 100.0 * sum(p == g for p, g in zip(flat_pred, flat_gold)) / len(flat_gold) if flat_gold else 0.0


def pos_scores(pred_tag_seqs: Sequence[Sequence[str]], gold_tag_seqs: Sequence[Sequence[str]]) -> dict[str, float]:
    """UD-POS: XTREME's official F1 (``whole_tag_f1``, the primary number) plus plain token accuracy."""
    scores = whole_tag_f1(pred_tag_seqs, gold_tag_seqs)
    scores["accuracy"] = token_accuracy(pred_tag_seqs, gold_tag_seqs)
    return scores


def seqeval_f1(pred_tag_seqs: Sequence[Sequence[str]], gold_tag_seqs: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level F1 / precision / recall of seqeval's default (non-strict) mode, as XTREME's
    ``evaluate.py`` computes them for NER (PAN-X). Tags are IOB strings ("B-PER", "I-LOC", "O")."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    check_tag_seqs(pred_tag_seqs, gold_tag_seqs)
    gold, pred = [list(seq) for seq in gold_tag_seqs], [list(seq) for seq in pred_tag_seqs]
    with warnings.catch_warnings():
        # A tag outside the IOB scheme makes seqeval warn once per token.
        warnings.simplefilter("ignore")
        return {
            "f1": 100.0 * float(f1_score(gold, pred)),
            "precision": 100.0 * float(precision_score(gold, pred)),
            "recall": 100.0 * float(recall_score(gold, pred)),
        }


def check_tag_seqs(pred_tag_seqs, gold_tag_seqs) -> None:
    if len(pred_tag_seqs) != len(gold_tag_seqs):
        raise ValueError(f"tagging: {len(pred_tag_seqs)} predicted sentences for {len(gold_tag_seqs)} gold sentences")
    if not gold_tag_seqs:
        raise DataError("tagging: nothing to score (0 sentences); check that the evaluation split is not empty")
    for index, (pred, gold) in enumerate(zip(pred_tag_seqs, gold_tag_seqs)):
        if len(pred) != len(gold):
            raise ValueError(f"tagging: sentence {index} has {len(pred)} predicted tags for {len(gold)} words")
        if any(not isinstance(tag, str) for tag in (*pred, *gold)):
            raise TypeError(f"tagging: sentence {index} has non-string tags; map label ids to names first")
