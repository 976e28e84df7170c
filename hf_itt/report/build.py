"""Report over many experiments and seeds: ``python -m hf_itt.report RUN_DIR... --out report/``.

Finds every result JSON (``hf_itt.evaluation.results.TaskResult``: a ``schema_version`` and a ``task`` key) under
the given folders, keeps one split, groups the results that may be compared (same base model and
metric version: groups are reported separately, never mixed) and writes ``report.md`` (or
``report.html``) with score and delta tables, benchmark averages (partial ones flagged), the best
ITT per target (selected on validation, reported on test), BUCC threshold sources,
sequential-vs-joint pairs, each arm's training budget (updates and examples seen), a list of missing
runs, and PNG plots (SVG copies with ``--svg``).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import textwrap
from pathlib import Path

from hf_itt.errors import ConfigError, HfIttError
from hf_itt.evaluation.results import TaskResult
from hf_itt.report.best_itt import best_itt_table
from hf_itt.report.budget import budget_table
from hf_itt.report.plots import plot_gains, plot_language_heatmap
from hf_itt.report.tables import (
    ResultGrid,
    Table,
    benchmark_table,
    delta_table,
    describe_itt,
    format_cell,
    gains,
    language_delta_matrix,
    missing_combinations,
    score_table,
    sequential_joint_table,
    tasks_without_baseline,
)
from hf_itt.report.thresholds import threshold_table

SPLITS = ("validation", "test")
MAX_RESULT_BYTES = 2_000_000  # a result holds a few metrics for <= 50 languages: a few kB


def find_result_files(paths: list[str | Path]) -> list[Path]:
    """Result JSONs among ``paths`` (files, or folders searched recursively); other JSON is ignored."""
    found = []
    for path in map(Path, paths):
        if not path.exists():
            raise ConfigError(f"report input {path} does not exist; pass run folders or result JSON files")
        if path.is_file():
            if not _is_result_file(path):
                raise ConfigError(f"{path} is not a result file (a JSON with 'schema_version' and 'task' keys)")
            found.append(path)
        else:
            found += [file for file in sorted(path.rglob("*.json")) if _is_result_file(file)]
    return sorted(set(found))


def _is_result_file(path: Path) -> bool:
    if path.stat().st_size > MAX_RESULT_BYTES:
        return False  # checkpoints hold big JSON (tokenizer.json ~17 MB): not worth parsing
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False  # not ours (binary, partial or foreign JSON): results are written atomically
    return isinstance(data, dict) and "schema_version" in data and "task" in data


def load_results(paths: list[str | Path], split: str | None = None) -> list[tuple[Path, TaskResult]]:
    """(file, result) for every result file under ``paths``, only those of ``split`` when given."""
    files = find_result_files(paths)
    if not files:
        raise ConfigError(
            f"no result files (JSON with 'schema_version' and 'task') found under "
            f"{', '.join(map(str, paths))}; point the report at the folders the evaluation wrote"
        )
    loaded = []
    for file in files:
        try:
            loaded.append((file, TaskResult.load(file)))
        except (ValueError, TypeError) as error:
            raise ConfigError(f"cannot read result file {file}: {error}") from error
    return loaded if split is None else select_split(loaded, split)


def select_split(loaded: list[tuple[Path, TaskResult]], split: str) -> list[tuple[Path, TaskResult]]:
    kept = [(file, record) for file, record in loaded if record.split == split]
    if not kept:
        splits = sorted({record.split for _, record in loaded})
        raise ConfigError(
            f"none of the {len(loaded)} result files is for split {split!r} "
            f"(found: {', '.join(splits)}); pass --split {splits[0]}"
        )
    return kept


def group_comparable(loaded: list[tuple[Path, TaskResult]]) -> dict[tuple[str, str], list[tuple[Path, TaskResult]]]:
    """Results keyed by (base_model, metric_version): only results inside one group are compared."""
    groups: dict[tuple[str, str], list[tuple[Path, TaskResult]]] = {}
    for path, record in loaded:
        groups.setdefault((record.base_model, record.metric_version), []).append((path, record))
    return dict(sorted(groups.items()))


def choose_baseline(grid: ResultGrid, requested: str | None) -> str | None:
    """``requested`` if this group has it, else the one experiment whose ``itt.mode`` is "none"."""
    if requested:
        return requested if requested in grid.experiments else None
    plain = [exp for exp in grid.experiments if grid.itt(exp).get("mode") == "none"]
    if len(plain) > 1:
        raise ConfigError(
            f"several experiments have itt.mode 'none' ({', '.join(plain)}); choose the baseline with --baseline NAME"
        )
    return plain[0] if plain else None


def build_report(
    paths: list[str | Path],
    out: str | Path,
    baseline: str | None = None,
    split: str = "validation",
    fmt: str = "md",
    svg: bool = False,
) -> Path:
    """Write the report (and its plots) into ``out``; returns the report file."""
    out = Path(out)
    loaded = load_results(paths)
    groups = group_comparable(select_split(loaded, split))
    every_split = group_comparable(loaded)
    grids = {key: ResultGrid(members) for key, members in groups.items()}
    if baseline and not any(baseline in grid.experiments for grid in grids.values()):
        known = sorted({exp for grid in grids.values() for exp in grid.experiments})
        raise ConfigError(f"--baseline {baseline!r} is not among the experiments found: {', '.join(known)}")
    blocks: list[tuple] = [("heading", 1, f"ITT report ({split} split)"), ("text", _inputs_line(groups, loaded))]
    if len(grids) > 1:
        blocks.append(
            (
                "text",
                "**Results come from different base models or metric versions. Each group "
                "below is reported on its own; numbers are never compared across groups.**",
            )
        )
    for index, (key, grid) in enumerate(grids.items(), start=1):
        prefix = f"group{index}-" if len(grids) > 1 else ""
        blocks += _group_blocks(
            grid, key, choose_baseline(grid, baseline), baseline, out, prefix, svg, every_split[key]
        )
    render = _render_html if fmt == "html" else _render_markdown
    out.mkdir(parents=True, exist_ok=True)
    report = out / f"report.{fmt}"
    report.write_text(render(blocks), encoding="utf-8")
    return report


def _inputs_line(groups, loaded) -> str:
    files = sum(len(members) for members in groups.values())
    line = f"{files} result files in {len(groups)} comparable group(s)."
    if len(loaded) > files:
        line += f" {len(loaded) - files} result files of other splits left out (see --split)."
    return line


def _group_blocks(
    grid: ResultGrid,
    key: tuple[str, str],
    baseline: str | None,
    requested: str | None,
    out: Path,
    prefix: str,
    svg: bool,
    every_split: list[tuple[Path, TaskResult]],
) -> list[tuple]:
    base_model, metric_version = key
    blocks: list[tuple] = [
        ("heading", 2, f"base_model {base_model} · metric_version {metric_version}"),
        (
            "text",
            f"{len(grid.experiments)} experiments × {len(grid.tasks)} tasks × seeds "
            f"{', '.join(map(str, grid.seeds))}. Baseline: " + _baseline_text(baseline, requested),
        ),
        ("table", score_table(grid)),
    ]
    if baseline:
        blocks += [("table", delta_table(grid, baseline))]
    blocks += [("table", benchmark_table(grid, baseline)), ("table", best_itt_table(every_split, baseline))]
    thresholds = threshold_table(grid)
    if thresholds is not None:
        blocks.append(("table", thresholds))
    if baseline:
        blocks += _heatmap_blocks(grid, baseline, out, prefix, svg)
    blocks += [("table", sequential_joint_table(grid, baseline)), ("table", budget_table(grid))]
    per_experiment = gains(grid, baseline) if baseline else {}
    if per_experiment:
        name = f"{prefix}gains.png"
        plot_gains(
            per_experiment, _bar_labels(grid, per_experiment), f"Gain over {baseline} per experiment", out / name, svg
        )
        blocks.append(("image", name, "gains over the baseline per experiment and task"))
    return blocks + _missing_blocks(grid, baseline)


def _bar_labels(grid: ResultGrid, experiments) -> dict[str, str]:
    """Name + ITT stages under each bar group while few enough to stay horizontal; names only beyond."""
    if len(experiments) > 4:
        return {exp: exp for exp in experiments}
    return {exp: f"{exp}\n" + textwrap.fill(describe_itt(grid.itt(exp)), 24) for exp in experiments}


def _baseline_text(baseline: str | None, requested: str | None) -> str:
    if baseline:
        return f"`{baseline}`."
    if requested:
        return f"none (`{requested}` has no results in this group): no deltas."
    return "none (no experiment with itt.mode 'none'; choose one with --baseline): no deltas."


def _heatmap_blocks(grid: ResultGrid, baseline: str, out: Path, prefix: str, svg: bool) -> list[tuple]:
    blocks: list[tuple] = [("heading", 3, "Per-language deltas vs baseline")]
    for task in grid.tasks:
        experiments, languages, matrix = language_delta_matrix(grid, task, baseline)
        if not experiments or not grid.results(baseline, task):
            continue
        name = f"{prefix}heatmap-{_slug(task)}.png"
        title = f"{task}: Δ {grid.primary_metric(task)} vs {baseline}"
        plot_language_heatmap(experiments, languages, matrix, title, out / name, svg)
        blocks.append(("image", name, f"{task} per-language deltas"))
    return blocks if len(blocks) > 1 else []


def _missing_blocks(grid: ResultGrid, baseline: str | None) -> list[tuple]:
    items = [
        f"`{exp}` × `{task}`: seed(s) {', '.join(map(str, seeds))}" for exp, task, seeds in missing_combinations(grid)
    ]
    if baseline:
        items += [f"task `{task}` has no baseline result" for task in tasks_without_baseline(grid, baseline)]
    items += [
        f"`{exp}` × `{task}` seed {seed}: language {lang} failed ({reason})"
        for (exp, task, seed), record in sorted(grid.records.items())
        for lang, reason in record.failed.items()
    ]
    return [("heading", 3, "Missing results"), ("list", items or ["nothing missing"])]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _render_markdown(blocks: list[tuple]) -> str:
    lines: list[str] = []
    for kind, *body in blocks:
        if kind == "heading":
            lines += ["#" * body[0] + " " + body[1], ""]
        elif kind == "text":
            lines += [body[0], ""]
        elif kind == "list":
            lines += [f"- {item}" for item in body[0]] + [""]
        elif kind == "image":
            lines += [f"![{body[1]}]({body[0]})", ""]
        elif kind == "table":
            lines += _markdown_table(body[0])
    return "\n".join(lines)


def _markdown_table(table: Table) -> list[str]:
    def row(cells):
        return "| " + " | ".join(format_cell(cell).replace("|", "\\|") for cell in cells) + " |"

    lines = [f"### {table.title}", ""]
    if table.rows:
        lines += [row(table.headers), "|" + "---|" * len(table.headers)] + [row(cells) for cells in table.rows]
    else:
        lines.append("(nothing to compare)")
    return lines + [""] + [f"*{note}*" for note in table.notes] + ([""] if table.notes else [])


def _render_html(blocks: list[tuple]) -> str:
    parts = [
        "<!doctype html><meta charset='utf-8'><title>ITT report</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}img{max-width:100%}</style>",
    ]
    for kind, *body in blocks:
        if kind == "heading":
            parts.append(f"<h{body[0]}>{html.escape(body[1])}</h{body[0]}>")
        elif kind == "text":
            parts.append(f"<p>{html.escape(body[0].replace('**', '').replace('`', ''))}</p>")
        elif kind == "list":
            parts.append(
                "<ul>" + "".join(f"<li>{html.escape(item.replace('`', ''))}</li>" for item in body[0]) + "</ul>"
            )
        elif kind == "image":
            parts.append(f"<img src='{html.escape(body[0])}' alt='{html.escape(body[1])}'>")
        elif kind == "table":
            parts.append(_html_table(body[0]))
    return "\n".join(parts) + "\n"


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_cell(c))}</td>" for c in cells) + "</tr>" for cells in table.rows
    )
    notes = "".join(f"<p><em>{html.escape(note)}</em></p>" for note in table.notes)
    body = f"<table><tr>{head}</tr>{rows}</table>" if table.rows else "<p>(nothing to compare)</p>"
    return f"<h3>{html.escape(table.title)}</h3>{body}{notes}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m hf_itt.report", description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="run folders (searched recursively) or result JSON files")
    parser.add_argument("--out", default="report", help="output folder (default: report/)")
    parser.add_argument("--baseline", help="baseline experiment (default: the one whose itt.mode is 'none')")
    parser.add_argument("--split", choices=SPLITS, default="validation")
    parser.add_argument("--format", choices=("md", "html"), default="md", dest="fmt")
    parser.add_argument("--svg", action="store_true", help="also write SVG copies of the plots")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        path = build_report(args.inputs, args.out, args.baseline, args.split, args.fmt, args.svg)
    except HfIttError as error:
        print(f"hf_itt.report.build: error: {error}", file=sys.stderr)
        return 2
    print(f"report written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
