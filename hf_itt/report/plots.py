"""Report figures: per-language delta heatmaps and gain bar plots (matplotlib, no display needed).

Figures are built with ``matplotlib.figure.Figure`` directly (Agg canvas, no pyplot global state),
so the report runs headless and never leaks open figures.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from hf_itt.report.tables import Estimate

DPI = 150
ANNOTATE_MAX_CELLS = 800  # beyond this many cells the numbers become unreadable: colour only
MISSING_COLOUR = "#d9d9d9"


def save_figure(figure: Figure, path: Path, svg: bool = False) -> list[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    written = [path]
    if svg:
        figure.savefig(path.with_suffix(".svg"))
        written.append(path.with_suffix(".svg"))
    return written


def plot_language_heatmap(
    experiments: list[str], languages: list[str], matrix: np.ndarray, title: str, path: Path, svg: bool = False
) -> list[Path]:
    """Experiments × languages, diverging colours centred at 0 (blue = gain, red = loss, grey = no data)."""
    rows, columns = matrix.shape
    label_width = 0.075 * max((len(name) for name in experiments), default=4)
    figure = Figure(
        figsize=(max(5.0, 0.42 * columns + label_width + 1.8), max(2.4, 0.42 * rows + 1.6)), layout="constrained"
    )
    axes = figure.subplots()
    limit = max(float(np.nanmax(np.abs(matrix))) if np.isfinite(matrix).any() else 0.0, 0.1)
    colour_map = matplotlib.colormaps["RdBu"].with_extremes(bad=MISSING_COLOUR)
    image = axes.imshow(
        np.ma.masked_invalid(matrix),
        cmap=colour_map,
        aspect="auto",
        norm=TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit),
    )
    axes.set_xticks(range(columns), labels=languages, rotation=90 if columns > 12 else 0)
    axes.set_yticks(range(rows), labels=experiments)
    axes.set_xlabel("language")
    axes.set_title(title)
    if rows * columns <= ANNOTATE_MAX_CELLS:
        _annotate(axes, matrix, limit)
    figure.colorbar(image, ax=axes, label="Δ vs baseline (points)", shrink=0.9, pad=0.01)
    return save_figure(figure, path, svg)


def _annotate(axes, matrix: np.ndarray, limit: float) -> None:
    for (row, column), value in np.ndenumerate(matrix):
        if np.isnan(value):
            continue
        colour = "white" if abs(value) > 0.6 * limit else "black"  # stay legible on saturated cells
        axes.text(column, row, f"{value:+.1f}", ha="center", va="center", fontsize=7, color=colour)


def wrap_label(label: str, width: int = 14) -> str:
    """Break long tick labels (task chains) into lines so neighbouring groups do not overlap."""
    return "\n".join(textwrap.fill(line, width, break_long_words=False) for line in label.split("\n"))


def plot_gains(
    gains: dict[str, dict[str, Estimate]], labels: dict[str, str], title: str, path: Path, svg: bool = False
) -> list[Path]:
    """Grouped bars: one group per experiment, one bar per task, 95% CI error bars where defined."""
    experiments = list(gains)
    tasks = sorted({task for per_task in gains.values() for task in per_task})
    width = 0.8 / max(len(tasks), 1)
    bars = len(experiments) * len(tasks)
    figure = Figure(figsize=(min(16.0, max(6.0, 0.18 * bars + 3.0)), 5.0), layout="constrained")
    axes = figure.subplots()
    colours = matplotlib.colormaps["tab10" if len(tasks) <= 10 else "tab20"]
    for index, task in enumerate(tasks):
        positions = [slot + (index - (len(tasks) - 1) / 2) * width for slot in range(len(experiments))]
        estimates = [gains[experiment].get(task) for experiment in experiments]
        heights = [estimate.mean if estimate else np.nan for estimate in estimates]
        errors = [
            estimate.half_width if estimate and estimate.half_width is not None else 0.0 for estimate in estimates
        ]
        axes.bar(
            positions,
            heights,
            width,
            yerr=errors,
            capsize=2,
            label=task,
            color=colours(index),
            error_kw={"elinewidth": 0.8},
        )
    axes.axhline(0.0, color="black", linewidth=0.8)
    axes.set_xticks(
        range(len(experiments)),
        labels=[wrap_label(labels.get(exp, exp)) for exp in experiments],
        rotation=30 if len(experiments) > 4 else 0,
        ha="right" if len(experiments) > 4 else "center",
    )
    axes.set_ylabel("Δ vs baseline (points, all-language mean)")
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(title="target task", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return save_figure(figure, path, svg)
