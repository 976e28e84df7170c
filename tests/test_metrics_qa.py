"""SQuAD v1.1, SQuAD 2.0 and MLQA scoring (hf_itt.metrics.qa), on hand cases and on real XQuAD."""

from __future__ import annotations

import json
import re
import string

import pytest

from hf_itt.errors import ConfigError, DataError
from hf_itt.metrics.qa import (
    mixed_segmentation,
    mlqa_scores,
    normalize_mlqa,
    normalize_squad,
    squad_scores,
    squad_v2_scores,
)

XQUAD_LANGS = ("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh")
MLQA_LANGS_IN_XQUAD = ("ar", "de", "en", "es", "hi", "vi", "zh")


# --------------------------------------------------------------------------- SQuAD v1.1


def test_squad_normalisation():
    assert normalize_squad("  The  Cat's hat!  ") == "cats hat"
    assert normalize_squad("An apple, a pear") == "apple pear"
    assert normalize_squad("theatre") == "theatre"  # articles only as whole words


def test_squad_scores_hand_computed():
    references = {"q1": ["Denver Broncos"], "q2": ["in 1990", "1990s"], "q3": ["Paris"]}
    predictions = {"q1": "the Denver Broncos.", "q2": "1990", "q3": "Paris, France", "unknown": "x"}
    # q1 EM; q2 F1 vs "in 1990" = 2*(1*0.5)/1.5 = 2/3, vs "1990s" 0; q3 F1 = 2*(0.5*1)/1.5 = 2/3
    result = squad_scores(predictions, references)
    assert result["exact_match"] == pytest.approx(100 / 3)
    assert result["f1"] == pytest.approx(100 * (1 + 2 / 3 + 2 / 3) / 3)
    assert result["avg"] == pytest.approx((result["exact_match"] + result["f1"]) / 2)


def test_squad_missing_prediction_counts_as_zero_and_empty_prediction_scores_zero():
    references = {"q1": ["yes"], "q2": ["no"]}
    assert squad_scores({"q1": "yes"}, references) == {"exact_match": 50.0, "f1": 50.0, "avg": 50.0}
    assert squad_scores({}, references) == {"exact_match": 0.0, "f1": 0.0, "avg": 0.0}
    assert squad_scores({"q1": "", "q2": ""}, references)["f1"] == 0.0


def test_squad_v1_official_quirk_answers_that_normalise_to_nothing():
    # v1.1: both sides normalise to "" -> exact match, but F1 is 0 (no overlapping token).
    assert squad_scores({"q": "a"}, {"q": ["The"]}) == {"exact_match": 100.0, "f1": 0.0, "avg": 50.0}


def test_squad_v1_errors():
    with pytest.raises(DataError, match="no gold answer"):
        squad_scores({"q": "x"}, {"q": []})
    with pytest.raises(DataError, match="no reference questions"):
        squad_scores({"q": "x"}, {})


def test_squad_keeps_unicode_punctuation_but_mlqa_removes_it():
    predictions, references = {"q": "«Paris»"}, {"q": ["Paris"]}
    assert squad_scores(predictions, references)["exact_match"] == 0.0
    assert mlqa_scores(predictions, references, "en")["exact_match"] == 100.0


# --------------------------------------------------------------------------- SQuAD 2.0


def _v2_case():
    references = {"q1": ["cat"], "q2": ["big dog"], "q3": [], "q4": []}
    predictions = {"q1": "cat", "q2": "small dog", "q3": "", "q4": "fish"}
    na_probs = {"q1": 0.1, "q2": 0.4, "q3": 0.2, "q4": 0.3}
    return predictions, references, na_probs


def test_squad_v2_raw_scores_and_splits():
    predictions, references, _ = _v2_case()
    result = squad_v2_scores(predictions, references)
    # EM: q1 1, q2 0, q3 1 (abstained on unanswerable), q4 0 -> 50; F1 adds 0.5 for q2
    assert result["exact_match"] == 50.0
    assert result["f1"] == pytest.approx(100 * 2.5 / 4)
    assert result["has_ans_exact_match"] == 50.0 and result["has_ans_f1"] == 75.0
    assert result["no_ans_exact_match"] == 50.0 and result["no_ans_f1"] == 50.0
    assert "best_f1" not in result


