"""``hf-itt export-submission``: saved predictions -> the XTREME submission layout -> re-read by an
independent reader (tests/xtreme_reader.py) -> the same numbers as hf_itt's result files.

The run is built from XTREME's own mock submission (tests/fixtures/xtreme_mock): its predictions
become hf_itt prediction files and result records scored by hf_itt's metrics, exactly what the
evaluation driver writes for a scorer that returns its predictions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import xtreme_reader

from hf_itt import predictions as preds
from hf_itt.errors import ConfigError, DataError
from hf_itt.evaluation.results import TaskResult
from hf_itt.metrics.retrieval import bucc_scores, map_at_k
from hf_itt.metrics.scoring import primary_key, score, tatoeba_scores
from hf_itt.report.benchmark import BENCHMARK_LANGUAGES, benchmark_average
from hf_itt.report.submission import benchmark_test_split, export_submission
from hf_itt.tasks.registry import get_task

MOCK = Path(__file__).parent / "fixtures" / "xtreme_mock"
REPO = Path(__file__).resolve().parents[1]
XTREME_TASKS = ["pawsx", "xnli", "udpos", "panx", "bucc2018", "tatoeba", "xquad", "mlqa", "tydiqa"]


def mock_language(task: str, lang: str) -> tuple[dict[str, float], preds.Predictions]:
    """hf_itt's scores and predictions for one mock language, as an hf_itt scorer would return them."""
    folder = "mewslix" if task == "mewsli_x" else task
    ext = xtreme_reader.extension(folder)
    pred_path, gold_path = (MOCK / side / folder / f"test-{lang}.{ext}" for side in ("predictions", "labels"))
    metric = get_task(task).metric
    if task in ("udpos", "panx"):
        pred, gold = xtreme_reader.tag_sentences(pred_path), xtreme_reader.tag_sentences(gold_path)
        return score(metric, pred, gold), preds.tag_predictions(pred)
    if task in ("xnli", "pawsx"):
        pred, gold = xtreme_reader.lines(pred_path), xtreme_reader.lines(gold_path)
        return score(metric, pred, gold), preds.label_predictions(pred)
    if task == "tatoeba":
        pred, gold = map(xtreme_reader.lines, (pred_path, gold_path))
        return tatoeba_scores([int(p) for p in pred], [int(g) for g in gold]), preds.index_predictions(
            [int(p) for p in pred], "tgt->src"
        )
    if task == "bucc2018":
        candidates = {tuple(line.split("\t")): 1.0 for line in xtreme_reader.lines(pred_path) if line}
        gold = {tuple(line.split("\t")) for line in xtreme_reader.lines(gold_path) if line}
        scores = bucc_scores(candidates, gold, threshold=1.0)
        return scores, preds.pair_predictions(candidates, scores["threshold"], "dev")
    if task == "mewsli_x":
        gold, ranked = json.loads(gold_path.read_text()), json.loads(pred_path.read_text())
        ids = list(gold)
        rankings = [ranked.get(i, []) for i in ids]
        return map_at_k(rankings, [gold[i] for i in ids], k=20), preds.ranking_predictions(ids, rankings)
    answers = json.loads(pred_path.read_text())
    references = {
        q["id"]: [a["text"] for a in q["answers"]]
        for article in xtreme_reader.squad_json(gold_path)
        for paragraph in article["paragraphs"]
        for q in paragraph["qas"]
    }
    args = (answers, references, lang) if task == "mlqa" else (answers, references)
    return score(metric, *args), preds.answer_predictions(answers)


def write_mock_run(results: Path, tasks: list[str], benchmark: str = "xtreme", experiment: str = "mock") -> None:
    for task in tasks:
        split = benchmark_test_split(task)
        record = TaskResult(
            experiment=experiment,
            seed=0,
            base_model="mock",
            metric_version="2",
            itt={},
            checkpoint="mock",
            task=task,
            split=split,
            primary_metric=primary_key(get_task(task).metric),
            languages={},
        )
        for lang in BENCHMARK_LANGUAGES[benchmark][task]:
            record.languages[lang], predictions = mock_language(task, lang)
            path = preds.predictions_path(results, task, split, lang)
            preds.save_predictions(path, predictions, task=task, split=split, lang=lang)
            record.predictions[lang] = path.relative_to(results).as_posix()
        record.summary = {}
        record.__post_init__()
        record.save(results / f"{task}.{split}.json")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    write_mock_run(root / "run" / "results", XTREME_TASKS)
    summary = export_submission([root / "run"], root / "submission", "xtreme")
    return root, summary


