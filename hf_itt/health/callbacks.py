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

from typing import Iterable

from transformers import TrainerCallback

from hf_itt.config.health import HealthConfig
from hf_itt.health.base import OUTCOMES, HealthCallback, HealthEvent, HealthReport
from hf_itt.health.collapse import CollapseAlarm
from hf_itt.health.divergence import DivergenceGuard


def health_callbacks(
    config: HealthConfig | None, trainer=None, attempt: int = 0, eval_datasets=None, tokenizer=None
) -> list[HealthCallback]:
    """The alarm (when there are dev sets) and the guard, attached to ``trainer`` when one is given.

    ``attempt``: how many times this stage was restarted already (0 on its first run), so a
    'restart' action turns into 'stopped' once ``config.max_restarts`` is used up.
    ``eval_datasets``/``tokenizer`` default to the trainer's (``MultiTaskTrainer.eval_datasets``,
    ``processing_class``).
    """
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
    """ "stopped" if any check stopped the run, else "restart" if one asked for a rerun, else "ok"."""
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


__all__ = ["health_callbacks", "health_outcome", "health_events", "health_report"]
