"""What a finished stage cost and which of its evaluations it exported: the stage manifest's ``budget``.

Arms of a comparison (one task, a sequence, a joint mixture) are fair only at a stated budget, so every
stage records, once its Trainer is done:

    updates               optimizer updates run (``TrainerState.global_step``; a resumed run counts all)
    effective_batch_size  examples per update: per-device batch x gradient accumulation x world size
    examples_seen         updates x effective_batch_size (every batch of hf_itt's sampler is full; a QA
                          example is one window of a context, a multiple-choice example one question)
    planned_updates       ``TrainerState.max_steps``: what the schedule allowed
    epochs                ``TrainerState.epoch``
    stopped_early         fewer updates than planned (early stopping ended the run)
    selected_step         the update whose weights were exported: the best evaluation's under
                          load_best_model_at_end, else the last update
    metric_for_best_model, best_metric   what the selection compared, and the winning value (or None)

A stage stopped by the health checks exports nothing; after a health restart, the record is that of the
attempt whose weights were exported.
"""

from __future__ import annotations

BUDGET_KEYS = (
    "updates",
    "effective_batch_size",
    "examples_seen",
    "planned_updates",
    "epochs",
    "stopped_early",
    "selected_step",
    "metric_for_best_model",
    "best_metric",
)
COUNT_KEYS = ("updates", "effective_batch_size", "examples_seen", "planned_updates", "selected_step")


def training_budget(args, state) -> dict:
    """The ``budget`` record from a Trainer's arguments and its state after ``train()``."""
    batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * max(1, args.world_size)
    selected = state.global_step
    if args.load_best_model_at_end and state.best_global_step:
        selected = state.best_global_step
    return {
        "updates": state.global_step,
        "effective_batch_size": batch,
        "examples_seen": state.global_step * batch,
        "planned_updates": state.max_steps,
        "epochs": round(float(state.epoch or 0.0), 4),
        "stopped_early": state.global_step < state.max_steps,
        "selected_step": selected,
        "metric_for_best_model": args.metric_for_best_model if args.load_best_model_at_end else None,
        "best_metric": float(state.best_metric)
        if args.load_best_model_at_end and state.best_metric is not None
        else None,
    }


def stage_budget(phases: list[dict | None]) -> dict | None:
    """A job's budget from its phases' (one for most jobs; XCOPA: SIQA then COPA): updates, examples and
    planned updates add up, the selection is the last phase's (its weights are exported); None when a
    phase recorded none (trained before budgets were recorded)."""
    if not phases or any(budget is None for budget in phases):
        return None
    if len(phases) == 1:
        return phases[0]
    total = dict(phases[-1])
    for key in ("updates", "examples_seen", "planned_updates"):
        total[key] = sum(budget[key] for budget in phases)
    total["stopped_early"] = any(budget["stopped_early"] for budget in phases)
    return total


def check_budget(budget: dict) -> None:
    """TypeError naming the first field of a manifest's ``budget`` that is not what ``training_budget`` writes."""
    unknown = sorted(set(budget) - set(BUDGET_KEYS))
    if unknown:
        raise TypeError(f"budget has unknown field {unknown[0]!r}")
    for key in COUNT_KEYS:
        value = budget.get(key)
        if key in budget and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise TypeError(f"budget field {key!r} is {value!r}, not a count")
    if "stopped_early" in budget and not isinstance(budget["stopped_early"], bool):
        raise TypeError(f"budget field 'stopped_early' is {budget['stopped_early']!r}, not true/false")


__all__ = ["BUDGET_KEYS", "check_budget", "stage_budget", "training_budget"]
