"""The report over experiments × seeds: numbers in the tables, missing runs, mixing refusal, plots, CLI.

Synthetic results have known structure: score = language base + seed effect + experiment gain
(+ a per-language gain) + experiment-specific seed noise, so every expected mean, CI and delta below
is computed from that recipe with numpy / the t quantile, independently of hf_itt.report.tables.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from hf_itt.errors import ConfigError
from hf_itt.evaluation.results import TaskResult
from hf_itt.report.build import build_report, choose_baseline, load_results, main
from hf_itt.report.tables import (
    ResultGrid,
    benchmark_table,
    delta_table,
    language_delta_matrix,
    mean_ci,
    missing_combinations,
    score_table,
    seed_delta,
    sequential_joint_pairs,
    sequential_joint_table,
    tasks_without_baseline,
)

T_975_DF2 = 4.302652729911275  # t quantile 0.975 with 2 degrees of freedom (3 seeds)
SEEDS = (1, 2, 3)
LANGUAGE_BASE = {"en": 85.0, "de": 78.0, "sw": 62.0, "zh": 71.0}
SEED_EFFECT = {1: 0.0, 2: 0.8, 3: -0.4}
EXPERIMENTS = {  # name: (itt, gain on every language, extra gain per language, noise per seed)
    "baseline": ({"mode": "none", "stages": []}, 0.0, {}, {1: 0.0, 2: 0.0, 3: 0.0}),
    "seq": ({"mode": "sequential", "stages": [["squad_v1"], ["mnli"]]}, 2.0, {"sw": 4.0}, {1: 0.3, 2: -0.2, 3: 0.5}),
    "joint": ({"mode": "joint", "stages": [["mnli", "squad_v1"]]}, 1.0, {}, {1: -0.1, 2: 0.4, 3: 0.0}),
    "single": ({"mode": "single", "stages": [["mnli"]]}, -0.5, {"en": 1.0}, {1: 0.2, 2: 0.2, 3: -0.6}),
}
TASKS = {"xnli": "accuracy", "panx": "f1"}
TASK_OFFSET = {"xnli": 0.0, "panx": -5.0}


def language_score(experiment: str, task: str, seed: int, language: str) -> float:
    _, gain, per_language, noise = EXPERIMENTS[experiment]
    return (
        LANGUAGE_BASE[language]
        + TASK_OFFSET[task]
        + SEED_EFFECT[seed]
        + gain
        + per_language.get(language, 0.0)
        + noise[seed]
    )


def make_result(
    experiment, task, seed, base_model="xlm-roberta-large", metric_version="1", split="validation", languages=None
) -> TaskResult:
    languages = languages or LANGUAGE_BASE
    return TaskResult(
        experiment=experiment,
        seed=seed,
        base_model=base_model,
        metric_version=metric_version,
        itt=EXPERIMENTS[experiment][0],
        checkpoint=f"runs/{experiment}/seed{seed}",
        task=task,
        split=split,
        primary_metric=TASKS[task],
        languages={lang: {TASKS[task]: language_score(experiment, task, seed, lang)} for lang in languages},
    )


def write_grid(root, skip=(), **overrides):
    for experiment in EXPERIMENTS:
        for task in TASKS:
            for seed in SEEDS:
                if (experiment, task, seed) not in skip:
                    path = root / experiment / f"seed{seed}" / f"{task}.validation.json"
                    make_result(experiment, task, seed, **overrides).save(path)
    (root / "baseline" / "manifest.json").write_text(json.dumps({"stages": ["target"], "task": "xnli"}))
    return root


def expected_average(experiment, task, seed, languages) -> float:
    return float(np.mean([language_score(experiment, task, seed, lang) for lang in languages]))


def find_row(table, *leading):
    return next(row for row in table.rows if tuple(row[: len(leading)]) == leading)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = write_grid(tmp_path_factory.mktemp("runs"), skip={("joint", "panx", 3)})
    return ResultGrid(load_results([root], "validation"))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = write_grid(tmp_path_factory.mktemp("runs"), skip={("joint", "panx", 3)})
    make_result("seq", "xnli", 1, split="test").save(root / "seq" / "seed1" / "xnli.test.json")
    out = tmp_path_factory.mktemp("report")
    return build_report([root], out), out


def test_mean_ci_is_the_t_interval():
    values = [70.0, 71.5, 73.0]
    estimate = mean_ci(values)
    assert estimate.mean == pytest.approx(71.5)
    assert estimate.half_width == pytest.approx(T_975_DF2 * np.std(values, ddof=1) / math.sqrt(3))
    assert estimate.n == 3
    single = mean_ci([70.0])
    assert (single.mean, single.half_width, single.n) == (70.0, None, 1)


def test_seed_delta_pairs_shared_seeds_else_welch():
    scores, baseline = {1: 72.0, 2: 74.5, 3: 73.0}, {1: 70.0, 2: 71.0, 3: 71.5}
    paired = seed_delta(scores, baseline)
    reference = stats.ttest_rel(list(scores.values()), list(baseline.values())).confidence_interval(0.95)
    assert paired.paired is True and paired.n == 3
    assert paired.mean == pytest.approx((reference.low + reference.high) / 2)
    assert paired.half_width == pytest.approx((reference.high - reference.low) / 2)

    disjoint = {4: 75.0, 5: 73.0, 6: 76.0}
    unpaired = seed_delta(disjoint, baseline)
    reference = stats.ttest_ind(list(disjoint.values()), list(baseline.values()), equal_var=False)
    interval = reference.confidence_interval(0.95)
    assert unpaired.paired is False and (unpaired.n, unpaired.n_baseline) == (3, 3)
    assert unpaired.mean == pytest.approx(np.mean(list(disjoint.values())) - np.mean(list(baseline.values())))
    assert unpaired.half_width == pytest.approx((interval.high - interval.low) / 2)
    assert seed_delta({1: 80.0}, {1: 78.0}).format(signed=True, digits=2) == "+2.00 (n=1)"
    assert seed_delta({}, baseline) is None


def test_score_table_means_and_cis(grid):
    table = score_table(grid)
    row = find_row(table, "xnli", "seq")
    all_langs = [expected_average("seq", "xnli", seed, LANGUAGE_BASE) for seed in SEEDS]
    non_en = [expected_average("seq", "xnli", seed, ["de", "sw", "zh"]) for seed in SEEDS]
    for cell, values in ((row[3], all_langs), (row[4], non_en)):
        assert cell.mean == pytest.approx(np.mean(values))
        assert cell.half_width == pytest.approx(T_975_DF2 * np.std(values, ddof=1) / math.sqrt(3))
        assert cell.n == 3
    assert row[5].mean == pytest.approx(np.mean([language_score("seq", "xnli", s, "en") for s in SEEDS]))
    assert row[2] == "squad_v1 → mnli"
    assert find_row(table, "panx", "joint")[3].n == 2  # seed 3 is missing


def test_delta_table_recovers_known_gains(grid):
    table = delta_table(grid, "baseline")
    _, gain, per_language, noise = EXPERIMENTS["seq"]
    row = find_row(table, "xnli", "seq")
    # all-language delta per seed = gain + sw bonus / 4 languages + experiment noise
    per_seed = [gain + per_language["sw"] / 4 + noise[seed] for seed in SEEDS]
    assert row[2].paired is True and row[-1] == "paired"
    assert row[2].mean == pytest.approx(np.mean(per_seed))
    assert row[2].half_width == pytest.approx(T_975_DF2 * np.std(per_seed, ddof=1) / math.sqrt(3))
    assert row[3].mean == pytest.approx(np.mean([gain + per_language["sw"] / 3 + noise[s] for s in SEEDS]))
    assert row[4].mean == pytest.approx(np.mean([gain + noise[s] for s in SEEDS]))
    assert find_row(table, "panx", "joint")[2].n == 2  # paired on the two shared seeds
    assert not any(row[1] == "baseline" for row in table.rows)


def test_language_heatmap_matrix(grid):
    experiments, languages, matrix = language_delta_matrix(grid, "xnli", "baseline")
    assert languages == sorted(LANGUAGE_BASE) and "baseline" not in experiments
    seq_noise = np.mean(list(EXPERIMENTS["seq"][3].values()))
    assert matrix[experiments.index("seq"), languages.index("sw")] == pytest.approx(2.0 + 4.0 + seq_noise)
    assert matrix[experiments.index("seq"), languages.index("de")] == pytest.approx(2.0 + seq_noise)


def test_sequential_joint_pairing(grid):
    assert sequential_joint_pairs(grid) == ([("seq", "joint")], [])
    row = find_row(sequential_joint_table(grid, "baseline"), "xnli")
    joint_minus_seq = [
        expected_average("joint", "xnli", s, LANGUAGE_BASE) - expected_average("seq", "xnli", s, LANGUAGE_BASE)
        for s in SEEDS
    ]
    assert row[5].mean == pytest.approx(np.mean(joint_minus_seq)) and row[5].paired
    assert row[6].mean == pytest.approx(find_row(delta_table(grid, "baseline"), "xnli", "seq")[2].mean)


def test_benchmark_average_over_covered_tasks(grid):
    table = benchmark_table(grid, "baseline")
    row = find_row(table, "XTREME", "seq")
    per_seed = [np.mean([expected_average("seq", task, s, LANGUAGE_BASE) for task in TASKS]) for s in SEEDS]
    assert row[2] is None  # no XTREME score without all nine tasks ...
    assert row[3].mean == pytest.approx(np.mean(per_seed))  # ... only the partial mean over xnli and panx
    assert row[5] == "pawsx, udpos, xquad, mlqa, tydiqa, bucc2018, tatoeba"
    assert any(
        note.startswith("XTREME: partial, no results for pawsx") and "not a benchmark score" in note
        for note in table.notes
    )
    joint = find_row(table, "XTREME", "joint")
    assert joint[3].n == 2 and joint[4].n == 2  # seed 3 lacks panx: left out of the average


def test_benchmark_restricts_languages_per_benchmark(tmp_path):
    qa_scores = {"en": (70.0, 82.0), "de": (55.0, 68.0), "ro": (40.0, 51.0)}  # (exact_match, f1)
    for seed in SEEDS:
        languages = {
            lang: {"exact_match": em + seed, "f1": f1 + seed, "avg": (em + f1) / 2 + seed}
            for lang, (em, f1) in qa_scores.items()
        }
        TaskResult(
            experiment="baseline",
            seed=seed,
            base_model="xlm-roberta-large",
            metric_version="1",
            itt=EXPERIMENTS["baseline"][0],
            checkpoint="c",
            task="xquad",
            split="validation",
            primary_metric="avg",
            languages=languages,
        ).save(tmp_path / f"xquad-{seed}.json")
    table = benchmark_table(ResultGrid(load_results([tmp_path], "validation")), "baseline")
    xtreme, xtreme_r = find_row(table, "XTREME", "baseline"), find_row(table, "XTREME-R", "baseline")
    seed_mean = np.mean(SEEDS)
    assert xtreme[3].mean == pytest.approx(np.mean([sum(qa_scores[lang]) / 2 for lang in ("en", "de")]) + seed_mean)
    assert xtreme_r[3].mean == pytest.approx(np.mean([sum(v) / 2 for v in qa_scores.values()]) + seed_mean)
    assert any("XTREME: benchmark languages without scores" in note and "xquad ar" in note for note in table.notes)


def test_missing_combinations_and_tasks_without_baseline(tmp_path):
    root = write_grid(
        tmp_path,
        skip={
            ("joint", "panx", 3),
            ("baseline", "panx", 1),
            ("baseline", "panx", 2),
            ("baseline", "panx", 3),
            ("single", "xnli", 2),
        },
    )
    grid = ResultGrid(load_results([root], "validation"))
    assert missing_combinations(grid) == [
        ("baseline", "panx", [1, 2, 3]),
        ("joint", "panx", [3]),
        ("single", "xnli", [2]),
    ]
    assert tasks_without_baseline(grid, "baseline") == ["panx"]
    assert all(row[0] != "panx" for row in delta_table(grid, "baseline").rows)
    row = find_row(delta_table(grid, "baseline"), "xnli", "single")
    assert row[2].paired and row[2].n == 2


def test_mixed_base_models_are_refused(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    make_result("baseline", "xnli", 1).save(first)
    make_result("seq", "xnli", 1, base_model="xlm-roberta-base").save(second)
    with pytest.raises(ConfigError, match="base_model") as error:
        ResultGrid(load_results([tmp_path], "validation"))
    assert "a.json" in str(error.value) and "b.json" in str(error.value)


def test_report_groups_incompatible_results_separately(tmp_path):
    write_grid(tmp_path / "large")
    write_grid(tmp_path / "v2", metric_version="2")
    text = build_report([tmp_path], tmp_path / "out").read_text()
    assert "never compared across groups" in text
    assert text.count("## base_model xlm-roberta-large") == 2
    assert "metric_version 1" in text and "metric_version 2" in text
    assert (tmp_path / "out" / "group1-heatmap-xnli.png").is_file()
    assert (tmp_path / "out" / "group2-heatmap-xnli.png").is_file()


def test_baseline_choice(grid, tmp_path):
    assert choose_baseline(grid, None) == "baseline"
    assert choose_baseline(grid, "single") == "single"
    write_grid(tmp_path)
    make_result("baseline", "xnli", 1).save(tmp_path / "extra.json")  # same experiment/task/seed twice
    with pytest.raises(ConfigError, match="two results"):
        ResultGrid(load_results([tmp_path], "validation"))
    second_plain = make_result("baseline", "xnli", 1)
    second_plain.experiment = "baseline-2"
    second_plain.save(tmp_path / "extra.json")
    with pytest.raises(ConfigError, match="several experiments have itt.mode 'none'"):
        choose_baseline(ResultGrid(load_results([tmp_path], "validation")), None)
    renamed = make_result("seq", "xnli", 2)
    renamed.experiment = "baseline-2"  # same name, other ITT stages than the file above
    renamed.save(tmp_path / "clash.json")
    with pytest.raises(ConfigError, match="ITT stages of experiment 'baseline-2'"):
        ResultGrid(load_results([tmp_path], "validation"))


def test_unknown_baseline_and_empty_input_are_clear(tmp_path):
    write_grid(tmp_path / "runs")
    with pytest.raises(ConfigError, match="'nope' is not among"):
        build_report([tmp_path / "runs"], tmp_path / "out", baseline="nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no result files"):
        load_results([tmp_path / "empty"], "validation")
    with pytest.raises(ConfigError, match="split 'test'"):
        load_results([tmp_path / "runs"], "test")


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_report_markdown_and_plots(rendered):
    report, out = rendered
    text = report.read_text()
    assert "23 result files in 1 comparable group(s). 1 result files of other splits left out" in text
    for title in (
        "Scores (language averages",
        "Deltas vs baseline 'baseline'",
        "Benchmark averages",
        "Sequential vs joint",
        "Missing results",
    ):
        assert title in text
    assert "`joint` × `panx`: seed(s) 3" in text
    assert "![xnli per-language deltas](heatmap-xnli.png)" in text
    for name in ("heatmap-xnli.png", "heatmap-panx.png", "gains.png"):
        width, height = png_size(out / name)
        assert width > 300 and height > 200 and (out / name).stat().st_size > 10_000


def test_cli_writes_html_report_with_svg(tmp_path):
    write_grid(tmp_path / "runs")
    command = [
        sys.executable,
        "-m",
        "hf_itt.report",
        str(tmp_path / "runs"),
        "--out",
        str(tmp_path / "out"),
        "--baseline",
        "single",
        "--format",
        "html",
        "--svg",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<table>" in page and "Deltas vs baseline &#x27;single&#x27;" in page
    assert (tmp_path / "out" / "gains.svg").is_file()


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "hf_itt.report.build: error: no result files" in capsys.readouterr().err
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


# --------------------------------------------------------------------------------- best ITT, thresholds


def write_test_split(root, shift, extra=None):
    """Test results: the validation recipe shifted by ``shift`` points (+ ``extra[experiment]``)."""
    for experiment in EXPERIMENTS:
        for seed in SEEDS:
            record = make_result(experiment, "xnli", seed, split="test")
            bump = shift + (extra or {}).get(experiment, 0.0)
            record.languages = {lang: {"accuracy": m["accuracy"] + bump} for lang, m in record.languages.items()}
            record.summary = {}
            record.__post_init__()
            record.save(root / experiment / f"seed{seed}" / "xnli.test.json")


def test_best_itt_is_selected_on_validation_and_reported_on_test(tmp_path):
    from hf_itt.report.best_itt import NO_TEST_NOTE, best_itt_table

    root = write_grid(tmp_path)
    # on test every score is 3 points lower, and "joint" 5 points higher than that: a test-time
    # choice would pick joint; the table must keep the validation choice (seq: +2, +4 in sw)
    write_test_split(root, -3.0, {"joint": 5.0})
    table = best_itt_table(load_results([root]), "baseline")
    xnli = find_row(table, "xnli")
    validation = [expected_average("seq", "xnli", s, LANGUAGE_BASE) for s in SEEDS]
    baseline = [expected_average("baseline", "xnli", s, LANGUAGE_BASE) for s in SEEDS]
    assert xnli[1:3] == ["seq", "squad_v1 → mnli"] and xnli[4] == "test"
    assert xnli[3].mean == pytest.approx(np.mean(validation))
    assert xnli[5].mean == pytest.approx(np.mean(validation) - 3)
    assert xnli[6].mean == pytest.approx(np.mean(baseline) - 3)
    assert xnli[7].paired and xnli[7].mean == pytest.approx(np.mean(validation) - np.mean(baseline))
    # panx has no test results: reported on validation and flagged
    panx = find_row(table, "panx")
    assert panx[1] == "seq" and panx[4] == NO_TEST_NOTE and panx[5].mean == pytest.approx(panx[3].mean)


def test_best_itt_needs_an_itt_experiment_and_validation(tmp_path):
    from hf_itt.report.best_itt import best_itt_table

    for seed in SEEDS:
        make_result("baseline", "xnli", seed).save(tmp_path / f"b{seed}.json")
        make_result("baseline", "xnli", seed, split="test").save(tmp_path / f"t{seed}.json")
    assert best_itt_table(load_results([tmp_path]), "baseline").rows == []
    only_test = best_itt_table(load_results([tmp_path], "test"), "baseline")
    assert only_test.rows == [] and only_test.notes == ["no validation results: nothing to select on"]


def test_complete_benchmark_shows_the_average_partial_does_not(tmp_path):
    from hf_itt.report.benchmark import BENCHMARK_LANGUAGES

    metric = {"xquad": "avg", "mlqa": "avg", "tydiqa": "avg", "udpos": "f1", "panx": "f1", "bucc2018": "f1"}
    for task, languages in BENCHMARK_LANGUAGES["xtreme"].items():
        values = (
            {"exact_match": 60.0, "f1": 70.0, "avg": 65.0}
            if metric.get(task) == "avg"
            else {metric.get(task, "accuracy"): 50.0 + len(task)}
        )
        TaskResult(
            experiment="baseline",
            seed=1,
            base_model="m",
            metric_version="2",
            itt={"mode": "none"},
            checkpoint="c",
            task=task,
            split="validation",
            primary_metric=metric.get(task, "accuracy"),
            languages={lang: dict(values) for lang in languages},
        ).save(tmp_path / f"{task}.json")
    table = benchmark_table(ResultGrid(load_results([tmp_path], "validation")), "baseline")
    row = find_row(table, "XTREME", "baseline")
    scores = [65.0 if metric.get(task) == "avg" else 50.0 + len(task) for task in BENCHMARK_LANGUAGES["xtreme"]]
    assert row[2].mean == pytest.approx(np.mean(scores)) and row[3] is None and row[5] == "none"
    assert find_row(table, "XTREME-R", "baseline")[2] is None  # XTREME-R lacks xcopa, mewsli_x, lareqa


def test_report_shows_bucc_threshold_sources(tmp_path):
    from hf_itt.report.thresholds import threshold_table

    for seed, source in ((1, "dev"), (2, "test-oracle")):
        TaskResult(
            experiment="baseline",
            seed=seed,
            base_model="m",
            metric_version="2",
            itt={"mode": "none"},
            checkpoint="c",
            task="bucc2018",
            split="test",
            primary_metric="f1",
            languages={"de": {"f1": 80.0, "threshold": 1.0625}, "fr": {"f1": 70.0, "threshold": 1.1}},
            protocol={"bucc_duplicates": "drop", "threshold_source": {"de": source, "fr": "dev"}},
        ).save(tmp_path / f"bucc-{seed}.json")
    grid = ResultGrid(load_results([tmp_path], "test"))
    table = threshold_table(grid)
    assert table.rows[0] == ["bucc2018", "baseline", "1", "drop", "de 1.0625 (dev), fr 1.1000 (dev)"]
    assert table.rows[1][-1].startswith("de 1.0625 (test-oracle)") and "upper bound" in table.notes[-1]
    text = build_report([tmp_path], tmp_path / "out", split="test").read_text()
    assert "Mining thresholds (BUCC) and their source" in text and "(test-oracle)" in text


def test_demo_shaped_report_renders_the_best_itt_table(tmp_path):
    """The demo's shape: five experiments, demo_xnli with validation and test, demo_tatoeba with
    validation only (its only split)."""
    itts = {
        "baseline": [],
        "itt-related": [["mnli"]],
        "itt-unrelated": [["commonsenseqa"]],
        "joint": [["mnli", "commonsenseqa"]],
        "sequential": [["commonsenseqa"], ["mnli"]],
    }
    gains = {"baseline": 0.0, "itt-related": 20.0, "itt-unrelated": 1.0, "joint": 15.0, "sequential": 18.0}
    for experiment, stages in itts.items():
        mode = "none" if not stages else "single" if len(stages) == 1 and len(stages[0]) == 1 else "other"
        for task, splits, metric in (
            ("demo_xnli", ("validation", "test"), "accuracy"),
            ("demo_tatoeba", ("validation",), "accuracy"),
        ):
            for split in splits:
                TaskResult(
                    experiment=experiment,
                    seed=0,
                    base_model="demo/base",
                    metric_version="2",
                    itt={"mode": mode, "stages": stages},
                    checkpoint="c",
                    task=task,
                    split=split,
                    primary_metric=metric,
                    languages={
                        lang: {metric: 50.0 + gains[experiment] - (split == "test")}
                        for lang in ("en", "qa", "qb", "qc")
                    },
                ).save(tmp_path / experiment / "results" / f"{task}.{split}.json")
    text = build_report([tmp_path], tmp_path / "report").read_text()
    assert "### Best intermediate task per target (selected on validation, reported on test)" in text
    assert "| demo_xnli | itt-related | mnli | 70.0 (n=1) | test | 69.0 (n=1) | 49.0 (n=1) | +20.00 (n=1) |" in text
    assert "| demo_tatoeba | itt-related | mnli | 70.0 (n=1) | validation (no test results" in text


# --------------------------------------------------------------------------------- training budgets


def stage_entry(stage, tasks, updates, batch=32, planned=None, selected=None):
    budget = {
        "updates": updates,
        "effective_batch_size": batch,
        "examples_seen": updates * batch,
        "planned_updates": planned or updates,
        "epochs": 1.0,
        "stopped_early": updates < (planned or updates),
        "selected_step": selected or updates,
        "metric_for_best_model": "average",
        "best_metric": 0.5,
    }
    return {"stage": stage, "tasks": tasks, "budget": budget}


def test_budget_table_states_each_arms_updates_and_examples_seen(tmp_path):
    """Budgets ride in the result files (``training``): one per (experiment, seed), summed over ITT stages."""
    from hf_itt.report.budget import budget_table

    training = {  # experiment -> seed -> ITT entries
        "seq": {
            1: [stage_entry("squad-v1", ["squad_v1"], 8_214), stage_entry("mnli", ["mnli"], 36_816)],
            2: [
                stage_entry("squad-v1", ["squad_v1"], 8_214),
                stage_entry("mnli", ["mnli"], 30_000, planned=36_816, selected=0),
            ],
        },
        "joint": {1: [stage_entry("joint", ["mnli", "squad_v1"], 20_000, planned=45_030, selected=12_000)]},
    }
    for experiment in ("baseline", "seq", "joint", "single"):
        for seed in (1, 2):
            result = make_result(experiment, "xnli", seed)
            if experiment in training and seed in training[experiment]:
                result.training = {"itt": training[experiment][seed], "target": stage_entry("xnli", ["xnli"], 100)}
            result.save(tmp_path / experiment / f"seed{seed}" / "xnli.validation.json")
    table = budget_table(ResultGrid(load_results([tmp_path], "validation")))
    seq = find_row(table, "seq")
    assert seq[2] == f"{(45_030 + 38_214) / 2:,.0f} (38,214–45,030)"
    assert seq[3] == f"{(45_030 + 38_214) * 16:,.0f} ({38_214 * 32:,}–{45_030 * 32:,})"
    assert seq[4] == "squad-v1: 8,214 × 32; mnli: 36,816 × 32 [seed 1]" and seq[5] == "1, 2"
    joint = find_row(table, "joint")
    assert joint[2:4] == ["20,000", "640,000"]
    assert joint[4] == "joint: 20,000 × 32 of 45,030 (early stop) (step 12,000)"
    assert joint[5] == "1; not recorded for 2"
    assert find_row(table, "single")[2:] == [
        "not recorded",
        "not recorded",
        "not recorded",
        "none; not recorded for 1, 2",
    ]
    assert find_row(table, "baseline")[2:5] == ["0", "0", "no ITT stage"]
    report = build_report([tmp_path], tmp_path / "out").read_text()
    assert "### Training budget of each arm" in report and "| joint | mnli + squad_v1 | 20,000 | 640,000 |" in report


def test_results_written_before_budgets_were_recorded_still_load(tmp_path):
    data = {key: value for key, value in vars(make_result("seq", "xnli", 1)).items() if key != "training"}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    assert TaskResult.load(path).training == {}
