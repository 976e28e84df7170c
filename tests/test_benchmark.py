"""XTREME / XTREME-R task scores and benchmark averages (hf_itt.report.benchmark)."""

from __future__ import annotations

import pytest

from hf_itt.errors import ConfigError, DataError
from hf_itt.report.benchmark import (
    BENCHMARK_GROUPS,
    BENCHMARK_LANGUAGES,
    benchmark_average,
    task_score,
)

QA = {"xquad", "mlqa", "tydiqa"}
PRIMARY = {
    "pawsx": "accuracy",
    "xnli": "accuracy",
    "xcopa": "accuracy",
    "tatoeba": "accuracy",
    "udpos": "f1",
    "panx": "f1",
    "bucc2018": "f1",
    "mewsli_x": "map@20",
    "lareqa": "map@20",
}


def _metrics(task, lang, salt=0):
    """Deterministic, distinct scores per (task, language)."""
    base = (sum(map(ord, task + lang)) * 7 + salt) % 60 + 20.0
    if task in QA:
        return {"exact_match": base, "f1": base + 11.0, "avg": base + 5.5}
    if task in ("udpos",):
        return {"f1": base, "precision": base + 1, "recall": base - 1, "accuracy": base + 3}
    if task in ("panx", "bucc2018"):
        return {"f1": base, "precision": base + 2, "recall": base - 2}
    return {PRIMARY[task]: base}


def _expected_task_score(task, per_lang):
    """XTREME evaluate.py written out: average each metric over languages, then pick."""

    def avg(metric):
        return sum(m[metric] for m in per_lang.values()) / len(per_lang)

    if task in QA:
        return (avg("exact_match") + avg("f1")) / 2
    for metric in ("f1", "accuracy", "map@20"):
        if metric in next(iter(per_lang.values())):
            return avg(metric)
    raise AssertionError(task)


def _full(benchmark, salt=0):
    langs_of = dict(BENCHMARK_LANGUAGES[benchmark])
    langs_of["lareqa"] = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
    return {
        task: {lang: _metrics(task, lang, salt) for lang in langs_of[task]} for task in BENCHMARK_LANGUAGES[benchmark]
    }


def test_task_score_rules():
    qa = {"en": {"exact_match": 70.0, "f1": 80.0}, "de": {"exact_match": 50.0, "f1": 66.0}}
    assert task_score("xquad", qa) == pytest.approx(((70 + 50) / 2 + (80 + 66) / 2) / 2)
    pos = {"en": {"f1": 90.0, "accuracy": 96.0}, "de": {"f1": 80.0, "accuracy": 92.0}}
    assert task_score("udpos", pos) == 85.0  # F1 wins over accuracy, as in XTREME
    assert task_score("xnli", {"en": {"accuracy": 88.0}, "ar": {"accuracy": 78.0}}) == 83.0
    assert task_score("mewsli_x", {"en": {"map@20": 40.0}}) == 40.0


def test_task_score_errors():
    with pytest.raises(DataError, match="no per-language scores"):
        task_score("xnli", {})
    with pytest.raises(DataError, match="needs 'exact_match' and 'f1'"):
        task_score("mlqa", {"en": {"f1": 70.0}})
    with pytest.raises(DataError, match="none of f1 / accuracy / map@20"):
        task_score("xnli", {"en": {"loss": 0.3}})


@pytest.mark.parametrize("name, n_tasks", [("xtreme", 9), ("xtreme_r", 10)])
def test_full_benchmark_matches_evaluate_py(name, n_tasks):  # not "benchmark": pytest-benchmark's fixture
    scores = _full(name)
    result = benchmark_average(scores, name)
    expected = {task: _expected_task_score(task, per_lang) for task, per_lang in scores.items()}
    assert len(expected) == n_tasks and result.complete
    assert result.task_scores == pytest.approx(expected)
    assert result.overall == pytest.approx(sum(expected.values()) / n_tasks) == result.partial_mean
    for group, tasks in BENCHMARK_GROUPS[name].items():
        assert result.groups[group] == pytest.approx(sum(expected[t] for t in tasks) / len(tasks))
    assert result.missing_tasks == [] and result.missing_languages == {} and result.ignored == []


def test_partial_benchmark_states_what_is_missing():
    scores = _full("xtreme")
    del scores["bucc2018"], scores["pawsx"]
    del scores["xnli"]["sw"]
    result = benchmark_average(scores, "xtreme")
    assert not result.complete and not result.all_tasks_present
    assert result.missing_tasks == ["pawsx", "bucc2018"]
    assert result.missing_languages == {"xnli": ["sw"]}
    assert set(result.task_scores) == set(scores)
    # evaluate.py's rule: no benchmark score and no group score with a task missing
    assert result.overall is None and result.groups["retrieval"] is None and result.groups["classification"] is None
    assert result.partial_mean == pytest.approx(sum(result.task_scores.values()) / 7)
    assert result.groups["qa"] == pytest.approx(sum(result.task_scores[t] for t in ("xquad", "mlqa", "tydiqa")) / 3)
    assert result.task_scores["xnli"] == pytest.approx(_expected_task_score("xnli", scores["xnli"]))  # 14 languages


