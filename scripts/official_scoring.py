"""The "official scoring" notes of docs/tasks.md, kept in ``official_scoring.yaml`` next to this file.

One entry per benchmark task (and ``_benchmark`` for the averages): ``official`` (what the official
scorer does), ``hf_itt`` (where hf_itt matches or deliberately differs, and why), optionally
``layout`` (a text block shown as is). ``scripts/docgen.py`` renders them under each task.
"""

from __future__ import annotations

from pathlib import Path

import yaml

OFFICIAL_SCORING = Path(__file__).resolve().parent / "official_scoring.yaml"
NOTE_KEYS = ("official", "hf_itt", "layout")


def official_scoring(path: Path = OFFICIAL_SCORING) -> dict[str, dict[str, str]]:
    """{task or "_benchmark": {official, hf_itt[, layout]}}, every entry checked (a typo must not vanish)."""
    notes = yaml.safe_load(path.read_text(encoding="utf-8"))
    for name, entry in notes.items():
        if not isinstance(entry, dict) or not {"official", "hf_itt"} <= set(entry) or set(entry) - set(NOTE_KEYS):
            raise ValueError(f"{path}: entry {name!r} needs 'official' and 'hf_itt' (and optionally 'layout')")
    return notes


def scoring_notes(entry: dict[str, str] | None) -> list[str]:
    if entry is None:
        return []
    lines = [
        "**Official scoring**",
        "",
        f"- official scorer: {prose(entry['official'])}",
        f"- hf_itt: {prose(entry['hf_itt'])}",
        "",
    ]
    if "layout" in entry:
        lines += ["```text", *entry["layout"].rstrip().splitlines(), "```", ""]
    return lines


def prose(text: str) -> str:
    """One paragraph; a "<" outside `code` is escaped (Markdown would read `<lang>` as an HTML tag)."""
    parts = " ".join(text.split()).split("`")
    return "`".join(part if index % 2 else part.replace("<", "&lt;") for index, part in enumerate(parts))


def benchmark_scoring_section() -> list[str]:
    """The "Official scoring" section of docs/tasks.md: how the benchmark averages are formed."""
    benchmark = official_scoring()["_benchmark"]
    return [
        "## Official scoring",
        "",
        "What google-research/xtreme's `evaluate.py` (and, where it has none, the task's own reference "
        "script) does, and where hf_itt matches or deliberately differs: per task below, and for the "
        "benchmark averages:",
        "",
        f"- official scorer: {prose(benchmark['official'])}",
        f"- hf_itt: {prose(benchmark['hf_itt'])}",
        "",
    ]
