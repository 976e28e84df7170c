"""The numbers of the report: seed statistics and the tables built from them.

Every score is first averaged over languages inside one result (``TaskResult.summary``), then over
seeds: mean ± half-width of the 95% t-interval. Deltas against the baseline are paired by seed when
at least two seeds (or the only seed of each side) are shared, else a Welch difference of means.
Cells stay ``Estimate`` objects until rendering, so tests and callers read numbers, not strings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean, stdev, variance

import numpy as np

from hf_itt.errors import ConfigError, DataError
from hf_itt.evaluation.results import TaskResult
from hf_itt.report.benchmark import (
    BENCHMARK_LANGUAGES,
    BENCHMARK_VARIANTS,
    benchmark_average,
    result_task,
)

CONFIDENCE = 0.95
SUMMARY_COLUMNS = (("mean_all", "all languages"), ("mean_non_en", "non-English"), ("en", "English"))


@dataclass(frozen=True)
class Estimate:
    """Mean over seeds with the half-width of its confidence interval (None: fewer than 2 values)."""

    mean: float
    half_width: float | None
    n: int
    paired: bool | None = None  # deltas only: True = paired by seed, False = difference of means
    n_baseline: int | None = None  # unpaired deltas: seeds on the baseline side

    def format(self, digits: int = 1, signed: bool = False) -> str:
        sign = "+" if signed else ""
        text = f"{self.mean:{sign}.{digits}f}"
        if self.half_width is not None:
            text += f" ± {self.half_width:.{digits}f}"
        seeds = f"n={self.n}" if self.n_baseline is None else f"n={self.n}/{self.n_baseline}"
        return f"{text} ({seeds})"


def t_critical(dof: float, confidence: float = CONFIDENCE) -> float:
    from scipy import (
        stats,  # deferred: scipy.stats costs ~1 s to import, only needed once there are CIs
    )

    return float(stats.t.ppf((1 + confidence) / 2, dof))


def mean_ci(values, confidence: float = CONFIDENCE) -> Estimate:
    """Mean and t-distribution confidence half-width of ``values`` (one value: no interval)."""
    values = [float(value) for value in values]
    if not values:
        raise ValueError("mean_ci needs at least one value")
    if len(values) == 1:
        return Estimate(values[0], None, 1)
    half_width = t_critical(len(values) - 1, confidence) * stdev(values) / math.sqrt(len(values))
    return Estimate(fmean(values), half_width, len(values))


def seed_delta(scores: dict[int, float], baseline: dict[int, float], confidence: float = CONFIDENCE) -> Estimate | None:
    """``scores - baseline`` over seeds: paired on shared seeds when possible, else Welch's interval."""
    if not scores or not baseline:
        return None
    shared = sorted(scores.keys() & baseline.keys())
    if len(shared) >= 2 or (shared and len(scores) == len(baseline) == 1):
        differences = mean_ci([scores[seed] - baseline[seed] for seed in shared], confidence)
        return Estimate(differences.mean, differences.half_width, differences.n, paired=True)
    return _welch_delta(list(scores.values()), list(baseline.values()), confidence)


def _welch_delta(values: list[float], baseline: list[float], confidence: float) -> Estimate:
    difference = fmean(values) - fmean(baseline)
    half_width = None
    if len(values) >= 2 and len(baseline) >= 2:
        var_a, var_b = variance(values) / len(values), variance(baseline) / len(baseline)
        if var_a + var_b == 0:
            half_width = 0.0
        else:  # Welch–Satterthwaite degrees of freedom
            dof = (var_a + var_b) ** 2 / (var_a**2 / (len(values) - 1) + var_b**2 / (len(baseline) - 1))
            half_width = t_critical(dof, confidence) * math.sqrt(var_a + var_b)
    return Estimate(difference, half_width, len(values), paired=False, n_baseline=len(baseline))


