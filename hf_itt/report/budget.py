"""The training budget of each arm: how many updates its ITT stages ran and how many examples they saw.

Joint and sequential arms compare fairly only at a stated budget (a joint mixture's epochs run over
every task's rows; early stopping ends arms at different points). Each result file carries the
budgets its model's chain recorded (``TaskResult.training``, from the stage manifests: see
``hf_itt.training.budget``); the ITT part is the same for every target of one run, so one result per
(experiment, seed) is read.
"""

from __future__ import annotations

from hf_itt.report.tables import ResultGrid, Table, describe_itt

NOT_RECORDED = "not recorded"


def budget_table(grid: ResultGrid) -> Table:
    table = Table(
        "Training budget of each arm (ITT stages; one GPU update = effective batch examples)",
        ["experiment", "ITT", "updates", "examples seen", "per stage: updates × batch (selected step)", "seeds"],
    )
    for experiment in grid.experiments:
        runs = itt_budgets(grid, experiment)
        stages = grid.itt(experiment).get("stages") or []
        if not stages:
            table.rows.append(
                [
                    experiment,
                    describe_itt(grid.itt(experiment)),
                    "0",
                    "0",
                    "no ITT stage",
                    ", ".join(map(str, sorted(runs))),
                ]
            )
            continue
        complete = {seed: entries for seed, entries in runs.items() if entries is not None}
        table.rows.append(
            [
                experiment,
                describe_itt(grid.itt(experiment)),
                spread([total(entries, "updates") for entries in complete.values()]),
                spread([total(entries, "examples_seen") for entries in complete.values()]),
                per_stage(complete),
                seeds_cell(runs),
            ]
        )
    table.notes.append(
        "updates and examples seen summed over the arm's ITT stages, mean over seeds (min–max when "
        "seeds differ); examples seen = updates × effective batch (per-device batch × gradient "
        "accumulation × GPUs); an early-stopped stage shows fewer updates than it planned, and its "
        "exported weights are those of the selected step"
    )
    return table


def itt_budgets(grid: ResultGrid, experiment: str) -> dict[int, list[dict] | None]:
    """seed -> the ITT entries ({"stage", "tasks", "budget"}) of that run, None when any is not recorded."""
    runs: dict[int, list[dict] | None] = {}
    for (name, _, seed), record in sorted(grid.records.items()):
        if name != experiment or runs.get(seed) is not None:
            continue
        entries = (record.training or {}).get("itt")
        complete = entries is not None and all(entry.get("budget") for entry in entries)
        runs[seed] = list(entries) if complete else None
    return runs


def total(entries: list[dict], key: str) -> int:
    return sum(int(entry["budget"].get(key) or 0) for entry in entries)


def spread(values: list[int]) -> str:
    if not values:
        return NOT_RECORDED
    mean = sum(values) / len(values)
    text = f"{mean:,.0f}"
    return text if min(values) == max(values) else f"{text} ({min(values):,}–{max(values):,})"


def per_stage(runs: dict[int, list[dict]]) -> str:
    """Each stage of the first seed that recorded one: `name: updates × batch (step S)`, early stops marked."""
    if not runs:
        return NOT_RECORDED
    parts = []
    for entry in runs[min(runs)]:
        budget = entry["budget"]
        text = f"{entry['stage']}: {budget.get('updates', 0):,} × {budget.get('effective_batch_size', 0)}"
        if budget.get("stopped_early"):
            text += f" of {budget.get('planned_updates', 0):,} (early stop)"
        if budget.get("selected_step") not in (None, budget.get("updates")):
            text += f" (step {budget['selected_step']:,})"
        parts.append(text)
    return "; ".join(parts) + (f" [seed {min(runs)}]" if len(runs) > 1 else "")


def seeds_cell(runs: dict[int, list[dict] | None]) -> str:
    recorded = sorted(seed for seed, entries in runs.items() if entries is not None)
    if len(recorded) == len(runs):
        return ", ".join(map(str, recorded))
    missing = sorted(seed for seed, entries in runs.items() if entries is None)
    return (", ".join(map(str, recorded)) or "none") + f"; {NOT_RECORDED} for {', '.join(map(str, missing))}"


__all__ = ["budget_table"]
