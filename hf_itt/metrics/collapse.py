"""Statistics of the collapse alarm (pure Python): is one prediction far more frequent than it should be?

A task has collapsed when the share of its most frequent prediction is at least ``collapse_threshold``
AND exceeds the gold majority share by ``collapse_margin`` (``limits`` is any object with those two
attributes and ``collapse_min_examples``, e.g. ``hf_itt.config.health.HealthConfig``). Task types
build their findings from these helpers; ``hf_itt.health.collapse`` runs them during training.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, NamedTuple, Sequence


class Finding(NamedTuple):
    """One collapsed share: ``what`` completes "97% of dev predictions ..."."""

    what: str
    share: float
    gold_share: float | None
    gold_what: str  # e.g. "gold majority 34%", "" when the gold labels are unknown
    count: int  # predictions judged (tagging: labelled tokens; QA: examples)
    value: Any  # the collapsed class / position / answer (JSON-safe)


def majority(values: Sequence) -> tuple[Any, float]:
    """(most frequent value, its share of ``values``); (None, 0.0) for an empty sequence."""
    if len(values) == 0:
        return None, 0.0
    value, count = Counter(values).most_common(1)[0]
    return value, count / len(values)


def is_collapsed(share: float, gold_share: float | None, limits) -> bool:
    gold = 0.0 if gold_share is None else gold_share
    return share >= limits.collapse_threshold and share >= gold + limits.collapse_margin


def enough_examples(count: int, limits) -> bool:
    return count >= max(1, limits.collapse_min_examples)


def gold_what(gold_share: float | None, template: str) -> str:
    return "" if gold_share is None else "gold " + template.format(f"{gold_share:.0%}")


def class_finding(predicted: Sequence[int], gold: Sequence[int] | None, name_of, what: str, limits) -> Finding | None:
    """Collapse of a class distribution: ``what`` is formatted with the class's name."""
    if not enough_examples(len(predicted), limits):
        return None
    value, share = majority(list(predicted))
    gold_share = majority(list(gold))[1] if gold is not None and len(gold) else None
    if not is_collapsed(share, gold_share, limits):
        return None
    return Finding(
        what.format(name_of(value)), share, gold_share, gold_what(gold_share, "majority {}"), len(predicted), int(value)
    )


def label_namer(labels: Sequence[str] | None):
    return lambda value: repr(labels[value]) if labels and 0 <= value < len(labels) else f"class {value}"


def gold_labels(rows: Sequence[dict]) -> list[int] | None:
    """Gold class ids of feature rows (``labels`` or ``label``), None when they carry none."""
    key = "labels" if rows and "labels" in rows[0] else "label"
    return [int(row[key]) for row in rows] if rows and key in rows[0] else None
