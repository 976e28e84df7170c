"""Export saved predictions as an XTREME / XTREME-R submission folder.

    hf-itt export-submission RUN_DIR... --out submission/ [--benchmark xtreme|xtreme_r]

The layout is the one XTREME's ``evaluate.py --prediction_folder`` and the leaderboard read
(google-research/xtreme README, "Leaderboard Submission", and ``mock_test_data/predictions``)::

    <out>/<task>/test-<lang>.<ext>        ext: json for xquad, mlqa, tydiqa, mewslix; jsonl for xcopa; else tsv

=========  =====================================================================
task       file content
=========  =====================================================================
xnli       one label name per line (``entailment``), in test order
pawsx      one label per line (``0`` / ``1``)
udpos      one tag per line, a blank line after each sentence
panx       the same with IOB2 tags
bucc2018   one mined pair per line ``<src_id>\\t<en_id>`` (score >= the recorded threshold)
tatoeba    one integer per line: the retrieved row of each query row
xquad      JSON ``{question_id: answer_text}`` (mlqa, tydiqa likewise)
mewslix    JSON ``{example_id: [entity_id, ...]}`` best first, top 20
xcopa      JSON lines ``{"label": 0 | 1}``
=========  =====================================================================

Predictions come from the files the evaluation wrote next to its results
(``hf_itt.predictions``). The benchmark's test set is hf_itt's ``test`` split, or the
only split for XQuAD, TyDiQA-GoldP and Tatoeba (``validation`` on the Hub). Rows are written in
the order hf_itt evaluated them, which is the official order only when the data is the official
test files (Tatoeba's official English side, for one, is sorted). LAReQA has no submission format.
XTREME-R's tatoeba folder holds the ``tatoeba_xtreme_r`` results when there are any (its protocol).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hf_itt.errors import ConfigError, DataError
from hf_itt.evaluation.results import TaskResult
from hf_itt.fileio import atomic_publish_dir
from hf_itt.predictions import Predictions, extracted_pairs, load_predictions
from hf_itt.report.benchmark import BENCHMARK_LANGUAGES, result_task
from hf_itt.tasks.registry import get_task

# hf_itt task -> (submission folder, file extension, prediction kind)
SUBMISSION_TASKS = {
    "xnli": ("xnli", "tsv", "labels"),
    "pawsx": ("pawsx", "tsv", "labels"),
    "udpos": ("udpos", "tsv", "tags"),
    "panx": ("panx", "tsv", "tags"),
    "bucc2018": ("bucc2018", "tsv", "pairs"),
    "tatoeba": ("tatoeba", "tsv", "indices"),
    "xquad": ("xquad", "json", "answers"),
    "mlqa": ("mlqa", "json", "answers"),
    "tydiqa": ("tydiqa", "json", "answers"),
    "mewsli_x": ("mewslix", "json", "rankings"),
    "xcopa": ("xcopa", "jsonl", "labels"),
}
BENCHMARK_CHOICES = ("xtreme", "xtreme_r")


@dataclass
class ExportSummary:
    """What was written (task -> languages), and what could not be (task -> reason / languages)."""

    out: Path
    written: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    missing_languages: dict[str, list[str]] = field(default_factory=dict)


def benchmark_test_split(task: str) -> str:
    """The hf_itt split holding the benchmark's test set: ``test``, or the task's only split."""

    return "test" if get_task(task).has_split("test") else "validation"


def pick_results(
    loaded: list[tuple[Path, TaskResult]], benchmark: str, summary: ExportSummary
) -> dict[str, tuple[Path, TaskResult]]:
    """One result per benchmark task, of its test split; ambiguous inputs are refused."""
    chosen: dict[str, tuple[Path, TaskResult]] = {}
    tasks = BENCHMARK_LANGUAGES[benchmark]
    for task in tasks:
        if task not in SUBMISSION_TASKS:
            summary.skipped[task] = "no submission file format (the official script cannot score it)"
            continue
        # the benchmark's own protocol of the task when evaluated (XTREME-R's Tatoeba: tatoeba_xtreme_r)
        source = result_task(task, benchmark, {record.task for _, record in loaded}) or task
        split = benchmark_test_split(source)
        found = [(path, record) for path, record in loaded if record.task == source and record.split == split]
        if not found:
            other = sorted({record.split for _, record in loaded if record.task == task})
            summary.skipped[task] = (
                f"no {split} results (found: {', '.join(other)}); evaluate with evaluation.splits including {split}"
                if other
                else "no results"
            )
            continue
        if len(found) > 1:
            raise ConfigError(
                f"several {task} {split} results ({', '.join(str(path) for path, _ in found)}); "
                f"a submission holds one model: pass the results of one experiment and seed"
            )
        chosen[task] = found[0]
    return chosen


def export_submission(paths: list[str | Path], out: str | Path, benchmark: str = "xtreme") -> ExportSummary:
    """Write the submission folder ``out`` from the results (and their predictions) under ``paths``."""
    from hf_itt.report.build import load_results  # defers matplotlib

    if benchmark not in BENCHMARK_CHOICES:
        raise ConfigError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARK_CHOICES)}")
    out = Path(out)
    check_out_folder(out)
    summary = ExportSummary(out)
    chosen = pick_results(load_results(paths), benchmark, summary)
    if not chosen:
        reasons = "; ".join(f"{task}: {why}" for task, why in summary.skipped.items())
        raise DataError(f"nothing to export for {benchmark}: {reasons}")
    with tempfile.TemporaryDirectory() as staging:
        for task, (path, record) in chosen.items():
            languages = BENCHMARK_LANGUAGES[benchmark][task]
            summary.written[task] = write_task(Path(staging), task, path, record, languages)
            absent = [lang for lang in languages if lang not in summary.written[task]]
            if absent:
                summary.missing_languages[task] = absent
        atomic_publish_dir(staging, out)
    return summary


def check_out_folder(out: Path) -> None:
    """``out`` is replaced as a whole: refuse a folder that holds anything but submission task folders."""
    if not out.exists():
        return
    folders = {folder for folder, _, _ in SUBMISSION_TASKS.values()}
    foreign = [entry.name for entry in out.iterdir() if not (entry.is_dir() and entry.name in folders)]
    if foreign:
        raise ConfigError(
            f"--out {out} holds other files ({', '.join(sorted(foreign)[:3])}); the export replaces "
            f"the folder, so choose a new or an earlier submission folder"
        )


def write_task(root: Path, task: str, result_path: Path, record: TaskResult, languages: tuple[str, ...]) -> list[str]:
    """Write ``<root>/<folder>/test-<lang>.<ext>`` for each benchmark language the result has predictions for."""
    folder, ext, kind = SUBMISSION_TASKS[task]
    written = []
    for lang in languages:
        if lang not in record.languages:
            continue
        if lang not in record.predictions:
            raise DataError(
                f"{result_path} has no prediction file for {lang}; re-run the evaluation with "
                f"evaluation.save_predictions true (predictions are saved when the scorer returns them)"
            )
        header, predictions = load_predictions(result_path.parent / record.predictions[lang])
        expected = (record.task, record.split, lang, kind)  # record.task: tatoeba_xtreme_r stands for tatoeba
        if (header["task"], header["split"], header["language"], predictions.kind) != expected:
            raise DataError(
                f"{record.predictions[lang]} holds {header['task']} {header['split']} {header['language']} "
                f"{predictions.kind}, not the {' '.join(expected)} of {result_path}"
            )
        target = root / folder / f"test-{lang}.{ext}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(task, predictions), encoding="utf-8")
        written.append(lang)
    return written


def render(task: str, predictions: Predictions) -> str:
    """The text of one submission file (see the table in the module doc)."""
    records = predictions.records
    if predictions.kind == "labels" and task == "xcopa":
        return "".join(json.dumps({"label": int(r["label"])}) + "\n" for r in records)
    if predictions.kind == "labels":
        return "".join(f"{r['label']}\n" for r in records)
    if predictions.kind == "tags":
        return "".join("".join(f"{tag}\n" for tag in r["tags"]) + "\n" for r in records)
    if predictions.kind == "pairs":
        return "".join(f"{source}\t{target}\n" for source, target in extracted_pairs(predictions))
    if predictions.kind == "indices":
        return "".join(f"{int(r['index'])}\n" for r in records)
    if predictions.kind == "answers":
        return json.dumps({r["id"]: r["text"] for r in records}, ensure_ascii=False)
    if predictions.kind == "rankings":
        return json.dumps({r["id"]: r["ranking"][:20] for r in records}, ensure_ascii=False)
    raise DataError(f"task {task}: predictions of kind {predictions.kind!r} have no submission format")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hf-itt export-submission", description=__doc__.splitlines()[0])
    parser.add_argument(
        "inputs", nargs="+", help="run folders (searched recursively) or result JSON files of ONE model"
    )
    parser.add_argument("--out", required=True, help="submission folder to write (replaced as a whole)")
    parser.add_argument(
        "--benchmark",
        choices=BENCHMARK_CHOICES,
        default="xtreme",
        help="which task and language lists to export (default: xtreme)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Errors propagate: ``hf-itt`` (``hf_itt.cli``) prints them as one ``hf_itt error:`` line."""
    args = parse_args(argv)
    summary = export_submission(args.inputs, args.out, args.benchmark)
    for task, languages in summary.written.items():
        print(f"{task}: {len(languages)} language file(s)")
    for task, languages in summary.missing_languages.items():
        print(f"{task}: no predictions for {' '.join(languages)} (the official script needs every language)")
    for task, reason in summary.skipped.items():
        print(f"{task}: not exported: {reason}")
    print(f"submission written to {summary.out}")
    return 0
