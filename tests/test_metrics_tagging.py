"""UD-POS F1 on whole tags (XTREME's numbers, independent of the installed seqeval); NER stays seqeval.

The reference numbers come from XTREME itself: its ``evaluate_test.py`` expects the mock UD-POS
F1 70.21746048354693 (fixtures in tests/fixtures/xtreme_mock, see SOURCE.md there).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from hf_itt.metrics.scoring import pos_scores, score, seqeval_f1
from hf_itt.metrics.tagging import tag_chunks, whole_tag_f1
from hf_itt.report.benchmark import BENCHMARK_LANGUAGES, language_means

MOCK = Path(__file__).parent / "fixtures" / "xtreme_mock"
UPOS = "ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X".split()
# en_ewt-ud-dev, sent_id weblog-juancole.com_juancole_20041111060900_ENG_20041111_060900-0005
EWT_TOKENS = "The battles and demonstrations were provoked by the US assault on Fallujah .".split()
EWT_UPOS = "DET NOUN CCONJ NOUN AUX VERB ADP DET PROPN NOUN ADP PROPN PUNCT".split()


def read_tag_file(path: Path) -> list[list[str]]:
    """One tag per line, a blank line after each sentence (XTREME's tagging file format)."""
    sentences, current = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            current.append(line.strip())
        else:
            sentences.append(current)
            current = []
    return sentences + ([current] if current else [])


def mock_scores(task: str, metric) -> dict[str, dict[str, float]]:
    scores = {}
    for lang in BENCHMARK_LANGUAGES["xtreme"][task]:
        pred = read_tag_file(MOCK / "predictions" / task / f"test-{lang}.tsv")
        gold = read_tag_file(MOCK / "labels" / task / f"test-{lang}.tsv")
        scores[lang] = metric(pred, gold)
    return scores


def test_mock_udpos_reproduces_xtremes_expectation_exactly():
    means = language_means(mock_scores("udpos", pos_scores))
    # evaluate_test.py, TASK2AVG_SCORES['udpos'] (exact: the official test compares floats with ==)
    assert means["f1"] == 70.21746048354693
    assert means["precision"] == 71.02232625883823
    assert means["recall"] == 69.54982073976082
    assert score("pos_f1", *_first_mock_language())["f1"] == pos_scores(*_first_mock_language())["f1"]


def _first_mock_language():
    return (
        read_tag_file(MOCK / "predictions" / "udpos" / "test-af.tsv"),
        read_tag_file(MOCK / "labels" / "udpos" / "test-af.tsv"),
    )


def test_mock_panx_is_the_same_under_seqeval_and_whole_tags():
    # IOB2 tags chunk identically under every seqeval version: NER keeps seqeval, same number.
    assert language_means(mock_scores("panx", seqeval_f1))["f1"] == pytest.approx(57.50793650793652, abs=1e-12)
    assert language_means(mock_scores("panx", whole_tag_f1))["f1"] == pytest.approx(57.50793650793652, abs=1e-12)


def test_the_cconj_sconj_sentence_is_real_ewt_data(shared_data):
    conllu = (shared_data / "ud" / "UD_English-EWT" / "en_ewt-ud-dev.first300.conllu").read_text(encoding="utf-8")
    block = conllu.split("# text = " + " ".join(EWT_TOKENS).replace(" .", "."))[1].split("\n\n")[0]
    rows = [line.split("\t") for line in block.strip().splitlines() if line and line[0].isdigit()]
    assert [(row[1], row[3]) for row in rows] == list(zip(EWT_TOKENS, EWT_UPOS))


def test_cconj_predicted_as_sconj_costs_one_chunk_of_thirteen():
    pred = list(EWT_UPOS)
    pred[EWT_TOKENS.index("and")] = "SCONJ"
    # No two neighbouring gold tags are equal: 13 one-token chunks; the prediction has the same 13
    # spans, one with the wrong type (SCONJ, not CCONJ): P = R = F1 = 12/13.
    assert len(tag_chunks([EWT_UPOS])) == len(tag_chunks([pred])) == 13
    result = pos_scores([pred], [EWT_UPOS])
    assert round(result["f1"], 2) == 92.31 and result["f1"] == pytest.approx(1200 / 13)
    assert result["precision"] == result["recall"] == pytest.approx(1200 / 13)
    assert result["accuracy"] == pytest.approx(1200 / 13)


def test_chunking_rules():
    assert tag_chunks([["NOUN", "NOUN", "VERB"]]) == [("NOUN", 0, 1), ("VERB", 2, 2)]
    assert tag_chunks([["SCONJ", "SCONJ"]]) == [("SCONJ", 0, 0), ("SCONJ", 1, 1)]  # prefix S closes
    assert tag_chunks([["NOUN"], ["NOUN"]]) == [("NOUN", 0, 0), ("NOUN", 2, 2)]  # sentences never merge
    assert tag_chunks([["B-PER", "I-PER", "O", "B-LOC"]]) == [("PER", 0, 1), ("LOC", 3, 3)]
    assert whole_tag_f1([["CCONJ"]], [["SCONJ"]])["f1"] == 0.0
    assert whole_tag_f1([["X"]], [["PUNCT"]])["f1"] == 0.0
    assert whole_tag_f1([[]], [[]]) == {"f1": 0.0, "precision": 0.0, "recall": 0.0}


def test_whole_tag_chunks_equal_installed_seqeval_on_iob_tags():
    """On IOB2 tags every seqeval version agrees, so the installed one checks the chunker there."""
    from seqeval.metrics.sequence_labeling import get_entities

    rng = random.Random(0)
    tags = "O B-PER I-PER B-LOC I-LOC B-ORG I-ORG".split()
    for _ in range(300):
        gold = [[rng.choice(tags) for _ in range(rng.randint(0, 9))] for _ in range(rng.randint(1, 5))]
        pred = [[tag if rng.random() < 0.7 else rng.choice(tags) for tag in sentence] for sentence in gold]
        assert tag_chunks(gold) == get_entities(gold)
        ours, theirs = whole_tag_f1(pred, gold), seqeval_f1(pred, gold)
        for key in ours:
            assert ours[key] == pytest.approx(theirs[key], abs=1e-9)


def test_pos_score_does_not_depend_on_seqeval(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "seqeval", None)  # importing seqeval now fails
    monkeypatch.setitem(sys.modules, "seqeval.metrics", None)
    assert pos_scores([["NOUN", "VERB"]], [["NOUN", "VERB"]])["f1"] == 100.0
    with pytest.raises(ImportError):
        seqeval_f1([["O"]], [["O"]])


def test_random_pos_sequences_keep_f1_bounded_and_perfect_on_identity():
    rng = random.Random(1)
    for _ in range(100):
        gold = [[rng.choice(UPOS) for _ in range(rng.randint(1, 12))] for _ in range(rng.randint(1, 4))]
        assert pos_scores(gold, gold)["f1"] == 100.0
        pred = [[tag if rng.random() < 0.8 else rng.choice(UPOS) for tag in sentence] for sentence in gold]
        assert 0.0 <= pos_scores(pred, gold)["f1"] <= 100.0
