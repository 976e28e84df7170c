"""Model cards parse back with huggingface_hub and carry lineage, metrics and the model-index."""

from __future__ import annotations

import re
from pathlib import Path

from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from hf_itt.hub.manifest import StageManifest, next_lineage
from hf_itt.hub.model_card import build_model_card, write_model_card
from hf_itt.pipeline.identity import stage_identity, task_identity

TOKEN = "hf_" + "ZyXwVuTsRqPoNmLkJiHgFeDcBa98765432"
BASE = "FacebookAI/xlm-roberta-large"


def stage_manifest(parent_ref: str | None = None) -> StageManifest:
    tasks = [
        task_identity("mnli", task_type="classification", source="nyu-mll/glue", config="mnli"),
        task_identity("squad_v1", task_type="extractive_qa", source="rajpurkar/squad"),
    ]
    identity = stage_identity(
        base_model=BASE,
        base_revision=None,
        previous_stage_hash="aaaa",
        tasks=tasks,
        sampler={"strategy": "temperature", "temperature": 2.0},
        training_args={"learning_rate": 1e-5, "per_device_train_batch_size": 4, "hub_token": TOKEN},
        seed=3,
    )
    first = next_lineage(
        None, base_model=BASE, base_revision="main", stage="s1", stage_hash="aaaa", tasks=["hellaswag"]
    )
    first[-1]["ref"] = parent_ref
    parent = StageManifest(experiment="grid", stage="s1", stage_hash="aaaa", lineage=first)
    return StageManifest(
        experiment="grid",
        stage="s2",
        stage_hash="bbbb",
        status="finished",
        identity=identity,
        tasks=tasks,
        source=parent_ref or "runs/grid/s1",
        lineage=next_lineage(
            parent, base_model=BASE, base_revision="main", stage="s2", stage_hash="bbbb", tasks=["mnli", "squad_v1"]
        ),
        metrics={"mnli": {"accuracy": 84.25}, "squad_v1": {"exact_match": 80.5, "f1": 88.125}},
        config={"hub": {"token": TOKEN}},
    )


def test_card_metadata_parses_back_with_huggingface_hub():
    card = ModelCard(str(build_model_card(stage_manifest(), repo_id="me/grid-s2", revision="main")))
    data = card.data
    assert data.library_name == "transformers" and data.base_model == BASE
    assert {"hf_itt", "intermediate-task-training", "xlm-roberta", "mnli", "squad_v1"} <= set(data.tags)
    assert data.datasets == ["nyu-mll/glue", "rajpurkar/squad"] and data.language == ["en"]
    assert [entry["stage"] for entry in data["hf_itt"]["lineage"]] == ["base", "s1", "s2"]
    assert data["hf_itt"]["metrics"]["squad_v1"]["f1"] == 88.125


def test_model_index_carries_every_dev_metric():
    card = ModelCard(str(build_model_card(stage_manifest(), repo_id="me/grid-s2")))
    name, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    found = {(r.dataset_name, r.metric_type): r.metric_value for r in results}
    assert name == "me/grid-s2"
    assert found == {("mnli", "accuracy"): 84.25, ("squad_v1", "exact_match"): 80.5, ("squad_v1", "f1"): 88.125}
    kinds = {r.dataset_name: (r.task_type, r.dataset_type, r.dataset_split) for r in results}
    assert kinds["mnli"] == ("text-classification", "nyu-mll/glue", "validation")
    assert kinds["squad_v1"][0] == "question-answering"
    assert len(card.data.eval_results) == 3  # ModelCardData parsed the same model-index itself


def test_body_shows_lineage_metrics_and_how_to_continue():
    text = build_model_card(stage_manifest(), repo_id="me/grid-s2", revision="v1").text
    lineage = text.split("## Lineage")[1].split("##")[0]
    assert lineage.index(BASE) < lineage.index("**s1** [hellaswag]") < lineage.index("**s2** [mnli+squad_v1]")
    assert "| squad_v1 | f1 | 88.125 |" in text and "| seed | 3 |" in text
    assert "from: me/grid-s2@v1" in text and 'revision="v1"' in text
    assert "| learning_rate | 1e-05 |" in text


def test_base_model_is_the_published_parent():
    card = build_model_card(stage_manifest(parent_ref="me/grid-s1@main"), repo_id="me/grid-s2")
    assert card.data.base_model == "me/grid-s1"


def test_written_card_loads_and_holds_no_token(tmp_path):
    path = write_model_card(tmp_path, stage_manifest(), repo_id="me/grid-s2")
    assert TOKEN not in path.read_text()
    card = ModelCard.load(path)
    assert card.data["hf_itt"]["stage_hash"] == "bbbb" and card.data.eval_results


def test_card_without_metrics_has_no_model_index():
    manifest = stage_manifest()
    manifest.metrics = {}
    card = ModelCard(str(build_model_card(manifest)))
    assert "model-index" not in card.data.to_dict() and "no dev evaluation" in card.text
    assert "from: runs/grid/s1" not in card.text  # the parent is not what one continues from
    assert "from: <path to this folder>" in card.text  # no machine path: the card travels with the folder


