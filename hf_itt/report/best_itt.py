"""The reference study's headline table: the best intermediate task per target, chosen on
validation and reported on test.

For each target task, among the experiments that ran ITT (``itt.mode`` other than "none"), the one
with the highest validation score (all-language mean of the primary metric, averaged over seeds)
is selected; its test score is reported next to the baseline's and their seed-paired delta. A task
without test results is reported on validation, flagged: selecting and reporting on the same
split favours the selected experiment.
"""

from __future__ import annotations

from pathlib import Path

from hf_itt.evaluation.results import TaskResult
from hf_itt.report.tables import ResultGrid, Table, describe_itt, mean_ci, seed_delta

SELECTION_SPLIT, REPORT_SPLIT = "validation", "test"
NO_TEST_NOTE = "validation (no test results: selected and reported on one split, optimistic)"


def grids_by_split(loaded: list[tuple[Path, TaskResult]]) -> dict[str, ResultGrid]:
    """One grid per split present among ``loaded`` (one comparable group)."""
    splits = sorted({record.split for _, record in loaded})
    return {split: ResultGrid([(path, record) for path, record in loaded if record.split == split]) for split in splits}


def select_best(grid: ResultGrid, task: str) -> tuple[str, float] | None:
    """(experiment, mean validation score) of the best ITT experiment on ``task``; None without one."""
    scored = []
    for experiment in grid.experiments:
        scores = grid.scores(experiment, task)
        if scores and grid.itt(experiment).get("mode", "none") != "none":
            scored.append((mean_ci(scores.values()).mean, experiment))
    if not scored:
        return None
    best_score = max(score for score, _ in scored)
    return next(
        experiment for score, experiment in sorted(scored, key=lambda item: item[1]) if score == best_score
    ), best_score


def best_itt_table(loaded: list[tuple[Path, TaskResult]], baseline: str | None) -> Table:
    """One row per target task with validation results for at least one ITT experiment."""
    table = Table(
        "Best intermediate task per target (selected on validation, reported on test)",
        [
            "task",
            "best ITT experiment",
            "ITT",
            "validation (selection)",
            "reported on",
            "score",
            "baseline",
            "Δ vs baseline",
        ],
    )
    grids = grids_by_split(loaded)
    selection = grids.get(SELECTION_SPLIT)
    if selection is None:
        table.notes.append("no validation results: nothing to select on")
        return table
    for task in selection.tasks:
        chosen = select_best(selection, task)
        if chosen is None:
            continue
        experiment = chosen[0]
        report, reported_on = grids.get(REPORT_SPLIT), REPORT_SPLIT
        if report is None or not report.scores(experiment, task):
            report, reported_on = selection, NO_TEST_NOTE
        scores = report.scores(experiment, task)
        base = report.scores(baseline, task) if baseline else {}
        table.rows.append(
            [
                task,
                experiment,
                describe_itt(selection.itt(experiment)),
                mean_ci(selection.scores(experiment, task).values()),
                reported_on,
                mean_ci(scores.values()),
                mean_ci(base.values()) if base else None,
                seed_delta(scores, base) if base else None,
            ]
        )
    table.notes.append(
        "score = all-language mean of the task's primary metric, mean over seeds ± 95% CI; "
        "only experiments with ITT stages compete; ties go to the first name"
    )
    return table