def test_squad_v2_best_threshold_search():
    predictions, references, na_probs = _v2_case()
    result = squad_v2_scores(predictions, references, na_probs=na_probs)
    # Start "no answer everywhere" = 2/4; answer by increasing na_prob: q1 +1 (best, at 0.1),
    # q3 +0, q4 -1, q2 +0 (EM) / +0.5 (F1) -> best 3/4 at threshold 0.1 for both.
    assert result["best_exact_match"] == 75.0 and result["best_exact_match_thresh"] == 0.1
    assert result["best_f1"] == 75.0 and result["best_f1_thresh"] == 0.1
    assert result["avg"] == 75.0  # jiant's SQuAD 2.0 major metric uses the best scores
    # Applying the found threshold reproduces the best score.
    applied = squad_v2_scores(predictions, references, na_probs=na_probs, na_prob_thresh=0.1)
    assert applied["exact_match"] == result["best_exact_match"]


def test_squad_v2_threshold_forces_no_answer():
    predictions, references, na_probs = _v2_case()
    result = squad_v2_scores(predictions, references, na_probs=na_probs, na_prob_thresh=0.25)
    # q4 (0.3) and q2 (0.4) become "no answer": q4 right, q2 wrong -> q1, q3, q4 correct
    assert result["exact_match"] == 75.0


def test_squad_v2_all_unanswerable_and_all_abstained():
    references = {"a": [], "b": []}
    assert squad_v2_scores({"a": "", "b": ""}, references)["f1"] == 100.0
    assert squad_v2_scores({"a": "x", "b": ""}, references)["exact_match"] == 50.0
    assert squad_v2_scores({"a": "", "b": ""}, {"a": ["yes"], "b": []})["has_ans_f1"] == 0.0


def test_squad_v2_requires_every_prediction():
    with pytest.raises(DataError, match="1 of 2 questions have no entry in predictions"):
        squad_v2_scores({"a": ""}, {"a": [], "b": ["x"]})
    with pytest.raises(DataError, match="na_probs"):
        squad_v2_scores({"a": "", "b": "x"}, {"a": [], "b": ["x"]}, na_probs={"a": 0.5})


# --------------------------------------------------------------------------- MLQA


def test_mlqa_zh_mixed_segmentation():
    assert mixed_segmentation("iphone手机2008年") == ["iphone", "手", "机", "2008", "年"]
    assert normalize_mlqa("北京大学，2008 年。", "zh") == "北 京 大 学 2008 年"
    # Character-level overlap: "北京" vs "北京大学" -> P = 1, R = 1/2 -> F1 = 2/3
    result = mlqa_scores({"q": "北京"}, {"q": ["北京大学"]}, "zh")
    assert result["exact_match"] == 0.0 and result["f1"] == pytest.approx(200 / 3)
    # Under SQuAD's whitespace tokenisation the same pair has no overlapping token at all.
    assert squad_scores({"q": "北京"}, {"q": ["北京大学"]})["f1"] == 0.0


def test_mlqa_arabic_removes_every_al():
    assert normalize_mlqa("الكتاب", "ar") == "كتاب"
    assert mlqa_scores({"q": "الكتاب"}, {"q": ["كتاب"]}, "ar")["exact_match"] == 100.0
    # Official pattern: "ال" also goes inside a word ("مال" -> "م").
    assert normalize_mlqa("مال", "ar") == "م"


@pytest.mark.parametrize(
    "lang, prediction, gold",
    [
        ("de", "Der Hund!", "hund"),
        ("de", "eines Mannes", "Mannes"),
        ("es", "los perros", "Perros"),
        ("es", "¿una casa?", "casa"),
        ("vi", "những con mèo", "con mèo"),
        ("en", "the cat", "cat"),
        ("hi", "भारत।", "भारत"),  # the danda is Unicode punctuation
    ],
)
def test_mlqa_language_rules_give_exact_match(lang, prediction, gold):
    assert mlqa_scores({"q": prediction}, {"q": [gold]}, lang)["exact_match"] == 100.0


