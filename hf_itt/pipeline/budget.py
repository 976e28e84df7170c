"""What the chain behind a checkpoint cost: the budgets its stage manifest's lineage records
(``hf_itt.training.budget`` defines one budget record)."""

from __future__ import annotations

from pathlib import Path

from hf_itt.errors import CheckpointError
from hf_itt.hub.manifest import read_manifest


def chain_training(model_path) -> dict:
    """What the chain behind ``model_path`` cost, from its stage manifest's lineage: {"itt": [ITT stage
    entries in order], "target": the target fine-tuning's entry or None}, each {"stage", "tasks",
    "budget"}; {} for a folder without a manifest or a Hub id (a base model)."""
    if not Path(str(model_path)).is_dir():
        return {}
    try:
        lineage = read_manifest(model_path).lineage
    except CheckpointError:
        return {}
    entries = [
        {
            "stage": entry.get("stage"),
            "tasks": list(entry.get("tasks") or []),
            "budget": entry.get("budget"),
            "kind": entry.get("kind", "itt"),
        }
        for entry in lineage
        if entry.get("stage") != "base"
    ]
    target = next((entry for entry in entries if entry["kind"] == "target"), None)
    return {
        "itt": [strip_kind(entry) for entry in entries if entry["kind"] != "target"],
        "target": strip_kind(target) if target else None,
    }


def strip_kind(entry: dict) -> dict:
    return {key: value for key, value in entry.items() if key != "kind"}


__all__ = ["chain_training"]
