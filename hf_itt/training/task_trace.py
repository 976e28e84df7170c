"""Record which task every training forward pass used, per rank (set HF_ITT_TRACE_TASKS=1).

Lockstep is a correctness requirement under ZeRO (ranks on different heads abort the all-reduce);
the multi-rank tests compare these traces across ranks. A forward pre-hook sees ``task_ids`` without
touching the Trainer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ENV = "HF_ITT_TRACE_TASKS"


def enabled() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


class TaskTrace:
    def __init__(self, model):
        self.tasks: list[int] = []
        self.handle = model.register_forward_pre_hook(self._record, with_kwargs=True)
        self.model = model

    def _record(self, module, args, kwargs):
        task_ids = kwargs.get("task_ids")
        if module.training and task_ids is not None:
            self.tasks.append(int(task_ids[0]))

    def save(self, folder: str | Path, rank: int) -> Path:
        self.handle.remove()
        path = Path(folder) / f"task_trace.rank{rank}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps({"rank": rank, "task_names": list(self.model.config.task_names), "tasks": self.tasks})
        )
        return path
