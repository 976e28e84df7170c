"""The project's preprocessing, decoding and retrieval with XLM-R's real 250,002-piece vocabulary, over the
real samples in ../shared/data (XQuAD 12 languages, 5 UD treebanks, Tatoeba 13 languages).

The tokenizer and encoder are multilingual-e5-small built by `hf-itt build-base` (the `real_base` fixture);
its vocabulary and normaliser are XLM-R's, so these offsets are the ones XLM-R Large would see.
Per-language numbers are printed (pytest -s) and recorded in docs/validation.md.
"""

import itertools
from collections import Counter

import numpy as np
import pytest

from hf_itt.metrics.qa import normalize_squad
from hf_itt.task_types.features import preprocess
from hf_itt.task_types.qa_decoding import decode_qa, decode_tagging_predictions
from hf_itt.task_types.tagging_features import IGNORE_INDEX
from hf_itt.tasks.loading import load_split
from hf_itt.tasks.registry import get_task

XQUAD_LANGUAGES = ["ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh"]
MIN_RECOVERED = 0.995
# The EM ceiling is lower: XLM-R pieces fuse some answers with a neighbouring particle, conjunction or
# punctuation mark (zh "问题的", ar "و...", th prefixes), so no token span spells the answer exactly.
MIN_EM_CEILING = 0.985
TATOEBA_LANGUAGES = ["ar", "de", "es", "fr", "he", "hi", "ja", "ru", "sw", "th", "tr", "vi", "zh"]
TATOEBA_PAIRS = 200  # the first pairs of each language: 13 x 400 sentences embedded
UD_FILES = {  # treebank file -> (language, split role)
    "UD_English-EWT/en_ewt-ud-dev.conllu": ("en", "validation"),
    "UD_English-EWT/en_ewt-ud-test.conllu": ("en", "test"),
    "UD_German-GSD/de_gsd-ud-test.first200.conllu": ("de", "test"),
    "UD_Chinese-GSD/zh_gsd-ud-test.first200.conllu": ("zh", "test"),
    "UD_Hindi-PUD/hi_pud-ud-test.first200.conllu": ("hi", "test"),
    "UD_Arabic-PUD/ar_pud-ud-test.first200.conllu": ("ar", "test"),
}


# ------------------------------------------------------------------------------------------ XQuAD offsets


def answer_span(row) -> tuple[int, int]:
    start, text = row["answers"]["answer_start"][0], row["answers"]["text"][0]
    end = start + len(text)
    while start < end and row["context"][start].isspace():
        start += 1
    while end > start and row["context"][end - 1].isspace():
        end -= 1
    return start, end


def window_spans(rows, train, evaluation):
    """Example id -> [(offsets of the window, start token, end token)] of every window holding a gold span."""
    spans = {row_id: [] for row_id in rows["id"]}
    for example_id, offsets, start, end in zip(
        evaluation["example_id"], evaluation["offset_mapping"], train["start_positions"], train["end_positions"]
    ):
        if not start == end == 0:
            spans[example_id].append((offsets, start, end))
    return spans


def recovery(rows, spans) -> dict:
    """Per question: does a window's gold span cover the answer with no spare token at either end
    (the best any token span can do), and does its text equal the answer under SQuAD normalisation."""
    covered, exact, misses = 0, 0, []
    for row in rows:
        answer_start, answer_end = answer_span(row)
        best_exact, best_cover = False, False
        for offsets, start, end in spans[row["id"]]:
            if offsets[start] is None or offsets[end] is None:
                continue
            text = row["context"][offsets[start][0] : offsets[end][1]]
            best_cover |= (
                offsets[start][0] <= answer_start < offsets[start][1]
                and offsets[end][0] < answer_end <= offsets[end][1]
            )
            best_exact |= normalize_squad(text) == normalize_squad(row["answers"]["text"][0])
            if not best_exact and len(misses) < 20:
                misses.append((row["answers"]["text"][0], text))
        covered += best_cover
        exact += best_exact
    return {"questions": len(rows), "covered": covered, "exact": exact, "misses": misses}


@pytest.fixture(scope="module")
def xquad_recovery(shared_data, real_tokenizer):
    spec, results = get_task("xquad"), {}
    for lang in XQUAD_LANGUAGES:
        rows = load_split(spec, "validation", lang=lang, data_files=str(shared_data / "xquad"))
        train = preprocess(rows, spec, real_tokenizer, split_role="train")
        evaluation = preprocess(rows, spec, real_tokenizer, split_role="eval")
        # the same windows in the same order, grouped by question in row order
        assert len(train) == len(evaluation)
        assert [key for key, _ in itertools.groupby(evaluation["example_id"])] == rows["id"]
        results[lang] = recovery(rows, window_spans(rows, train, evaluation))
    print("\nXQuAD gold answers from training features (max_length 384, stride 128), per language:")
    for lang, r in results.items():
        print(
            f"  {lang}: {r['questions']} questions, span covers the answer exactly {r['covered']} "
            f"({r['questions'] - r['covered']} misses), normalised text equal {r['exact']} "
            f"({r['questions'] - r['exact']} misses)"
        )
    return results


@pytest.mark.parametrize("lang", XQUAD_LANGUAGES)
def test_xquad_gold_answers_are_recoverable_from_training_offsets(xquad_recovery, lang):
    result = xquad_recovery[lang]
    assert result["questions"] == 1190
    assert result["covered"] >= MIN_RECOVERED * result["questions"], result["misses"]
    assert result["exact"] >= MIN_EM_CEILING * result["questions"], result["misses"]


# ------------------------------------------------------------------------------------------ UD first sub-words