def test_languages_and_tasks_outside_the_benchmark_are_ignored_and_reported():
    scores = _full("xtreme")
    scores["xquad"]["ro"] = {"exact_match": 0.0, "f1": 0.0}  # XTREME-R only
    scores["xcopa"] = {"et": {"accuracy": 0.0}}  # XTREME-R only
    xtreme = benchmark_average(scores, "xtreme")
    assert set(xtreme.ignored) == {"xcopa", "xquad/ro"}
    assert xtreme.task_scores["xquad"] == pytest.approx(_expected_task_score("xquad", _full("xtreme")["xquad"]))
    xtreme_r = benchmark_average({"xquad": scores["xquad"]}, "xtreme_r")
    assert xtreme_r.task_scores["xquad"] == pytest.approx(_expected_task_score("xquad", scores["xquad"]))
    assert "xquad" not in xtreme_r.missing_languages


def test_precomputed_task_scores_aliases_and_lareqa_outside_groups():
    result = benchmark_average(
        {"xnli": 80.0, "mewslix": 40.0, "lareqa": {"en": {"map@20": 30.0}, "de": {"map@20": 20.0}}}, "xtreme_r"
    )
    assert result.task_scores == {"xnli": 80.0, "mewsli_x": 40.0, "lareqa": 25.0}
    assert result.overall is None and result.partial_mean == pytest.approx((80 + 40 + 25) / 3)
    assert result.groups["retrieval"] is None and result.groups["qa"] is None  # tatoeba / QA tasks missing
    assert not any("lareqa" in tasks for tasks in BENCHMARK_GROUPS["xtreme_r"].values())


def test_empty_input_and_unknown_benchmark():
    result = benchmark_average({}, "xtreme")
    assert result.overall is None and result.partial_mean is None and len(result.missing_tasks) == 9
    with pytest.raises(ConfigError, match="unknown benchmark 'glue'"):
        benchmark_average({}, "glue")


def test_language_lists_match_the_fact_sheet():
    xtreme = {lang for langs in BENCHMARK_LANGUAGES["xtreme"].values() for lang in langs}
    xtreme_r = {lang for langs in BENCHMARK_LANGUAGES["xtreme_r"].values() for lang in langs}
    assert len(xtreme) == 40 and len(xtreme_r) == 50
    sizes = {task: len(langs) for task, langs in BENCHMARK_LANGUAGES["xtreme"].items()}
    assert sizes == {
        "pawsx": 7,
        "xnli": 15,
        "udpos": 33,
        "panx": 40,
        "xquad": 11,
        "mlqa": 7,
        "tydiqa": 9,
        "bucc2018": 4,
        "tatoeba": 36,
    }
    sizes_r = {task: len(langs) for task, langs in BENCHMARK_LANGUAGES["xtreme_r"].items()}
    assert sizes_r == {
        "xnli": 15,
        "xcopa": 11,
        "udpos": 38,
        "panx": 48,
        "xquad": 12,
        "mlqa": 7,
        "tydiqa": 9,
        "tatoeba": 41,
        "mewsli_x": 11,
        "lareqa": 0,
    }


# XTREME's evaluate.py (google-research/xtreme, scripts and evaluate.py; XTREME-R's additions from its
# README and TASKS.md): the reference the specs' language lists are checked against.
EVALUATE_PY_XTREME = {
    "pawsx": "de en es fr ja ko zh",
    "xnli": "ar bg de el en es fr hi ru sw th tr ur vi zh",
    "udpos": "af ar bg de el en es et eu fa fi fr he hi hu id it ja kk ko mr nl pt ru ta te th tl tr ur vi yo zh",
    "panx": "ar he vi id jv ms tl eu ml ta te af nl en de el bn hi mr ur fa fr it pt es bg ru ja ka ko th sw yo my "
    "zh kk tr et fi hu",
    "xquad": "en es de el ru tr ar vi th zh hi",
    "mlqa": "en es de ar hi vi zh",
    "tydiqa": "en ar bn fi id ko ru sw te",
    "bucc2018": "de fr ru zh",
    "tatoeba": "ar he vi id jv tl eu ml ta te af nl de el bn hi mr ur fa fr it pt es bg ru ja ka ko th sw zh kk tr "
    "et fi hu",
}
EVALUATE_PY_XTREME_R = {
    "xnli": EVALUATE_PY_XTREME["xnli"],
    "xcopa": "et ht id it qu sw ta th tr vi zh",
    "udpos": EVALUATE_PY_XTREME["udpos"] + " lt pl uk wo ro",
    "panx": EVALUATE_PY_XTREME["panx"] + " qu pl uk az lt pa gu ro",
    "xquad": EVALUATE_PY_XTREME["xquad"] + " ro",
    "mlqa": EVALUATE_PY_XTREME["mlqa"],
    "tydiqa": EVALUATE_PY_XTREME["tydiqa"],
    "tatoeba": EVALUATE_PY_XTREME["tatoeba"] + " az lt pl uk ro",
    "mewsli_x": "ar de en es fa ja pl ro ta tr uk",
    "lareqa": "",  # scored by its own retrieval script: evaluate.py lists no language
}


@pytest.mark.parametrize("benchmark, reference", [("xtreme", EVALUATE_PY_XTREME), ("xtreme_r", EVALUATE_PY_XTREME_R)])
def test_languages_derived_from_the_task_specs_are_evaluate_pys(benchmark, reference):
    derived = BENCHMARK_LANGUAGES[benchmark]
    assert list(derived) == list(reference)  # evaluate.py's task order
    assert {task: sorted(langs) for task, langs in derived.items()} == {
        task: sorted(langs.split()) for task, langs in reference.items()
    }
