"""Retrieval metrics in percent: mAP@k (LAReQA, Mewsli-X) and BUCC bitext-mining F1.

Pure Python on ids and scores; computing embeddings and candidates is ``hf_itt.metrics.retrieval_search``'s job.

* ``map_at_k``       XTREME-R's ``average_precision_at_k`` averaged over queries.
* ``bucc_optimize``  XTREME/jiant threshold search on gold pairs (midpoint rule).
* ``bucc_f1``        F1 of the candidate pairs scoring >= a threshold.
* ``bucc_scores``    validation: optimise the threshold on the same gold (what XTREME and jiant
                     report); test: reuse the validation threshold. Either way the threshold is
                     reported with the scores; where it came from (``dev`` / ``test-oracle``) is the
                     evaluation driver's record (``hf_itt.evaluation.bucc``).

Candidates come from ``hf_itt.metrics.retrieval_search.bucc_mine``, which by default never pairs a
sentence that occurs more than once in its corpus (XTREME's rule), so the F1 here is the official one.
"""

from __future__ import annotations

from typing import Hashable, Iterable, Mapping, Sequence

from hf_itt.errors import DataError

Pair = tuple[Hashable, Hashable]


def average_precision_at_k(ranking: Sequence[Hashable], gold: Iterable[Hashable], k: int | None = 20) -> float:
    """AP@k of one query (fraction, 0-1): sum over the first occurrence of each gold item in the
    top k of (gold hits so far / rank), divided by min(|gold|, k)."""
    gold = set(gold)
    if not gold:
        raise DataError("mAP@k: a query has an empty gold set; every query needs at least one correct answer")
    top = list(ranking[:k]) if k else list(ranking)
    seen, hits, total = set(), 0, 0.0
    for rank, item in enumerate(top, start=1):
        if item in gold and item not in seen:
            hits += 1
            total += hits / rank
        seen.add(item)
    return total / (min(len(gold), k) if k else len(gold))


def map_at_k(
    rankings: Sequence[Sequence[Hashable]], gold_sets: Sequence[Iterable[Hashable]], k: int = 20
) -> dict[str, float]:
    """Mean AP@k over queries, in percent, under the key ``f"map@{k}"``.

    ``rankings[i]`` lists candidate ids for query i, best first; ``gold_sets[i]`` its correct ids.
    """
    if len(rankings) != len(gold_sets):
        raise ValueError(f"map_at_k: {len(rankings)} rankings but {len(gold_sets)} gold sets")
    if not rankings:
        raise DataError("mAP@k: no queries to score")
    ap = [average_precision_at_k(ranking, gold, k) for ranking, gold in zip(rankings, gold_sets)]
    return {f"map@{k}": 100.0 * sum(ap) / len(ap)}


def bucc_optimize(candidate_scores: Mapping[Pair, float], gold_pairs: Iterable[Pair]) -> float:
    """The threshold that maximises F1 against ``gold_pairs`` (XTREME/jiant ``bucc_optimize``).

    Candidates are walked from the highest score down; at each new best F1 the threshold becomes
    the midpoint between that candidate's score and the next one's. If the best cut is the last
    candidate (where the reference code would index past the end) the threshold is its own score,
    which keeps every candidate under the ``>=`` extraction rule. 0.0 when no gold pair is a
    candidate (the reference's initial value).
    """
    gold = set(gold_pairs)
    items = sorted(candidate_scores.items(), key=lambda item: -item[1])  # stable: ties keep input order
    correct, best_f1, threshold = 0, 0.0, 0.0
    for extracted, (pair, score) in enumerate(items, start=1):
        correct += pair in gold
        if correct:
            f1 = _f1(correct, extracted, len(gold))
            if f1 > best_f1:
                best_f1 = f1
                next_score = items[extracted][1] if extracted < len(items) else score
                threshold = (score + next_score) / 2
    return float(threshold)


def bucc_f1(candidate_scores: Mapping[Pair, float], gold_pairs: Iterable[Pair], threshold: float) -> dict[str, float]:
    """Precision, recall and F1 (percent) of the candidates with score >= ``threshold``."""
    gold = set(gold_pairs)
    extracted = {pair for pair, score in candidate_scores.items() if score >= threshold}
    correct = len(gold & extracted)
    if correct == 0:
        precision = recall = f1 = 0.0
    else:
        precision, recall = correct / len(extracted), correct / len(gold)
        f1 = _f1(correct, len(extracted), len(gold))
    return {"f1": 100.0 * f1, "precision": 100.0 * precision, "recall": 100.0 * recall, "threshold": float(threshold)}


def bucc_scores(
    candidate_scores: Mapping[Pair, float], gold_pairs: Iterable[Pair], threshold: float | None = None
) -> dict[str, float]:
    """BUCC F1: with ``threshold=None`` optimise it on ``gold_pairs`` (validation), else reuse it (test)."""
    gold = set(gold_pairs)
    if threshold is None:
        threshold = bucc_optimize(candidate_scores, gold)
    return bucc_f1(candidate_scores, gold, threshold)


def _f1(correct: int, extracted: int, gold: int) -> float:
    precision, recall = correct / extracted, correct / gold
    return 2 * precision * recall / (precision + recall)