def test_export_writes_the_official_layout(exported):
    root, summary = exported
    assert sorted(summary.written) == sorted(XTREME_TASKS) and not summary.missing_languages
    for task in XTREME_TASKS:
        names = {path.name for path in (root / "submission" / task).iterdir()}
        assert names == {
            f"test-{lang}.{xtreme_reader.extension(task)}" for lang in xtreme_reader.VERSIONS["xtreme"][task]
        }
    # the mock's own prediction files come back line for line (a closing blank line is optional)
    for relative in ("xnli/test-de.tsv", "udpos/test-en.tsv", "tatoeba/test-de.tsv", "bucc2018/test-de.tsv"):
        ours, theirs = (
            (folder / relative).read_text().rstrip("\n") for folder in (root / "submission", MOCK / "predictions")
        )
        assert sorted(ours.split("\n")) == sorted(theirs.split("\n")) if relative.startswith("bucc") else ours == theirs


def test_exported_files_rescore_to_the_result_files(exported):
    root, _ = exported
    detailed, overall = xtreme_reader.score_folder(root / "submission", MOCK / "labels", "xtreme")
    for task in XTREME_TASKS:
        record = TaskResult.load(root / "run" / "results" / f"{task}.{benchmark_test_split(task)}.json")
        for metric, by_lang in detailed[task].items():
            if metric.startswith("avg"):
                continue
            for lang, value in by_lang.items():
                assert record.languages[lang][metric] == pytest.approx(value, abs=1e-9), (task, lang, metric)
    # and the benchmark average of the result files is the re-scored folder's all_task
    results = {
        task: TaskResult.load(root / "run" / "results" / f"{task}.{benchmark_test_split(task)}.json").languages
        for task in XTREME_TASKS
    }
    average = benchmark_average(results, "xtreme")
    assert average.complete and average.overall == pytest.approx(overall["all_task"], abs=1e-9)


def test_the_round_trip_gives_xtremes_own_numbers(exported):
    root, _ = exported
    detailed, overall = xtreme_reader.score_folder(root / "submission", MOCK / "labels", "xtreme")
    expected = json.loads((MOCK / "expected_xtreme_seqeval-0.0.12.json").read_text())
    for task in XTREME_TASKS:
        assert detailed[task]["avg_metric"] == pytest.approx(expected[task]["avg_metric"], abs=1e-9), task
    assert detailed["udpos"]["avg_f1"] == 70.21746048354693  # evaluate_test.py
    assert overall["all_task"] == pytest.approx(expected["all_task"], abs=1e-9)


def test_xtreme_r_export_with_mewsli_x_and_xcopa(tmp_path):
    write_mock_run(tmp_path / "run" / "results", ["xnli", "mewsli_x", "mlqa", "tydiqa"], "xtreme_r")
    xcopa = TaskResult(
        experiment="mock",
        seed=0,
        base_model="mock",
        metric_version="2",
        itt={},
        checkpoint="mock",
        task="xcopa",
        split="test",
        primary_metric="accuracy",
        languages={"et": {"accuracy": 50.0}},
    )
    path = preds.predictions_path(tmp_path / "run" / "results", "xcopa", "test", "et")
    preds.save_predictions(path, preds.label_predictions(["1", "0"]), task="xcopa", split="test", lang="et")
    xcopa.predictions = {"et": path.relative_to(tmp_path / "run" / "results").as_posix()}
    xcopa.save(tmp_path / "run" / "results" / "xcopa.test.json")
    summary = export_submission([tmp_path / "run"], tmp_path / "sub", "xtreme_r")
    assert summary.skipped["lareqa"].startswith("no submission file format")
    assert "udpos" in summary.skipped and summary.missing_languages["xcopa"][0] == "ht"
    assert (tmp_path / "sub" / "xcopa" / "test-et.jsonl").read_text() == '{"label": 1}\n{"label": 0}\n'
    labels = tmp_path / "labels"
    for task in ("xnli", "mewslix", "mlqa", "tydiqa"):
        (labels / task).mkdir(parents=True)
        for file in (MOCK / "labels" / task).iterdir():
            (labels / task / file.name).write_bytes(file.read_bytes())
    detailed, overall = xtreme_reader.score_folder(tmp_path / "sub", labels, "xtreme-r")
    expected = json.loads((MOCK / "expected_xtreme-r_xnli-mewslix-mlqa-tydiqa.json").read_text())
    assert detailed["mewslix"]["avg_map@20"] == pytest.approx(expected["mewslix"]["avg_map@20"], abs=1e-9)
    assert overall == {}  # no XTREME-R overall score without every task


