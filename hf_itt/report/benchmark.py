"""XTREME / XTREME-R benchmark averages, computed like XTREME's ``evaluate.py``.

1. per task, each metric is averaged over the task's benchmark languages;
2. the task score is (avg EM + avg F1) / 2 for QA tasks, else avg F1 when the task has F1, else avg
   accuracy, else avg mAP@20;
3. the benchmark score is the unweighted mean of task scores; group scores average their tasks.

As in ``evaluate.py``, the benchmark score exists only when every task of the benchmark is there
and a group score only when all its tasks are. With tasks missing, ``partial_mean`` (the mean over
the tasks present) is returned instead, with the missing tasks and languages named: a number for
comparing runs on the same tasks, not a benchmark score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Real
from typing import Mapping

from hf_itt.errors import ConfigError, DataError
from hf_itt.tasks.registry import all_tasks
from hf_itt.tasks.schema import BENCHMARKS

QA_TASKS = ("xquad", "mlqa", "tydiqa")
TASK_ALIASES = {"mewslix": "mewsli_x", "bucc": "bucc2018", "bucc18": "bucc2018"}  # as in the task specs
# A benchmark's own protocol of a task, counted as that task in the benchmark (and in no other) and preferred
# to the generic result: XTREME-R's Tatoeba embeds with the SQuAD-fine-tuned model (TASKS.md 3.5).
BENCHMARK_VARIANTS: dict[str, dict[str, str]] = {"xtreme_r": {"tatoeba_xtreme_r": "tatoeba"}}

# Tasks whose benchmark score comes from their own script, so XTREME-R's evaluate.py lists no language for them.
OWN_SCRIPT_TASKS: dict[str, tuple[str, ...]] = {"xtreme_r": ("lareqa",)}
BENCHMARK_GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "xtreme": {
        "classification": ("pawsx", "xnli"),
        "tagging": ("udpos", "panx"),
        "qa": QA_TASKS,
        "retrieval": ("bucc2018", "tatoeba"),
    },
    "xtreme_r": {  # LAReQA is in no group of XTREME-R's evaluate.py, but counts in the overall mean
        "classification": ("xnli", "xcopa"),
        "tagging": ("udpos", "panx"),
        "qa": QA_TASKS,
        "retrieval": ("tatoeba", "mewsli_x"),
        "multi_choice": ("xcopa",),
    },
}


def task_languages(benchmark: str) -> dict[str, tuple[str, ...]]:
    """{task: its languages in ``benchmark``} from the task specs (``benchmarks`` and ``xtreme_r_languages``
    in hf_itt/tasks/specs; one source of truth), in the order of XTREME's evaluate.py groups; a benchmark
    variant (XTREME-R's ``tatoeba_xtreme_r``) counts as its task; empty: whatever the caller scored."""
    variants = BENCHMARK_VARIANTS.get(benchmark, {})
    specs = {spec.name: spec for spec in all_tasks() if benchmark in spec.benchmarks and spec.name not in variants}
    grouped = [task for tasks in BENCHMARK_GROUPS.get(benchmark, {}).values() for task in tasks]
    order = list(dict.fromkeys(task for task in [*grouped, *specs] if task in specs))
    own_script = OWN_SCRIPT_TASKS.get(benchmark, ())
    return {task: () if task in own_script else tuple(specs[task].languages_for(benchmark)) for task in order}


# {benchmark: {task: languages (empty = whatever the caller scored)}}
BENCHMARK_LANGUAGES: dict[str, dict[str, tuple[str, ...]]] = {name: task_languages(name) for name in BENCHMARKS}


@dataclass
class BenchmarkAverage:
    """``overall``: mean task score when every benchmark task has scores, else None;
    ``partial_mean``: mean over the tasks present (None if none); ``groups``: {group: mean of its
    tasks when all are present, else None}; ``missing_tasks``: benchmark tasks without scores;
    ``missing_languages``: {task: benchmark languages without scores}; ``ignored``: tasks or
    task/language entries given but not part of this benchmark."""

    benchmark: str
    overall: float | None
    task_scores: dict[str, float]
    groups: dict[str, float | None]
    missing_tasks: list[str] = field(default_factory=list)
    missing_languages: dict[str, list[str]] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    partial_mean: float | None = None

    @property
    def all_tasks_present(self) -> bool:
        return not self.missing_tasks

    @property
    def complete(self) -> bool:
        return not self.missing_tasks and not self.missing_languages


def language_means(per_language_metrics: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Each metric's mean over the languages that report it."""
    totals: dict[str, list[float]] = {}
    for metrics in per_language_metrics.values():
        for name, value in metrics.items():
            totals.setdefault(name, []).append(float(value))
    return {name: sum(values) / len(values) for name, values in totals.items()}


def task_score(task: str, per_language_metrics: Mapping[str, Mapping[str, float]]) -> float:
    """XTREME's ``avg_metric`` of one task from {language: {metric: value}} (percent)."""
    if not per_language_metrics:
        raise DataError(f"task {task!r}: no per-language scores to average")
    means = language_means(per_language_metrics)
    if TASK_ALIASES.get(task, task) in QA_TASKS:
        if "exact_match" not in means or "f1" not in means:
            raise DataError(f"QA task {task!r} needs 'exact_match' and 'f1' per language, got {sorted(means)}")
        return (means["exact_match"] + means["f1"]) / 2
    for name in ("f1", "accuracy", "map@20"):
        if name in means:
            return means[name]
    raise DataError(f"task {task!r}: none of f1 / accuracy / map@20 among its metrics {sorted(means)}")


def benchmark_average(
    task_scores: Mapping[str, Mapping[str, Mapping[str, float]] | float], benchmark: str = "xtreme"
) -> BenchmarkAverage:
    """Benchmark and group means from {task: {language: {metric: value}}} or {task: task score}.

    Per-language inputs are restricted to the benchmark's languages of each task (so XQuAD's ``ro``
    counts for XTREME-R only); missing and ignored entries are listed in the result.
    """
    if benchmark not in BENCHMARK_LANGUAGES:
        raise ConfigError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARK_LANGUAGES)}")
    task_langs = BENCHMARK_LANGUAGES[benchmark]
    task_scores, ignored = benchmark_tasks(task_scores, benchmark)
    scores: dict[str, float] = {}
    missing_languages: dict[str, list[str]] = {}
    ignored += [task for task in task_scores if task not in task_langs]
    for task, langs in task_langs.items():
        if task not in task_scores:
            continue
        value = task_scores[task]
        if isinstance(value, Real):
            scores[task] = float(value)
            continue
        kept = {lang: metrics for lang, metrics in value.items() if not langs or lang in langs}
        ignored += [f"{task}/{lang}" for lang in value if lang not in kept]
        absent = [lang for lang in langs if lang not in kept]
        if absent:
            missing_languages[task] = absent
        if kept:
            scores[task] = task_score(task, kept)
    groups = {
        group: _mean([scores[t] for t in tasks]) if all(t in scores for t in tasks) else None
        for group, tasks in BENCHMARK_GROUPS[benchmark].items()
    }
    missing_tasks = [task for task in task_langs if task not in scores]
    partial_mean = _mean(list(scores.values()))
    return BenchmarkAverage(
        benchmark=benchmark,
        overall=None if missing_tasks else partial_mean,
        task_scores=scores,
        groups=groups,
        missing_tasks=missing_tasks,
        missing_languages=missing_languages,
        ignored=ignored,
        partial_mean=partial_mean,
    )


def benchmark_tasks(task_scores: Mapping, benchmark: str) -> tuple[dict, list[str]]:
    """``task_scores`` under the benchmark's task names (aliases resolved; a benchmark variant such as
    ``tatoeba_xtreme_r`` stands for its task in its benchmark), and the results it puts aside for that."""
    variants = BENCHMARK_VARIANTS.get(benchmark, {})
    named = {TASK_ALIASES.get(task, task): value for task, value in task_scores.items()}
    replaced = {variants[task] for task in named if task in variants}
    ignored = [
        f"{task} (counted as {', '.join(v for v, t in variants.items() if t == task and v in named)})"
        for task in named
        if task in replaced
    ]
    kept = {variants.get(task, task): value for task, value in named.items() if task not in replaced}
    return kept, ignored


def result_task(task: str, benchmark: str, available) -> str | None:
    """Which result stands for benchmark task ``task``: the benchmark's variant when present, else the task."""
    for variant, generic in BENCHMARK_VARIANTS.get(benchmark, {}).items():
        if generic == task and variant in available:
            return variant
    return task if task in available else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
