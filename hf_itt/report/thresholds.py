"""Where each BUCC threshold came from, as the result records state it (``TaskResult.protocol``)."""

from __future__ import annotations

from hf_itt.report.tables import ResultGrid, Table

ORACLE_NOTE = (
    "test-oracle: the threshold was optimised on the gold of the split it scores; such F1 is an "
    "upper bound, not comparable to published numbers (those apply the validation threshold)"
)


def threshold_table(grid: ResultGrid) -> Table | None:
    """One row per (task, experiment, seed) whose result records thresholds; None when none does."""
    table = Table(
        "Mining thresholds (BUCC) and their source",
        ["task", "experiment", "seed", "repeated sentences", "threshold per language (source)"],
    )
    for (experiment, task, seed), record in sorted(grid.records.items(), key=lambda item: (item[0][1], *item[0])):
        sources = record.protocol.get("threshold_source")
        if not sources:
            continue
        cells = [
            f"{lang} {record.languages[lang]['threshold']:.4f} ({source})"
            for lang, source in sorted(sources.items())
            if "threshold" in record.languages.get(lang, {})
        ]
        table.rows.append([task, experiment, str(seed), record.protocol.get("bucc_duplicates", "?"), ", ".join(cells)])
    if not table.rows:
        return None
    table.notes.append("dev: optimised on the validation gold (on test: the validation threshold of the same model)")
    if any("(test-oracle)" in row[-1] for row in table.rows):
        table.notes.append(ORACLE_NOTE)
    return table
