"""What the health callbacks share: the event and report records, the callback base, agreement across ranks."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import torch
from transformers import TrainerCallback

from hf_itt.config.health import HealthConfig

logger = logging.getLogger("hf_itt.health")

OUTCOMES = ("ok", "restart", "stopped")  # in order of severity
DOCS_HINT = "see docs/health.md"


@dataclass
class HealthEvent:
    """One finding: ``kind`` is "collapse" or "divergence"; ``details`` holds the numbers (JSON-safe)."""

    kind: str
    step: int
    task: str | None
    details: dict[str, Any]
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class HealthReport:
    """What the runner reads after ``trainer.train()`` and writes to the stage manifest (``health``)."""

    outcome: str  # "ok" | "stopped" | "restart"
    events: list[HealthEvent]
    attempt: int  # 0 for the first run of the stage, k for its k-th restart
    seed: int | None  # TrainingArguments.seed of this attempt
    next_seed: int | None  # the seed to rerun with when outcome == "restart"

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "attempt": self.attempt,
            "seed": self.seed,
            "next_seed": self.next_seed,
            "events": [event.to_dict() for event in self.events],
        }


class HealthCallback(TrainerCallback):
    """Shared bookkeeping: the events found, the outcome, and how an action stops the run."""

    def __init__(self, config: HealthConfig | None = None, attempt: int = 0):
        self.config = config or HealthConfig()
        self.attempt = attempt
        self.events: list[HealthEvent] = []
        self.outcome = "ok"
        self.seed: int | None = None
        self.is_main_process = True

    def on_train_begin(self, args, state, control, **kwargs):
        self.seed, self.is_main_process = args.seed, state.is_world_process_zero

    def act(self, action: str, control, event: HealthEvent) -> HealthEvent:
        """Record ``event``, log its message once (main process) and apply warn / stop / restart."""
        if action in ("stop", "restart"):
            control.should_training_stop = True
            event.message += "; " + self._stop_note(action)
            self._set_outcome(
                "restart" if action == "restart" and self.attempt < self.config.max_restarts else "stopped"
            )
        event.details["action"] = action
        self.events.append(event)
        if self.is_main_process:
            logger.warning(event.message)
        return event

    def _stop_note(self, action: str) -> str:
        if action == "stop":
            return "training stopped"
        if self.attempt < self.config.max_restarts:
            seed = "seed+1" if self.seed is None else f"seed {self.seed + 1}"
            return (
                f"training stopped; the stage will be rerun with {seed} "
                f"(restart {self.attempt + 1} of {self.config.max_restarts})"
            )
        return f"training stopped; no restarts left (max_restarts={self.config.max_restarts})"

    def _set_outcome(self, outcome: str) -> None:
        if OUTCOMES.index(outcome) > OUTCOMES.index(self.outcome):
            self.outcome = outcome


def any_rank(flag: bool | torch.Tensor, device: torch.device | str | None = None) -> bool:
    """True on every rank when ``flag`` is true on any rank: ranks must take the same stop decision,
    or the ones that go on wait forever in their next collective."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return bool(flag)
    value = flag.detach().float().reshape(1) if isinstance(flag, torch.Tensor) else torch.tensor([float(flag)])
    if device is None and dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    value = value.to(device) if device is not None else value
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)
