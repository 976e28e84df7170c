"""The smallest real experiment the process-level tests run: one MNLI stage of 2 updates on the fixtures."""

from __future__ import annotations

from pathlib import Path

import yaml

DATA = Path(__file__).parent / "fixtures" / "data"


def one_stage_config(experiment: str, seed: int, **training) -> dict:
    """An experiment with one ITT stage ``nli`` (checkpoints every update, published to the local hub)."""
    return {
        "experiment": experiment,
        "seed": seed,
        "hub": {"publisher": "local"},
        "defaults": {
            "training": {
                "per_device_train_batch_size": 2,
                "max_steps": 2,
                "save_steps": 1,
                "learning_rate": 1e-3,
                "use_cpu": True,
                "disable_tqdm": True,
                **training,
            }
        },
        "stages": [
            {"name": "nli", "tasks": [{"name": "mnli", "data_files": {"train": str(DATA / "mnli" / "train.jsonl")}}]}
        ],
    }


def write_config(path: Path, config: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path
