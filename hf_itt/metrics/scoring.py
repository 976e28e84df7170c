"""Official XTREME / XTREME-R metrics, all in percent (0-100) as the benchmarks report them.

Classification lives here; tagging in ``hf_itt.metrics.tagging``, QA in ``hf_itt.metrics.qa``,
retrieval in ``hf_itt.metrics.retrieval`` (all re-exported). ``score(name, ...)`` dispatches by
metric name and ``primary_key(name)`` gives the key of the returned dict that ranks models.

Bump ``METRIC_VERSION`` whenever a definition changes: result records carry it and the report
refuses to compare scores computed under different definitions.
"""

from __future__ import annotations

from typing import Callable, Sequence

from hf_itt.errors import ConfigError, DataError
from hf_itt.metrics.qa import mlqa_scores, squad_scores, squad_v2_scores
from hf_itt.metrics.retrieval import bucc_f1, bucc_optimize, bucc_scores, map_at_k
from hf_itt.metrics.tagging import pos_scores, seqeval_f1

# 2: UD-POS F1 on whole-tag chunks (seqeval 0.0.12, XTREME's numbers) instead of the installed
#    seqeval's; BUCC mining drops repeated sentences as the official pipeline does.
METRIC_VERSION = "2"

__all__ = [
    "METRIC_VERSION",
    "metric_names",
    "register_metric",
    "accuracy",
    "acc_and_f1",
    "seqeval_f1",
    "pos_scores",
    "squad_scores",
    "squad_v2_scores",
    "mlqa_scores",
    "map_at_k",
    "bucc_f1",
    "bucc_optimize",
    "bucc_scores",
    "tatoeba_scores",
    "score",
    "primary_key",
]


def accuracy(preds: Sequence, labels: Sequence) -> dict[str, float]:
    """Share of ``preds`` equal to ``labels``."""
    _check_pairs(preds, labels, "accuracy")
    correct = sum(int(pred == label) for pred, label in zip(preds, labels))
    return {"accuracy": 100.0 * correct / len(labels)}


def acc_and_f1(preds: Sequence[int], labels: Sequence[int]) -> dict[str, float]:
    """QQP/MRPC (jiant ``AccAndF1``): accuracy, binary F1 of class 1, and their mean ``acc_and_f1``."""
    acc = accuracy(preds, labels)["accuracy"]
    true_pos = sum(1 for pred, label in zip(preds, labels) if pred == 1 and label == 1)
    pred_pos = sum(1 for pred in preds if pred == 1)
    gold_pos = sum(1 for label in labels if label == 1)
    f1 = 200.0 * true_pos / (pred_pos + gold_pos) if true_pos else 0.0  # 2PR/(P+R) = 2TP/(pred+gold)
    return {"accuracy": acc, "f1": f1, "acc_and_f1": (acc + f1) / 2}


def tatoeba_scores(predicted_indices: Sequence[int], gold_indices: Sequence[int] | None = None) -> dict[str, float]:
    """Tatoeba top-1 accuracy of nearest-neighbour indices; gold defaults to 0..n-1 (line i <-> line i)."""
    gold = list(range(len(predicted_indices))) if gold_indices is None else list(gold_indices)
    return accuracy([int(index) for index in predicted_indices], gold)


def _map_at_20(rankings, gold_sets):
    return map_at_k(rankings, gold_sets, k=20)


_METRICS: dict[str, tuple[Callable[..., dict[str, float]], str]] = {
    "accuracy": (accuracy, "accuracy"),
    "acc_and_f1": (acc_and_f1, "acc_and_f1"),
    "squad": (squad_scores, "avg"),
    "squad_v2": (squad_v2_scores, "avg"),
    "mlqa": (mlqa_scores, "avg"),
    "seqeval_f1": (seqeval_f1, "f1"),
    "pos_f1": (pos_scores, "f1"),
    "bucc_f1": (bucc_scores, "f1"),
    "tatoeba_accuracy": (tatoeba_scores, "accuracy"),
    "map_at_20": (_map_at_20, "map@20"),
}


def register_metric(name: str, function: Callable[..., dict[str, float]], primary: str) -> None:
    """Add a metric (e.g. from a task-type plug-in): ``function(...) -> {key: percent}``, ranked by ``primary``."""
    if name in _METRICS:
        raise ConfigError(f"metric {name!r} is already registered")
    _METRICS[name] = (function, primary)


def metric_names() -> tuple[str, ...]:
    return tuple(_METRICS)


def score(metric_name: str, *args, **kwargs) -> dict[str, float]:
    """Compute metric ``metric_name`` (one of ``metric_names()``) with that metric's own arguments:

    accuracy / acc_and_f1 (preds, labels) · squad / squad_v2 (predictions, references[, na_probs])
    · mlqa (predictions, references, lang) · seqeval_f1 / pos_f1 (pred_tag_seqs, gold_tag_seqs)
    · bucc_f1 (candidate_scores, gold_pairs, threshold=None) · tatoeba_accuracy (predicted_indices)
    · map_at_20 (rankings, gold_sets).
    """
    return _lookup(metric_name)[0](*args, **kwargs)


def primary_key(metric_name: str) -> str:
    """The key of ``score(metric_name, ...)``'s result that ranks models and enters averages."""
    return _lookup(metric_name)[1]


def _lookup(metric_name: str):
    if metric_name not in _METRICS:
        raise ConfigError(f"unknown metric {metric_name!r}; choose one of {', '.join(_METRICS)}")
    return _METRICS[metric_name]


def _check_pairs(preds: Sequence, labels: Sequence, metric: str) -> None:
    if len(preds) != len(labels):
        raise ValueError(f"{metric}: {len(preds)} predictions for {len(labels)} labels")
    if not labels:
        raise DataError(f"{metric}: nothing to score (0 examples); check that the evaluation split is not empty")