class ResultGrid:
    """Results of one comparable group (one base model, metric version and split) by experiment/task/seed."""

    def __init__(self, loaded: list[tuple[Path, TaskResult]]):
        self.records: dict[tuple[str, str, int], TaskResult] = {}
        self.paths: dict[tuple[str, str, int], Path] = {}
        for path, record in loaded:
            key = (record.experiment, record.task, record.seed)
            if key in self.records:
                raise ConfigError(
                    f"two results for experiment {key[0]!r}, task {key[1]!r}, seed {key[2]}, split "
                    f"{record.split!r}: {self.paths[key]} and {path}; pass only one of the run folders"
                )
            self.records[key], self.paths[key] = record, path
        require_comparable(loaded)
        self.experiments = sorted({key[0] for key in self.records})
        self.tasks = sorted({key[1] for key in self.records})
        self.seeds = sorted({key[2] for key in self.records})
        self._by_pair: dict[tuple[str, str], dict[int, TaskResult]] = {}
        for (experiment, task, seed), record in sorted(self.records.items()):
            self._by_pair.setdefault((experiment, task), {})[seed] = record
        for experiment in self.experiments:
            _require_same(
                [(p, r) for p, r in loaded if r.experiment == experiment],
                lambda record: record.itt,
                f"ITT stages of experiment {experiment!r}",
            )

    def results(self, experiment: str, task: str) -> dict[int, TaskResult]:
        return self._by_pair.get((experiment, task), {})

    def scores(self, experiment: str, task: str, key: str = "mean_all") -> dict[int, float]:
        """One summary value per seed (``key`` of ``TaskResult.summary``); seeds where it is None are left out."""
        found = {seed: record.summary.get(key) for seed, record in self.results(experiment, task).items()}
        return {seed: value for seed, value in found.items() if value is not None}

    def language_scores(self, experiment: str, task: str, language: str) -> dict[int, float]:
        found = {
            seed: record.languages.get(language, {}).get(record.primary_metric)
            for seed, record in self.results(experiment, task).items()
        }
        return {seed: value for seed, value in found.items() if value is not None}

    def languages(self, task: str) -> list[str]:
        return sorted({lang for (_, tsk, _), rec in self.records.items() if tsk == task for lang in rec.languages})

    def primary_metric(self, task: str) -> str:
        return next(rec.primary_metric for (_, tsk, _), rec in self.records.items() if tsk == task)

    def itt(self, experiment: str) -> dict:
        return next(rec.itt for (exp, _, _), rec in sorted(self.records.items()) if exp == experiment)


def require_comparable(loaded: list[tuple[Path, TaskResult]]) -> None:
    """Refuse results that may not be compared: other base model, metric version or primary metric."""
    for attribute in ("base_model", "metric_version", "split"):
        _require_same(loaded, lambda record: getattr(record, attribute), attribute)
    for task in {record.task for _, record in loaded}:
        _require_same(
            [(p, r) for p, r in loaded if r.task == task],
            lambda record: record.primary_metric,
            f"primary_metric of task {task!r}",
        )


def _require_same(loaded, value_of, what: str) -> None:
    first_path, first = loaded[0]
    for path, record in loaded[1:]:
        if value_of(record) != value_of(first):
            raise ConfigError(
                f"refusing to compare results with different {what}: {value_of(first)!r} in {first_path} "
                f"vs {value_of(record)!r} in {path}; report them separately (python -m hf_itt.report groups "
                f"by base_model and metric_version) or re-evaluate with the same setting"
            )


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list] = field(default_factory=list)  # cells: str, Estimate or None
    notes: list[str] = field(default_factory=list)


def format_cell(cell) -> str:
    """Scores with one decimal; deltas (estimates that carry a pairing) signed, with two."""
    if cell is None:
        return "—"
    if isinstance(cell, Estimate):
        is_delta = cell.paired is not None
        return cell.format(digits=2 if is_delta else 1, signed=is_delta)
    return str(cell)


def describe_itt(itt: dict) -> str:
    stages = itt.get("stages") or []
    if not stages:
        return itt.get("mode", "none")
    return " → ".join(" + ".join(stage) for stage in stages)


def score_table(grid: ResultGrid) -> Table:
    table = Table(
        "Scores (language averages, mean over seeds ± 95% CI)",
        ["task", "experiment", "ITT"] + [label for _, label in SUMMARY_COLUMNS],
    )
    for task in grid.tasks:
        for experiment in grid.experiments:
            if not grid.results(experiment, task):
                continue
            cells = [_estimate(grid.scores(experiment, task, key)) for key, _ in SUMMARY_COLUMNS]
            table.rows.append([task, experiment, describe_itt(grid.itt(experiment))] + cells)
    table.notes += encoder_notes(grid)
    return table


def encoder_notes(grid: ResultGrid) -> list[str]:
    """What embedded the sentences of each retrieval result: the ITT encoder, the base model, or a
    fine-tuned target's model (XTREME-R's Tatoeba), as the result records say."""
    labels: dict[str, dict[str, set[str]]] = {}
    for (experiment, task, _), record in sorted(grid.records.items()):
        if record.encoder:
            labels.setdefault(task, {}).setdefault(record.encoder, set()).add(experiment)
    return [
        f"{task} embedded with: "
        + "; ".join(f"{label} ({', '.join(sorted(experiments))})" for label, experiments in sorted(by_label.items()))
        for task, by_label in sorted(labels.items())
    ]


def _estimate(scores: dict[int, float]) -> Estimate | None:
    return mean_ci(scores.values()) if scores else None


