"""Training health: a collapse alarm and a divergence guard for every Trainer run (see docs/health.md).

XLM-R Large is known to fail in two ways at learning rates or batch sizes a little off its narrow
stable range: it *collapses* (every prediction becomes one class, the loss sits at chance) or it
*diverges* (the loss spikes or turns NaN and the weights are ruined). The two callbacks catch both:

- ``hf_itt.health.collapse.CollapseAlarm`` looks at the predictions on a capped dev subset at each
  evaluation and compares the majority predicted class with the majority gold class;
- ``hf_itt.health.divergence.DivergenceGuard`` checks the weights for NaN/inf after optimizer steps and
  the logged losses for NaN/inf or spikes, stops the run and never lets a checkpoint be saved after it.

The stage runner's side::

    callbacks = health_callbacks(config.health, trainer, attempt=attempt)  # attaches them
    trainer.train()
    report = health_report(callbacks)            # outcome "ok" | "stopped" | "restart", events, next_seed
    if report.outcome == "restart":              # rerun the stage from its source with report.next_seed
        ...
    manifest.health = report.to_dict()           # proposed StageManifest field
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import torch
from transformers import TrainerCallback

from hf_itt.config.health import HealthConfig

logger = logging.getLogger("hf_itt.health.callbacks")

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
        return {"outcome": self.outcome, "attempt": self.attempt, "seed": self.seed, "next_seed": self.next_seed,
                "events": [event.to_dict() for event in self.events]}


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
            self._set_outcome("restart" if action == "restart" and self.attempt < self.config.max_restarts
                              else "stopped")
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
            return (f"training stopped; the stage will be rerun with {seed} "
                    f"(restart {self.attempt + 1} of {self.config.max_restarts})")
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


def health_callbacks(config: HealthConfig | None, trainer=None, attempt: int = 0,
                     eval_datasets=None, tokenizer=None) -> list[HealthCallback]:
    """The alarm (when there are dev sets) and the guard, attached to ``trainer`` when one is given.

    ``attempt``: how many times this stage was restarted already (0 on its first run), so a
    'restart' action turns into 'stopped' once ``config.max_restarts`` is used up.
    ``eval_datasets``/``tokenizer`` default to the trainer's (``MultiTaskTrainer.eval_datasets``,
    ``processing_class``).
    """
    from hf_itt.health.collapse import CollapseAlarm
    from hf_itt.health.divergence import DivergenceGuard

    config = config or HealthConfig()
    if not config.enabled:
        return []
    if eval_datasets is None and trainer is not None:
        eval_datasets = getattr(trainer, "eval_datasets", None)
    if tokenizer is None and trainer is not None:
        tokenizer = trainer.processing_class
    callbacks: list[HealthCallback] = [DivergenceGuard(config, attempt=attempt)]
    if eval_datasets:
        callbacks.insert(0, CollapseAlarm(config, eval_datasets, tokenizer, attempt=attempt))
    for callback in callbacks if trainer is not None else ():
        trainer.add_callback(callback)
    return callbacks


def health_outcome(callbacks: Iterable[TrainerCallback]) -> str:
    """"stopped" if any check stopped the run, else "restart" if one asked for a rerun, else "ok"."""
    outcomes = [c.outcome for c in callbacks if isinstance(c, HealthCallback)]
    return max(outcomes, key=OUTCOMES.index, default="ok")


def health_events(callbacks: Iterable[TrainerCallback]) -> list[HealthEvent]:
    events = [event for c in callbacks if isinstance(c, HealthCallback) for event in c.events]
    return sorted(events, key=lambda event: event.step)


def health_report(callbacks: Iterable[TrainerCallback]) -> HealthReport:
    callbacks = [c for c in callbacks if isinstance(c, HealthCallback)]
    outcome = health_outcome(callbacks)
    seed = next((c.seed for c in callbacks if c.seed is not None), None)
    attempt = max((c.attempt for c in callbacks), default=0)
    next_seed = seed + 1 if outcome == "restart" and seed is not None else None
    return HealthReport(outcome, health_events(callbacks), attempt, seed, next_seed)


__all__ = ["HealthConfig", "HealthEvent", "HealthReport", "HealthCallback", "health_callbacks", "health_outcome",
           "health_events", "health_report", "any_rank"]
