"""Stage identity hashes and stage manifests (write/read, checksums, secrets)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from hf_itt.errors import CheckpointError, ConfigError, DataError
from hf_itt.hub.manifest import (
    MANIFEST_NAME,
    StageManifest,
    compute_checksums,
    finish_manifest,
    next_lineage,
    package_versions,
    read_manifest,
    verify_checkpoint,
    write_manifest,
)
from hf_itt.pipeline.identity import (
    CONDITIONAL_TRAINING_ARGS,
    IGNORED_TRAINING_ARGS,
    WEIGHT_TRAINING_ARGS,
    base_model_identity,
    hash_identity,
    stage_hash,
    stage_identity,
    task_identity,
)

TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567"


def identity_kwargs(**changes):
    kwargs = dict(
        base_model="FacebookAI/xlm-roberta-large",
        base_revision="abc123",
        previous_stage_hash=None,
        tasks=[
            task_identity(
                "mnli",
                task_type="classification",
                source="nyu-mll/glue",
                config="mnli",
                revision="r1",
                options={"max_length": 256, "max_train_examples": None},
            )
        ],
        sampler={"strategy": "proportional", "temperature": 2.0},
        training_args={"learning_rate": 1e-5, "per_device_train_batch_size": 8, "num_train_epochs": 2},
        seed=42,
    )
    kwargs.update(changes)
    return kwargs


def with_args(**changes):
    return identity_kwargs(training_args={**identity_kwargs()["training_args"], **changes})


def make_stage(stage_dir: Path, **manifest_fields) -> StageManifest:
    stage_dir.mkdir(parents=True, exist_ok=True)
    save_file({"w": np.arange(4096, dtype=np.float32)}, str(stage_dir / "model.safetensors"))
    (stage_dir / "config.json").write_text('{"model_type": "xlm-roberta"}')
    manifest = StageManifest(experiment="exp", stage="s1", stage_hash="0123abcd", **manifest_fields)
    write_manifest(stage_dir, manifest)
    return finish_manifest(stage_dir, manifest)


# ---------------------------------------------------------------- stage identity


def test_hash_is_short_hex_and_ignores_dict_order():
    reordered = identity_kwargs(
        sampler={"temperature": 2.0, "strategy": "proportional"},
        training_args={"num_train_epochs": 2, "per_device_train_batch_size": 8, "learning_rate": 1e-5},
        tasks=[
            task_identity(
                "mnli",
                task_type="classification",
                source="nyu-mll/glue",
                config="mnli",
                revision="r1",
                options={"max_train_examples": None, "max_length": 256},
            )
        ],
    )
    digest = stage_hash(**identity_kwargs())
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert stage_hash(**reordered) == digest


@pytest.mark.parametrize(
    "field,value",
    [
        ("output_dir", "/elsewhere"),
        ("logging_steps", 7),
        ("report_to", ["tensorboard"]),
        ("save_steps", 13),
        ("save_strategy", "no"),
        ("eval_steps", 11),
        ("eval_strategy", "steps"),
        ("push_to_hub", True),
        ("hub_token", TOKEN),
        ("hub_model_id", "me/x"),
        ("dataloader_num_workers", 4),
        ("per_device_eval_batch_size", 99),
        ("run_name", "other"),
        ("gradient_checkpointing", True),
        ("disable_tqdm", True),
    ],
)
def test_irrelevant_training_args_keep_the_hash(field, value):
    assert stage_hash(**with_args(**{field: value})) == stage_hash(**identity_kwargs())


@pytest.mark.parametrize(
    "field,value",
    [
        ("learning_rate", 2e-5),
        ("per_device_train_batch_size", 16),
        ("gradient_accumulation_steps", 2),
        ("num_train_epochs", 3),
        ("max_steps", 100),
        ("warmup_steps", 0.1),
        ("weight_decay", 0.01),
        ("bf16", True),
        ("lr_scheduler_type", "cosine"),
        ("seed", 7),
        ("data_seed", 7),
        ("label_smoothing_factor", 0.1),
    ],
)
def test_weight_relevant_training_args_change_the_hash(field, value):
    assert stage_hash(**with_args(**{field: value})) != stage_hash(**identity_kwargs())


def test_eval_cadence_counts_only_when_the_best_checkpoint_is_kept():
    best = dict(load_best_model_at_end=True, eval_strategy="steps", save_strategy="steps", eval_steps=10, save_steps=10)
    assert stage_hash(**with_args(**best)) != stage_hash(**with_args(**{**best, "eval_steps": 20, "save_steps": 20}))


@pytest.mark.parametrize(
    "change",
    [
        {"base_model": "FacebookAI/xlm-roberta-base"},
        {"base_revision": "def456"},
        {"previous_stage_hash": "aa11"},
        {"seed": 1},
        {"sampler": {"strategy": "temperature", "temperature": 2.0}},
        {"world_size": 8},
        {
            "tasks": [
                task_identity(
                    "mnli",
                    task_type="classification",
                    source="nyu-mll/glue",
                    config="mnli",
                    revision="r2",
                    options={"max_length": 256, "max_train_examples": None},
                )
            ]
        },
        {
            "tasks": [
                task_identity(
                    "mnli",
                    task_type="classification",
                    source="nyu-mll/glue",
                    config="mnli",
                    revision="r1",
                    lang="de",
                    options={"max_length": 256, "max_train_examples": None},
                )
            ]
        },
        {
            "tasks": [
                task_identity(
                    "mnli",
                    task_type="classification",
                    source="nyu-mll/glue",
                    config="mnli",
                    revision="r1",
                    options={"max_length": 256, "max_train_examples": 1000},
                )
            ]
        },
    ],
)
def test_identity_inputs_change_the_hash(change):
    assert stage_hash(**identity_kwargs(**change)) != stage_hash(**identity_kwargs())


def test_data_files_hash_content_not_paths(tmp_path):
    first, moved, edited = tmp_path / "a.jsonl", tmp_path / "sub" / "b.jsonl", tmp_path / "c.jsonl"
    moved.parent.mkdir()
    first.write_text('{"text_a": "x", "label": 0}\n')
    moved.write_text(first.read_text())
    edited.write_text('{"text_a": "y", "label": 0}\n')
    digests = [
        stage_hash(**identity_kwargs(tasks=[task_identity("ccg", data_files={"train": path})]))
        for path in (first, moved, edited)
    ]
    assert digests[0] == digests[1] != digests[2]


def test_local_base_model_is_identified_by_its_files_not_its_path(tiny_checkpoint, tmp_path):
    import shutil

    moved = Path(shutil.copytree(tiny_checkpoint, tmp_path / "moved"))
    (moved / "README.md").write_text("a model card edit changes nothing")
    assert base_model_identity(str(moved), None) == base_model_identity(str(tiny_checkpoint), "main")
    assert base_model_identity("FacebookAI/xlm-roberta-large", "abc") == ("FacebookAI/xlm-roberta-large", "abc")
    before = base_model_identity(str(moved), None)
    config = json.loads((moved / "config.json").read_text())
    (moved / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": 0.0}))  # rebuilt in place
    assert base_model_identity(str(moved), None) != before
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no model files"):
        base_model_identity(str(empty), None)


def test_unknown_training_argument_is_a_config_error():
    with pytest.raises(ConfigError, match="warmup_ratio.*not TrainingArguments fields"):
        stage_hash(**with_args(warmup_ratio=0.1))


def test_missing_data_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="ccg.*train.*data_files"):
        task_identity("ccg", data_files={"train": tmp_path / "missing.conllu"})


def test_training_arguments_object_hashes_like_its_mapping(tmp_path):
    from transformers import TrainingArguments

    args = dict(
        learning_rate=1e-5,
        per_device_train_batch_size=8,
        num_train_epochs=2,
        warmup_steps=0.1,
        lr_scheduler_type="cosine",
        optim="adamw_torch",
    )
    built = TrainingArguments(output_dir=str(tmp_path), report_to="none", **args)
    assert stage_hash(**identity_kwargs(training_args=built)) == stage_hash(**identity_kwargs(training_args=args))


def test_every_training_argument_is_classified():
    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments) if f.init}
    classified = WEIGHT_TRAINING_ARGS | CONDITIONAL_TRAINING_ARGS | IGNORED_TRAINING_ARGS
    assert not names - classified, (
        f"classify these new TrainingArguments fields in stage_identity.py: {names - classified}"
    )
    assert not (IGNORED_TRAINING_ARGS & (WEIGHT_TRAINING_ARGS | CONDITIONAL_TRAINING_ARGS))


def test_hash_is_stable_across_processes():
    payload = (
        "{'tasks': [task_identity('squad_v1', options={'doc_stride': 128, 'max_length': 384})],"
        " 'sampler': {'b': 1, 'a': [1, 2]}, 'labels': {'entailment', 'neutral', 'contradiction', 'x', 'y'}}"
    )
    code = f"from hf_itt.pipeline.identity import hash_identity, task_identity; print(hash_identity({payload}))"
    # other interpreters with other string-hash seeds: set iteration order differs between them
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }
    assert outputs == {hash_identity(eval(payload))}


def test_identity_payload_hashes_to_the_stage_hash():
    assert hash_identity(stage_identity(**identity_kwargs())) == stage_hash(**identity_kwargs())


# ---------------------------------------------------------------- manifests


def test_manifest_round_trip_and_no_temp_files(tmp_path):
    manifest = make_stage(tmp_path / "s1", metrics={"mnli": {"accuracy": 81.5}}, source="base@main")
    loaded = read_manifest(tmp_path / "s1")
    assert loaded == manifest and loaded.status == "finished"
    assert set(loaded.checksums) == {"model.safetensors", "config.json"}
    assert not [p for p in (tmp_path / "s1").iterdir() if p.name.startswith(".")]


def test_package_versions_are_recorded():
    versions = package_versions()
    assert {"torch", "transformers", "datasets", "hf_itt"} <= set(versions)
    assert StageManifest(experiment="e", stage="s", stage_hash="h").versions == versions


def test_verify_accepts_a_complete_stage(tmp_path):
    manifest = make_stage(tmp_path / "s1")
    assert verify_checkpoint(tmp_path / "s1") == manifest


def test_verify_names_a_truncated_safetensors(tmp_path):
    make_stage(tmp_path / "s1")
    weights = tmp_path / "s1" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*truncated.*delete .* or rerun with --force"):
        verify_checkpoint(tmp_path / "s1")


def test_verify_catches_changed_and_missing_files(tmp_path):
    make_stage(tmp_path / "s1")
    weights = tmp_path / "s1" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*sha256"):
        verify_checkpoint(tmp_path / "s1")
    (tmp_path / "s1" / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json.*missing"):
        verify_checkpoint(tmp_path / "s1")


def test_verify_rejects_unfinished_and_manifestless_stages(tmp_path):
    (tmp_path / "s1").mkdir()
    write_manifest(tmp_path / "s1", StageManifest(experiment="e", stage="s1", stage_hash="h"))
    with pytest.raises(CheckpointError, match="'running'.*--force"):
        verify_checkpoint(tmp_path / "s1")
    (tmp_path / "s2").mkdir()
    with pytest.raises(CheckpointError, match=f"no {MANIFEST_NAME}"):
        verify_checkpoint(tmp_path / "s2")


def test_checksums_skip_manifest_card_and_hidden_files(tmp_path):
    make_stage(tmp_path / "s1")
    (tmp_path / "s1" / "README.md").write_text("card")
    (tmp_path / "s1" / ".model.safetensors.tmp").write_text("partial")
    assert set(compute_checksums(tmp_path / "s1")) == {"model.safetensors", "config.json"}


def test_secrets_never_reach_the_manifest(tmp_path):
    config = {
        "hub": {"token": TOKEN, "namespace": "me"},
        "training": {"hub_token": TOKEN, "max_tokens": 5},
        "model": {"tokenizer": "my/tokenizer", "HF_TOKEN": TOKEN},
        "note": f"pushed with {TOKEN} ok",
    }
    manifest = make_stage(tmp_path / "s1", config=config)
    manifest.publish.errors.append(f"401 for Authorization: Bearer {TOKEN}")
    write_manifest(tmp_path / "s1", manifest)
    text = (tmp_path / "s1" / MANIFEST_NAME).read_text()
    assert TOKEN not in text
    saved = json.loads(text)["config"]
    assert saved["hub"]["token"] == saved["training"]["hub_token"] == "<redacted>"
    assert saved["model"]["tokenizer"] == "my/tokenizer" and saved["training"]["max_tokens"] == 5
    assert saved["note"] == "pushed with <redacted> ok"


def test_lineage_grows_from_the_base_model():
    first = next_lineage(
        None, base_model="xlm-roberta-large", base_revision=None, stage="s1", stage_hash="h1", tasks=["squad_v1"]
    )
    parent = StageManifest(experiment="e", stage="s1", stage_hash="h1", lineage=first)
    second = next_lineage(
        parent, base_model="xlm-roberta-large", base_revision=None, stage="s2", stage_hash="h2", tasks=["mnli", "qqp"]
    )
    assert [entry["stage"] for entry in second] == ["base", "s1", "s2"]
    assert second[0]["ref"] == "xlm-roberta-large@main" and second[2]["tasks"] == ["mnli", "qqp"]
    assert len(parent.lineage) == 2  # the parent's list is not mutated
