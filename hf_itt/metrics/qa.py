"""Extractive-QA metrics as the official scripts compute them, in percent.

* ``squad_scores``     SQuAD v1.1 (XQuAD, TyDiQA-GoldP, SQuAD): English normalisation for every
                       language, as XTREME's ``third_party/evaluate_squad.py`` does.
* ``squad_v2_scores``  SQuAD 2.0: unanswerable questions (empty gold list), optional no-answer
                       threshold and the best-threshold search of ``evaluate-v2.0.py``.
* ``mlqa_scores``      MLQA's ``evaluate_mlqa.py``: Unicode punctuation, per-language articles,
                       mixed segmentation for Chinese.

Inputs: ``predictions`` {question id: answer text}; ``references`` {question id: [gold texts]}.
Every metric is the mean over ``references`` (questions, not predictions); a question with no
prediction scores 0 in v1.1/MLQA exactly like the official scripts, predictions for unknown ids
are ignored. Each returns {"exact_match", "f1", "avg"} where avg = (EM + F1) / 2 is XTREME's QA
task metric.
"""

from __future__ import annotations

import re
import string
import sys
import unicodedata
from collections import Counter
from typing import Callable, Mapping, Sequence

from hf_itt.errors import ConfigError, DataError

_ASCII_PUNCT = frozenset(string.punctuation)
_EN_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)

# MLQA: every Unicode "P*" character plus ASCII punctuation (which adds symbols such as $ + < = > ^ ` | ~).
_MLQA_PUNCT = (
    frozenset(chr(code) for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code)).startswith("P"))
    | _ASCII_PUNCT
)
_MLQA_ARTICLES = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    # The official pattern is "\sال^|ال": the first branch can never match, so every "ال" goes,
    # including inside words (e.g. "مال" -> "م "); kept as is to reproduce the official numbers.
    "ar": re.compile(r"\sال^|ال"),
    "hi": None,
    "zh": None,
}
_MLQA_WHITESPACE_LANGS = ("en", "es", "hi", "vi", "de", "ar")
_CJK = re.compile(r"[\u4e00-\u9fa5]")
MLQA_LANGUAGES = tuple(sorted(_MLQA_ARTICLES))


# --------------------------------------------------------------------------- normalisation


def normalize_squad(text: str) -> str:
    """SQuAD v1.1 / v2.0: lower-case, drop ASCII punctuation and English articles, squeeze spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCT)
    return " ".join(_EN_ARTICLES.sub(" ", text).split())


def mixed_segmentation(text: str) -> list[str]:
    """MLQA's Chinese tokenisation: each CJK character (U+4E00-U+9FA5) or punctuation mark is a
    token; the runs in between are split on whitespace."""
    tokens, run = [], ""
    for ch in text:
        if _CJK.match(ch) or ch in _MLQA_PUNCT:
            tokens.extend(run.split())
            run = ""
            tokens.append(ch)
        else:
            run += ch
    tokens.extend(run.split())
    return tokens


def normalize_mlqa(text: str, lang: str) -> str:
    """MLQA: lower-case, drop punctuation, drop ``lang``'s articles, re-tokenise, join with spaces."""
    check_mlqa_language(lang)
    text = "".join(ch for ch in text.lower() if ch not in _MLQA_PUNCT)
    articles = _MLQA_ARTICLES[lang]
    if articles is not None:
        text = articles.sub(" ", text)
    tokens = text.split() if lang in _MLQA_WHITESPACE_LANGS else mixed_segmentation(text)
    return " ".join(token for token in tokens if token.strip())


def check_mlqa_language(lang: str) -> None:
    if lang not in _MLQA_ARTICLES:
        raise ConfigError(
            f"MLQA scoring has no normalisation rules for language {lang!r}; "
            f"it defines them for {', '.join(MLQA_LANGUAGES)}. Use the 'squad' metric instead."
        )


# --------------------------------------------------------------------------- per-answer scores