@pytest.mark.parametrize("relative", sorted(UD_FILES))
def test_every_ud_word_has_exactly_one_labelled_first_sub_word(shared_data, real_tokenizer, relative):
    lang, role = UD_FILES[relative]
    spec = get_task("udpos")
    rows = load_split(spec, role, lang=lang, data_files=str(shared_data / "ud" / relative))
    features = preprocess(rows, spec, real_tokenizer, split_role="eval")
    labelled = Counter()
    for example_id, word_ids, labels in zip(features["example_id"], features["word_ids"], features["labels"]):
        for position, (word, label) in enumerate(zip(word_ids, labels)):
            if label == IGNORE_INDEX:
                continue
            assert word is not None and (position == 0 or word_ids[position - 1] != word), "not a first sub-word"
            assert label == rows[example_id]["tags"][word]
            labelled[example_id, word] += 1
    expected = {(i, w) for i, tags in enumerate(rows["tags"]) for w in range(len(tags))}
    assert set(labelled) == expected and set(labelled.values()) == {1}
    one_hot = [np.eye(spec.num_labels)[[max(label, 0) for label in labels]] for labels in features["labels"]]
    assert decode_tagging_predictions(features, one_hot, len(rows)) == rows["tags"]


# ------------------------------------------------------------------------------------------ Tatoeba


def test_tatoeba_embeds_and_retrieves_in_13_languages(shared_data, real_base, real_tokenizer):
    from transformers import AutoModel

    from hf_itt.evaluation.scorers import ScoringContext, score_split

    spec = get_task("tatoeba")
    ctx = ScoringContext(
        model=AutoModel.from_pretrained(real_base),
        tokenizer=real_tokenizer,
        batch_size=64,
        retrieval_max_length=128,
        show_progress=False,
    )
    accuracy = {}
    for lang in TATOEBA_LANGUAGES:
        rows = load_split(spec, "validation", lang=lang, data_files=str(shared_data / "tatoeba"))
        accuracy[lang] = score_split(spec, rows.select(range(TATOEBA_PAIRS)), ctx, lang, lang).scores["accuracy"]
    print(f"\nTatoeba top-1 accuracy, first {TATOEBA_PAIRS} pairs, layer 7 of 12 mean-pooled: {accuracy}")
    assert len(accuracy) == 13 and min(accuracy.values()) >= 40  # chance is 0.5 %


# ------------------------------------------------------------------------------------------ long contexts

LONG_LANGUAGES = ["ar", "en", "hi", "th", "zh"]
SHORT = {"max_length": 128, "doc_stride": 32}  # real XQuAD contexts then span several windows


@pytest.mark.parametrize("lang", LONG_LANGUAGES)
def test_long_contexts_give_several_windows_and_the_best_span_maps_back(shared_data, real_tokenizer, lang):
    """Logits that peak on the gold tokens of ONE window (random elsewhere) decode, through that window's
    offsets, to the text of those tokens in the original context, which holds the gold answer."""
    spec = get_task("xquad")
    rows = load_split(spec, "validation", lang=lang, data_files=str(shared_data / "xquad"))
    rows = rows.select(range(0, len(rows), 5))
    train = preprocess(rows, spec, real_tokenizer, split_role="train", **SHORT)
    evaluation = preprocess(rows, spec, real_tokenizer, split_role="eval", **SHORT)
    windows = Counter(evaluation["example_id"])
    assert np.mean([windows[row_id] >= 2 for row_id in rows["id"]]) > 0.75 and max(windows.values()) >= 4
    contexts = dict(zip(rows["id"], rows["context"]))
    rng = np.random.default_rng(0)
    starts, ends, expected, chosen = [], [], {}, set()
    for example_id, offsets, start, end in zip(
        evaluation["example_id"], evaluation["offset_mapping"], train["start_positions"], train["end_positions"]
    ):
        start_logits, end_logits = rng.normal(0, 1, len(offsets)), rng.normal(0, 1, len(offsets))
        if not start == end == 0 and example_id not in chosen:  # the first window holding the answer
            chosen.add(example_id)
            start_logits[start], end_logits[end] = 50.0, 50.0
            expected[example_id] = contexts[example_id][offsets[start][0] : offsets[end][1]].strip()
        starts.append(start_logits)
        ends.append(end_logits)
    predictions = decode_qa(rows, evaluation, starts, ends, max_answer_length=100).predictions
    assert len(expected) >= 0.99 * len(rows)
    assert {k: predictions[k] for k in expected} == expected
    gold = dict(zip(rows["id"], (answers["text"][0].strip() for answers in rows["answers"])))
    assert [k for k in expected if gold[k] not in expected[k]] == []  # each decoded span holds its answer


def test_real_encoder_predicts_spans_inside_their_contexts(shared_data, real_base, real_tokenizer):
    """A QA head on the real encoder (untrained head) over multi-window contexts: every decoded answer is
    a piece of its own context, cut at token boundaries."""
    import torch

    from hf_itt.evaluation.predict import predict_features
    from hf_itt.training.modeling import MultiTaskModel

    spec = get_task("xquad")
    rows = load_split(spec, "validation", lang="th", data_files=str(shared_data / "xquad")).select(range(0, 1190, 75))
    torch.manual_seed(0)
    model = MultiTaskModel.from_encoder(str(real_base), {"xquad": spec})
    features = preprocess(rows, spec, real_tokenizer, split_role="eval", **SHORT)
    assert len(features) > 2 * len(rows)
    outputs = predict_features(model, real_tokenizer, features, "xquad", batch_size=16)
    predictions = decode_qa(rows, features, outputs["start_logits"], outputs["end_logits"]).predictions
    for row in rows:
        assert predictions[row["id"]] and predictions[row["id"]] in row["context"]
