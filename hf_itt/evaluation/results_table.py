"""Print zero-shot results as a terminal table (task x language, primary metric)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from hf_itt.evaluation.results import TaskResult


def results_table(results: list[TaskResult], title: str = "Zero-shot results") -> Table:
    languages = sorted({lang for result in results for lang in result.languages}, key=lambda lang: (lang != "en", lang))
    table = Table(title=title)
    for column in ("task", "split", "metric", *languages, "mean non-en", "mean all"):
        table.add_column(column, justify="left" if column in ("task", "split", "metric") else "right")
    for result in results:
        cells = [format_score(result.languages.get(lang, {}).get(result.primary_metric)) for lang in languages]
        table.add_row(
            result.task,
            result.split,
            result.primary_metric,
            *cells,
            format_score(result.summary.get("mean_non_en")),
            format_score(result.summary.get("mean_all")),
        )
    return table


def format_score(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_results(results: list[TaskResult], title: str = "Zero-shot results") -> None:
    table = results_table(results, title)
    console = Console()
    needed = console.measure(table, options=console.options.update_width(10_000)).maximum
    if needed > console.width:  # a narrow terminal or a log file (80 columns): widen, never cut a name
        console = Console(width=needed)
    console.print(table)
    for result in results:
        for lang, reason in result.failed.items():
            console.print(f"[yellow]{result.task} {result.split} {lang}: not scored: {reason}[/yellow]")
