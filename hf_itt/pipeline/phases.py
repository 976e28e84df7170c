"""Phases of a job: the Trainer runs it is made of, one after another, handed over through disk.

An ITT stage or an ordinary target is one phase, whose folder is the stage folder itself
(``trainer/``, ``full/``, ``attempt.json``). A phased target trains its head on several English tasks
in turn (XTREME-R's XCOPA: SIQA, then COPA; ``extra_train_tasks`` then ``train_task``): phase ``i`` has
its own folder ``trainer/phase<i>-<task>/`` with the same layout, starts from the whole multi-task
model the phase before saved in its ``full/`` (head included), and is skipped on a rerun once its
record (``trainer/phase.json``) says it finished for this stage hash. Phase folders live under the stage's
``trainer/`` so that a changed configuration sets them all aside and ``--force`` clears them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_itt.fileio import atomic_write_text

RECORD_FILE = "phase.json"


@dataclass
class Phase:
    number: int  # 1-based
    count: int  # phases of the job
    tasks: list[Any]  # the TaskPlans trained together in this phase
    folder: Path  # holds trainer/, full/, attempt.json and the record
    trained_on: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"phase{self.number}-{'+'.join(self.trained_on)}"

    @property
    def trainer_dir(self) -> Path:
        return self.folder / "trainer"

    @property
    def full_dir(self) -> Path:
        return self.folder / "full"

    @property
    def record_path(self) -> Path:  # inside trainer/: cleared with it by --force and a config change
        return self.trainer_dir / RECORD_FILE

    @property
    def phased(self) -> bool:
        return self.count > 1


def split_phases(tasks: list, stage_dir: Path) -> list[Phase]:
    """The phases of a job whose TaskPlans carry a ``phase`` number (all 0: one phase, the stage folder)."""
    numbers = sorted({plan.phase for plan in tasks}) or [0]
    if len(numbers) == 1:
        return [Phase(1, 1, list(tasks), stage_dir, [plan.source_spec.name for plan in tasks])]
    phases = []
    for index, number in enumerate(numbers, start=1):
        plans = [plan for plan in tasks if plan.phase == number]
        trained_on = [plan.source_spec.name for plan in plans]
        phase = Phase(index, len(numbers), plans, stage_dir, trained_on)
        phase.folder = stage_dir / "trainer" / phase.name
        phases.append(phase)
    return phases


def finished_record(phase: Phase, stage_hash: str) -> dict | None:
    """The record of a phase that finished for ``stage_hash`` (its full model saved), else None."""
    if not phase.record_path.is_file() or not (phase.full_dir / "config.json").is_file():
        return None
    try:
        record = json.loads(phase.record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("stage_hash") == stage_hash else None


def write_record(
    phase: Phase,
    stage_hash: str,
    started_from: str,
    metrics: dict,
    health: dict,
    weights: dict | None = None,
    budget: dict | None = None,
) -> dict:
    """Written last, after the full model and tokenizer: its presence means the phase is done."""
    record = {
        "stage_hash": stage_hash,
        "phase": phase.number,
        "name": phase.name,
        "trained_on": phase.trained_on,
        "started_from": started_from,
        "metrics": metrics,
        "health": health,
    }
    if weights:
        record["weights"] = weights
    if budget:
        record["budget"] = budget
    atomic_write_text(phase.record_path, json.dumps(record, indent=2, sort_keys=True))
    return record


def progress(phases: list[Phase], stage_hash: str, last_checkpoint) -> str | None:
    """Where a rerun of a phased job picks up (``phase2-copa/checkpoint-4``, ``phase1-siqa done``), or None
    when nothing is done yet; ``last_checkpoint(folder)`` finds a phase's resume point."""
    done = None
    for phase in phases:
        if finished_record(phase, stage_hash) is not None:
            done = f"{phase.name} done"
            continue
        resume = last_checkpoint(phase.trainer_dir)
        return f"{phase.name}/{Path(resume).name}" if resume else done
    return done


def weights_digest(model) -> str | None:
    """sha256 over the model's tensors (names sorted), to show which weights a phase started from and
    ended with; None when a tensor is not materialised here (ZeRO-3 partitions)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if tensor.numel() == 0:
            return None
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


__all__ = ["Phase", "split_phases", "finished_record", "write_record", "progress", "weights_digest"]
