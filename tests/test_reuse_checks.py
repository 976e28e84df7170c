"""A stage is reused only when its manifest verifies (own checksum, field types, identity re-hashed).

Each case damages the manifest of a stage published to a shared hub folder, then a second run of an
experiment that needs that stage (in another run folder) must train it again, exit 0, and warn with
the file's path; never crash, never reuse it.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import yaml

from hf_itt.cli import main
from hf_itt.hub.manifest import MANIFEST_NAME, read_manifest, write_manifest
from hf_itt.pipeline.identity import hash_identity

DATA = Path(__file__).parent / "fixtures" / "data"
TRAINING = {"per_device_train_batch_size": 2, "max_steps": 1, "save_steps": 1, "use_cpu": True, "disable_tqdm": True}


def write_config(folder: Path, learning_rate: float) -> Path:
    config = {
        "experiment": "reuse",
        "seed": 3,
        "hub": {"publisher": "local"},
        "defaults": {"training": {**TRAINING, "learning_rate": learning_rate}},
        "stages": [
            {"name": "nli", "tasks": [{"name": "mnli", "data_files": {"train": str(DATA / "mnli" / "train.jsonl")}}]}
        ],
    }
    path = folder / f"lr{learning_rate}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run(config: Path, checkpoint: Path, root: Path, run_name: str) -> tuple[int, Path]:
    code = main(
        [
            "run",
            "--config",
            str(config),
            "--no-report",
            f"model.name_or_path={checkpoint}",
            f"output_dir={root}/{run_name}",
            f"hub.local_root={root}/hub",
        ]
    )
    return code, root / run_name / "stages" / "nli" / "checkpoint"


@pytest.fixture(scope="module")
def published(tiny_checkpoint, tmp_path_factory):
    """A hub folder holding stage `nli` trained at lr 1e-3 (its run folder deleted: only the hub has it)."""
    root = tmp_path_factory.mktemp("reuse")
    code, _ = run(write_config(root, 1e-3), tiny_checkpoint, root, "first")
    assert code == 0
    shutil.rmtree(root / "first")
    (hub_copy,) = (root / "hub").glob(f"local/*/main/{MANIFEST_NAME}")
    return root, hub_copy.parent


@pytest.fixture
def hub(published, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(published[0], root)
    return root, root / published[1].relative_to(published[0])


def rerun(hub, tiny_checkpoint, caplog, learning_rate=1e-3) -> Path:
    root, stage = hub
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        code, trained = run(write_config(root, learning_rate), tiny_checkpoint, root, "second")
    assert code == 0
    assert read_manifest(trained).status in ("finished", "published")
    return trained


def weights(folder: Path) -> bytes:
    return (folder / "model.safetensors").read_bytes()


def test_an_intact_published_stage_is_reused(hub, tiny_checkpoint, capsys):
    root, stage = hub
    code, _ = run(write_config(root, 1e-3), tiny_checkpoint, root, "second")
    assert code == 0 and "[itt] nli: reused" in capsys.readouterr().out


def edit(manifest_path: Path, **fields) -> None:
    data = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**data, **fields}))


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"status": "bogus"}, "does not match its manifest_sha256"),
        ({"metrics": {"mnli": {"accuracy": 99.9}}}, "does not match its manifest_sha256"),
        ({"stage_hash": "0" * 16}, "does not match its manifest_sha256"),
    ],
    ids=["invalid-status", "edited-metrics", "edited-hash"],
)
def test_a_hand_edited_manifest_is_not_reused(hub, tiny_checkpoint, caplog, capsys, fields, reason):
    edit(hub[1] / MANIFEST_NAME, **fields)
    rerun(hub, tiny_checkpoint, caplog)
    assert f"not reusing {hub[1]}" in caplog.text and reason in caplog.text
    assert "[itt] nli: trained" in capsys.readouterr().out


def resealed(stage: Path, **fields) -> None:
    """Change fields and recompute the manifest's own checksum, as a buggy tool would write it."""
    data = json.loads((stage / MANIFEST_NAME).read_text())
    data.update(fields)
    from hf_itt.hub.manifest import manifest_digest

    data["manifest_sha256"] = manifest_digest(data)
    (stage / MANIFEST_NAME).write_text(json.dumps(data))


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"status": "bogus"}, "manifest status 'bogus' is not one of running, finished, published"),
        ({"checksums": ["model.safetensors"]}, "field 'checksums' is ['model.safetensors']"),
        ({"identity": "learning_rate=1e-3"}, "field 'identity' is 'learning_rate=1e-3'"),
    ],
    ids=["invalid-status", "checksums-not-a-mapping", "identity-not-a-mapping"],
)
def test_a_manifest_with_an_invalid_field_is_not_reused(hub, tiny_checkpoint, caplog, fields, reason):
    resealed(hub[1], **fields)
    rerun(hub, tiny_checkpoint, caplog)
    assert f"not reusing {hub[1]}" in caplog.text and reason in caplog.text


def test_a_manifest_claiming_another_hash_is_retrained_not_reused(hub, tiny_checkpoint, caplog):
    """The stage trained at lr 1e-3 relabelled (checksum and all) with the hash of the lr 2e-3 stage."""
    from hf_itt.config.loading import load_experiment
    from hf_itt.pipeline.jobs import build_jobs

    root, stage = hub
    config = load_experiment(write_config(root, 2e-3), [f"model.name_or_path={tiny_checkpoint}"])
    wanted = build_jobs(config)[0].stage_hash
    manifest = read_manifest(stage)
    assert hash_identity(manifest.identity) == manifest.stage_hash != wanted
    manifest.stage_hash = wanted
    write_manifest(stage, manifest)
    trained_at_lr_1e3 = weights(stage)
    trained = rerun(hub, tiny_checkpoint, caplog, learning_rate=2e-3)
    assert f"not reusing {stage}: its {MANIFEST_NAME} says stage_hash {wanted}" in caplog.text
    assert weights(trained) != trained_at_lr_1e3


def test_a_damaged_hash_index_entry_is_ignored(hub, tiny_checkpoint, caplog, capsys):
    for entry in (hub[0] / "hub" / "by-hash").glob("*.json"):
        entry.write_text(json.dumps({"path": 5}))
    code, _ = run(write_config(hub[0], 1e-3), tiny_checkpoint, hub[0], "second")
    assert code == 0 and "[itt] nli: reused" in capsys.readouterr().out  # found on the hub instead
