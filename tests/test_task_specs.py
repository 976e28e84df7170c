"""Task specs and the registry: facts from TASKS.md, validation errors, user task files."""

import subprocess
import sys
import textwrap

import pytest

from hf_itt.errors import TaskError
from hf_itt.metrics.scoring import metric_names
from hf_itt.task_types import type_names
from hf_itt.tasks import registry
from hf_itt.tasks.registry import TaskRegistry, all_tasks, get_task, list_tasks
from hf_itt.tasks.spec import TaskSpec

XTREME_40 = (
    "af ar bg bn de el en es et eu fa fi fr he hi hu id it ja jv ka kk ko ml mr ms my nl pt ru sw ta te th "
    "tl tr ur vi yo zh"
).split()
XTREME_R_50 = (
    "af ar az bg bn de el en es et eu fa fi fr gu he hi ht hu id it ja jv ka kk ko lt ml mr ms my nl pa pl "
    "pt qu ro ru sw ta te th tl tr uk ur vi wo yo zh"
).split()


def minimal(**fields):
    base = {"type": "classification", "columns": {"text_a": "s", "label": "y"}, "labels": ["a", "b"]}
    return {**base, **fields}


@pytest.fixture
def fresh_default(monkeypatch):
    """Run against a freshly built default registry; the session's one is restored afterwards."""
    monkeypatch.setattr(registry, "_default", None)


def test_every_builtin_task_is_registered_and_valid():
    expected = {
        "anli_plus",
        "mnli",
        "qqp",
        "squad_v1",
        "squad_v2",
        "hellaswag",
        "cosmosqa",
        "commonsenseqa",
        "ccg",
        "mlm",
        "xnli",
        "pawsx",
        "pawsx_en",
        "udpos",
        "udpos_en",
        "panx",
        "panx_en",
        "xquad",
        "mlqa",
        "tydiqa",
        "tydiqa_en",
        "bucc2018",
        "tatoeba",
        "xcopa",
        "copa",
        "siqa",
        "lareqa",
        "mewsli_x",
        "mewsli_x_wiki",
        "tatoeba_xtreme_r",
    }
    assert set(list_tasks()) == expected
    for spec in all_tasks():
        assert spec.type in type_names() and (spec.metric in metric_names() or not spec.task_type.default_metric)
        assert spec.description, spec.name
        assert spec.sources or spec.file_patterns or spec.name == "ccg", f"{spec.name} has no data location"


def test_language_lists_match_the_fact_sheet():
    counts = {
        "xnli": 15,
        "pawsx": 7,
        "udpos": 33,
        "panx": 40,
        "xquad": 11,
        "mlqa": 7,
        "tydiqa": 9,
        "bucc2018": 4,
        "tatoeba": 36,
        "xcopa": 11,
        "lareqa": 11,
        "mewsli_x": 11,
    }
    for name, count in counts.items():
        assert len(get_task(name).languages_for("xtreme")) == count, name
    counts_r = {"udpos": 38, "panx": 48, "xquad": 12, "tatoeba": 41, "xnli": 15, "mlqa": 7, "tydiqa": 9}
    for name, count in counts_r.items():
        assert len(get_task(name).languages_for("xtreme_r")) == count, name
    assert set(get_task("panx").languages) == set(XTREME_40)
    xtreme_r_union = {
        lang for spec in all_tasks() if "xtreme_r" in spec.benchmarks for lang in spec.languages_for("xtreme_r")
    }
    assert xtreme_r_union == set(XTREME_R_50)
    assert get_task("tatoeba").code_for("zh") == "cmn" and get_task("tatoeba").code_for("ro") == "ron"
    assert get_task("udpos").code_for("fa") == "Persian"


