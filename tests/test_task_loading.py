"""Loading every task from its fixtures into the canonical schema; Hub path (mocked); clear data errors."""

import json
from pathlib import Path

import datasets
import pytest

from hf_itt.errors import DataError, HubError
from hf_itt.tasks import schema
from hf_itt.tasks.loading import load_answer_retrieval, load_split, resolve_labels
from hf_itt.tasks.registry import all_tasks, get_task

DATA = Path(__file__).parent / "fixtures" / "data"


def fixture_data_files(task_name: str) -> dict:
    """data_files for ``task_name`` from tests/fixtures/data/index.json (role -> absolute path or paths)."""
    entries = json.loads((DATA / "index.json").read_text(encoding="utf-8"))[task_name]
    return {
        role: [str(DATA / p) for p in path] if isinstance(path, list) else str(DATA / path)
        for role, path in entries.items()
    }


def roles_of(task_name):
    return [role for role in fixture_data_files(task_name) if role in schema.ROLES]


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def jsonl(path: Path, rows) -> str:
    return write(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


# ----------------------------------------------------------------------------------- every task, fixtures


def test_index_covers_every_registered_task():
    index = json.loads((DATA / "index.json").read_text(encoding="utf-8"))
    assert set(index) == {spec.name for spec in all_tasks()}


@pytest.mark.parametrize("spec", all_tasks(), ids=lambda spec: spec.name)
def test_every_task_loads_its_fixtures_into_the_canonical_schema(spec):
    data_files = fixture_data_files(spec.name)
    for role in roles_of(spec.name):
        if spec.task_type.candidate_pool:
            queries, candidates = load_answer_retrieval(spec, role, data_files=data_files)
            assert queries.column_names == list(spec.task_type.columns)
            assert candidates.column_names == ["candidate_id", "text", "context"]
            assert all(set(gold) <= set(candidates["candidate_id"]) for gold in queries["gold_ids"])
            continue
        data = load_split(spec, role, data_files=data_files)
        assert data.column_names == list(spec.task_type.columns) and len(data) >= 2
        assert load_split(spec, role, data_files=data_files)[:] == data[:]  # deterministic order
        labels = resolve_labels(spec, data_files).labels
        if spec.type == "classification":
            assert data.features["label"].names == labels
        if spec.type == "tagging":
            assert data.features["tags"].feature.names == labels
            assert all(len(t) == len(g) for t, g in zip(data["tokens"], data["tags"]))
        if spec.type == "multiple_choice":
            assert all(len(c) == spec.num_choices for c in data["choices"])
            assert all(0 <= label < spec.num_choices for label in data["label"])


def test_nli_labels_and_anli_plus_concatenation_drop_snli_minus_one():
    mnli = load_split("mnli", "train", data_files=fixture_data_files("mnli"))
    raw = [json.loads(line) for line in open(fixture_data_files("mnli")["train"])]
    assert mnli["label"] == [row["label"] for row in raw]  # Hub ids already in our order
    anli_plus = load_split("anli_plus", "train", data_files=fixture_data_files("anli_plus"))
    assert len(anli_plus) == 6 + 8 + 6  # ANLI + MNLI + SNLI without its one -1 row
    assert anli_plus[-1]["text_b"] == "A dog sleeps indoors." and anli_plus[-1]["label"] == 2


def test_multiple_choice_label_conversions():
    hellaswag = load_split("hellaswag", "train", data_files=fixture_data_files("hellaswag"))
    assert hellaswag[0]["label"] == 3  # string "3"
    assert hellaswag[1]["prompt"] == "A woman is standing in a kitchen next to a bowl."
    assert hellaswag[1]["choices"][0] == "She pours flour into the bowl and stirs."  # ctx_b + " " + ending
    csqa = load_split("commonsenseqa", "train", data_files=fixture_data_files("commonsenseqa"))
    assert csqa["label"] == [0, 1, 0, 3, 2]  # answerKey A B A D C
    assert csqa[1]["choices"][1] == "populated areas"
    siqa = load_split("siqa", "train", data_files=fixture_data_files("siqa"))
    assert siqa["label"] == [2, 0, 2, 1, 1]  # 1-based string labels
    xcopa = load_split("xcopa", "validation", data_files=fixture_data_files("xcopa"))
    assert xcopa[3]["prompt"] == "Ese oli mullikilesse mässitud. What was the cause?"
    assert xcopa[3]["choices"] == ["See oli õrn.", "See oli väike."]


def test_tagging_fixtures_conllu_and_ccg_labels_file():
    udpos = get_task("udpos")
    german = load_split(udpos, "test", lang="de", data_files=fixture_data_files("udpos"))
    assert german[0]["tokens"] == ["Ich", "gehe", "zu", "dem", "Bahnhof", "."]  # "3-4 zum" skipped
    assert udpos_names(german[0]["tags"]) == ["PRON", "VERB", "ADP", "DET", "NOUN", "PUNCT"]
    ccg_files = fixture_data_files("ccg")
    ccg = load_split("ccg", "train", data_files=ccg_files)
    tags_to_id = json.loads(Path(ccg_files["labels"]).read_text())
    assert ccg.features["tags"].feature.names == sorted(tags_to_id, key=tags_to_id.get)
    assert ccg.features["tags"].feature.int2str(ccg[1]["tags"]) == ["N", "S[dcl]\\NP", "(S\\NP)\\(S\\NP)", "."]
    without_labels_key = {k: v for k, v in ccg_files.items() if k != "labels"}  # found next to the data
    assert (
        load_split("ccg", "validation", data_files=without_labels_key)[:]
        == load_split("ccg", "validation", data_files=ccg_files)[:]
    )


def udpos_names(ids):
    return [get_task("udpos").labels[i] for i in ids]


def test_filters_and_retrieval_files():
    tydiqa_en = load_split("tydiqa_en", "train", data_files=fixture_data_files("tydiqa_en"))
    assert len(tydiqa_en) == 3 and all(i.startswith("english-") for i in tydiqa_en["id"])
    arabic = load_split("tydiqa", "train", lang="ar", data_files=fixture_data_files("tydiqa"))
    assert arabic["id"] == ["arabic-1074-2"]
    bucc = load_split("bucc2018", "validation", lang="de", data_files=fixture_data_files("bucc2018"))
    pairs = [(r["source_id"], r["target_id"]) for r in bucc if r["source_id"] and r["target_id"]]
    assert pairs == [
        ("de-000000001", "en-000000001"),
        ("de-000000003", "en-000000003"),
        ("de-000000004", "en-000000004"),
        ("de-000000005", "en-000000005"),
    ]
    assert sum(1 for r in bucc if not r["target_id"]) == 2 and sum(1 for r in bucc if not r["source_id"]) == 3
    tatoeba = load_split("tatoeba", "validation", lang="de", data_files=str(DATA / "tatoeba"))  # a directory
    assert tatoeba[4]["source_sentence"] == "Wir fahren morgen nach Berlin." and tatoeba[4]["target_id"] == "4"


def test_answer_retrieval_fixtures():
    queries, candidates = load_answer_retrieval(
        "lareqa", "validation", lang="de", data_files=fixture_data_files("lareqa")
    )
    assert len(queries) == 5 and len(candidates) == 11 * 4
    assert all(len(gold) == 11 for gold in queries["gold_ids"])
    amazon = queries[4]
    assert amazon["query_id"] == "56beb4343aeaaa14008c9221_de" and "de_3_1" in amazon["gold_ids"]
    assert candidates[candidates["candidate_id"].index("de_3_1")]["text"] == (
        "The basin covers seven million square kilometres."
    )
    queries, candidates = load_answer_retrieval(
        "mewsli_x", "validation", lang="de", data_files=fixture_data_files("mewsli_x")
    )
    assert queries[0] == {
        "query_id": "WN-de-1",
        "gold_ids": ["Q64"],
        "query": "Berlin: Der Bürgermeister von { Berlin } lobte die (neue) Brücke.",
    }
    assert candidates[0]["text"] == "Paris is the capital and most populous city of France. It is on the Seine."
    assert load_split("mewsli_x", "validation", data_files=fixture_data_files("mewsli_x"))["gold_ids"] == [
        ["Q90"],
        ["Q142"],
        ["Q84"],
    ]


# -------------------------------------------------------------------------------------- label mapping


def test_labels_are_mapped_by_name_from_alphabetical_source_ids(tmp_path):
    rows = [{"premise": "p", "hypothesis": "h", "label": i} for i in (0, 1, 2)]
    alphabetical = get_task("xnli").with_overrides(source_labels=["contradiction", "entailment", "neutral"])
    data = load_split(alphabetical, "validation", data_files=jsonl(tmp_path / "x.jsonl", rows))
    names = data.features["label"].names
    assert [names[i] for i in data["label"]] == ["contradiction", "entailment", "neutral"]
    assert data["label"] == [2, 0, 1]
    named = [{"premise": "p", "hypothesis": "h", "label": n} for n in ("neutral", "contradiction")]
    assert load_split("xnli", "test", data_files=jsonl(tmp_path / "n.jsonl", named))["label"] == [1, 2]
    table = write(tmp_path / "t.tsv", "premise\thypothesis\tlabel\np\th\t2\np2\th2\t0\n")
    assert load_split("xnli", "test", data_files=table)["label"] == [2, 0]  # digits read from text


def test_hub_path_maps_classlabel_names_and_templated_configs(monkeypatch):
    calls = []

    def fake_load_dataset(path, name=None, split=None, revision=None):
        calls.append((path, name, split))
        features = datasets.Features(
            {
                "premise": datasets.Value("string"),
                "hypothesis": datasets.Value("string"),
                "label": datasets.ClassLabel(names=["contradiction", "entailment", "neutral"]),
            }
        )
        return datasets.Dataset.from_dict(
            {"premise": ["a", "b", "c"], "hypothesis": ["x", "y", "z"], "label": [0, 1, 2]}, features=features
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_split("xnli", "validation", lang="sw")
    assert calls == [("facebook/xnli", "sw", "validation")]
    assert data["label"] == [2, 0, 1] and data["text_a"] == ["a", "b", "c"]
    calls.clear()
    assert len(load_split("anli_plus", "train")) == 15
    assert calls == [
        ("facebook/anli", "plain_text", "train_r1"),
        ("facebook/anli", "plain_text", "train_r2"),
        ("facebook/anli", "plain_text", "train_r3"),
        ("nyu-mll/glue", "mnli", "train"),
        ("stanfordnlp/snli", "plain_text", "train"),
    ]


def test_hub_configs_for_language_code_maps(monkeypatch):
    calls = []

    def fake_load_dataset(path, name=None, split=None, revision=None):
        calls.append((path, name, split))
        return datasets.Dataset.from_dict(
            {"source_sentence": ["s"], "target_sentence": ["t"], "source_lang": ["x"], "target_lang": ["eng"]}
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    load_split("tatoeba", "validation", lang="fa")
    assert calls == [("google/xtreme", "tatoeba.pes", "validation")]
    with pytest.raises(DataError, match="no Hub source serves 'ro'"):
        load_split("tatoeba", "validation", lang="ro")
    with pytest.raises(DataError, match="no 'validation' split for 'th'"):
        load_split("udpos", "validation", lang="th")


def test_hub_tag_sequences_map_by_classlabel_name(monkeypatch):
    jiant_order = ["B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER", "O"]  # alphabetical, unlike the Hub

    def fake_load_dataset(path, name=None, split=None, revision=None):
        assert (path, name) == ("unimelb-nlp/wikiann", "pl")  # XTREME-R language served by the second source
        features = datasets.Features(
            {
                "tokens": datasets.List(datasets.Value("string")),
                "ner_tags": datasets.List(datasets.ClassLabel(names=jiant_order)),
                "langs": datasets.List(datasets.Value("string")),
            }
        )
        return datasets.Dataset.from_dict(
            {"tokens": [["Jan", "Kowalski", "w", "Krakowie"]], "ner_tags": [[2, 5, 6, 0]], "langs": [["pl"] * 4]},
            features=features,
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_split("panx", "test", lang="pl")
    assert [get_task("panx").labels[i] for i in data[0]["tags"]] == ["B-PER", "I-PER", "O", "B-LOC"]


def test_unreachable_hub_gives_one_clear_error(monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        HubError,
        match=r"could not reach the Hugging Face Hub for mnli \(nyu-mll/glue/mnli\).*"
        r"data_files",
    ):
        load_split("mnli", "train")


# -------------------------------------------------------------------------------------- bad inputs


def nli_file(tmp_path, rows, name="bad.jsonl"):
    return jsonl(tmp_path / name, rows)


@pytest.mark.parametrize(
    "rows, message",
    [
        (
            [{"premise": "p", "label": 0}],
            r"lacks columns \['hypothesis'\]; expected \['hypothesis', 'label', 'premise'\]",
        ),
        (
            [{"premise": "p", "hypothesis": "h", "label": 0}, {"premise": "p", "hypothesis": "h", "label": 7}],
            r"bad.jsonl, row 2: label 7 is not one of \['entailment', 'neutral', 'contradiction'\]",
        ),
        ([{"premise": "p", "hypothesis": "h", "label": "maybe"}], r"row 1: label 'maybe'"),
        ([{"premise": 3, "hypothesis": "h", "label": 0}], r"row 1: text_a \('premise'\) must be text"),
    ],
)
def test_bad_classification_rows(tmp_path, rows, message):
    with pytest.raises(DataError, match=message):
        load_split("mnli", "train", data_files=nli_file(tmp_path, rows))


def test_empty_split_after_dropping_labels(tmp_path):
    rows = [{"id": 1, "sentence1": "a", "sentence2": "b", "label": -1}]
    with pytest.raises(DataError, match="pawsx: the test split for 'en' is empty"):
        load_split("pawsx", "test", data_files={"test": nli_file(tmp_path, rows)})


def test_unknown_language_and_role(tmp_path):
    with pytest.raises(DataError, match="xnli has no language 'xx'; its languages are ar, bg"):
        load_split("xnli", "test", lang="xx", data_files=fixture_data_files("xnli"))
    with pytest.raises(DataError, match="unknown split 'training'"):
        load_split("xnli", "training", data_files=fixture_data_files("xnli"))
    with pytest.raises(DataError, match="data_files has no entry for 'train'"):
        load_split("xnli", "train", data_files=fixture_data_files("xnli"))
    with pytest.raises(DataError, match="nope.jsonl for 'train' does not exist"):
        load_split("xnli", "train", data_files=str(tmp_path / "nope.jsonl"))


def squad_row(context, text, start):
    return {
        "id": "q1",
        "title": "t",
        "context": context,
        "question": "q?",
        "answers": {"text": [text], "answer_start": [start]},
    }


@pytest.mark.parametrize(
    "row, message",
    [
        (squad_row("Paris is in France.", "France", 30), r"row 1: answer 'France' at answer_start 30 runs past"),
        (
            squad_row("Paris is in France.", "France", 0),
            r"answer 'France' does not match the context at answer_start 0 "
            r"\(context has 'Paris ' there\)",
        ),
    ],
)
def test_bad_qa_answers(tmp_path, row, message):
    with pytest.raises(DataError, match=message):
        load_split("squad_v1", "train", data_files=jsonl(tmp_path / "squad.jsonl", [row]))


def test_squad_nested_json_including_unanswerable(tmp_path):
    nested = {
        "version": "v2.0",
        "data": [
            {
                "title": "T",
                "paragraphs": [
                    {
                        "context": "Paris is in France.",
                        "qas": [
                            {
                                "id": "a",
                                "question": "Where is Paris?",
                                "answers": [{"text": "France", "answer_start": 12}],
                            },
                            {
                                "id": "b",
                                "question": "Where is Rome?",
                                "answers": [],
                                "is_impossible": True,
                                "plausible_answers": [{"text": "France", "answer_start": 12}],
                            },
                        ],
                    }
                ],
            }
        ],
    }
    data = load_split("squad_v2", "validation", data_files=write(tmp_path / "dev-v2.0.json", json.dumps(nested)))
    assert data["id"] == ["a", "b"] and data[1]["answers"] == {"text": [], "answer_start": []}
    assert data[0]["answers"] == {"text": ["France"], "answer_start": [12]}


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("data.xlsx", b"x", r"unsupported file format '.xlsx'"),
        (
            "data.jsonl",
            '{"premise": "caf\xe9"}\n'.encode("latin-1"),
            r"data.jsonl is not UTF-8 text \(invalid .* at byte 16, line 1\)",
        ),
        ("data.jsonl", b'{"premise": "p"\n', r"data.jsonl line 1 is not valid JSON"),
        ("data.json", b'{"rows": 3}', r"neither SQuAD-style JSON"),
        ("data.csv", b"premise,hypothesis,label\np,h\n", r"line 2 has a different number of fields"),
    ],
)
def test_bad_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_split("mnli", "train", data_files=str(path))


def test_bad_tagging_and_retrieval_files(tmp_path):
    conllu = write(tmp_path / "x.conllu", "1\tHallo\thallo\tINTJ\n")
    with pytest.raises(DataError, match=r"x.conllu line 1 has 4 tab-separated fields"):
        load_split("udpos", "test", data_files=conllu)
    conllu = write(tmp_path / "y.conllu", "1\tHallo\thallo\tGREETING\t_\t_\t0\troot\t_\t_\n\n")
    with pytest.raises(DataError, match=r"row 1: label 'GREETING' is not one of \['ADJ'"):
        load_split("udpos", "test", data_files=conllu)
    ccg = write(tmp_path / "train.txt", "The cat\tNP\n")
    with pytest.raises(DataError, match=r"train.txt line 1 has 2 tokens but 1 tags"):
        load_split("ccg", "train", data_files={"train": ccg, "labels": fixture_data_files("ccg")["labels"]})
    with pytest.raises(DataError, match=r"needs its label inventory 'tags_to_id.json'"):
        load_split("ccg", "train", data_files={"train": ccg})
    panx = jsonl(tmp_path / "p.jsonl", [{"tokens": ["a", "b"], "ner_tags": [0], "langs": ["en", "en"]}])
    with pytest.raises(DataError, match=r"row 1: tokens and tags must be lists of equal length"):
        load_split("panx", "test", data_files=panx)
    write(tmp_path / "tatoeba.deu-eng.deu", "a\nb\n")
    write(tmp_path / "tatoeba.deu-eng.eng", "a\n")
    with pytest.raises(DataError, match=r"has 2 lines but .*tatoeba.deu-eng.eng has 1"):
        load_split("tatoeba", "validation", lang="de", data_files=str(tmp_path))
    mc = jsonl(tmp_path / "copa.jsonl", [{"premise": "p", "choice1": "a", "question": "cause", "label": 0}])
    with pytest.raises(DataError, match=r"lacks columns \['choice2'\]"):
        load_split("copa", "train", data_files=mc)


def test_panx_raw_conll_strips_language_prefix(tmp_path):
    raw = write(tmp_path / "train.conll", "en:Angela\tB-PER\nen:Merkel\tI-PER\nen::\tO\n\nen:Paris\tB-LOC\n")
    data = load_split("panx", "train", data_files=raw)
    assert data["tokens"] == [["Angela", "Merkel", ":"], ["Paris"]] and data["tags"] == [[1, 2, 0], [5]]


def test_answer_retrieval_errors(tmp_path):
    with pytest.raises(DataError, match="no Hub copy: build it with get-mewsli-x.sh"):
        load_answer_retrieval("mewsli_x", "test", lang="en")
    record = json.loads(Path(fixture_data_files("mewsli_x")["validation"]).read_text().splitlines()[0])
    record["context"]["text"] = ""  # a *_no_text release file
    no_text = jsonl(tmp_path / "wikinews_mentions-dev.jsonl", [record])
    files = {"validation": no_text, "candidates": fixture_data_files("mewsli_x")["candidates"]}
    with pytest.raises(DataError, match=r"does not match the article text.*get-mewsli-x.sh"):
        load_answer_retrieval("mewsli_x", "validation", data_files=files)
    gold = jsonl(tmp_path / "c.jsonl", [json.loads(Path(files["candidates"]).read_text().splitlines()[1])])
    with pytest.raises(DataError, match=r"query 'WN-en-1' \(validation, en\) has gold ids \['Q90'\] missing"):
        load_answer_retrieval(
            "mewsli_x",
            "validation",
            lang="en",
            data_files={"validation": fixture_data_files("mewsli_x")["validation"], "candidates": gold},
        )


# ------------------------------------------------------------------- XCOPA's English training data, Hub schemas

COPA_FEATURES = datasets.Features(
    {  # aps/super_glue, config copa (the SuperGLUE loader's schema)
        "premise": datasets.Value("string"),
        "choice1": datasets.Value("string"),
        "choice2": datasets.Value("string"),
        "question": datasets.Value("string"),
        "idx": datasets.Value("int32"),
        "label": datasets.ClassLabel(names=["choice1", "choice2"]),
    }
)
SIQA_FEATURES = datasets.Features(
    {  # allenai/social_i_qa: the label is the 1-based answer number as a string
        "context": datasets.Value("string"),
        "question": datasets.Value("string"),
        "answerA": datasets.Value("string"),
        "answerB": datasets.Value("string"),
        "answerC": datasets.Value("string"),
        "label": datasets.Value("string"),
    }
)


def test_copa_loads_from_its_hub_schema(monkeypatch):
    def fake_load_dataset(path, name=None, split=None, revision=None):
        assert (path, name, split) == ("aps/super_glue", "copa", "train")
        return datasets.Dataset.from_dict(
            {
                "premise": ["My body cast a shadow over the grass.", "The man broke his toe."],
                "choice1": ["The sun was rising.", "He dropped a hammer on his foot."],
                "choice2": ["The grass was cut.", "He got a hole in his sock."],
                "question": ["cause", "cause"],
                "idx": [0, 1],
                "label": [0, 0],
            },
            features=COPA_FEATURES,
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_split("copa", "train")
    assert data["label"] == [0, 0]  # the index of the right choice, not a label name
    assert data[0]["prompt"] == "My body cast a shadow over the grass. What was the cause?"
    assert data[0]["choices"] == ["The sun was rising.", "The grass was cut."]


def test_siqa_loads_from_its_hub_schema(monkeypatch):
    def fake_load_dataset(path, name=None, split=None, revision=None):
        assert (path, split) == ("allenai/social_i_qa", "validation")
        return datasets.Dataset.from_dict(
            {
                "context": ["Tracy didn't go home that evening.", "Sydney walked past a homeless woman."],
                "question": ["What does Tracy need to do before this?", "How would you describe Sydney?"],
                "answerA": ["make a new plan", "sympathetic"],
                "answerB": ["Go home and see Riley", "like a person"],
                "answerC": ["Find somewhere to go", "a good person"],
                "label": ["3", "1"],
            },
            features=SIQA_FEATURES,
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_split("siqa", "validation")
    assert data["label"] == [2, 0]  # "3" -> the third answer
    assert data[0]["prompt"] == "Tracy didn't go home that evening. What does Tracy need to do before this?"
    assert data[1]["choices"] == ["sympathetic", "like a person", "a good person"]
