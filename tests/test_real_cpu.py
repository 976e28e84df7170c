"""run_scripts/real_cpu.yaml and its prepare hook (hf_itt/demo/real_cpu.py): the data it writes from
../shared/data (split by article, nothing evaluated is trained on), and the plan of the study."""

import json
from pathlib import Path

import pytest

from hf_itt.demo import real_cpu
from hf_itt.errors import ConfigError, DataError
from hf_itt.tasks.loading import load_split

CONFIG = Path(__file__).resolve().parents[1] / "run_scripts" / "real_cpu.yaml"


@pytest.fixture(scope="module")
def study_data(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("real_cpu") / "data"
    real_cpu.write_study_data(shared_data, out)
    return out


def question_ids(path: Path) -> list[str]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [qa["id"] for article in data for paragraph in article["paragraphs"] for qa in paragraph["qas"]]


def test_xquad_is_split_by_article_in_every_language(study_data, shared_data):
    split = json.loads((study_data / "split.json").read_text())
    assert not set(split["evaluation"]["titles"]) & set(split["training"]["titles"])
    assert (len(split["evaluation"]["titles"]), len(split["training"]["titles"])) == (4, 11)
    trained = question_ids(study_data / "squad_en" / "train.json")
    evaluated = question_ids(study_data / "xquad" / "xquad.en.json")
    assert (len(trained), len(evaluated)) == (300, 104) and not set(trained) & set(evaluated)
    assert set(trained) | set(evaluated) <= set(question_ids(shared_data / "xquad" / "xquad.en.json"))
    for lang in real_cpu.XQUAD_LANGUAGES:
        assert question_ids(study_data / "xquad" / f"xquad.{lang}.json") == evaluated, lang


def test_training_and_evaluation_files_load_with_the_study_tasks(study_data):
    from hf_itt.config.loading import load_experiments  # registers run_scripts/real_cpu_tasks
    from hf_itt.tasks.registry import get_task

    load_experiments(CONFIG)
    assert (
        len(
            load_split(
                get_task("real_squad_en"), "train", data_files={"train": str(study_data / "squad_en" / "train.json")}
            )
        )
        == 300
    )
    assert (
        len(
            load_split(
                get_task("udpos_en"), "train", data_files={"train": str(study_data / "ud" / "en_ewt-ud-train.conllu")}
            )
        )
        == 2001
    )
    for lang in ("de", "zh", "hi", "ar"):
        assert (
            len(load_split(get_task("real_udpos"), "validation", lang=lang, data_files=str(study_data / "ud"))) == 200
        )
    copa = load_split(
        get_task("real_copa_mt"), "train", data_files={"train": str(study_data / "xcopa" / "train.en.jsonl")}
    )
    assert len(copa) == 500
    for lang in get_task("real_xcopa").languages:
        assert (
            len(load_split(get_task("real_xcopa"), "validation", lang=lang, data_files=str(study_data / "xcopa")))
            == 100
        )
    for lang in ("ar", "de", "sw", "th", "zh"):
        assert (
            len(load_split(get_task("tatoeba"), "validation", lang=lang, data_files=str(study_data / "tatoeba"))) == 200
        )


def test_xcopa_training_rows_are_test_items_not_the_evaluated_validation_items(study_data, shared_data):
    rows = [json.loads(line) for line in (study_data / "xcopa" / "train.en.jsonl").read_text().splitlines()]
    assert [row["idx"] for row in rows] == list(range(500))
    validation_mt = {
        json.loads(line)["premise"]
        for path in (shared_data / "xcopa" / "data-gmt").glob("*/val.*.jsonl")
        for line in path.read_text(encoding="utf-8").splitlines()
    }
    assert not {row["premise"] for row in rows} & validation_mt


def test_a_second_run_rewrites_nothing(study_data, shared_data):
    before = {p: p.stat().st_mtime_ns for p in study_data.rglob("*") if p.is_file() and not p.is_symlink()}
    real_cpu.write_study_data(shared_data, study_data)
    assert {p: p.stat().st_mtime_ns for p in study_data.rglob("*") if p.is_file() and not p.is_symlink()} == before


def test_the_study_plan_freezes_ten_layers_and_has_both_arms():
    from hf_itt.config.loading import load_experiments

    configs = {config.experiment: config for config in load_experiments(CONFIG)}
    assert set(configs) == {"baseline", "itt-squad"}
    assert configs["baseline"].model.freeze[-1] == "encoder.layer.9." and len(configs["baseline"].model.freeze) == 11
    assert configs["baseline"].targets.tasks == ["real_xquad", "real_udpos", "real_xcopa", "tatoeba"]
    assert [task.name for task in configs["itt-squad"].stages[0].tasks] == ["real_squad_en"]


def test_prepare_refuses_another_model_folder_and_missing_samples(monkeypatch, tmp_path):
    from hf_itt.config.loading import load_experiments

    config = load_experiments(CONFIG, [f"model.name_or_path={tmp_path}/other"])[0]
    with pytest.raises(ConfigError, match="must end in /e5-small"):
        real_cpu.prepare(config)
    monkeypatch.setenv("HF_ITT_SHARED_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="HF_ITT_SHARED_DATA"):
        real_cpu.shared_data()