def delta_table(grid: ResultGrid, baseline: str) -> Table:
    table = Table(
        f"Deltas vs baseline {baseline!r} (percentage points, mean ± 95% CI over seeds)",
        ["task", "experiment"] + [f"Δ {label}" for _, label in SUMMARY_COLUMNS] + ["pairing"],
    )
    table.notes.append(
        "paired = difference per shared seed; unpaired = Welch difference of means "
        "(n=experiment/baseline seeds), used when fewer than two seeds are shared"
    )
    for task in grid.tasks:
        if not grid.results(baseline, task):
            continue
        for experiment in grid.experiments:
            if experiment == baseline or not grid.results(experiment, task):
                continue
            deltas = [
                seed_delta(grid.scores(experiment, task, key), grid.scores(baseline, task, key))
                for key, _ in SUMMARY_COLUMNS
            ]
            pairing = next((("paired" if d.paired else "unpaired") for d in deltas if d is not None), None)
            table.rows.append([task, experiment] + deltas + [pairing])
    return table


def gains(grid: ResultGrid, baseline: str, key: str = "mean_all") -> dict[str, dict[str, Estimate]]:
    """Delta vs baseline per experiment and task (tasks the baseline lacks are left out)."""
    found: dict[str, dict[str, Estimate]] = {}
    for experiment in grid.experiments:
        if experiment == baseline:
            continue
        for task in grid.tasks:
            delta = seed_delta(grid.scores(experiment, task, key), grid.scores(baseline, task, key))
            if delta is not None:
                found.setdefault(experiment, {})[task] = delta
    return found


def language_delta_matrix(grid: ResultGrid, task: str, baseline: str) -> tuple[list[str], list[str], np.ndarray]:
    """Experiments (rows, baseline excluded) × sorted languages of ``task``: mean delta, NaN where absent."""
    experiments = [exp for exp in grid.experiments if exp != baseline and grid.results(exp, task)]
    languages = grid.languages(task)
    matrix = np.full((len(experiments), len(languages)), np.nan)
    for row, experiment in enumerate(experiments):
        for column, language in enumerate(languages):
            delta = seed_delta(
                grid.language_scores(experiment, task, language), grid.language_scores(baseline, task, language)
            )
            if delta is not None:
                matrix[row, column] = delta.mean
    return experiments, languages, matrix


def itt_shape(itt: dict) -> tuple[str, frozenset[str]] | None:
    """("sequential" | "joint", task set) from ``itt.stages``; None for anything else."""
    stages = [list(stage) for stage in itt.get("stages") or []]
    tasks = frozenset(task for stage in stages for task in stage)
    if len(stages) >= 2 and all(len(stage) == 1 for stage in stages):
        return "sequential", tasks
    if len(stages) == 1 and len(stages[0]) >= 2:
        return "joint", tasks
    return None


def sequential_joint_pairs(grid: ResultGrid) -> tuple[list[tuple[str, str]], list[str]]:
    """(sequential, joint) experiment pairs on the same ITT task set, and the experiments left without a partner."""
    by_set: dict[frozenset[str], dict[str, list[str]]] = {}
    for experiment in grid.experiments:
        shape = itt_shape(grid.itt(experiment))
        if shape is not None:
            by_set.setdefault(shape[1], {"sequential": [], "joint": []})[shape[0]].append(experiment)
    pairs, unpaired = [], []
    for shapes in by_set.values():
        pairs += [(seq, joint) for seq in shapes["sequential"] for joint in shapes["joint"]]
        if not (shapes["sequential"] and shapes["joint"]):
            unpaired += shapes["sequential"] + shapes["joint"]
    return sorted(pairs), sorted(unpaired)


def sequential_joint_table(grid: ResultGrid, baseline: str | None) -> Table:
    table = Table(
        "Sequential vs joint ITT on the same task set (all-language average)",
        [
            "task",
            "sequential",
            "score",
            "joint",
            "score",
            "joint − sequential",
            "Δ sequential vs baseline",
            "Δ joint vs baseline",
        ],
    )
    pairs, unpaired = sequential_joint_pairs(grid)
    for task in grid.tasks:
        base = grid.scores(baseline, task) if baseline else {}
        for sequential, joint in pairs:
            seq_scores, joint_scores = grid.scores(sequential, task), grid.scores(joint, task)
            if not (seq_scores and joint_scores):
                continue
            table.rows.append(
                [
                    task,
                    f"{sequential} ({describe_itt(grid.itt(sequential))})",
                    mean_ci(seq_scores.values()),
                    f"{joint} ({describe_itt(grid.itt(joint))})",
                    mean_ci(joint_scores.values()),
                    seed_delta(joint_scores, seq_scores),
                    seed_delta(seq_scores, base),
                    seed_delta(joint_scores, base),
                ]
            )
    if unpaired:
        table.notes.append("no partner on the same task set: " + ", ".join(unpaired))
    return table