def token_f1(prediction_tokens: Sequence[str], gold_tokens: Sequence[str]) -> float:
    """SQuAD v1.1 token-overlap F1 (0 when nothing overlaps, including two empty answers)."""
    overlap = sum((Counter(prediction_tokens) & Counter(gold_tokens)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(prediction_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1_v2(prediction_tokens: Sequence[str], gold_tokens: Sequence[str]) -> float:
    """SQuAD 2.0 F1: an empty answer on either side scores 1 only when both are empty."""
    if not prediction_tokens or not gold_tokens:
        return float(list(prediction_tokens) == list(gold_tokens))
    return token_f1(prediction_tokens, gold_tokens)


def _best_over_golds(
    prediction: str, golds: Sequence[str], normalize: Callable[[str], str], f1_fn=token_f1
) -> tuple[float, float]:
    """(EM, F1) of one prediction, each maximised over the gold answers."""
    pred = normalize(prediction)
    normalized_golds = [normalize(gold) for gold in golds]
    exact = max(float(pred == gold) for gold in normalized_golds)
    f1 = max(f1_fn(pred.split(), gold.split()) for gold in normalized_golds)
    return exact, f1


def _check_references(references: Mapping[str, Sequence[str]], metric: str, allow_empty_gold: bool) -> None:
    if not references:
        raise DataError(f"{metric}: no reference questions to score (the gold set is empty)")
    if not allow_empty_gold:
        for qid, golds in references.items():
            if not golds:
                raise DataError(
                    f"{metric}: question {qid!r} has no gold answer; score data with "
                    "unanswerable questions with the 'squad_v2' metric"
                )


def _qa_result(exact_sum: float, f1_sum: float, total: int) -> dict[str, float]:
    exact, f1 = 100.0 * exact_sum / total, 100.0 * f1_sum / total
    return {"exact_match": exact, "f1": f1, "avg": (exact + f1) / 2}


def _score_v1_style(predictions, references, normalize, metric: str) -> dict[str, float]:
    _check_references(references, metric, allow_empty_gold=False)
    exact_sum = f1_sum = 0.0
    for qid, golds in references.items():
        if qid not in predictions:  # unanswered: scores 0 but still counts in the total
            continue
        exact, f1 = _best_over_golds(predictions[qid], golds, normalize)
        exact_sum += exact
        f1_sum += f1
    return _qa_result(exact_sum, f1_sum, len(references))


# --------------------------------------------------------------------------- public metrics


def squad_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """SQuAD v1.1 exact match and F1 (percent), max over each question's gold answers."""
    return _score_v1_style(predictions, references, normalize_squad, "squad")


def mlqa_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], lang: str) -> dict[str, float]:
    """MLQA exact match and F1 (percent) with ``lang``'s normalisation (context language)."""
    check_mlqa_language(lang)
    return _score_v1_style(predictions, references, lambda text: normalize_mlqa(text, lang), "mlqa")


def squad_v2_scores(
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    na_probs: Mapping[str, float] | None = None,
    na_prob_thresh: float = 1.0,
) -> dict[str, float]:
    """SQuAD 2.0 scores (percent). An empty gold list marks an unanswerable question; an empty
    prediction ("") means "no answer".

    ``na_probs`` (optional) maps each question to a no-answer score, higher = more likely
    unanswerable (a probability or the null-score difference). With it, a question whose score
    exceeds ``na_prob_thresh`` counts as answered "no answer", and the official best-threshold
    search adds ``best_exact_match``/``best_f1`` and the thresholds that reach them
    (``best_exact_match_thresh``/``best_f1_thresh``); ``avg`` then uses the best scores, as jiant's
    SQuAD 2.0 metric does. Every question needs a prediction (the official script fails otherwise).
    """
    _check_references(references, "squad_v2", allow_empty_gold=True)
    _require_all(predictions, references, "predictions")
    if na_probs is not None:
        _require_all(na_probs, references, "na_probs")
    has_answer, exact_raw, f1_raw = {}, {}, {}
    for qid, golds in references.items():
        has_answer[qid] = bool(golds)  # official: from the raw list, before normalisation
        golds = [gold for gold in golds if normalize_squad(gold)] or [""]
        exact_raw[qid], f1_raw[qid] = _best_over_golds(predictions[qid], golds, normalize_squad, f1_fn=token_f1_v2)
    probs = na_probs if na_probs is not None else {qid: 0.0 for qid in references}
    exact = _apply_no_answer_threshold(exact_raw, probs, has_answer, na_prob_thresh)
    f1 = _apply_no_answer_threshold(f1_raw, probs, has_answer, na_prob_thresh)
    result = _qa_result(sum(exact.values()), sum(f1.values()), len(references))
    for prefix, wanted in (("has_ans", True), ("no_ans", False)):
        qids = [qid for qid in references if has_answer[qid] is wanted]
        if qids:
            result[f"{prefix}_exact_match"] = 100.0 * sum(exact[q] for q in qids) / len(qids)
            result[f"{prefix}_f1"] = 100.0 * sum(f1[q] for q in qids) / len(qids)
    if na_probs is not None:
        result["best_exact_match"], result["best_exact_match_thresh"] = _best_threshold(
            predictions, exact_raw, na_probs, has_answer
        )
        result["best_f1"], result["best_f1_thresh"] = _best_threshold(predictions, f1_raw, na_probs, has_answer)
        result["avg"] = (result["best_exact_match"] + result["best_f1"]) / 2
    return result


def _require_all(mapping: Mapping[str, object], references: Mapping[str, object], what: str) -> None:
    missing = [qid for qid in references if qid not in mapping]
    if missing:
        raise DataError(
            f"squad_v2: {len(missing)} of {len(references)} questions have no entry in {what} "
            f"(first: {missing[0]!r}); predict every question, with \"\" for 'no answer'"
        )


def _apply_no_answer_threshold(scores, na_probs, has_answer, threshold):
    """Questions whose no-answer score exceeds ``threshold`` are answered "no answer"."""
    return {qid: (float(not has_answer[qid]) if na_probs[qid] > threshold else score) for qid, score in scores.items()}


def _best_threshold(predictions, scores, na_probs, has_answer) -> tuple[float, float]:
    """The official search: start from "no answer everywhere", then answer questions in order of
    increasing no-answer score and keep the threshold with the highest total (first one on ties)."""
    current = best = float(sum(1 for has in has_answer.values() if not has))
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda q: na_probs[q]):  # stable: ties keep na_probs' order
        if qid not in scores:
            continue
        if has_answer[qid]:
            current += scores[qid]
        elif predictions[qid]:
            current -= 1
        if current > best:
            best, best_thresh = current, float(na_probs[qid])
    return 100.0 * best / len(scores), best_thresh