def test_bad_inputs_are_refused_with_the_fix(tmp_path):
    write_mock_run(tmp_path / "a" / "results", ["xnli"])
    write_mock_run(tmp_path / "b" / "results", ["xnli"], experiment="other")
    with pytest.raises(ConfigError, match="several xnli test results"):
        export_submission([tmp_path / "a", tmp_path / "b"], tmp_path / "sub")
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="holds other files"):
        export_submission([tmp_path / "a"], tmp_path / "precious")
    record = TaskResult.load(tmp_path / "a" / "results" / "xnli.test.json")
    record.predictions = {}
    record.save(tmp_path / "a" / "results" / "xnli.test.json")
    with pytest.raises(DataError, match="no prediction file for ar; re-run the evaluation"):
        export_submission([tmp_path / "a"], tmp_path / "sub")
    assert not (tmp_path / "sub").exists()  # nothing half-written


def test_cli_prints_what_it_wrote_and_one_line_errors(tmp_path):
    write_mock_run(tmp_path / "run" / "results", ["xnli", "udpos"])
    env_run = dict(cwd=REPO, capture_output=True, text=True, timeout=300)
    done = subprocess.run(
        [sys.executable, "-m", "hf_itt", "export-submission", str(tmp_path / "run"), "--out", str(tmp_path / "sub")],
        **env_run,
    )
    assert done.returncode == 0, done.stderr
    assert "xnli: 15 language file(s)" in done.stdout and "bucc2018: not exported: no results" in done.stdout
    failed = subprocess.run(
        [
            sys.executable,
            "-m",
            "hf_itt",
            "export-submission",
            str(tmp_path / "nowhere"),
            "--out",
            str(tmp_path / "sub2"),
        ],
        **env_run,
    )
    assert failed.returncode == 2 and failed.stderr.startswith("hf_itt error: report input")
    assert len(failed.stderr.strip().splitlines()) == 1


def test_xtreme_r_tatoeba_is_the_tatoeba_xtreme_r_result_when_there_is_one(tmp_path):
    results = tmp_path / "run" / "results"
    for task, retrieved in (("tatoeba", [0, 1]), ("tatoeba_xtreme_r", [1, 0])):
        record = TaskResult(
            experiment="mock",
            seed=0,
            base_model="mock",
            metric_version="2",
            itt={},
            checkpoint="mock",
            task=task,
            split="validation",
            primary_metric="accuracy",
            languages={"de": {"accuracy": 50.0}},
        )
        path = preds.predictions_path(results, task, "validation", "de")
        preds.save_predictions(
            path, preds.index_predictions(retrieved, "tgt->src"), task=task, split="validation", lang="de"
        )
        record.predictions = {"de": path.relative_to(results).as_posix()}
        record.save(results / f"{task}.validation.json")
    export_submission([tmp_path / "run"], tmp_path / "r", "xtreme_r")
    export_submission([tmp_path / "run"], tmp_path / "x", "xtreme")
    assert (tmp_path / "r" / "tatoeba" / "test-de.tsv").read_text().split() == ["1", "0"]  # XTREME-R's protocol
    assert (tmp_path / "x" / "tatoeba" / "test-de.tsv").read_text().split() == ["0", "1"]
