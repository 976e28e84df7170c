"""Stage identity covers every setting that can change the weights, and nothing else.

``test_every_config_field_is_classified`` walks the experiment schema (as docs/reference.md does)
and needs each field in ``IN_THE_HASH`` or ``OUTSIDE_THE_HASH`` (hf_itt/pipeline/config_identity.py);
the two parametrised tests then change every field of each table and check the hashes move, or not.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from hf_itt.config.loading import load_experiment
from hf_itt.pipeline.config_identity import IN_THE_HASH, OUTSIDE_THE_HASH
from hf_itt.pipeline.jobs import build_jobs
from scripts.docgen import walk_config

DATA = Path(__file__).parent / "fixtures" / "data"
MNLI_TRAIN, MNLI_DEV = DATA / "mnli" / "train.jsonl", DATA / "mnli" / "validation_matched.jsonl"


def base_config() -> dict:
    """One `from:` stage, one trained stage whose dev set picks the weights, a target, health restarts."""
    return {
        "experiment": "identity",
        "seed": 5,
        "model": {"name_or_path": "xlm-roberta-large", "revision": "r1"},
        "defaults": {"training": {"learning_rate": 1e-5, "max_steps": 3}},
        "stages": [
            {"name": "start", "from": "someone/itt-start@v1"},
            {
                "name": "nli",
                "tasks": [{"name": "mnli", "data_files": {"train": str(MNLI_TRAIN), "validation": str(MNLI_DEV)}}],
                "training": {"load_best_model_at_end": True, "eval_strategy": "steps", "save_strategy": "steps"},
                "preset": "xlmr-base-itt",
            },
        ],
        "targets": {"tasks": ["xnli"], "data_files": {"mnli": {"train": str(MNLI_TRAIN)}}},
        "health": {"on_collapse": "restart"},
    }


def hashes(tmp_path: Path, *overrides: str, config: dict | None = None) -> list[tuple[str, str]]:
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(config or base_config(), sort_keys=False), encoding="utf-8")
    return [(job.name, job.stage_hash) for job in build_jobs(load_experiment(path, overrides))]


@pytest.fixture
def other_tokenizer(tiny_checkpoint, tmp_path) -> Path:
    folder = tmp_path / "tokenizer"
    shutil.copytree(tiny_checkpoint, folder, ignore=shutil.ignore_patterns("*.safetensors", "config.json"))
    return folder


@pytest.fixture
def task_dir(tmp_path) -> Path:
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "mine.yaml").write_text(yaml.safe_dump({"my_nli": {"extends": "mnli"}}), encoding="utf-8")
    return folder


# Model selection on the target's English dev set (the base config's target trains without it).
TARGET_SELECTION = [
    "targets.training.load_best_model_at_end=true",
    "targets.training.eval_strategy=steps",
    "targets.training.save_strategy=steps",
    f"targets.data_files.mnli.validation={MNLI_DEV}",
]

# A change of every field that enters the hash (``{tmp}`` is the test's folder).
CHANGES_IN = {
    "seed": ["seed=6"],
    "model.name_or_path": ["model.name_or_path=xlm-roberta-base"],
    "model.revision": ["model.revision=r2"],
    "model.tokenizer": ["model.tokenizer={tokenizer}"],
    "model.freeze": ["model.freeze=[encoder.layer.0.]"],
    "defaults.training": ["defaults.training.learning_rate=2e-5"],
    "defaults.group_by_length": ["defaults.group_by_length=false"],
    "stages[].training": ["stages.1.training.weight_decay=0.1"],
    "stages[].preset": ["stages.1.preset=xlmr-large-itt"],
    "stages[].from": ["stages.0.from=someone/itt-start@v2"],
    "stages[].max_length": ["stages.1.max_length=128"],
    "stages[].tasks[].max_length": ["stages.1.tasks.0.max_length=64"],
    "stages[].early_stopping_patience": ["stages.1.early_stopping_patience=3"],  # the preset's is 30
    "stages[].tasks[].name": ["stages.1.tasks.0.name=qqp"],
    "stages[].tasks[].lang": ["stages.1.tasks.0.lang=de"],
    "stages[].tasks[].data_files": [f"stages.1.tasks.0.data_files.train={MNLI_DEV}"],
    "stages[].tasks[].max_train_examples": ["stages.1.tasks.0.max_train_examples=10"],
    "stages[].tasks[].max_eval_examples": ["stages.1.tasks.0.max_eval_examples=10"],
    "stages[].tasks[].weight": ["stages.1.tasks.0.weight=2.0"],
    "stages[].sampling.strategy": ["stages.1.sampling.strategy=uniform"],
    "stages[].sampling.temperature": ["stages.1.sampling.temperature=3.0"],
    "stages[].sampling.cap": ["stages.1.sampling.cap=100"],
    "stages[].sampling.anneal_alpha_end": ["stages.1.sampling.anneal_alpha_end=0.5"],
    "targets.tasks": ["targets.tasks=[pawsx]"],
    "targets.data_files": [f"targets.data_files.mnli.train={MNLI_DEV}"],
    "targets.training": ["targets.training.learning_rate=3e-5"],
    "targets.per_task_training": ["targets.per_task_training={{xnli: {{num_train_epochs: 3}}}}"],
    "targets.preset": ["targets.preset=xlmr-large-target", f"targets.data_files.mnli.validation={MNLI_DEV}"],
    "targets.max_train_examples": ["targets.max_train_examples=50"],
    "targets.max_length": ["targets.max_length={{xnli: 128}}"],
    "targets.max_eval_examples": [
        "targets.max_eval_examples=7",
        "targets.training.load_best_model_at_end=true",
        "targets.training.eval_strategy=steps",
        "targets.training.save_strategy=steps",
        f"targets.data_files.mnli.validation={MNLI_DEV}",
    ],
    "targets.early_stopping_patience": ["targets.early_stopping_patience=2", *TARGET_SELECTION],
    "health.enabled": ["health.enabled=false"],
    "health.on_collapse": ["health.on_collapse=warn"],
    "health.collapse_threshold": ["health.collapse_threshold=0.9"],
    "health.collapse_margin": ["health.collapse_margin=0.2"],
    "health.collapse_patience": ["health.collapse_patience=2"],
    "health.collapse_max_examples": ["health.collapse_max_examples=128"],
    "health.collapse_min_examples": ["health.collapse_min_examples=10"],
    "health.max_restarts": ["health.max_restarts=1"],
    "health.on_divergence": ["health.on_divergence=restart"],
    "health.divergence_factor": ["health.divergence_factor=4.0"],
    "health.divergence_min_increase": ["health.divergence_min_increase=2.0"],
    "health.window": ["health.window=10"],
    "health.min_logs": ["health.min_logs=3"],
    "health.weight_check_steps": ["health.weight_check_steps=5"],
}

# A change of every field that must not enter the hash.
CHANGES_OUT = {
    "experiment": ["experiment=renamed"],
    "output_dir": ["output_dir=elsewhere/{{experiment}}"],
    "benchmarks": ["benchmarks=[xtreme]"],
    "report_dir": ["report_dir=reports"],
    "task_dirs": ["task_dirs=[{task_dir}]"],
    "prepare": ["prepare=os.path:join"],
    "stages[].name": ["stages.1.name=renamed"],
    "defaults.deepspeed": ["defaults.deepspeed=zero2"],
    "stages[].deepspeed": ["stages.1.deepspeed=zero3"],
    "targets.deepspeed": ["targets.deepspeed=zero2"],
    "targets.languages": ["targets.languages={{xnli: [de]}}"],
    "evaluation.splits": ["evaluation.splits=[test]"],
    "evaluation.batch_size": ["evaluation.batch_size=8"],
    "evaluation.retrieval_layer": ["evaluation.retrieval_layer=3"],
    "evaluation.retrieval_max_length": ["evaluation.retrieval_max_length=128"],
    "evaluation.max_eval_examples": ["evaluation.max_eval_examples=5"],
    "evaluation.save_predictions": ["evaluation.save_predictions=false"],
    "evaluation.bucc_duplicates": ["evaluation.bucc_duplicates=keep"],
    "evaluation.bucc_allow_gold_only": ["evaluation.bucc_allow_gold_only=true"],
    "evaluation.bucc_test_oracle": ["evaluation.bucc_test_oracle=true"],
    "hub.publisher": ["hub.publisher=none"],
    "hub.local_root": ["hub.local_root=elsewhere"],
    "hub.namespace": ["hub.namespace=me"],
    "hub.repo_template": ["hub.repo_template={{namespace}}/{{stage}}-{{hash}}"],
    "hub.private": ["hub.private=false"],
    "hub.reuse": ["hub.reuse=false"],
    "hub.license": ["hub.license=mit"],
}


def leaf_fields() -> list[str]:
    """Every field that holds a value (sections such as `stages` or `hub` are walked into instead)."""
    return [
        f.path
        for section in walk_config()
        for f in section.fields
        if not f.type.startswith(("mapping (", "list of mappings ("))
    ]


def test_every_config_field_is_classified():
    fields = leaf_fields()
    assert len(fields) > 50
    unclassified = [path for path in fields if path not in IN_THE_HASH and path not in OUTSIDE_THE_HASH]
    assert unclassified == [], "decide for each: in the stage hash, or why it cannot change the weights"
    assert set(IN_THE_HASH) & set(OUTSIDE_THE_HASH) == set()
    assert set(IN_THE_HASH) | set(OUTSIDE_THE_HASH) == set(fields), "a listed field is not in the schema"
    assert set(CHANGES_IN) == set(IN_THE_HASH) and set(CHANGES_OUT) == set(OUTSIDE_THE_HASH)


@pytest.mark.parametrize("path", sorted(CHANGES_IN))
def test_each_hashed_field_changes_the_hash(path, tmp_path, other_tokenizer, task_dir):
    before = hashes(tmp_path)
    changes = [change.format(tokenizer=other_tokenizer, task_dir=task_dir) for change in CHANGES_IN[path]]
    assert hashes(tmp_path, *changes) != before


@pytest.mark.parametrize("path", sorted(CHANGES_OUT))
def test_each_other_field_keeps_the_hash(path, tmp_path, other_tokenizer, task_dir):
    before = hashes(tmp_path)
    changes = [change.format(tokenizer=other_tokenizer, task_dir=task_dir) for change in CHANGES_OUT[path]]
    after = hashes(tmp_path, *changes)
    assert [h for _, h in after] == [h for _, h in before]


def test_a_tokenizer_folder_enters_by_content_not_path(tmp_path, other_tokenizer):
    moved = tmp_path / "moved-tokenizer"
    shutil.copytree(other_tokenizer, moved)
    same = hashes(tmp_path, f"model.tokenizer={other_tokenizer}")
    assert hashes(tmp_path, f"model.tokenizer={moved}") == same
    vocabulary = moved / "tokenizer.json"
    data = json.loads(vocabulary.read_text())
    data["model"]["vocab"][10][1] -= 1.0  # one piece's score: another tokenization
    vocabulary.write_text(json.dumps(data))
    assert hashes(tmp_path, f"model.tokenizer={moved}") != same


def test_a_from_folder_enters_by_content(tmp_path, tiny_checkpoint):
    folder = tmp_path / "start"
    shutil.copytree(tiny_checkpoint, folder)
    config = base_config()
    config["stages"][0]["from"] = str(folder)
    before = hashes(tmp_path, config=config)
    (folder / "config.json").write_text(
        json.dumps({**json.loads((folder / "config.json").read_text()), "hidden_dropout_prob": 0.2})
    )
    assert hashes(tmp_path, config=config) != before


def test_an_edited_user_task_spec_changes_the_hash(tmp_path, task_dir):
    from hf_itt.config.validation import REGISTERED_DIRS

    config = {**base_config(), "task_dirs": [str(task_dir)]}
    config["stages"][1]["tasks"][0]["name"] = "my_nli"
    before = hashes(tmp_path, config=config)
    REGISTERED_DIRS.clear()  # a new process: the edited file is read again
    (task_dir / "mine.yaml").write_text(
        yaml.safe_dump(
            {"my_nli": {"extends": "mnli", "override": True, "labels": ["neutral", "entailment", "contradiction"]}}
        )
    )
    assert hashes(tmp_path, config=config) != before


def test_configs_without_the_new_identity_keys_keep_their_hashes(tmp_path):
    """Hashes computed by the code before the tokenizer, health, spec and dev-data keys existed (main at
    0b990c2): stages trained then are still found. They depend on tests/fixtures/data/mnli/train.jsonl."""
    config = {
        "experiment": "stable",
        "seed": 5,
        "model": {"name_or_path": "xlm-roberta-large"},
        "defaults": {"training": {"learning_rate": 1e-5, "max_steps": 3}},
        "stages": [
            {"name": "nli", "tasks": [{"name": "mnli", "data_files": {"train": str(MNLI_TRAIN)}}]},
            {
                "name": "qa",
                "tasks": [{"name": "squad_v1", "max_train_examples": 20}],
                "sampling": {"strategy": "temperature"},
                "max_length": 128,
            },
        ],
        "targets": {
            "tasks": ["xnli", "tatoeba"],
            "data_files": {"mnli": {"train": str(MNLI_TRAIN)}},
            "training": {"num_train_epochs": 2},
        },
    }
    assert hashes(tmp_path, config=config) == [
        ("nli", "c868826434636dff"),
        ("qa", "c5d69b2a212651bf"),
        ("xnli", "b315f9c5af5a9e29"),
        ("tatoeba", "c5d69b2a212651bf"),
    ]


def test_early_stopping_patience_enters_the_hash_only_when_it_stops_training(tmp_path):
    """Each patience is another stage; 0 (off) hashes like a config written before the key existed."""
    with_selection = hashes(tmp_path, *TARGET_SELECTION)
    patience = {n: hashes(tmp_path, *TARGET_SELECTION, f"targets.early_stopping_patience={n}") for n in (0, 2, 5)}
    assert patience[0] == with_selection
    assert patience[2][:2] == patience[5][:2] == with_selection[:2]  # the ITT stages are untouched
    assert len({tuple(patience[n][2:]) for n in (0, 2, 5)}) == 3  # the target (and all after it) moves