# ------------------------------------------------------------------------ what the Hub checks, offline

HUB_LICENSE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")  # the Hub's license ids: mit, apache-2.0, cc-by-sa-4.0, other
ISO_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]+)?$")


def assert_hub_valid_card(text: str) -> ModelCard:
    """The metadata checks huggingface_hub runs offline (strict parse of the YAML and the model-index into
    EvalResults), plus the Hub's value rules for ids, license and language; and no machine path anywhere."""
    from huggingface_hub.utils import validate_repo_id

    card = ModelCard(text, ignore_metadata_errors=False)
    data = card.data
    assert data.library_name == "transformers" and data.license and HUB_LICENSE.match(data.license)
    for repo_id in [data.base_model] if isinstance(data.base_model, str) else data.base_model or []:
        validate_repo_id(repo_id)
    for dataset in data.datasets or []:
        validate_repo_id(dataset)
    assert data.language and all(ISO_LANGUAGE.match(lang) for lang in data.language), data.language
    assert data.tags and "hf_itt" in data.tags
    model_index = data.to_dict().get("model-index")
    if model_index:
        name, results = model_index_to_eval_results(model_index)
        assert name and results and all(isinstance(r.metric_value, (int, float)) for r in results)
    assert not re.search(r"(^|[\s`'\"(])(/|\./|\.\./|~/)[\w.-]+/", text, re.M), "a machine path in the card"
    assert "runs/" not in text and str(Path.home()) not in text
    return card


def test_card_holds_no_machine_path_and_names_a_local_base_by_content():
    manifest = stage_manifest()
    manifest.source = "/scratch/me/runs/grid/s1/checkpoint"
    manifest.identity["base_model"] = "local:" + "ab12" * 16
    manifest.lineage[0]["ref"] = "/scratch/me/models/xlmr@main"
    text = str(build_model_card(manifest))
    card = assert_hub_valid_card(text)
    assert "/scratch" not in text and "`local:ab12ab12ab12`" in text
    assert card.data["hf_itt"]["lineage"][0]["ref"] == "local:ab12ab12ab12"
    assert card.data.base_model is None  # no ancestor on the Hub: none is claimed


def test_card_names_hub_datasets_license_and_pipeline():
    manifest = stage_manifest()
    manifest.tasks[0]["source"] = "nyu-mll/glue/mnli"  # how stage jobs record a source with its config
    manifest.tasks.append({"name": "ccg", "type": "tagging", "source": "ccgbank", "data_files": {"train": "x"}})
    card = assert_hub_valid_card(str(build_model_card(manifest, repo_id="me/grid-s2", license="mit")))
    assert card.data.datasets == ["nyu-mll/glue", "rajpurkar/squad"]  # local files name no dataset
    assert card.data.license == "mit" and card.data.pipeline_tag == "feature-extraction"
    assert build_model_card(manifest).data.license == "other"


def test_target_card_carries_zero_shot_results_in_its_model_index():
    from hf_itt.evaluation.results import TaskResult

    manifest = stage_manifest()
    manifest.tasks = [{"name": "xnli", "type": "classification", "source": "nyu-mll/glue/mnli", "lang": "en"}]
    manifest.metrics = {"xnli": {"accuracy": 84.0}}
    result = TaskResult(
        experiment="grid",
        seed=3,
        base_model=BASE,
        metric_version="1",
        itt={},
        checkpoint="",
        task="xnli",
        split="test",
        primary_metric="accuracy",
        languages={"de": {"accuracy": 77.5}, "sw": {"accuracy": 66.25}},
    )
    card = assert_hub_valid_card(str(build_model_card(manifest, kind="target", results=[result])))
    _, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    found = {(r.dataset_name, r.dataset_config, r.dataset_split): r.metric_value for r in results}
    assert found == {
        ("xnli", None, "validation"): 84.0,
        ("xnli (de)", "de", "test"): 77.5,
        ("xnli (sw)", "sw", "test"): 66.25,
    }
    assert {r.dataset_type for r in results} == {"nyu-mll/glue", "facebook/xnli"}
    assert card.data.pipeline_tag == "text-classification" and "fine-tuned head" in card.text
    assert "| xnli | test | accuracy | sw | 66.25 |" in card.text


def test_card_states_the_selection_and_what_the_stage_ran():
    from dataclasses import replace

    manifest = stage_manifest()
    budget = {
        "updates": 7000,
        "effective_batch_size": 32,
        "examples_seen": 224_000,
        "planned_updates": 36_816,
        "epochs": 0.57,
        "stopped_early": True,
        "selected_step": 4000,
        "metric_for_best_model": "average",
        "best_metric": 84.25,
    }
    manifest = replace(manifest, budget=budget, identity={**manifest.identity, "early_stopping_patience": 3})
    text = str(build_model_card(manifest, repo_id="me/grid-s2"))
    assert "| early_stopping_patience | 3 |" in text
    assert "| updates run | 7,000 of 36,816 planned (stopped early) |" in text
    assert "| examples seen | 224,000 (effective batch 32) |" in text
    assert "| exported weights | step 4,000 (best average = 84.25) |" in text