def test_benchmarks_train_tasks_and_metrics():
    xtreme = sorted(s.name for s in all_tasks() if "xtreme" in s.benchmarks)
    xtreme_r = sorted(s.name for s in all_tasks() if "xtreme_r" in s.benchmarks)
    assert xtreme == sorted(["xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "bucc2018", "tatoeba"])
    assert xtreme_r == sorted(
        [
            "xnli",
            "xcopa",
            "udpos",
            "panx",
            "xquad",
            "mlqa",
            "tydiqa",
            "tatoeba",
            "lareqa",
            "mewsli_x",
            "tatoeba_xtreme_r",
        ]
    )  # XTREME-R's Tatoeba protocol (TASKS.md 3.5)
    train = {s.name: s.train_task for s in all_tasks() if s.benchmarks}
    assert train == {
        "xnli": "mnli",
        "pawsx": "pawsx_en",
        "udpos": "udpos_en",
        "panx": "panx_en",
        "xquad": "squad_v1",
        "mlqa": "squad_v1",
        "tydiqa": "tydiqa_en",
        "bucc2018": None,
        "tatoeba": None,
        "xcopa": "copa",
        "lareqa": "squad_v1",
        "mewsli_x": "mewsli_x_wiki",
        "tatoeba_xtreme_r": None,
    }
    assert get_task("xcopa").extra_train_tasks == ["siqa"]
    metrics = {s.name: s.metric for s in all_tasks()}
    assert metrics["udpos"] == "pos_f1" and metrics["panx"] == "seqeval_f1" and metrics["mlqa"] == "mlqa"
    assert metrics["qqp"] == "acc_and_f1" and metrics["bucc2018"] == "bucc_f1" and metrics["mewsli_x"] == "map_at_20"
    assert metrics["tatoeba"] == "tatoeba_accuracy" and metrics["squad_v2"] == "squad_v2"
    assert metrics["mlm"] is None and metrics["ccg"] == "accuracy"  # MLM is ITT-only: no zero-shot score


def test_hub_ids_configs_and_lengths():
    assert [(s.path, s.name) for s in get_task("anli_plus").sources] == [
        ("facebook/anli", "plain_text"),
        ("nyu-mll/glue", "mnli"),
        ("stanfordnlp/snli", "plain_text"),
    ]
    assert get_task("anli_plus").sources[0].splits["train"] == ["train_r1", "train_r2", "train_r3"]
    assert get_task("mnli").sources[0].splits["validation"] == ["validation_matched"]
    assert get_task("panx").sources[0].config_for("de", "de") == "PAN-X.de"
    udpos = get_task("udpos")
    assert udpos.sources[0].config_for("de", udpos.code_for("de")) == "udpos.German"
    assert get_task("mlqa").sources[0].config_for("hi", "hi") == "mlqa.hi.hi"
    assert get_task("tydiqa").sources[0].name == "secondary_task"
    assert {s.name: s.max_length for s in all_tasks()}["squad_v1"] == 384
    assert get_task("xnli").max_length == 256 and get_task("tatoeba").max_length == 512
    assert get_task("xquad").doc_stride == 128
    # XTREME-R's dual encoders: LAReQA answers 256 / queries 96 tokens, Mewsli-X 64 / 64; XCOPA (+ SIQA, COPA) 128
    assert (get_task("lareqa").max_length, get_task("lareqa").query_max_length) == (256, 96)
    assert (get_task("mewsli_x").max_length, get_task("mewsli_x").query_max_length) == (64, 64)
    assert {get_task(name).max_length for name in ("xcopa", "copa", "siqa")} == {128}


def test_label_orders_and_num_labels():
    assert get_task("mnli").labels == ["entailment", "neutral", "contradiction"]
    assert get_task("panx").labels == ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    assert get_task("udpos").num_labels == 17 and get_task("udpos").labels[0] == "ADJ"
    assert get_task("hellaswag").num_labels == 4 and get_task("commonsenseqa").num_labels == 5
    assert get_task("xcopa").num_labels == 2 and get_task("siqa").num_labels == 3
    assert get_task("squad_v1").num_labels is None
    with pytest.raises(TaskError, match="resolve_labels"):
        get_task("ccg").num_labels


def test_missing_splits_and_aliases():
    udpos = get_task("udpos")
    assert not udpos.has_split("validation", "kk") and udpos.has_split("test", "kk")
    assert not udpos.has_split("train", "th") and udpos.has_split("train", "de")
    assert get_task("mewslix") is get_task("mewsli_x") and get_task("bucc").name == "bucc2018"
    assert get_task("xquad").roles == ["validation"]


def test_unknown_task_names_nearest_valid_names():
    with pytest.raises(TaskError, match=r"unknown task 'xnlii'.*'xnli'"):
        get_task("xnlii")
    with pytest.raises(TaskError, match=r"'squad_v1'"):
        get_task("squad1")


@pytest.mark.parametrize(
    "fields, message",
    [
        (minimal(type="classifcation"), r"unknown type 'classifcation'.*did you mean 'classification'"),
        (minimal(metric="acc"), r"unknown metric 'acc'"),
        (minimal(labels=None), r"needs `labels`"),
        (minimal(labels=["a", "a"]), r"duplicate"),
        (minimal(columns={"text_b": "s"}), r"must map \['text_a', 'label'\]"),
        (minimal(columns={"text_a": "s", "label": "y", "txt": "z"}), r"unknown key 'txt'"),
        (minimal(lables=["a"]), r"unknown key 'lables'.*did you mean 'labels'"),
        (minimal(type="multiple_choice", columns={"prompt": "p", "choices": ["a", "b"], "label": "y"}), r"num_choices"),
        (
            minimal(type="multiple_choice", num_choices=3, columns={"prompt": "p", "choices": ["a"], "label": "y"}),
            r"2 labels for 3 choices",
        ),
        (minimal(sources=[{"path": "x/y", "name": "{language}"}]), r"only \{lang\} and \{code\}"),
        (minimal(sources=[{"path": "x/y", "splits": {"training": "train"}}]), r"unknown split role 'training'"),
        (minimal(benchmarks=["xtreme2"]), r"unknown benchmark"),
        (minimal(source_labels=["x", "y"]), r"do not occur in source_labels"),
        (minimal(doc_stride=0), r"doc_stride"),
        (
            minimal(
                type="extractive_qa",
                labels=None,
                doc_stride=400,
                columns={"context": "c", "question": "q", "answers": "a"},
            ),
            r"doc_stride \(400\) must be below",
        ),
        (minimal(type="answer_retrieval", columns={}, labels=None), r"need a `converter`"),
        (minimal(converter="nope"), r"unknown converter 'nope'"),
    ],
)
def test_spec_validation_errors(fields, message):
    with pytest.raises(TaskError, match=message):
        TaskSpec.from_dict("toy", fields)


def test_with_overrides_returns_a_validated_copy():
    mnli = get_task("mnli")
    german = mnli.with_overrides(lang="de", languages=["de"])
    assert german.lang == "de" and mnli.lang == "en" and german.labels == mnli.labels
    with pytest.raises(TaskError, match="unknown key 'langs'"):
        mnli.with_overrides(langs=["de"])
    with pytest.raises(TaskError, match="unknown metric"):
        mnli.with_overrides(metric="bleu")
    with_source = mnli.with_overrides(sources=[{"path": "me/nli", "splits": {"train": "train"}}])
    assert with_source.sources[0].path == "me/nli"


def test_user_task_files_register_extend_and_override(tmp_path, fresh_default):
    user = tmp_path / "tasks.yaml"
    user.write_text(
        textwrap.dedent("""
        my_nli:
          extends: mnli
          description: German NLI for a machine-translated ITT ablation.
          lang: de
          languages: [de]
        my_sentiment:
          type: classification
          columns: {text_a: sentence, label: label}
          labels: [negative, positive]
    """)
    )
    assert registry.register_task_file(user) == ["my_nli", "my_sentiment"]
    spec = get_task("my_nli")
    assert spec.labels == get_task("mnli").labels and spec.lang == "de" and spec.sources[0].path == "nyu-mll/glue"
    assert "my_sentiment" in list_tasks()
    with pytest.raises(TaskError, match="already registered.*override: true"):
        registry.register_task_file(user)
    replaced = tmp_path / "more" / "replace.yml"
    replaced.parent.mkdir()
    replaced.write_text("mnli:\n  extends: mnli\n  override: true\n  max_length: 128\n")
    assert registry.register_task_dir(replaced.parent) == ["mnli"]
    assert get_task("mnli").max_length == 128


@pytest.mark.parametrize(
    "text, message",
    [
        ("a:\n  extends: nowhere\n", "extends unknown task 'nowhere'"),
        ("a:\n  extends: b\nb:\n  extends: a\n", "extends itself"),
        (
            "a:\n  type: classification\n  columns: {text_a: s, label: y}\n  labels: [x]\n  train_task: ghost\n",
            "training task 'ghost'",
        ),
        ("- just a list\n", "mapping of task name"),
        ("a: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_user_task_files(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    fresh = TaskRegistry()
    fresh.register_file(registry.BUILTIN_DIR / "intermediate.yaml")
    with pytest.raises(TaskError, match=message):
        fresh.register_file(path)
    with pytest.raises(TaskError, match="does not exist"):
        fresh.register_file(tmp_path / "missing.yaml")


def test_importing_the_registry_stays_cheap():
    code = (
        "import sys; from hf_itt.tasks.registry import get_task; get_task('xnli'); "
        "heavy = [m for m in ('datasets', 'torch', 'transformers') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
