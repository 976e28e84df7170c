"""Classification, tagging and mAP@k metrics, and the ``score`` dispatcher (hf_itt.metrics.scoring)."""

from __future__ import annotations

import math

import pytest

from hf_itt.errors import ConfigError, DataError, HfIttError
from hf_itt.metrics import scoring as metrics
from hf_itt.metrics.scoring import (
    acc_and_f1,
    accuracy,
    map_at_k,
    pos_scores,
    primary_key,
    score,
    seqeval_f1,
)


def test_metric_version_is_a_string():
    assert isinstance(metrics.METRIC_VERSION, str) and metrics.METRIC_VERSION


# --------------------------------------------------------------------------- accuracy / acc_and_f1


def test_accuracy_in_percent():
    assert accuracy([1, 0, 2, 2], [1, 1, 2, 0]) == {"accuracy": 50.0}
    assert accuracy(["entailment"], ["entailment"]) == {"accuracy": 100.0}


def test_accuracy_rejects_empty_and_mismatched_inputs():
    with pytest.raises(DataError, match="0 examples"):
        accuracy([], [])
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        accuracy([1, 2, 3], [1, 2])


def test_acc_and_f1_matches_hand_computation():
    preds = [1, 1, 0, 0, 1, 0]
    labels = [1, 0, 0, 1, 1, 0]
    # TP = 2, FP = 1, FN = 1 -> P = R = 2/3 -> F1 = 2/3; accuracy = 4/6
    result = acc_and_f1(preds, labels)
    assert result["accuracy"] == pytest.approx(400 / 6)
    assert result["f1"] == pytest.approx(200 / 3)
    assert result["acc_and_f1"] == pytest.approx((400 / 6 + 200 / 3) / 2)


def test_acc_and_f1_agrees_with_sklearn():
    from sklearn.metrics import accuracy_score, f1_score

    preds = [(i * 7) % 3 % 2 for i in range(50)]
    labels = [(i * 5) % 4 % 2 for i in range(50)]
    result = acc_and_f1(preds, labels)
    assert result["f1"] == pytest.approx(100 * f1_score(labels, preds))
    assert result["accuracy"] == pytest.approx(100 * accuracy_score(labels, preds))


def test_acc_and_f1_without_positives_is_zero_f1_not_a_crash():
    result = acc_and_f1([0, 0], [0, 0])
    assert result["accuracy"] == 100.0 and result["f1"] == 0.0


# --------------------------------------------------------------------------- seqeval / POS


def test_seqeval_entity_f1_for_ner():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    # gold entities: PER, LOC, ORG; predicted: PER, ORG(wrong place), ORG -> 2 correct of 3 / 3
    result = seqeval_f1(pred, gold)
    assert result["precision"] == pytest.approx(200 / 3)
    assert result["recall"] == pytest.approx(200 / 3)
    assert result["f1"] == pytest.approx(200 / 3)
    assert all(type(value) is float for value in result.values())


def test_seqeval_default_mode_accepts_an_i_tag_without_b():
    # Non-strict seqeval (what XTREME uses) starts an entity at a bare I- tag.
    assert seqeval_f1([["I-PER", "I-PER"]], [["B-PER", "I-PER"]])["f1"] == 100.0


def test_seqeval_rejects_length_mismatch_and_integer_tags():
    with pytest.raises(ValueError, match="sentence 0 has 1 predicted tags for 2 words"):
        seqeval_f1([["O"]], [["O", "O"]])
    with pytest.raises(TypeError, match="non-string"):
        seqeval_f1([[0, 1]], [[0, 1]])


def test_pos_f1_is_chunk_f1_on_bare_tags_not_token_accuracy():
    # seqeval 0.0.12 (XTREME's numbers): a bare tag is its own type; two adjacent NOUNs form ONE chunk.
    gold = [["NOUN", "NOUN", "VERB"]]
    pred = [["NOUN", "ADJ", "VERB"]]
    result = pos_scores(pred, gold)
    # gold chunks: (NOUN 0-1), (VERB 2); predicted: (NOUN 0), (ADJ 1), (VERB 2) -> 1 correct
    assert result["precision"] == pytest.approx(100 / 3)
    assert result["recall"] == pytest.approx(50.0)
    assert result["f1"] == pytest.approx(40.0)
    assert result["accuracy"] == pytest.approx(200 / 3)


def test_pos_f1_scores_identical_sequences_100_whatever_the_first_letter():
    # "INTJ" starts with I and "SCONJ"/"SYM" with S: chunking treats those letters as prefixes, so
    # chunks differ from tokens -- but identical sequences still score 100.
    gold = [["NOUN", "INTJ", "INTJ", "SCONJ", "SYM", "PUNCT"]]
    assert pos_scores(gold, gold) == {"f1": 100.0, "precision": 100.0, "recall": 100.0, "accuracy": 100.0}


