"""Per-language prediction files, written next to the results and read by ``hf-itt export-submission``.

Layout (``<results>`` is the folder of the result JSONs, e.g. ``<run>/results``)::

    <results>/predictions/<task>.<split>/<lang>.jsonl

Line 1 is a header, every further line one prediction, in the order of the evaluated rows::

    {"hf_itt_predictions": 1, "task": "xnli", "split": "test", "language": "de", "kind": "labels", ...meta}

=========  ==============================================================  ===================================
kind       record (one per line)                                           header meta
=========  ==============================================================  ===================================
labels     ``{"label": "entailment"}`` (the label *name*; XCOPA: "0"/"1")   --
tags       ``{"tags": ["DET", "NOUN", ...]}`` one line per sentence         --
answers    ``{"id": "56be...", "text": "308"}`` one line per question       --
indices    ``{"index": 367}``: the retrieved row for each query row         ``direction`` ("tgt->src" | "src->tgt")
pairs      ``{"source_id": "de-1", "target_id": "en-7", "score": 1.23}``    ``threshold``, ``threshold_source``
           every mined candidate; the prediction is score >= threshold      (BUCC: "dev" | "test-oracle")
rankings   ``{"id": "q1", "ranking": ["Q42", ...]}`` best first, top k      ``k``
=========  ==============================================================  ===================================

A scorer hands its predictions to the evaluation driver by returning ``ScoredSplit(scores,
predictions)`` instead of the bare score dict; the driver saves them and lists the files in the
result record (``TaskResult.predictions``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable, Iterable, Mapping, Sequence

from hf_itt.errors import DataError
from hf_itt.fileio import atomic_write_text

FORMAT_VERSION = 1
PREDICTIONS_DIR = "predictions"
KINDS = {
    "labels": ("label",),
    "tags": ("tags",),
    "answers": ("id", "text"),
    "indices": ("index",),
    "pairs": ("source_id", "target_id", "score"),
    "rankings": ("id", "ranking"),
}


@dataclass
class Predictions:
    """What a model predicted on one language split: ``kind`` (see the module doc), records, meta."""

    kind: str
    records: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown prediction kind {self.kind!r}; one of {', '.join(KINDS)}")


@dataclass
class ScoredSplit:
    """A scorer's full answer: the scores and the predictions they were computed from."""

    scores: dict[str, float]
    predictions: Predictions | None = None


def split_outcome(outcome) -> tuple[dict[str, float], Predictions | None]:
    """(scores, predictions) from a scorer's return value: a ``ScoredSplit`` or a bare score dict."""
    if isinstance(outcome, ScoredSplit):
        return outcome.scores, outcome.predictions
    return outcome, None


# ----------------------------------------------------------------------------- constructors


def label_predictions(names: Sequence[str]) -> Predictions:
    return Predictions("labels", [{"label": str(name)} for name in names])


def tag_predictions(tag_seqs: Sequence[Sequence[str]]) -> Predictions:
    return Predictions("tags", [{"tags": list(tags)} for tags in tag_seqs])


def answer_predictions(texts: Mapping[str, str]) -> Predictions:
    return Predictions("answers", [{"id": str(key), "text": text} for key, text in texts.items()])


def index_predictions(indices: Iterable[int], direction: str) -> Predictions:
    return Predictions("indices", [{"index": int(index)} for index in indices], {"direction": direction})


def pair_predictions(
    candidates: Mapping[tuple[Hashable, Hashable], float], threshold: float, threshold_source: str | None = None
) -> Predictions:
    records = [
        {"source_id": str(s), "target_id": str(t), "score": float(score)}
        for (s, t), score in sorted(candidates.items(), key=lambda item: -item[1])
    ]
    return Predictions("pairs", records, {"threshold": float(threshold), "threshold_source": threshold_source})


def ranking_predictions(ids: Sequence[str], rankings: Sequence[Sequence[str]], k: int = 20) -> Predictions:
    return Predictions(
        "rankings",
        [{"id": str(key), "ranking": [str(c) for c in ranking[:k]]} for key, ranking in zip(ids, rankings)],
        {"k": k},
    )


def extracted_pairs(predictions: Predictions) -> list[tuple[str, str]]:
    """BUCC: the pairs a submission holds, i.e. the candidates scoring >= the recorded threshold."""
    threshold = predictions.meta["threshold"]
    return [(r["source_id"], r["target_id"]) for r in predictions.records if r["score"] >= threshold]


# ----------------------------------------------------------------------------- files


def predictions_path(results_dir: str | Path, task: str, split: str, lang: str) -> Path:
    return Path(results_dir) / PREDICTIONS_DIR / f"{task}.{split}" / f"{lang}.jsonl"


def save_predictions(path: str | Path, predictions: Predictions, *, task: str, split: str, lang: str) -> Path:

    header = {
        "hf_itt_predictions": FORMAT_VERSION,
        "task": task,
        "split": split,
        "language": lang,
        "kind": predictions.kind,
        **predictions.meta,
    }
    lines = [json.dumps(header, ensure_ascii=False)]
    lines += [json.dumps(record, ensure_ascii=False) for record in predictions.records]
    return atomic_write_text(path, "\n".join(lines) + "\n")


def load_predictions(path: str | Path) -> tuple[dict[str, Any], Predictions]:
    """(header, predictions) of a file written by ``save_predictions``; DataError when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"prediction file {path} is missing; re-run the evaluation (it writes predictions "
            f"unless evaluation.save_predictions is false)"
        )
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        header, records = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
    except (IndexError, json.JSONDecodeError) as err:
        raise DataError(f"{path} is not an hf_itt prediction file ({err})") from None
    if not isinstance(header, dict) or header.get("hf_itt_predictions") != FORMAT_VERSION:
        raise DataError(f"{path}: header is not an hf_itt prediction header of format {FORMAT_VERSION}")
    kind = header.get("kind")
    if kind not in KINDS or any(not isinstance(r, dict) or not set(KINDS[kind]) <= set(r) for r in records):
        raise DataError(f"{path}: records do not match kind {kind!r} (each needs {', '.join(KINDS.get(kind, ()))})")
    meta = {
        key: value
        for key, value in header.items()
        if key not in ("hf_itt_predictions", "task", "split", "language", "kind")
    }
    return header, Predictions(kind, records, meta)