def test_mlqa_articles_are_language_specific():
    # German "die" is an article in de, not in es; Spanish "la" is an article in es, not in de.
    assert mlqa_scores({"q": "die Stadt"}, {"q": ["Stadt"]}, "de")["exact_match"] == 100.0
    assert mlqa_scores({"q": "die Stadt"}, {"q": ["Stadt"]}, "es")["exact_match"] == 0.0
    assert mlqa_scores({"q": "la ciudad"}, {"q": ["ciudad"]}, "de")["exact_match"] == 0.0


def test_mlqa_unknown_language():
    with pytest.raises(ConfigError, match="no normalisation rules for language 'fr'"):
        mlqa_scores({"q": "x"}, {"q": ["x"]}, "fr")


# --------------------------------------------------------------------------- real XQuAD


def _load_xquad(path):
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    contexts, references = {}, {}
    for article in data:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                references[qa["id"]] = [answer["text"] for answer in qa["answers"]]
                contexts[qa["id"]] = (paragraph["context"], qa["answers"][0]["answer_start"])
    return references, contexts


@pytest.fixture(scope="module")
def xquad(shared_data):
    return {lang: _load_xquad(shared_data / "xquad" / f"xquad.{lang}.json") for lang in XQUAD_LANGS}


def test_xquad_gold_answers_score_100_in_every_language(xquad):
    for lang, (references, _) in xquad.items():
        assert len(references) == 1190, lang
        gold = {qid: answers[0] for qid, answers in references.items()}
        assert squad_scores(gold, references) == {"exact_match": 100.0, "f1": 100.0, "avg": 100.0}, lang
        if lang in MLQA_LANGS_IN_XQUAD:
            assert mlqa_scores(gold, references, lang)["f1"] == 100.0, lang


def _perturb(index, qid, references, contexts, ids):
    """Deterministic wrong-ish predictions; None means "no prediction"."""
    gold = references[qid][0]
    words = gold.split()
    kind = index % 6
    if kind == 0:
        return gold
    if kind == 1:
        return " ".join(words[:-1])
    if kind == 2:
        context, start = contexts[qid]
        return context[start : start + len(gold) + 25]
    if kind == 3:
        return " ".join(["zzz"] + words[1:])
    if kind == 4:
        return None
    return '"' + references[ids[(index + 1) % len(ids)]][0].upper() + '."'


def _independent_squad(predictions, references):
    """SQuAD v1.1 written out again from the rules, sharing no code with hf_itt."""
    drop_punctuation = str.maketrans("", "", string.punctuation)

    def tokens(text):
        return re.sub(r"\b(?:a|an|the)\b", " ", text.lower().translate(drop_punctuation)).split()

    def f1(pred, gold):
        remaining, same = list(gold), 0
        for token in pred:
            if token in remaining:
                remaining.remove(token)
                same += 1
        return 0.0 if same == 0 else 2 * same / (len(pred) + len(gold))  # 2PR/(P+R)

    em_sum = f1_sum = 0.0
    for qid, golds in references.items():
        if qid in predictions:
            pred = tokens(predictions[qid])
            em_sum += max(float(pred == tokens(gold)) for gold in golds)
            f1_sum += max(f1(pred, tokens(gold)) for gold in golds)
    return 100 * em_sum / len(references), 100 * f1_sum / len(references)


def test_perturbed_xquad_predictions_match_an_independent_implementation(xquad):
    for lang, (references, contexts) in xquad.items():
        ids = list(references)
        predictions = {}
        for index, qid in enumerate(ids):
            prediction = _perturb(index, qid, references, contexts, ids)
            if prediction is not None:
                predictions[qid] = prediction
        exact, f1 = _independent_squad(predictions, references)
        result = squad_scores(predictions, references)
        assert result["exact_match"] == pytest.approx(exact, abs=1e-9), lang
        assert result["f1"] == pytest.approx(f1, abs=1e-9), lang
        assert 10 < result["f1"] < 90, lang  # the perturbations really change the score
