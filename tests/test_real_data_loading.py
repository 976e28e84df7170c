"""Loaders against the real evaluation samples in ../shared/data (XQuAD, Tatoeba, XCOPA, UD, XQuAD as LAReQA).

Expected values are computed independently from the raw files, not copied from the loaders' output.
"""

import json

import pytest

from hf_itt.tasks.loading import load_answer_retrieval, load_split
from hf_itt.tasks.registry import get_task


@pytest.mark.parametrize("lang", ["th", "zh", "ar"])
def test_xquad_json_loads_every_question_with_exact_answer_offsets(shared_data, lang):
    path = shared_data / "xquad" / f"xquad.{lang}.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw_ids = [qa["id"] for article in raw["data"] for p in article["paragraphs"] for qa in p["qas"]]
    data = load_split("xquad", "validation", lang=lang, data_files=str(shared_data / "xquad"))
    assert len(data) == 1190 and data["id"] == raw_ids
    for row in data:
        assert row["answers"]["text"], row["id"]
        for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"]):
            assert row["context"][start : start + len(text)] == text
    english = load_split("xquad", "validation", lang="en", data_files=str(shared_data / "xquad" / "xquad.{lang}.json"))
    assert english["id"] == data["id"]  # XQuAD is parallel: same ids in the same order


def test_all_tatoeba_pairs_load_with_equal_line_counts(shared_data):
    spec = get_task("tatoeba")
    lang_of = {code: lang for lang, code in spec.lang_codes.items()}
    pair_files = sorted((shared_data / "tatoeba").glob("tatoeba.*-eng.eng"))
    assert len(pair_files) == 13
    for eng in pair_files:
        code = eng.name.split(".")[1].split("-")[0]
        foreign = eng.with_name(f"tatoeba.{code}-eng.{code}")
        raw_source = foreign.read_bytes().decode("utf-8").removesuffix("\n").split("\n")
        raw_target = eng.read_bytes().decode("utf-8").removesuffix("\n").split("\n")
        data = load_split(spec, "validation", lang=lang_of[code], data_files=str(shared_data / "tatoeba"))
        assert len(data) == len(raw_source) == len(raw_target), code
        assert data["source_sentence"] == raw_source and data["target_sentence"] == raw_target
        assert data["source_id"] == data["target_id"]


def test_xcopa_loads_as_two_choice_multiple_choice(shared_data):
    spec = get_task("xcopa")
    for lang in spec.languages:
        for role, size in (("validation", 100), ("test", 500)):
            data = load_split(spec, role, lang=lang, data_files=str(shared_data / "xcopa" / "data"))
            raw_name = f"{'val' if role == 'validation' else 'test'}.{lang}.jsonl"
            raw_path = shared_data / "xcopa" / "data" / lang / raw_name
            raw = [json.loads(line) for line in raw_path.open(encoding="utf-8")]
            assert len(data) == size == len(raw)
            for row, source in zip(data, raw):
                assert row["prompt"] == f"{source['premise']} What was the {source['question']}?"
                assert row["choices"] == [source["choice1"], source["choice2"]]
                assert row["label"] == source["label"]


UD_FILES = {
    "en": ("UD_English-EWT/en_ewt-ud-dev.first300.conllu", "validation", 300),
    "de": ("UD_German-GSD/de_gsd-ud-test.first200.conllu", "test", 200),
    "zh": ("UD_Chinese-GSD/zh_gsd-ud-test.first200.conllu", "test", 200),
    "hi": ("UD_Hindi-PUD/hi_pud-ud-test.first200.conllu", "test", 200),
    "ar": ("UD_Arabic-PUD/ar_pud-ud-test.first200.conllu", "test", 200),
}


@pytest.mark.parametrize("lang", sorted(UD_FILES))
def test_ud_conllu_sentence_counts_and_upos_tags(shared_data, lang):
    relative, role, sentences = UD_FILES[lang]
    lines = (shared_data / "ud" / relative).read_text(encoding="utf-8").split("\n")
    words = [line.split("\t") for line in lines if line and not line.startswith("#")]
    words = [fields for fields in words if fields[0].isdigit()]  # no "3-4" ranges, no "8.1" empty nodes
    spec = get_task("udpos")
    sources = [shared_data / "ud" / relative]
    if lang != "en":  # the English folder also holds the whole EWT dev and test files
        sources.append(shared_data / "ud")  # directory + pattern
    for source in sources:
        data = load_split(spec, role, lang=lang, data_files=str(source))
        assert len(data) == sentences == sum(1 for line in lines if line.startswith("# sent_id"))
        tags = [spec.labels[i] for sentence in data["tags"] for i in sentence]
        assert tags == [fields[3] for fields in words]
        assert [t for sentence in data["tokens"] for t in sentence] == [fields[1] for fields in words]
        assert set(tags) <= set(spec.labels) and len(spec.labels) == 17


def test_whole_english_ewt_files_load(shared_data):
    spec = get_task("udpos")
    folder = shared_data / "ud" / "UD_English-EWT"
    dev = load_split(spec, "validation", lang="en", data_files=str(folder / "en_ewt-ud-dev.conllu"))
    test = load_split(spec, "test", lang="en", data_files=str(folder / "en_ewt-ud-test.conllu"))
    assert (len(dev), len(test)) == (2001, 2077)


def test_xquad_files_as_lareqa_candidates(shared_data):
    queries, candidates = load_answer_retrieval(
        "lareqa", "validation", lang="th", data_files=str(shared_data / "xquad" / "xquad.{lang}.json")
    )
    assert len(queries) == 1190 and all(len(gold) == 11 for gold in queries["gold_ids"])
    by_id = dict(zip(candidates["candidate_id"], candidates["text"]))
    english = json.loads((shared_data / "xquad" / "xquad.en.json").read_text(encoding="utf-8"))
    first = english["data"][0]["paragraphs"][0]["qas"][0]
    gold_en = next(g for g in queries[0]["gold_ids"] if g.startswith("en_"))
    assert first["answers"][0]["text"] in by_id[gold_en]  # the gold sentence contains the English answer