def test_pos_scores_on_real_ud_tags(shared_data):
    conllu = shared_data / "ud" / "UD_English-EWT" / "en_ewt-ud-dev.first300.conllu"
    gold = _read_upos(conllu)
    assert len(gold) > 100
    perfect = pos_scores(gold, gold)
    assert perfect["f1"] == perfect["accuracy"] == 100.0
    # Replace every 7th token's tag by "X": accuracy drops by exactly that share.
    flat_index, pred, changed = 0, [], 0
    for sentence in gold:
        new = []
        for tag in sentence:
            if flat_index % 7 == 0 and tag != "X":
                new.append("X")
                changed += 1
            else:
                new.append(tag)
            flat_index += 1
        pred.append(new)
    result = pos_scores(pred, gold)
    assert result["accuracy"] == pytest.approx(100 * (1 - changed / flat_index))
    assert 0 < result["f1"] < 100


def _read_upos(path):
    sentences, current = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if current:
                sentences.append(current)
            current = []
        elif not line.startswith("#"):
            columns = line.split("\t")
            if columns[0].isdigit():  # skip multi-word ranges (1-2) and empty nodes (1.1)
                current.append(columns[3])
    if current:
        sentences.append(current)
    return sentences


# --------------------------------------------------------------------------- mAP@k


def _naive_ap(ranking, gold, k):
    found, precisions = set(), []
    for position in range(min(k, len(ranking))):
        item = ranking[position]
        if item in gold and item not in found:
            found.add(item)
            precisions.append(len(found) / (position + 1))
    return sum(precisions) / min(len(gold), k)


def test_map_at_k_hand_computed():
    # q1: gold {a, c} at ranks 1 and 3 -> (1/1 + 2/3) / 2; q2: gold {z} at rank 2 -> 1/2
    result = map_at_k([["a", "b", "c"], ["y", "z"]], [{"a", "c"}, {"z"}], k=20)
    assert result == {"map@20": pytest.approx(100 * ((1 + 2 / 3) / 2 + 0.5) / 2)}


def test_map_at_k_truncates_and_caps_divisor():
    ranking = list(range(30))
    gold = set(range(0, 30, 2))  # 15 gold items; only the top 2 ranks count with k=2
    assert map_at_k([ranking], [gold], k=2)["map@2"] == pytest.approx(100 * (1 / 1) / 2)
    # duplicates in a ranking are counted once
    assert map_at_k([["a", "a", "b"]], [{"a", "b"}], k=20)["map@20"] == pytest.approx(100 * (1 + 2 / 3) / 2)


def test_map_at_k_matches_a_naive_loop_and_mrr_for_single_gold():
    rankings = [[(q * 7 + i * 3) % 40 for i in range(25)] for q in range(30)]
    golds = [{(q * 11) % 40, (q * 13 + 1) % 40} for q in range(30)]
    expected = 100 * sum(_naive_ap(r, g, 20) for r, g in zip(rankings, golds)) / 30
    assert map_at_k(rankings, golds)["map@20"] == pytest.approx(expected)
    singles = [{next(iter(g))} for g in golds]
    mrr = (
        100
        * sum(next((1 / (i + 1) for i, c in enumerate(r[:20]) if c in g), 0.0) for r, g in zip(rankings, singles))
        / 30
    )
    assert map_at_k(rankings, singles)["map@20"] == pytest.approx(mrr)


def test_map_at_k_errors():
    with pytest.raises(DataError, match="empty gold set"):
        map_at_k([["a"]], [set()])
    with pytest.raises(DataError, match="no queries"):
        map_at_k([], [])


# --------------------------------------------------------------------------- dispatcher


@pytest.mark.parametrize(
    "name, key",
    [
        ("accuracy", "accuracy"),
        ("acc_and_f1", "acc_and_f1"),
        ("squad", "avg"),
        ("squad_v2", "avg"),
        ("mlqa", "avg"),
        ("seqeval_f1", "f1"),
        ("pos_f1", "f1"),
        ("bucc_f1", "f1"),
        ("tatoeba_accuracy", "accuracy"),
        ("map_at_20", "map@20"),
    ],
)
def test_primary_key_is_in_every_result(name, key):
    assert primary_key(name) == key
    examples = {
        "accuracy": ([1, 0], [1, 1]),
        "acc_and_f1": ([1, 0], [1, 1]),
        "squad": ({"q": "a cat"}, {"q": ["cat"]}),
        "squad_v2": ({"q": ""}, {"q": []}),
        "mlqa": ({"q": "der Hund"}, {"q": ["Hund"]}, "de"),
        "seqeval_f1": ([["B-PER"]], [["B-PER"]]),
        "pos_f1": ([["NOUN"]], [["NOUN"]]),
        "bucc_f1": ({("s1", "t1"): 1.2}, {("s1", "t1")}),
        "tatoeba_accuracy": ([0, 2, 1],),
        "map_at_20": ([["a"]], [{"a"}]),
    }
    result = score(name, *examples[name])
    assert key in result and math.isfinite(result[key])
    assert set(metrics.metric_names()) == set(examples)


def test_dispatcher_passes_keywords_and_rejects_unknown_names():
    assert score("tatoeba_accuracy", [0, 2, 1])["accuracy"] == pytest.approx(100 / 3)
    assert score("bucc_f1", {("s", "t"): 1.0}, {("s", "t")}, threshold=2.0)["f1"] == 0.0
    with pytest.raises(ConfigError, match="unknown metric 'bleu'") as error:
        primary_key("bleu")
    assert isinstance(error.value, HfIttError) and "map_at_20" in str(error.value)