def missing_combinations(grid: ResultGrid) -> list[tuple[str, str, list[int]]]:
    """(experiment, task, missing seeds) against the union of experiments, tasks and seeds seen."""
    missing = []
    for experiment in grid.experiments:
        for task in grid.tasks:
            absent = sorted(set(grid.seeds) - set(grid.results(experiment, task)))
            if absent:
                missing.append((experiment, task, absent))
    return missing


def tasks_without_baseline(grid: ResultGrid, baseline: str | None) -> list[str]:
    return [task for task in grid.tasks if baseline is None or not grid.results(baseline, task)]


# Benchmark averages: hf_itt.report.benchmark applies XTREME's rule (TASKS.md 4.1) and its language lists.
BENCHMARK_TITLES = {"xtreme": "XTREME", "xtreme_r": "XTREME-R"}


def benchmark_table(grid: ResultGrid, baseline: str | None) -> Table:
    """Benchmark average per experiment, only when every task of the benchmark has results (XTREME's
    rule); otherwise the mean over the tasks present, in its own column, with the missing tasks named."""
    table = Table(
        "Benchmark averages (mean over tasks of the language-averaged task score)",
        ["benchmark", "experiment", "average", "partial mean (tasks present)", "Δ vs baseline", "missing tasks"],
    )
    for benchmark, title in BENCHMARK_TITLES.items():
        sources = {task: result_task(task, benchmark, grid.tasks) for task in BENCHMARK_LANGUAGES[benchmark]}
        covered = [task for task, source in sources.items() if source]
        if not covered:
            continue
        missing = [task for task, source in sources.items() if not source]
        averages = {
            exp: benchmark_by_seed(grid, exp, [sources[task] for task in covered], benchmark)
            for exp in grid.experiments
        }
        for experiment, (by_seed, _) in averages.items():
            delta = None
            if baseline and experiment != baseline:
                delta = seed_delta(by_seed, averages.get(baseline, ({}, {}))[0])
            estimate = _estimate(by_seed)
            table.rows.append(
                [
                    title,
                    experiment,
                    None if missing else estimate,
                    estimate if missing else None,
                    delta,
                    ", ".join(missing) or "none",
                ]
            )
        table.notes += _coverage_notes(title, covered, missing, averages) + _variant_notes(benchmark, sources)
    table.notes.append("a seed counts only when it has every task averaged; QA tasks count (EM + F1) / 2")
    return table


def benchmark_by_seed(
    grid: ResultGrid, experiment: str, tasks: list[str], benchmark: str
) -> tuple[dict[int, float], dict[str, set[str]]]:
    """{seed: mean task score over ``tasks``} for the seeds having all of them, and the languages missing."""
    averages, missing_languages = {}, {}
    for seed in grid.seeds:
        keys = [(experiment, task, seed) for task in tasks]
        if not all(key in grid.records for key in keys):
            continue
        try:
            average = benchmark_average({key[1]: grid.records[key].languages for key in keys}, benchmark)
        except DataError as error:
            raise DataError(
                f"{error} (results of experiment {experiment!r}, seed {seed}: "
                f"{', '.join(str(grid.paths[key]) for key in keys)})"
            ) from error
        averages[seed] = average.partial_mean
        for task, languages in average.missing_languages.items():
            missing_languages.setdefault(task, set()).update(languages)
    return averages, missing_languages


def _variant_notes(benchmark: str, sources: dict[str, str | None]) -> list[str]:
    """Which result stands for a task the benchmark has its own protocol of (XTREME-R's Tatoeba)."""
    title, notes = BENCHMARK_TITLES[benchmark], []
    for variant, task in BENCHMARK_VARIANTS.get(benchmark, {}).items():
        if sources.get(task) == variant:
            notes.append(f"{title}: {task} counts the {variant} results ({title}'s own protocol)")
        elif sources.get(task) == task:
            notes.append(
                f"{title}: {task} counts the {task} results, not {title}'s own protocol ({variant}: "
                f"see its task description)"
            )
    return notes


def _coverage_notes(title: str, covered: list[str], missing: list[str], averages) -> list[str]:
    notes = []
    if missing:
        notes.append(
            f"{title}: partial, no results for {', '.join(missing)}: the mean over {', '.join(covered)} "
            f"is not a benchmark score (XTREME's evaluate.py gives none unless every task is present)"
        )
    absent: dict[str, set[str]] = {}
    for _, missing_languages in averages.values():
        for task, languages in missing_languages.items():
            absent.setdefault(task, set()).update(languages)
    if absent:
        notes.append(
            f"{title}: benchmark languages without scores, left out of the task means: "
            + "; ".join(f"{task} {', '.join(sorted(langs))}" for task, langs in sorted(absent.items()))
        )
    return notes
